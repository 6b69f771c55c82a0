// A tenant's effective quota: at each level of its chain, which tier applies, which
// assignment won and why, and the limits after overrides.

import { h, longName, tenantLink } from '../dom.js';
import { count, percent, span } from '../format.js';

function limitsTable(limits) {
  if (limits.length === 0) return h('p', { class: 'empty' }, 'No limits at this level.');
  return h('table', { class: 'list compact' },
    h('thead', {}, h('tr', {}, ['Resource', 'Per', 'Quota', 'Overage', 'Hard limit', 'Warn at', 'From']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, limits.map((l) => h('tr', {},
      h('td', {}, l.resource),
      h('td', {}, span(l)),
      h('td', { class: 'num' }, l.unlimited ? `${count(l.quota)} (unlimited)` : count(l.quota)),
      h('td', { class: 'num' }, count(l.overage)),
      h('td', { class: 'num' }, count(l.quota + l.overage)),
      h('td', { class: 'num' }, percent(l.warn_at)),
      h('td', {}, l.from === 'override' ? h('strong', {}, 'tenant override') : 'tier')))));
}

/** The effective-quota panel's content from `GET …/quota`. */
export function quotaLevels(report) {
  return report.levels.map((level, i) => h('div', { class: 'level' },
    h('h3', {},
      h('span', { class: 'h-label' }, i === 0 ? 'This tenant:' : `Ancestor (level ${i + 1}):`),
      i === 0 ? longName(level.tenant) : tenantLink(level.tenant),
      h('span', { class: `fact h-label mode-${level.mode}` }, `mode ${level.mode}`)),
    h('p', { class: 'winner' },
      level.tier ? h('span', {}, 'Tier ', h('strong', {}, level.tier)) : h('span', {}, 'No tier'),
      level.priority ? h('span', { class: 'fact' }, `priority ${level.priority}`) : null,
      level.assignment_id
        ? h('a', { class: 'fact', href: '#/assignments' }, `assignment #${level.assignment_id}`)
        : null,
      h('span', { class: 'reason' }, `Why: ${level.reason}`)),
    limitsTable(level.limits)));
}
