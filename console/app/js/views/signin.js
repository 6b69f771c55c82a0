// Sign-in: an admin or read-only token, checked with the API before it is kept.

import { h } from '../dom.js';
import { field, form } from '../forms.js';
import * as session from '../session.js';

/** The sign-in form; `onSignedIn(ctx)` runs with the session, whose API calls
 *  `onUnauthorized` when the token is refused later. */
export function signIn(onSignedIn, reason, onUnauthorized) {
  const token = field({
    label: 'Admin or read-only token',
    name: 'token',
    type: 'password',
    hint: 'tollgate serve --admin-token or --admin-read-token. Kept in this tab only.',
    attrs: { autocomplete: 'current-password', required: true },
  });
  const signInForm = form({
    label: 'Sign in',
    fields: [token],
    submit: 'Sign in',
    onSubmit: async () => {
      const value = token.input.value.trim();
      if (!value) {
        const error = new Error('Enter a token.');
        error.params = new Map([['token', 'Enter a token.']]);
        throw error;
      }
      let ctx;
      try {
        ctx = await session.open(value, onUnauthorized);
      } catch (error) {
        if (error.status === 401) {
          error.params = new Map([['token',
            'This token was refused (401 Unauthorized): it is neither the admin token nor the read-only token.']]);
        }
        throw error;
      }
      onSignedIn(ctx);
      return undefined;
    },
  });
  return h('div', { class: 'signin panel' },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'The console uses the admin API with your token. A read-only token shows everything and changes nothing.'),
    reason ? h('p', { class: 'load-error', role: 'alert' }, reason) : null,
    signInForm);
}
