// The console's entry: sign in (or reuse this tab's token), then route between views.

import { h, replace } from './dom.js';
import * as router from './router.js';
import * as session from './session.js';
import { signIn } from './views/signin.js';
import { tenantsView } from './views/tenants.js';
import { tenantView } from './views/tenant.js';
import { tiersView } from './views/tiers.js';
import { tierView } from './views/tier.js';
import { assignmentsView } from './views/assignments.js';
import { eventsView } from './views/events.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let stopRouter = null;

function signedOut(reason) {
  session.close();
  if (stopRouter) stopRouter();
  stopRouter = null;
  nav.hidden = true;
  who.hidden = true;
  replace(main, signIn(started, reason, expired));
}

function highlight() {
  const first = router.current().segments[0];
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.section === first) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/** Runs the console for a session (`{api, scope, canWrite, actor}`). */
function started(ctx) {
  nav.hidden = false;
  who.hidden = false;
  const badge = document.getElementById('scope');
  badge.textContent = ctx.canWrite ? 'admin' : 'read-only';
  badge.title = ctx.canWrite
    ? 'Signed in with the admin token: may change quotas'
    : 'Signed in with the read-only token: may look, not change';
  badge.className = `badge ${ctx.canWrite ? 'badge-write' : 'badge-read'}`;
  const page = (view) => (segments, query) => {
    highlight();
    const container = h('div', { class: 'view' });
    replace(main, container);
    return view(container, ctx, segments, query);
  };
  stopRouter = router.start({
    tenants: page((el, c, segments, query) => (segments.length > 0
      ? tenantView(el, c, segments[0], query)
      : tenantsView(el, c, query))),
    tiers: page((el, c, segments) => (segments.length > 0 ? tierView(el, c, segments[0]) : tiersView(el, c))),
    assignments: page((el, c, segments, query) => assignmentsView(el, c, query)),
    events: page((el, c, segments, query) => eventsView(el, c, query)),
  }, 'tenants');
}

function expired() {
  signedOut('The token was refused (401): sign in again.');
}

document.getElementById('sign-out').addEventListener('click', () => signedOut(null));

async function boot() {
  const token = session.storedToken();
  if (!token) {
    signedOut(null);
    return;
  }
  try {
    started(await session.open(token, expired));
  } catch (error) {
    signedOut(error.status === 401 ? 'The stored token was refused (401): sign in again.' : error.describe());
  }
}

boot();
