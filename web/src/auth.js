// Signing in and staying signed in: the token comes from the node's login API (user and
// password) or is pasted, lives in localStorage so every tab of this browser shares it, and
// is refreshed with POST /api/v1/token a while before it expires. The password itself is
// never stored: only the token is.

const KEY = 'roost.token';

/** The claims of a JWT (not verified: the node verifies; we only read sub, groups, exp). */
export function claims(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error('that is not a token (expected three dot-separated parts)');
  const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
  const json = decodeURIComponent(
    atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))
      .split('')
      .map((c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0'))
      .join(''),
  );
  const c = JSON.parse(json);
  if (typeof c.sub !== 'string' || typeof c.exp !== 'number') {
    throw new Error('the token has no user (sub) or no expiry (exp)');
  }
  return c;
}

/** A stored session: {token, me, groups, exp} or null. */
export function load() {
  const token = localStorage.getItem(KEY);
  if (!token) return null;
  try {
    return session(token);
  } catch {
    localStorage.removeItem(KEY);
    return null;
  }
}

/** Keeps `token` for this browser and returns its session. */
export function save(token) {
  const s = session(token);
  localStorage.setItem(KEY, token);
  return s;
}

export function forget() {
  localStorage.removeItem(KEY);
}

function session(token) {
  const c = claims(token);
  if (c.exp * 1000 <= Date.now()) throw new Error('the token has expired');
  return { token, me: c.sub, groups: Array.isArray(c.groups) ? c.groups : [], exp: c.exp };
}

/** POST /api/v1/login; resolves to the token or throws an Error with the server's message. */
export async function login(user, password) {
  const answer = await call('/api/v1/login', { user, password }, null);
  return answer.token;
}

/** POST /api/v1/token: a fresh token for a still-valid one (groups as the store has them). */
export async function refresh(token) {
  const answer = await call('/api/v1/token', null, token);
  return answer.token;
}

async function call(path, body, bearer) {
  const headers = {};
  if (body !== null) headers['Content-Type'] = 'application/json';
  if (bearer) headers.Authorization = 'Bearer ' + bearer;
  const res = await fetch(path, {
    method: 'POST',
    headers,
    body: body === null ? undefined : JSON.stringify(body),
  });
  let json = null;
  try {
    json = await res.json();
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!res.ok) {
    const err = new Error(json?.error?.message || `the server answered ${res.status}`);
    err.status = res.status;
    err.code = json?.error?.code;
    err.retryAfter = Number(res.headers.get('Retry-After')) || 0;
    throw err;
  }
  return json;
}

/**
 * Milliseconds from now until a token expiring at `exp` (unix seconds) should be refreshed:
 * a quarter of its remaining life before the end, at most five minutes before, at least
 * two seconds from now.
 */
export function refreshDelay(exp, now = Date.now()) {
  const left = exp * 1000 - now;
  return Math.max(2000, left - Math.min(300_000, left / 4));
}
