// One tenant: its place in the tree, effective quota (and why), live usage bars,
// usage over time, recent events, and (admin token) usage resets and adjustments.

import { seg } from '../api.js';
import { h, longName, replace, section, tenantLink } from '../dom.js';
import { failure } from '../forms.js';
import { instant } from '../format.js';
import { eventTable } from './event-list.js';
import { historyPanel } from './history.js';
import { quotaLevels } from './quota.js';
import { REFRESH_MS, usageBars } from './usage.js';
import { usageActions } from './usage-actions.js';

function about(tenant) {
  const item = (label, value) => h('div', { class: 'figure' }, h('dt', {}, label), h('dd', {}, value));
  return h('dl', { class: 'figures about' },
    item('parent', tenant.parent_id ? tenantLink(tenant.parent_id) : '— (a root)'),
    item('own tier', tenant.tier || '—'),
    item('mode', tenant.mode),
    item('overcommit', `${tenant.overcommit} ×`),
    item('labels', Object.keys(tenant.labels || {}).length ? JSON.stringify(tenant.labels) : '—'),
    item('updated', instant(tenant.updated_at)));
}

/** `#/tenants/:id` */
export async function tenantView(el, { api, canWrite }, id) {
  const path = `/tenants/${seg(id)}`;
  const header = h('div', { class: 'title' }, h('h1', {}, longName(id)));
  const quota = h('div', { class: 'panel-body' }, 'Loading…');
  const live = h('div', { class: 'panel-body', 'aria-live': 'off' }, 'Loading…');
  const updated = h('p', { class: 'caption' });
  const history = h('div', { class: 'panel-body' }, 'Loading…');
  const events = h('div', { class: 'panel-body' }, 'Loading…');
  const actions = h('div', { class: 'panel-body' });
  replace(el, header,
    h('div', { class: 'columns' },
      section('Live usage', updated, live),
      section('Effective quota', quota)),
    section('Usage over time', history),
    section('Recent events', events,
      h('p', {}, h('a', { href: `#/events?tenant=${encodeURIComponent(id)}` }, 'Every event of this tenant'))),
    canWrite ? section('Correct usage', actions) : null);

  let tenant;
  try {
    tenant = await api.get(path);
  } catch (error) {
    replace(el, h('h1', {}, longName(id)), failure('This tenant could not be read', error),
      h('p', {}, h('a', { href: '#/tenants' }, 'Back to the tenants')));
    return undefined;
  }
  header.append(about(tenant));

  api.get(`${path}/quota`)
    .then((report) => replace(quota, quotaLevels(report)))
    .catch((error) => replace(quota, failure('The effective quota could not be read', error)));
  historyPanel(history, api, id);
  const loadEvents = () => api.get('/events', { tenant: id, limit: 10 })
    .then((page) => replace(events, eventTable(page.items)))
    .catch((error) => replace(events, failure('The events could not be read', error)));
  loadEvents();

  let stopped = false;
  let timer = null;
  let actionsShown = false;
  const refresh = async () => {
    try {
      const report = await api.get(`${path}/usage`);
      if (stopped) return;
      replace(live, usageBars(report));
      updated.textContent = `Updated ${instant(new Date().toISOString())}, every ${REFRESH_MS / 1000} s.`;
      if (canWrite && !actionsShown) {
        actionsShown = true;
        const own = report.usage.filter((r) => r.tenant === id && r.period !== 'none');
        replace(actions, own.length > 0
          ? usageActions(api, id, own, () => { refresh(); loadEvents(); })
          : h('p', { class: 'empty' }, 'This tenant has no limits of its own to reset or adjust.'));
      }
    } catch (error) {
      if (stopped) return;
      updated.replaceChildren(failure(`Live usage could not be read (at ${instant(new Date().toISOString())})`, error));
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  };
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
