// Identifiers the protocol asks of a client: a device id per tab (distinct tabs are distinct
// devices, so each gets every message and its own answers) and a unique id per message sent
// (the server stores a (sender, id) once, so resending with the same id is safe).

const DEVICE_KEY = 'roost.device';

/** This tab's device id, kept in sessionStorage: the same across reloads of the tab. */
export function deviceId() {
  let id = sessionStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = 'web-' + randomHex(6);
    sessionStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

let counter = 0;

/** A message id unique for this user: the device, the time and a counter (at most 64 chars). */
export function messageId(device) {
  counter += 1;
  return `${device}-${Date.now().toString(36)}-${counter}`;
}

export function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Ids of users and groups (protocol.md section 2). */
export const ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** The conversation id of a DM: `dm:{a}:{b}` with a < b in byte order (ids are ASCII). */
export function dmConv(a, b) {
  return a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`;
}
