// One tier: its description and its limits, each changed or deleted in place, and a
// form to add one (admin token only).

import { seg } from '../api.js';
import { h, replace, section } from '../dom.js';
import { confirm, failure, field, form, showError, clearErrors } from '../forms.js';
import { count, instant, percent, span } from '../format.js';
import * as router from '../router.js';
import { limitBody, limitFields } from './limit-form.js';

const RESOURCES = ['requests', 'request_bytes', 'response_bytes', 'concurrent_requests', 'tokens'];

function limitRow(api, limit, canWrite, reload) {
  const cells = [
    h('td', {}, limit.resource),
    h('td', {}, span(limit)),
    h('td', { class: 'num' }, count(limit.quota)),
    h('td', { class: 'num' }, count(limit.overage)),
    h('td', { class: 'num' }, count(limit.quota + limit.overage)),
    h('td', { class: 'num' }, percent(limit.warn_at)),
    h('td', {}, limit.unlimited ? 'yes' : 'no'),
  ];
  const row = h('tr', { dataset: { limit: String(limit.id) } }, cells);
  if (!canWrite) return [row];
  const editor = h('tr', { class: 'editor', hidden: true });
  const problem = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const edit = h('button', { type: 'button', 'aria-label': `Edit limit ${limit.resource} ${span(limit)}` }, 'Edit');
  const remove = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete limit ${limit.resource} ${span(limit)}` }, 'Delete');
  row.append(h('td', { class: 'row-actions' }, edit, remove, problem));
  edit.addEventListener('click', () => {
    const fields = limitFields(limit);
    replace(editor, h('td', { colspan: '8' }, form({
      label: `Edit limit ${limit.resource} ${span(limit)}`,
      fields: Object.values(fields),
      submit: 'Save limit',
      attrs: { class: 'grid-form' },
      onSubmit: async () => {
        await api.patch(`/limits/${limit.id}`, limitBody(fields, limit));
        reload();
      },
    }), h('button', { type: 'button', class: 'quiet', onclick: () => { editor.hidden = true; } }, 'Cancel')));
    editor.hidden = false;
  });
  remove.addEventListener('click', async () => {
    clearErrors(row);
    if (!(await confirm(`Delete the limit ${limit.resource} ${span(limit)} (quota ${count(limit.quota)})?`, 'Delete'))) return;
    try {
      await api.delete(`/limits/${limit.id}`);
      reload();
    } catch (error) {
      showError(row, error);
    }
  });
  return [row, editor];
}

/** `#/tiers/:name` */
export async function tierView(el, { api, canWrite }, name) {
  let tier;
  try {
    tier = await api.get(`/tiers/${seg(name)}`);
  } catch (error) {
    replace(el, h('h1', {}, `Tier ${name}`), failure('This tier could not be read', error),
      h('p', {}, h('a', { href: '#/tiers' }, 'Back to the tiers')));
    return undefined;
  }
  const reload = () => tierView(el, { api, canWrite }, name);
  const head = ['Resource', 'Per', 'Quota', 'Overage', 'Hard limit', 'Warn at', 'Unlimited'];
  if (canWrite) head.push('Actions');
  const table = tier.limits.length === 0
    ? h('p', { class: 'empty' }, 'No limits yet.')
    : h('table', { class: 'list limits' },
      h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, tier.limits.map((l) => limitRow(api, l, canWrite, reload))));
  const parts = [
    h('p', { class: 'caption' }, `Created ${instant(tier.created_at)}, changed ${instant(tier.updated_at)}.`),
    h('datalist', { id: 'resources' }, RESOURCES.map((r) => h('option', { value: r }))),
    section('Limits', table),
  ];
  if (canWrite) {
    const fields = limitFields();
    parts.push(section('Add a limit', form({
      label: 'Add a limit',
      fields: Object.values(fields),
      submit: 'Add limit',
      attrs: { class: 'grid-form' },
      onSubmit: async () => {
        await api.post('/limits', { tier: name, ...limitBody(fields) });
        reload();
      },
    })));
    const description = field({ label: 'Description', name: 'description', value: tier.description });
    parts.push(section('Tier', form({
      label: 'Change the description',
      fields: [description],
      submit: 'Save description',
      onSubmit: async () => {
        await api.patch(`/tiers/${seg(name)}`, { description: description.input.value });
        return 'Saved.';
      },
    }), form({
      label: 'Delete the tier',
      fields: [],
      submit: `Delete tier ${name}…`,
      attrs: { class: 'danger-zone' },
      onSubmit: async () => {
        if (!(await confirm(`Delete tier ${name} with its limits? A tier in use cannot be deleted.`, 'Delete'))) return 'Not deleted.';
        await api.delete(`/tiers/${seg(name)}`);
        router.go('#/tiers');
        return undefined;
      },
    })));
  }
  replace(el, h('h1', {}, `Tier ${tier.name}`), h('p', {}, tier.description || 'No description.'), parts);
  return undefined;
}
