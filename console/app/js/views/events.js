// The event log, newest first, filtered by tenant, kind (or a family like `quota.`) and
// time, paged by cursor.

import { h, replace } from '../dom.js';
import { failure, field, showError, clearErrors } from '../forms.js';
import { fromLocalInput, toLocalInput } from '../format.js';
import * as router from '../router.js';
import { eventTable } from './event-list.js';
import { pager } from './pager.js';

const PAGE = 50;
const KINDS = ['tier.', 'limit.', 'tenant.', 'assignment.', 'usage.', 'quota.', 'quota.warning', 'quota.rejected',
  'limit.updated', 'usage.reset', 'usage.adjusted'];

/** `#/events?tenant=&kind=&since=&until=` */
export function eventsView(el, { api }, query) {
  const filters = {
    tenant: query.get('tenant') || '',
    kind: query.get('kind') || '',
    since: query.get('since') || '',
    until: query.get('until') || '',
  };
  const tenant = field({ label: 'Tenant', name: 'tenant', value: filters.tenant, attrs: { spellcheck: 'false' } });
  const kind = field({
    label: 'Kind or family', name: 'kind', value: filters.kind, hint: 'e.g. limit.updated, or quota. for all quota events',
    attrs: { list: 'event-kinds', spellcheck: 'false' },
  });
  const since = field({ label: 'Since (UTC)', name: 'since', type: 'datetime-local', value: toLocalInput(filters.since) });
  const until = field({ label: 'Until (UTC)', name: 'until', type: 'datetime-local', value: toLocalInput(filters.until) });
  const filterForm = h('form', { class: 'filters', 'aria-label': 'Filter events', novalidate: true },
    h('p', { class: 'form-error', role: 'alert', hidden: true }),
    h('datalist', { id: 'event-kinds' }, KINDS.map((k) => h('option', { value: k }))),
    tenant, kind, since, until,
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Filter'),
      h('button', { type: 'button', class: 'quiet', onclick: () => router.go('#/events') }, 'Clear filters')));
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    router.go(router.href(['events'], {
      tenant: tenant.input.value.trim(),
      kind: kind.input.value.trim(),
      since: fromLocalInput(since.input.value),
      until: fromLocalInput(until.input.value),
    }));
  });
  const listing = pager({
    label: 'events',
    pageSize: PAGE,
    load: (cursor) => api.get('/events', { ...filters, limit: PAGE, cursor }),
    show: (page, error) => {
      clearErrors(filterForm);
      if (error) {
        // A filter the API refused is shown at its field.
        showError(filterForm, error);
        return failure('The events could not be read', error);
      }
      return eventTable(page.items);
    },
  });
  replace(el, h('h1', {}, 'Events'), filterForm, listing.el);
  return undefined;
}
