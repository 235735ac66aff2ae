// The signed-in app: connects, catches up, keeps the views in step with the store, sends
// and resends, marks conversations read, and refreshes the token before it expires. The
// sequence is docs/writing-a-client.md's: subscribe, `sync` from the kept cursor (or
// `conversations` on a fresh start), resend the outbox; on every reconnect again.

import * as auth from './auth.js';
import { Connection } from './conn.js';
import { $ } from './dom.js';
import { ID_RE, messageId } from './ids.js';
import { Store } from './store.js';
import { renderList } from './view-list.js';
import { renderChat, atTop } from './view-chat.js';

const HISTORY_PAGE = 30;
const CURSOR_KEY = 'roost.cursor';

export class App {
  constructor(session, device, onSignedOut) {
    this.session = session;
    this.device = device;
    this.onSignedOut = onSignedOut;
    this.store = new Store(session.me, session.groups);
    // The sync cursor is per device (per tab): kept in sessionStorage, so a reload resumes.
    this.cursorKey = `${CURSOR_KEY}.${session.me}`;
    this.store.cursor = sessionStorage.getItem(this.cursorKey);
    this.openId = null;
    this.loadingOlder = false;
    this.refreshTimer = null;
    this.lastRefusal = 0;
    this.signedOut = false;
  }

  start() {
    $('#me').textContent = this.session.me;
    this.bindUi();
    this.connect();
    this.scheduleRefresh();
    this.render();
  }

  connect() {
    this.conn = new Connection({
      me: this.session.me,
      device: this.device,
      token: this.session.token,
      groups: this.session.groups,
      onMessage: (t, p) => this.onMessage(t, p),
      onConnect: () => this.onConnect(),
      onState: (s, detail) => this.onState(s, detail),
    });
    this.conn.start();
  }

  onState(state, detail, code) {
    const el = $('#conn-state');
    el.dataset.state = state;
    el.textContent = state;
    el.title = detail || '';
    // A token the node no longer takes (0x86 expired or bad, 0x87 not allowed): try a
    // fresh one, else sign out. Other refusals (full, busy) are retried by the connection.
    const tokenRefused = code === 0x86 || code === 0x87;
    if (state === 'refused' && tokenRefused && Date.now() - this.lastRefusal > 10_000) {
      this.lastRefusal = Date.now();
      this.refreshNow();
    }
  }

  /** After every CONNACK: catch up, then resend what was never acknowledged. */
  async onConnect() {
    const conn = this.conn;
    try {
      await this.catchUp(conn);
    } catch (e) {
      console.warn('catch-up failed; will retry on the next connect', e);
    }
    if (conn !== this.conn) return;
    for (const e of this.store.outbox.values()) conn.publish(e.topic, e.payload);
    if (this.openId) await this.loadLatest(this.store.conv(this.openId));
    this.markRead();
    this.render();
  }

  async catchUp(conn) {
    if (this.store.cursor) {
      // Everything since the kept cursor, page by page (writing-a-client.md step 4).
      for (;;) {
        const { result } = await conn.request('sync', { cursor: this.store.cursor, limit: 200 });
        for (const m of result.messages) this.store.addStored(m.conv, m);
        this.setCursor(result.cursor);
        this.render();
        if (!result.more) break;
      }
    } else {
      // A new device: start at the end of the log, and list the conversations (step 6).
      const { result } = await conn.request('sync', { cursor: 'now' });
      this.setCursor(result.cursor);
    }
    // Unread counts, last messages and read positions (receipts missed while away).
    let cursor;
    for (let page = 0; page < 5; page++) {
      const answer = await conn.request('conversations', cursor ? { cursor, limit: 100 } : { limit: 100 });
      for (const s of answer.result) this.store.summary(s);
      if (!answer.more) break;
      cursor = answer.cursor;
    }
  }

  setCursor(cursor) {
    this.store.cursor = cursor;
    sessionStorage.setItem(this.cursorKey, cursor);
  }

  onMessage(topic, p) {
    const s = this.store;
    if (topic.startsWith('im/presence/')) {
      if (p && typeof p.status === 'string') s.presence.set(topic.slice('im/presence/'.length), p.status);
    } else if (topic.startsWith('im/dm/') || topic.startsWith('im/grp/')) {
      s.addLive(topic, p);
      this.markRead();
    } else if (p && p.type === 'ack') {
      s.ack(p);
    } else if (p && p.type === 'error') {
      if (p.id) s.failed(p);
      else console.warn('the node refused something', p);
    } else if (p && p.type === 'receipt') {
      s.receipt(p);
    }
    this.render();
  }

