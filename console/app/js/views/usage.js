// Live usage: one bar per limit per level, used against warn, quota and hard limit,
// refreshed every two seconds.

import { h } from '../dom.js';
import { count, duration, instant, percent, span } from '../format.js';

/** How often the bars are read again. */
export const REFRESH_MS = 2000;

function bar(row) {
  const hard = row.limit;
  const warnAt = Math.floor(row.warn_at * row.quota);
  const scale = Math.max(hard, row.used, 1);
  const at = (value) => `${Math.min(100, (value / scale) * 100)}%`;
  const fill = h('div', { class: `fill status-${row.status}` });
  fill.style.width = at(row.used);
  const marks = [];
  if (!row.unlimited && row.period !== 'none') {
    const warn = h('div', { class: 'mark mark-warn', title: `warn at ${count(warnAt)}` });
    warn.style.left = at(warnAt);
    const quota = h('div', { class: 'mark mark-quota', title: `quota ${count(row.quota)}` });
    quota.style.left = at(row.quota);
    marks.push(warn, quota);
  }
  return h('div', {
    class: 'bar',
    role: 'meter',
    'aria-valuemin': '0',
    'aria-valuemax': String(scale),
    'aria-valuenow': String(row.used),
    'aria-label': `${row.resource} ${span(row)} of ${row.tenant}: used ${count(row.used)} of hard limit ${count(hard)}`,
  }, fill, marks);
}

function figures(row) {
  const item = (label, value, cls) => h('div', { class: `figure ${cls || ''}` }, h('dt', {}, label), h('dd', {}, value));
  const items = [item('used', count(row.used), 'used')];
  if (row.unlimited) {
    items.push(item('quota', `${count(row.quota)} (unlimited: counted, never refused)`));
  } else {
    items.push(
      item('warn at', `${count(Math.floor(row.warn_at * row.quota))} (${percent(row.warn_at)})`),
      item('quota', count(row.quota)),
      item('hard limit', count(row.limit)),
      item('remaining', count(row.remaining)),
    );
  }
  if (row.window_end) {
    const what = row.window === 'rolling' ? 'frees up in' : 'resets in';
    items.push(item(what, `${duration(row.reset_after_s)} (${instant(row.window_end)})`));
  }
  return h('dl', { class: 'figures' }, items);
}

function usageRow(row) {
  return h('div', { class: 'usage-row', dataset: { resource: row.resource, period: row.period, tenant: row.tenant } },
    h('div', { class: 'usage-head' },
      h('span', { class: 'usage-title' }, `${row.resource} ${span(row)}`),
      h('span', { class: `badge status-${row.status}` }, row.status)),
    bar(row),
    figures(row));
}

/** The live-usage panel's content from `GET …/usage`, grouped by level. */
export function usageBars(report) {
  if (report.usage.length === 0) return [h('p', { class: 'empty' }, 'No limits apply to this tenant.')];
  const levels = [];
  for (const row of report.usage) {
    let level = levels.find((l) => l.tenant === row.tenant);
    if (!level) {
      level = { tenant: row.tenant, rows: [] };
      levels.push(level);
    }
    level.rows.push(row);
  }
  return levels.map((level) => h('div', { class: 'usage-level' },
    h('h3', {}, h('span', { class: 'h-label' }, level.tenant === report.tenant ? 'Own limits of' : 'Limits of ancestor'),
      h('span', { class: 'long', title: level.tenant }, level.tenant)),
    level.rows.map(usageRow)));
}
