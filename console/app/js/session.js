// The signed-in token, kept for this tab only (sessionStorage: gone when the tab
// closes, never sent as a cookie), and what it may do.

import { client } from './api.js';

const KEY = 'tollgate.console.token';

/** The stored token, or null. */
export function storedToken() {
  return window.sessionStorage.getItem(KEY);
}

/**
 * Checks `token` with the API (`GET /admin/v1/whoami`) and returns the session:
 * `{api, scope, canWrite, actor}`. Throws the API's refusal (401 for a wrong token).
 */
export async function open(token, onUnauthorized) {
  // The check itself reports a refusal to its caller, not to `onUnauthorized`.
  const who = await client(token).get('/whoami');
  window.sessionStorage.setItem(KEY, token);
  const api = client(token, onUnauthorized);
  return { api, scope: who.scope, canWrite: who.scope === 'write', actor: who.actor };
}

/** Forgets the token. */
export function close() {
  window.sessionStorage.removeItem(KEY);
}
