// Forms whose errors appear where they happen: the API's problem+json names the field
// (`invalid-params[].name`) and the reason is shown under that field's input; anything
// not about one field is shown at the top of the form. Also the confirmation dialog.

import { h, uid } from './dom.js';

/**
 * A labelled input for the API field `name`, with a place for its error.
 * `type`: text, number, checkbox, select (with `options`: [value, label] pairs),
 * datetime-local. Returns the wrapper; the input is `wrapper.input`.
 */
export function field({ label, name, type = 'text', value, options, hint, attrs = {} }) {
  const id = uid('field');
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const described = [errorId, hintId].filter(Boolean).join(' ');
  let input;
  if (type === 'select') {
    input = h('select', { id, name, 'aria-describedby': described, ...attrs },
      options.map(([v, text]) => h('option', { value: v, selected: String(v) === String(value ?? '') }, text)));
  } else if (type === 'checkbox') {
    input = h('input', { id, name, type, checked: Boolean(value), 'aria-describedby': described, ...attrs });
  } else {
    input = h('input', { id, name, type, value: value ?? '', 'aria-describedby': described, ...attrs });
  }
  const wrapper = h('div', { class: `field field-${type}`, dataset: { field: name } },
    type === 'checkbox' ? [input, h('label', { for: id }, label)] : [h('label', { for: id }, label), input],
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, role: 'alert', hidden: true }));
  wrapper.input = input;
  return wrapper;
}

/** A form that reports its own errors; `onSubmit(form)` may throw an ApiError. */
export function form({ label, fields, submit, onSubmit, attrs = {} }) {
  const status = h('p', { class: 'form-status', role: 'status' });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit' }, submit);
  const el = h('form', { 'aria-label': label, novalidate: true, ...attrs }, error, fields, h('div', { class: 'actions' }, button, status));
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(el);
    status.textContent = '';
    button.disabled = true;
    try {
      const done = await onSubmit(el);
      if (typeof done === 'string') status.textContent = done;
    } catch (problem) {
      showError(el, problem);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

/** Removes the errors shown in `container`. */
export function clearErrors(container) {
  for (const p of container.querySelectorAll('.field-error, .form-error')) {
    p.textContent = '';
    p.hidden = true;
  }
  for (const input of container.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
}

/**
 * Shows `problem` in `container`: each invalid param under the field it names (found
 * by `data-field`), the rest (or a problem naming no field) at the top.
 */
export function showError(container, problem) {
  const top = container.querySelector('.form-error');
  const unplaced = [];
  const params = problem?.params || new Map();
  for (const [name, reason] of params) {
    const wrapper = [...container.querySelectorAll('[data-field]')].find((el) => el.dataset.field === name);
    const slot = wrapper?.querySelector('.field-error');
    if (slot) {
      slot.textContent = reason;
      slot.hidden = false;
      wrapper.querySelector('input, select')?.setAttribute('aria-invalid', 'true');
    } else {
      unplaced.push(`${name}: ${reason}`);
    }
  }
  if (params.size === 0 || unplaced.length > 0) {
    const text = problem?.describe ? problem.describe() : String(problem?.message || problem);
    if (top) {
      top.textContent = unplaced.length > 0 && params.size > 0 ? unplaced.join('; ') : text;
      top.hidden = false;
    }
  }
}

/** An error paragraph for a panel that failed to load. */
export function failure(what, problem) {
  const text = problem?.describe ? problem.describe() : String(problem);
  return h('p', { class: 'load-error', role: 'alert' }, `${what}: ${text}`);
}

/** Asks before a change that cannot be undone; resolves to true when confirmed. */
export function confirm(question, action) {
  return new Promise((resolve) => {
    const titleId = uid('confirm');
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': titleId },
      h('p', { id: titleId }, question));
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    dialog.append(h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'danger', onclick: () => finish(true) }, action),
      h('button', { type: 'button', class: 'quiet', onclick: () => finish(false) }, 'Cancel')));
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** The value of a number input as a number, or the text itself when it is not one (so
 *  that the API names the field), or undefined when empty. */
export function numberValue(input) {
  const text = input.value.trim();
  if (text === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
}