  bindUi() {
    $('#composer').onsubmit = (ev) => {
      ev.preventDefault();
      const text = $('#text');
      if (text.value.trim() && this.openId) this.send(this.openId, text.value);
      text.value = '';
    };
    $('#new-dm').onsubmit = (ev) => {
      ev.preventDefault();
      const input = $('#new-dm-user');
      const user = input.value.trim();
      if (!ID_RE.test(user) || user === this.session.me) {
        input.setCustomValidity('a user id: 1-64 of A-Z a-z 0-9 _ . - (not yourself)');
        input.reportValidity();
        return;
      }
      input.value = '';
      this.open(this.store.dm(user).id);
    };
    $('#new-dm-user').oninput = (ev) => ev.target.setCustomValidity('');
    $('#back').onclick = () => this.open(null);
    $('#signout').onclick = () => this.signOut();
    $('#messages').onscroll = () => {
      if (atTop()) this.loadOlder();
    };
    document.addEventListener('visibilitychange', () => this.markRead());
    // Leaving the page may keep it alive in the back/forward cache, its WebSocket open and
    // the user shown online: disconnect, and connect again (then catch up) if it comes back.
    window.addEventListener('pagehide', () => this.conn.stop());
    window.addEventListener('pageshow', (ev) => {
      if (ev.persisted && !this.signedOut) this.connect();
    });
  }

  open(id) {
    this.openId = id;
    document.body.classList.toggle('chat-open', !!id);
    this.render();
    if (!id) return;
    const c = this.store.conv(id);
    $('#messages').scrollTop = $('#messages').scrollHeight;
    $('#text').focus();
    this.loadLatest(c).then(() => {
      this.markRead();
      this.render();
    });
  }

  /** The latest page of a conversation the first time it is opened (and after reconnects). */
  async loadLatest(c) {
    if (c.loaded || !this.conn.connected) return;
    try {
      const { result } = await this.conn.request('history', { conv: c.id, limit: HISTORY_PAGE });
      for (const m of result.messages) this.store.addStored(c.id, m);
      c.more = result.more;
      c.loaded = true;
    } catch (e) {
      // A DM nobody wrote in yet is still ours to open; anything else: retried on reconnect.
      console.warn('history failed', c.id, e);
    }
  }

  /** One page older than the oldest shown, when scrolled to the top. */
  async loadOlder() {
    const c = this.openId && this.store.conv(this.openId);
    if (!c || !c.more || !c.loaded || this.loadingOlder || !this.conn.connected) return;
    const before = this.store.oldestSeq(c);
    if (!before || before <= 1) {
      c.more = false;
      this.render();
      return;
    }
    this.loadingOlder = true;
    try {
      const { result } = await this.conn.request('history', { conv: c.id, before_seq: before, limit: HISTORY_PAGE });
      for (const m of result.messages) this.store.addStored(c.id, m);
      c.more = result.more;
    } catch (e) {
      console.warn('older history failed', e);
    } finally {
      this.loadingOlder = false;
      this.render();
    }
  }

  send(convId, body) {
    const c = this.store.conv(convId);
    const me = this.session.me;
    const topic = c.kind === 'dm' ? `im/dm/${c.title}/${me}` : `im/grp/${c.title}/${me}`;
    const payload = { id: messageId(this.device), kind: 'text', body, ts: Date.now() };
    // Pending first, then published: a drop before the `ack` resends it on reconnect.
    this.store.queue(convId, topic, payload);
    this.conn.publish(topic, payload);
    this.render();
  }

  /** Tells the server (and so the other members) how far the open conversation is read. */
  markRead() {
    const c = this.openId && this.store.convs.get(this.openId);
    if (!c || document.visibilityState !== 'visible' || !this.conn.connected) return;
    if (c.lastSeq > c.readSeq) {
      const before = c.readSeq;
      const seq = c.lastSeq;
      c.readSeq = seq;
      this.conn.request('read', { conv: c.id, seq }).catch((e) => {
        // Not stored: put it back, so it is sent again (next message, next connect).
        console.warn('read failed', e);
        if (c.readSeq === seq) c.readSeq = before;
      });
    }
  }

  render() {
    renderList(this.store, this.openId, (id) => this.open(id));
    const chat = $('#chat');
    chat.hidden = !this.openId;
    if (this.openId) renderChat(this.store, this.store.conv(this.openId));
  }

  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refreshNow(), auth.refreshDelay(this.session.exp));
  }

  /**
   * A fresh token from the node, then a new connection with it (the node ends a connection
   * when its token expires). Without one (signed out, disabled, a token with no account):
   * back to the sign-in page once the token has expired.
   */
  async refreshNow() {
    try {
      const token = await auth.refresh(this.session.token);
      this.session = auth.save(token);
      this.conn.stop();
      this.connect();
      this.scheduleRefresh();
    } catch (e) {
      console.warn('token refresh failed', e);
      const left = this.session.exp * 1000 - Date.now();
      if (e.status === 401 || e.code === 'account_disabled' || left <= 0) return this.signOut(e.message);
      // 403: a token with no account behind it (minted by `roost token`), or a disabled
      // one: it works until it expires. Otherwise the node may be away: retry soon.
      clearTimeout(this.refreshTimer);
      this.refreshTimer = setTimeout(() => this.refreshNow(), e.status === 403 ? left + 1000 : 5000);
    }
  }

  signOut(why) {
    this.signedOut = true;
    clearTimeout(this.refreshTimer);
    this.conn.stop();
    auth.forget();
    this.onSignedOut(why);
  }
}
