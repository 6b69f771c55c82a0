// Usage over time: the persisted windows of one series (resource × period), charted.

import { seg } from '../api.js';
import { h, replace } from '../dom.js';
import { failure, field } from '../forms.js';
import { usageChart } from './chart.js';

/** Fills `el` with the history chart of `tenant`; one series at a time. */
export async function historyPanel(el, api, tenant) {
  let page;
  try {
    page = await api.get(`/tenants/${seg(tenant)}/usage/history`, { limit: 500 });
  } catch (error) {
    replace(el, failure('The usage history could not be read', error));
    return;
  }
  const series = new Map();
  for (const row of page.items) {
    const key = `${row.resource} per ${row.series}`;
    if (!series.has(key)) series.set(key, []);
    series.get(key).push(row);
  }
  if (series.size === 0) {
    replace(el, h('p', { class: 'empty' }, 'No usage persisted yet: the history is written every 15 seconds of use.'));
    return;
  }
  const names = [...series.keys()].sort();
  const choose = field({ label: 'Series', name: 'series', type: 'select', options: names.map((n) => [n, n]), value: names[0] });
  const chart = h('div', { class: 'chart-box' });
  const draw = () => {
    const rows = series.get(choose.input.value).slice().reverse();
    const { resource } = rows[0];
    replace(chart, usageChart(
      rows.map((r) => ({ start: r.window_start, end: r.window_end, used: r.used })),
      resource,
      `${tenant}: ${choose.input.value}, ${rows.length} windows`,
    ), h('p', { class: 'caption' }, `${rows.length} windows of ${choose.input.value}, oldest first, as persisted.`));
  };
  choose.input.addEventListener('change', draw);
  replace(el, names.length > 1 ? choose : null, chart);
  draw();
}
