// Tenants: the trees (roots, children on demand) or a search by id prefix, both paged
// by cursor so they hold at any number of tenants.

import { h, replace, tenantLink } from '../dom.js';
import { failure, field } from '../forms.js';
import * as router from '../router.js';
import { pager } from './pager.js';

const PAGE = 25;

function facts(tenant) {
  return h('span', { class: 'tenant-facts' },
    h('span', { class: 'fact', title: 'own tier' }, tenant.tier ? `tier ${tenant.tier}` : 'no own tier'),
    tenant.mode !== 'enforce' ? h('span', { class: `fact mode-${tenant.mode}` }, `mode ${tenant.mode}`) : null);
}

/** One tenant of a tree, with a button that shows its children. */
function node(api, tenant) {
  const children = h('ul', { class: 'tree', hidden: true });
  const toggle = h('button', {
    type: 'button',
    class: 'toggle',
    'aria-expanded': 'false',
    'aria-label': `Show children of ${tenant.id}`,
    title: `Show children of ${tenant.id}`,
  }, '▸');
  let loaded = false;
  toggle.addEventListener('click', async () => {
    const open = toggle.getAttribute('aria-expanded') === 'true';
    toggle.setAttribute('aria-expanded', String(!open));
    toggle.textContent = open ? '▸' : '▾';
    toggle.setAttribute('aria-label', `${open ? 'Show' : 'Hide'} children of ${tenant.id}`);
    children.hidden = open;
    if (!open && !loaded) {
      loaded = true;
      await loadChildren(api, tenant.id, children);
    }
  });
  return h('li', { class: 'tree-node' },
    h('div', { class: 'tree-row' }, toggle, tenantLink(tenant.id), facts(tenant)),
    children);
}

async function loadChildren(api, parent, list, cursor) {
  let page;
  try {
    page = await api.get('/tenants', { parent, limit: PAGE, cursor });
  } catch (error) {
    list.append(h('li', {}, failure(`Children of ${parent} could not be read`, error)));
    return;
  }
  if (page.items.length === 0 && !cursor) {
    list.append(h('li', { class: 'empty' }, 'No children.'));
  }
  for (const child of page.items) list.append(node(api, child));
  if (page.next_cursor) {
    const more = h('li', {}, h('button', { type: 'button', class: 'quiet', onclick: () => {
      more.remove();
      loadChildren(api, parent, list, page.next_cursor);
    } }, `More children of ${parent}`));
    list.append(more);
  }
}

function searchResults(page, error) {
  if (error) return failure('The search failed', error);
  if (page.items.length === 0) return h('p', { class: 'empty' }, 'No tenant id starts with this.');
  return h('table', { class: 'list' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Tenant'), h('th', { scope: 'col' }, 'Parent'),
      h('th', { scope: 'col' }, 'Own tier'), h('th', { scope: 'col' }, 'Mode'))),
    h('tbody', {}, page.items.map((t) => h('tr', {},
      h('td', { class: 'cell-id' }, tenantLink(t.id)),
      h('td', { class: 'cell-id' }, t.parent_id ? tenantLink(t.parent_id) : '— (a root)'),
      h('td', {}, t.tier || '—'),
      h('td', {}, t.mode)))));
}

/** `#/tenants?prefix=` */
export function tenantsView(el, { api }, query) {
  const prefix = query.get('prefix') || '';
  const input = field({
    label: 'Find tenants whose id starts with',
    name: 'prefix',
    value: prefix,
    hint: 'Case-sensitive, e.g. acme/ for acme\'s teams.',
    attrs: { autocomplete: 'off', spellcheck: 'false' },
  });
  const search = h('form', { role: 'search', 'aria-label': 'Find tenants', class: 'inline-form', novalidate: true },
    input,
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Search'),
      prefix ? h('button', { type: 'button', class: 'quiet', onclick: () => router.go('#/tenants') }, 'Clear') : null));
  search.addEventListener('submit', (event) => {
    event.preventDefault();
    router.go(router.href(['tenants'], { prefix: input.input.value.trim() }));
  });

  let listing;
  if (prefix) {
    listing = pager({
      label: 'tenants',
      pageSize: PAGE,
      load: (cursor) => api.get('/tenants', { prefix, limit: PAGE, cursor }),
      show: searchResults,
    });
  } else {
    listing = pager({
      label: 'trees',
      pageSize: PAGE,
      load: (cursor) => api.get('/tenants', { root: 'true', limit: PAGE, cursor }),
      show: (page, error) => {
        if (error) return failure('The tenants could not be read', error);
        if (page.items.length === 0) return h('p', { class: 'empty' }, 'No tenants yet.');
        return h('ul', { class: 'tree tree-roots', 'aria-label': 'Tenant trees' }, page.items.map((t) => node(api, t)));
      },
    });
  }
  replace(el,
    h('h1', {}, 'Tenants'),
    search,
    h('p', { class: 'caption' }, prefix
      ? `Tenants whose id starts with “${prefix}”, ${PAGE} a page, in id order.`
      : `Every tree from its root, ${PAGE} roots a page; ▸ shows a tenant's children.`),
    listing.el);
  // A search box that keeps focus after a search, for the next one.
  if (prefix) input.input.focus();
  return undefined;
}
