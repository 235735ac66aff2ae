// What the app knows: conversations, their messages, presence, and the outbox of messages
// not yet acknowledged. Plain data and pure-ish updates; the views read it and main.js
// feeds it from the connection. Messages are keyed by (from, id), the protocol's dedupe
// key, so the same message arriving live, from `sync` and from `history` is shown once.

import { dmConv } from './ids.js';

const OUTBOX_KEY = 'roost.outbox';

export class Store {
  constructor(me, groups) {
    this.me = me;
    this.groups = groups;
    this.convs = new Map(); // conv id -> Conv
    this.presence = new Map(); // user -> status word
    this.outbox = new Map(); // message id -> {conv, topic, payload}; kept per tab
    this.cursor = null; // sync cursor: where the next catch-up starts
    for (const g of groups) this.conv(`grp:${g}`);
    this.loadOutbox();
  }

  /** The conversation `id`, created empty when new. */
  conv(id) {
    let c = this.convs.get(id);
    if (!c) {
      const [kind, a, b] = id.split(':');
      c = {
        id,
        kind,
        // A DM's other user; a group's name.
        title: kind === 'dm' ? (a === this.me ? b : a) : a,
        lastSeq: 0,
        readSeq: 0,
        reads: {}, // other members' read positions
        last: null, // the newest message record
        messages: new Map(), // "from|id" -> record
        loaded: false, // the latest history page was fetched
        more: true, // older history exists on the server
        activity: 0, // for ordering the list: ts of the newest message
      };
      this.convs.set(id, c);
    }
    return c;
  }

  dm(user) {
    return this.conv(dmConv(this.me, user));
  }

  /** Unread count the way the server counts it: messages after my read position. */
  unread(c) {
    return Math.max(0, c.lastSeq - c.readSeq);
  }

  /** Conversations, most recent first; those without messages (my groups) last. */
  list() {
    return [...this.convs.values()].sort((x, y) => y.activity - x.activity || (x.id < y.id ? -1 : 1));
  }

  /**
   * Adds or completes a message. `m`: {conv, seq?, id, from, ts, body, kind}. Returns the
   * record, or null for a repeat that changed nothing.
   */
  add(m) {
    const c = this.conv(m.conv);
    const key = `${m.from}|${m.id}`;
    let r = c.messages.get(key);
    if (r && (r.seq || !m.seq)) return null;
    if (r) {
      r.seq = m.seq;
      r.ts = m.ts ?? r.ts;
    } else {
      r = { key, conv: c.id, seq: m.seq ?? null, id: m.id, from: m.from, ts: m.ts ?? Date.now(), body: m.body, kind: m.kind, failed: null };
      c.messages.set(key, r);
    }
    if (r.seq) {
      c.lastSeq = Math.max(c.lastSeq, r.seq);
      // My own messages move my read position forward (as the server counts).
      if (r.from === this.me) c.readSeq = Math.max(c.readSeq, r.seq);
      if (r.from === this.me) this.dropFromOutbox(r.id);
    }
    if (!c.last || newer(r, c.last)) c.last = r;
    c.activity = Math.max(c.activity, r.ts);
    return r;
  }

  /** A payload as delivered on a chat topic (stamped: with conv, seq, from, ts). */
  addLive(topic, p) {
    if (!p || typeof p.id !== 'string') return null;
    const [, kind, a, from] = topic.split('/');
    const conv = p.conv || (kind === 'dm' ? dmConv(a, from) : `grp:${a}`);
    return this.add({ conv, seq: p.seq, id: p.id, from: p.from || from, ts: p.ts, body: p.body, kind: p.kind });
  }

  /** A message of a `history` or `sync` page: {seq, id, from, ts, payload}. */
  addStored(conv, m) {
    const p = m.payload || {};
    return this.add({ conv, seq: m.seq, id: m.id, from: m.from, ts: m.ts, body: p.body, kind: p.kind });
  }

