// The MQTT connection to the node (MQTT over WebSocket at /mqtt, same origin as the page),
// following docs/writing-a-client.md: client id `{me}:{device}`, the token as password, a
// clean session (every connect catches up with `sync`), subscriptions before the sync, and
// requests to `im/req/{me}` answered on this device's own `im/sys/{me}/{device}`.
//
// MQTT.js reconnects by itself after a drop; `onConnect` runs after every (re)connect and
// is where the app subscribes, syncs and resends its outbox.

import mqtt from 'mqtt';

/** How long a request may wait for its `result` before it is given up (and retried later). */
const REQUEST_TIMEOUT_MS = 15_000;

export class Connection {
  /**
   * @param {object} o
   * @param {string} o.me user id; @param {string} o.device this tab's device id
   * @param {string} o.token the JWT; @param {string[]} o.groups groups to subscribe to
   * @param {(topic: string, payload: any) => void} o.onMessage chat, presence and notices
   * @param {() => void} o.onConnect after each CONNACK (already subscribed)
   * @param {(state: string, detail?: string, code?: number) => void} o.onState
   *   'connecting' | 'online' | 'offline' | 'refused' (with the CONNACK reason code)
   */
  constructor(o) {
    this.o = o;
    this.pending = new Map(); // req id -> {resolve, reject, timer}
    this.reqCounter = 0;
    this.client = null;
    this.socket = null;
  }

  start() {
    const { me, device, token } = this.o;
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/mqtt';
    this.o.onState('connecting');
    const client = mqtt.connect(url, {
      clientId: `${me}:${device}`,
      username: me,
      password: token,
      protocolVersion: 5,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 2000,
      // A refused CONNECT is retried too (the node full or busy: 0x97, 0x89); a refused
      // token is the app's to replace (see App.onState).
      reconnectOnConnackError: true,
      connectTimeout: 10_000,
      // We subscribe ourselves on every connect, before syncing (writing-a-client.md step 2).
      resubscribe: false,
      // Our own handle on the socket, so stop() can close it at once (see there).
      createWebsocket: (wsUrl, protocols) => {
        this.socket = new WebSocket(wsUrl, protocols);
        return this.socket;
      },
    });
    this.client = client;
    client.on('connect', () => this.subscribe());
    client.on('message', (topic, bytes) => this.message(topic, bytes));
    client.on('close', () => {
      this.failPending('disconnected');
      if (this.client === client) this.o.onState('offline');
    });
    client.on('reconnect', () => this.o.onState('connecting'));
    client.on('error', (e) => {
      // A CONNACK refusal: its reason code (134: bad or expired token; 135: not allowed).
      if (e && typeof e.code === 'number') this.o.onState('refused', e.message, e.code);
    });
  }

  /**
   * Ends this connection for good (sign-out, leaving the page, or replaced after a token
   * refresh). The socket is closed right here: MQTT.js closes it a tick later, and a page
   * leaving for the back/forward cache is frozen before that tick, its socket left open.
   */
  stop() {
    const c = this.client;
    this.client = null;
    this.failPending('stopped');
    if (this.socket) this.socket.close(1000);
    this.socket = null;
    if (c) c.end(true);
  }

  get connected() {
    return !!this.client && this.client.connected;
  }

  subscribe() {
    const { me, device, groups } = this.o;
    const topics = [
      `im/dm/${me}/+`, // DMs to me
      `im/dm/+/${me}`, // my DMs, from my other devices (and this one, stamped)
      'im/presence/+',
      `im/sys/${me}`, // acks, errors, receipts
      `im/sys/${me}/${device}`, // answers to this device's requests
      ...groups.map((g) => `im/grp/${g}/+`),
    ];
    const client = this.client;
    client.subscribe(topics, { qos: 1 }, (err) => {
      if (client !== this.client) return;
      if (err) {
        this.o.onState('offline', 'subscribe failed: ' + err.message);
        client.end(true, () => client.reconnect());
        return;
      }
      this.o.onState('online');
      this.o.onConnect();
    });
  }

  message(topic, bytes) {
    let payload = null;
    if (bytes.length > 0) {
      try {
        payload = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        return; // not JSON: nothing this app shows
      }
    }
    if (payload && payload.type === 'result' && this.pending.has(payload.req)) {
      const p = this.pending.get(payload.req);
      this.pending.delete(payload.req);
      clearTimeout(p.timer);
      if (payload.error) {
        const e = new Error(payload.error.message || payload.error.code);
        e.code = payload.error.code;
        p.reject(e);
      } else {
        p.resolve(payload);
      }
      return;
    }
    this.o.onMessage(topic, payload);
  }

  /** A request (protocol.md section 5); resolves to the whole `result` notice. */
  request(method, params) {
    if (!this.connected) return Promise.reject(new Error('offline'));
    this.reqCounter += 1;
    const req = `${this.o.device}-${this.reqCounter}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(req);
        reject(new Error(`no answer to ${method}`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(req, { resolve, reject, timer });
      this.client.publish(`im/req/${this.o.me}`, JSON.stringify({ req, method, params }), { qos: 1 });
    });
  }

  /** Publishes a chat message at QoS 1; its `ack` (or `error`) arrives as a notice. */
  publish(topic, payload) {
    if (!this.connected) return false;
    this.client.publish(topic, JSON.stringify(payload), { qos: 1 });
    return true;
  }

  failPending(why) {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(why));
    }
    this.pending.clear();
  }
}
