// The conversations list: each conversation with a presence dot (DMs), its last message,
// and its unread count; the open one highlighted.

import { h, $, when } from './dom.js';

export function renderList(store, openId, onOpen) {
  const ul = $('#convs');
  const items = store.list().map((c) => {
    const unread = store.unread(c);
    const last = c.last;
    const preview = last ? `${last.from === store.me ? 'you' : last.from}: ${last.body ?? ''}` : 'no messages yet';
    return h(
      'li',
      {
        class: 'conv' + (c.id === openId ? ' open' : '') + (unread ? ' has-unread' : ''),
        dataset: { conv: c.id },
        onclick: () => onOpen(c.id),
      },
      presenceDot(store, c),
      h(
        'div',
        { class: 'conv-main' },
        h('div', { class: 'conv-top' }, h('span', { class: 'conv-title' }, (c.kind === 'grp' ? '# ' : '') + c.title), last ? h('time', {}, when(last.ts)) : null),
        h('div', { class: 'conv-bottom' }, h('span', { class: 'last' }, preview), unread ? h('span', { class: 'unread', title: `${unread} unread` }, String(unread)) : null),
      ),
    );
  });
  ul.replaceChildren(...items);
}

/** A dot for a DM's other user: green online, grey offline (groups get a group mark). */
export function presenceDot(store, c) {
  if (c.kind !== 'dm') return h('span', { class: 'dot group', 'aria-hidden': 'true' });
  const status = store.presence.get(c.title) || 'offline';
  return h('span', { class: `dot ${status}`, dataset: { presence: status }, title: `${c.title} is ${status}` });
}
