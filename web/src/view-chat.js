// The open conversation: its messages oldest first (older pages load when scrolled to the
// top), my own with their state: pending (sent, no `ack` yet), stored (the server's `ack`:
// one tick), read (a receipt from another member: two ticks), failed (refused).

import { h, $, when } from './dom.js';
import { presenceDot } from './view-list.js';

const MARKS = { pending: '\u{1F551}', stored: '\u2713', read: '\u2713\u2713', failed: '!' };
const WORDS = { pending: 'sending', stored: 'stored', read: 'read', failed: 'not sent' };

export function renderChat(store, c) {
  $('#chat-title').textContent = (c.kind === 'grp' ? '# ' : '') + c.title;
  $('#chat-dot').replaceWith(Object.assign(presenceDot(store, c), { id: 'chat-dot' }));
  const list = $('#messages');
  // Keep the view where it was unless it was at the bottom (then follow new messages).
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const before = list.scrollHeight - list.scrollTop;
  const items = store.ordered(c).map((r) => message(store, r, c));
  const head = h('li', { class: 'history-edge', id: 'history-edge' }, c.more ? 'scroll up for older messages' : 'start of the conversation');
  $('#msg-list').replaceChildren(head, ...items);
  if (atBottom) list.scrollTop = list.scrollHeight;
  else list.scrollTop = list.scrollHeight - before;
}

function message(store, r, c) {
  const mine = r.from === store.me;
  const status = store.status(r);
  return h(
    'li',
    { class: 'msg' + (mine ? ' mine' : ''), dataset: { key: r.key, seq: r.seq ?? '', status: status ?? '' } },
    !mine && c.kind === 'grp' ? h('div', { class: 'from' }, r.from) : null,
    h('div', { class: 'body' }, r.body ?? `(${r.kind || 'message'})`),
    h(
      'div',
      { class: 'meta' },
      h('time', {}, when(r.ts)),
      status ? h('span', { class: `status ${status}`, title: r.failed ? `${WORDS[status]}: ${r.failed}` : WORDS[status] }, MARKS[status]) : null,
    ),
  );
}

/** Whether the user has scrolled to the top of the messages (time to load older ones). */
export function atTop() {
  return $('#messages').scrollTop < 60;
}
