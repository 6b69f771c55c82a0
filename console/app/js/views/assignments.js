// Assignments: which tier applies to a tenant (300), a role (200) or everyone (100);
// filtered, paged, and (admin token) created, changed, deleted.

import { h, replace, section, tenantLink } from '../dom.js';
import { clearErrors, confirm, failure, field, form, showError } from '../forms.js';
import { fromLocalInput, instant, toLocalInput } from '../format.js';
import * as router from '../router.js';
import { pager } from './pager.js';

const PAGE = 50;

function subject(a) {
  if (a.kind === 'tenant') return tenantLink(a.tenant);
  if (a.kind === 'role') return h('span', {}, 'role ', h('code', {}, a.role));
  return 'everyone (default)';
}

function editor(api, a, reload) {
  const tier = field({ label: 'Tier', name: 'tier', value: a.tier, attrs: { spellcheck: 'false' } });
  const expires = field({
    label: 'Expires at (UTC)', name: 'expires_at', type: 'datetime-local', value: toLocalInput(a.expires_at),
    hint: 'Empty: never.',
  });
  return form({
    label: `Edit assignment #${a.id}`,
    fields: [tier, expires],
    submit: 'Save assignment',
    attrs: { class: 'grid-form' },
    onSubmit: async () => {
      const body = { tier: tier.input.value.trim(), expires_at: fromLocalInput(expires.input.value) || null };
      await api.patch(`/assignments/${a.id}`, body);
      reload();
    },
  });
}

function rows(api, items, canWrite, reload) {
  return items.map((a) => {
    const row = h('tr', { dataset: { assignment: String(a.id) } },
      h('td', { class: 'num' }, `#${a.id}`),
      h('td', { class: 'cell-id' }, subject(a)),
      h('td', {}, h('a', { href: `#/tiers/${encodeURIComponent(a.tier)}` }, a.tier)),
      h('td', { class: 'num' }, String(a.priority)),
      h('td', {}, a.enabled ? 'yes' : 'no'),
      h('td', {}, a.expires_at ? instant(a.expires_at) : 'never'));
    if (!canWrite) return [row];
    const edit = h('tr', { class: 'editor', hidden: true });
    const problem = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const act = async (fn) => {
      clearErrors(row);
      try {
        await fn();
        reload();
      } catch (error) {
        showError(row, error);
      }
    };
    row.append(h('td', { class: 'row-actions' },
      h('button', { type: 'button', onclick: () => act(() => api.patch(`/assignments/${a.id}`, { enabled: !a.enabled })) },
        a.enabled ? 'Disable' : 'Enable'),
      h('button', { type: 'button', onclick: () => { replace(edit, h('td', { colspan: '7' }, editor(api, a, reload))); edit.hidden = false; } },
        'Edit'),
      h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (await confirm(`Delete assignment #${a.id} (tier ${a.tier})?`, 'Delete')) await act(() => api.delete(`/assignments/${a.id}`));
      } }, 'Delete'),
      problem));
    return [row, edit];
  });
}

function createForm(api) {
  const tier = field({ label: 'Tier', name: 'tier', attrs: { spellcheck: 'false' } });
  const kind = field({
    label: 'To', name: 'kind', type: 'select', options: [['tenant', 'a tenant'], ['role', 'a role'], ['default', 'everyone (default)']],
  });
  const tenant = field({ label: 'Tenant', name: 'tenant', attrs: { spellcheck: 'false' } });
  const role = field({ label: 'Role', name: 'role', attrs: { spellcheck: 'false' } });
  const expires = field({ label: 'Expires at (UTC)', name: 'expires_at', type: 'datetime-local', hint: 'Empty: never.' });
  const enabled = field({ label: 'Enabled', name: 'enabled', type: 'checkbox', value: true });
  const sync = () => {
    tenant.hidden = kind.input.value !== 'tenant';
    role.hidden = kind.input.value !== 'role';
  };
  kind.input.addEventListener('change', sync);
  sync();
  return form({
    label: 'New assignment',
    fields: [tier, kind, tenant, role, expires, enabled],
    submit: 'Create assignment',
    attrs: { class: 'grid-form' },
    onSubmit: async () => {
      const body = { tier: tier.input.value.trim(), enabled: enabled.input.checked };
      if (kind.input.value === 'tenant') body.tenant = tenant.input.value.trim();
      if (kind.input.value === 'role') body.role = role.input.value.trim();
      if (kind.input.value === 'default') body.default = true;
      if (expires.input.value) body.expires_at = fromLocalInput(expires.input.value);
      const created = await api.post('/assignments', body);
      router.go(router.href(['assignments'], { created: created.id }));
      return undefined;
    },
  });
}

/** `#/assignments?tier=&kind=&active=` */
export function assignmentsView(el, { api, canWrite }, query) {
  const filters = { tier: query.get('tier') || '', kind: query.get('kind') || '', active: query.get('active') || '' };
  const tier = field({ label: 'Tier', name: 'tier', value: filters.tier });
  const kind = field({
    label: 'Kind', name: 'kind', type: 'select', value: filters.kind,
    options: [['', 'any'], ['tenant', 'tenant'], ['role', 'role'], ['default', 'default']],
  });
  const active = field({
    label: 'Applies now', name: 'active', type: 'select', value: filters.active,
    options: [['', 'either'], ['true', 'yes'], ['false', 'no']],
  });
  const filterForm = h('form', { class: 'filters', 'aria-label': 'Filter assignments', novalidate: true },
    h('p', { class: 'form-error', role: 'alert', hidden: true }), tier, kind, active,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter')));
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    router.go(router.href(['assignments'], { tier: tier.input.value.trim(), kind: kind.input.value, active: active.input.value }));
  });
  const head = ['Id', 'Applies to', 'Tier', 'Priority', 'Enabled', 'Expires'];
  if (canWrite) head.push('Actions');
  const listing = pager({
    label: 'assignments',
    pageSize: PAGE,
    load: (cursor) => api.get('/assignments', { ...filters, limit: PAGE, cursor }),
    show: (page, error) => {
      clearErrors(filterForm);
      if (error) {
        showError(filterForm, error);
        return failure('The assignments could not be read', error);
      }
      if (page.items.length === 0) return h('p', { class: 'empty' }, 'No assignments.');
      return h('table', { class: 'list' },
        h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows(api, page.items, canWrite, () => listing.reload())));
    },
  });
  replace(el, h('h1', {}, 'Assignments'),
    h('p', { class: 'caption' }, 'A tenant\'s own assignment (priority 300) beats a role\'s (200), which beats the default (100).'),
    filterForm, listing.el,
    canWrite ? section('New assignment', createForm(api)) : null);
  return undefined;
}
