// Resetting and adjusting a tenant's own usage, each after a confirmation.

import { seg } from '../api.js';
import { h } from '../dom.js';
import { confirm, field, form, numberValue } from '../forms.js';
import { count } from '../format.js';

const PERIODS = ['second', 'minute', 'hour', 'day', 'week', 'month'];

function summary(result) {
  if (result.changes.length === 0) return 'Nothing changed.';
  return result.changes.map((c) => `${c.resource} per ${c.period}: ${count(c.before)} → ${count(c.after)}`).join('; ');
}

/** The reset and adjust forms for `tenant`, whose own limits are `rows` (usage rows). */
export function usageActions(api, tenant, rows, onChanged) {
  const resources = [...new Set(rows.map((r) => r.resource))].sort();
  const resetResource = field({
    label: 'Resource', name: 'resource', type: 'select', options: [['', 'every resource'], ...resources.map((r) => [r, r])],
  });
  const resetPeriod = field({
    label: 'Period', name: 'period', type: 'select', options: [['', 'every period'], ...PERIODS.map((p) => [p, p])],
  });
  const reset = form({
    label: 'Reset usage',
    fields: [resetResource, resetPeriod],
    submit: 'Reset usage…',
    onSubmit: async () => {
      const body = {};
      if (resetResource.input.value) body.resource = resetResource.input.value;
      if (resetPeriod.input.value) body.period = resetPeriod.input.value;
      const what = `${body.resource || 'every resource'}, ${body.period ? `per ${body.period}` : 'every period'}`;
      if (!(await confirm(`Reset ${tenant}'s own usage (${what}) to 0 in the current windows? This cannot be undone.`, 'Reset'))) {
        return 'Not reset.';
      }
      const result = await api.post(`/tenants/${seg(tenant)}/usage:reset`, body);
      onChanged();
      return `Reset: ${summary(result)}`;
    },
  });
  const adjustResource = field({ label: 'Resource', name: 'resource', type: 'select', options: resources.map((r) => [r, r]) });
  const adjustPeriod = field({ label: 'Period', name: 'period', type: 'select', options: PERIODS.map((p) => [p, p]), value: 'month' });
  const adjustWindow = field({
    label: 'Window', name: 'window', type: 'select', options: [['calendar', 'calendar'], ['rolling', 'rolling']],
  });
  const delta = field({
    label: 'Change by', name: 'delta', hint: 'Negative to credit, positive to charge.', attrs: { inputmode: 'numeric' },
  });
  const adjust = form({
    label: 'Adjust usage',
    fields: [adjustResource, adjustPeriod, adjustWindow, delta],
    submit: 'Adjust usage…',
    onSubmit: async () => {
      const body = {
        resource: adjustResource.input.value,
        period: adjustPeriod.input.value,
        window: adjustWindow.input.value,
        delta: numberValue(delta.input),
      };
      if (typeof body.delta === 'number'
        && !(await confirm(`Change ${tenant}'s ${body.resource} per ${body.period} usage by ${count(body.delta)}?`, 'Adjust'))) {
        return 'Not adjusted.';
      }
      const result = await api.post(`/tenants/${seg(tenant)}/usage:adjust`, body);
      onChanged();
      return `Adjusted: ${summary(result)}`;
    },
  });
  return h('div', { class: 'two-forms' },
    h('div', {}, h('h3', {}, 'Reset'), reset),
    h('div', {}, h('h3', {}, 'Adjust'), adjust));
}
