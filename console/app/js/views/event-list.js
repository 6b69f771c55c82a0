// Events as a table: when, what, whose, who, and what changed (before → after).

import { h, longName, tenantLink } from '../dom.js';
import { instant } from '../format.js';

function show(value) {
  if (value === null || value === undefined) return '∅';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** What an admin change changed, key by key; or the event's data. */
export function details(event) {
  if (event.before && event.after) {
    const keys = [...new Set([...Object.keys(event.before), ...Object.keys(event.after)])]
      .filter((k) => k !== 'updated_at' && show(event.before[k]) !== show(event.after[k]));
    if (keys.length === 0) return 'no field changed';
    return h('ul', { class: 'changes' }, keys.map((k) => h('li', {},
      h('code', {}, k), ': ', show(event.before[k]), ' → ', show(event.after[k]))));
  }
  if (event.after) return h('span', { class: 'json', title: show(event.after) }, `created: ${show(event.after)}`);
  if (event.before) return h('span', { class: 'json', title: show(event.before) }, `deleted: ${show(event.before)}`);
  const data = event.data && Object.keys(event.data).length > 0 ? show(event.data) : '';
  return h('span', { class: 'json', title: data }, data);
}

/** The table of `events`. */
export function eventTable(events) {
  if (events.length === 0) return h('p', { class: 'empty' }, 'No events.');
  return h('table', { class: 'list events' },
    h('thead', {}, h('tr', {}, ['When (UTC)', 'Kind', 'Tenant', 'Actor', 'Subject', 'Details']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, events.map((e) => h('tr', { dataset: { kind: e.kind } },
      h('td', { class: 'when' }, instant(e.at).replace(' UTC', '')),
      h('td', {}, h('code', {}, e.kind)),
      h('td', { class: 'cell-id' }, e.tenant ? tenantLink(e.tenant) : '—'),
      h('td', {}, e.actor ? longName(e.actor) : '—'),
      h('td', { class: 'cell-id' }, e.subject ? longName(e.subject) : '—'),
      h('td', { class: 'details' }, details(e))))));
}
