// Tiers: the list, and (admin token) a form to create one.

import { h, replace } from '../dom.js';
import { failure, field, form } from '../forms.js';
import { count, span } from '../format.js';
import * as router from '../router.js';
import { pager } from './pager.js';

const PAGE = 50;

function limitsSummary(limits) {
  if (limits.length === 0) return 'no limits';
  return limits.map((l) => `${l.resource} ${count(l.quota)} ${span(l)}`).join(' · ');
}

/** `#/tiers` */
export function tiersView(el, { api, canWrite }) {
  const listing = pager({
    label: 'tiers',
    pageSize: PAGE,
    load: (cursor) => api.get('/tiers', { limit: PAGE, cursor }),
    show: (page, error) => {
      if (error) return failure('The tiers could not be read', error);
      if (page.items.length === 0) return h('p', { class: 'empty' }, 'No tiers yet.');
      return h('table', { class: 'list' },
        h('thead', {}, h('tr', {}, ['Tier', 'Description', 'Limits (quota per window)'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, page.items.map((t) => h('tr', {},
          h('td', {}, h('a', { href: `#/tiers/${encodeURIComponent(t.name)}` }, t.name)),
          h('td', {}, t.description || '—'),
          h('td', {}, limitsSummary(t.limits))))));
    },
  });
  let create = null;
  if (canWrite) {
    const name = field({ label: 'Name', name: 'name', hint: '1-64 characters of a-z, 0-9, _ and -', attrs: { spellcheck: 'false' } });
    const description = field({ label: 'Description', name: 'description' });
    create = h('section', { class: 'panel' }, h('h2', {}, 'New tier'), form({
      label: 'New tier',
      fields: [name, description],
      submit: 'Create tier',
      onSubmit: async () => {
        const tier = await api.post('/tiers', { name: name.input.value.trim(), description: description.input.value, limits: [] });
        router.go(`#/tiers/${encodeURIComponent(tier.name)}`);
      },
    }));
  }
  replace(el, h('h1', {}, 'Tiers and limits'), listing.el, create);
  return undefined;
}
