// The fields of a limit, for adding one and for changing one. Field names are the
// API's, so a 422 lands under the field it names.

import { field, numberValue } from '../forms.js';

const PERIODS = [['second', 'second'], ['minute', 'minute'], ['hour', 'hour'], ['day', 'day'], ['week', 'week'],
  ['month', 'month'], ['none', 'none (a gauge)']];

/** The fields, filled from `limit` when given. */
export function limitFields(limit = {}) {
  return {
    resource: field({
      label: 'Resource', name: 'resource', value: limit.resource,
      hint: 'requests, request_bytes, response_bytes, concurrent_requests or your own', attrs: { list: 'resources', spellcheck: 'false' },
    }),
    period: field({ label: 'Period', name: 'period', type: 'select', options: PERIODS, value: limit.period || 'month' }),
    window: field({
      label: 'Window', name: 'window', type: 'select', options: [['calendar', 'calendar'], ['rolling', 'rolling']], value: limit.window,
    }),
    quota: field({ label: 'Quota', name: 'quota', value: limit.quota, attrs: { inputmode: 'numeric' } }),
    overage: field({ label: 'Overage', name: 'overage', value: limit.overage ?? 0, attrs: { inputmode: 'numeric' } }),
    warn_at: field({
      label: 'Warn at (fraction of quota)', name: 'warn_at', value: limit.warn_at ?? 0.8, attrs: { inputmode: 'decimal' },
    }),
    unlimited: field({ label: 'Unlimited (count, never refuse)', name: 'unlimited', type: 'checkbox', value: limit.unlimited }),
  };
}

/** The limit the fields say, as the API takes it; with `before`, only what changed. */
export function limitBody(fields, before) {
  const body = {
    resource: fields.resource.input.value.trim(),
    period: fields.period.input.value,
    window: fields.window.input.value,
    quota: numberValue(fields.quota.input),
    overage: numberValue(fields.overage.input),
    warn_at: numberValue(fields.warn_at.input),
    unlimited: fields.unlimited.input.checked,
  };
  for (const key of Object.keys(body)) {
    if (body[key] === undefined || (before && before[key] === body[key])) delete body[key];
  }
  return body;
}