  /** A line of `conversations`. */
  summary(s) {
    const c = this.conv(s.conv);
    c.lastSeq = Math.max(c.lastSeq, s.last_seq);
    c.readSeq = Math.max(c.readSeq, s.read_seq);
    for (const [u, seq] of Object.entries(s.reads || {})) {
      if (u !== this.me) c.reads[u] = Math.max(c.reads[u] || 0, seq);
    }
    if (s.last) this.addStored(s.conv, s.last);
  }

  /** An `ack` notice: my message is stored with this seq. */
  ack(n) {
    const c = this.conv(n.conv);
    const r = c.messages.get(`${this.me}|${n.id}`);
    if (r) this.add({ conv: n.conv, seq: n.seq, id: n.id, from: this.me, ts: n.ts });
    this.dropFromOutbox(n.id);
    return r;
  }

  /** An `error` notice naming one of my messages: it will never be stored. */
  failed(n) {
    const entry = this.outbox.get(n.id);
    if (!entry) return;
    const r = this.conv(entry.conv).messages.get(`${this.me}|${n.id}`);
    if (r) r.failed = n.code || 'error';
    this.dropFromOutbox(n.id);
  }

  /** A `receipt`: `user` read `conv` up to `read_seq`. */
  receipt(n) {
    const c = this.conv(n.conv);
    if (n.user === this.me) c.readSeq = Math.max(c.readSeq, n.read_seq);
    else c.reads[n.user] = Math.max(c.reads[n.user] || 0, n.read_seq);
  }

  /** 'pending' | 'stored' | 'read' | 'failed' for my message `r`; null for others'. */
  status(r) {
    if (r.from !== this.me) return null;
    if (r.failed) return 'failed';
    if (!r.seq) return 'pending';
    const c = this.convs.get(r.conv);
    const read = Object.values(c.reads).some((s) => s >= r.seq);
    return read ? 'read' : 'stored';
  }

  /** My message, shown pending at once and kept until its `ack`. */
  queue(conv, topic, payload) {
    this.outbox.set(payload.id, { conv, topic, payload });
    this.saveOutbox();
    return this.add({ conv, id: payload.id, from: this.me, ts: payload.ts, body: payload.body, kind: payload.kind });
  }

  dropFromOutbox(id) {
    if (this.outbox.delete(id)) this.saveOutbox();
  }

  // The outbox survives a reload of the tab (sessionStorage), so nothing typed is lost.
  saveOutbox() {
    sessionStorage.setItem(OUTBOX_KEY + '.' + this.me, JSON.stringify([...this.outbox.values()]));
  }

  loadOutbox() {
    let saved = [];
    try {
      saved = JSON.parse(sessionStorage.getItem(OUTBOX_KEY + '.' + this.me) || '[]');
    } catch {
      saved = [];
    }
    for (const e of saved) {
      if (e && e.payload && typeof e.payload.id === 'string') {
        this.outbox.set(e.payload.id, e);
        this.add({ conv: e.conv, id: e.payload.id, from: this.me, ts: e.payload.ts, body: e.payload.body, kind: e.payload.kind });
      }
    }
  }

  /** A conversation's messages in order: by seq, those without one (pending) last. */
  ordered(c) {
    return [...c.messages.values()].sort((x, y) => {
      if (x.seq && y.seq) return x.seq - y.seq;
      if (x.seq) return -1;
      if (y.seq) return 1;
      return x.ts - y.ts;
    });
  }

  /** The oldest seq shown, for paging history backwards. */
  oldestSeq(c) {
    let min = Infinity;
    for (const r of c.messages.values()) if (r.seq && r.seq < min) min = r.seq;
    return min === Infinity ? null : min;
  }
}

/** Whether record `a` comes after `b` in its conversation (pending ones come last). */
function newer(a, b) {
  if (!a.seq) return true;
  if (!b.seq) return false;
  return a.seq >= b.seq;
}
