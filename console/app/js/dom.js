// Building the page from data without ever parsing it as HTML: every text is a text
// node, so a tenant id or an event's details can never become markup or script.

const SVG = 'http://www.w3.org/2000/svg';
let nextId = 0;

/** A fresh id for tying a label or an error to its input. */
export function uid(prefix = 'el') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.setAttribute('class', value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' && 'value' in el && el.namespaceURI !== SVG) {
      el.value = value;
    } else if (key === 'checked' || key === 'selected') {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** An HTML element: `h('a', {href: '#/x'}, 'text', child)`. */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, as `h`. */
export function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

/** Appends children: nodes, strings (as text), arrays of them; skips null. */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces `parent`'s content with `children`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** A name that may be long (a tenant id): cut with an ellipsis, whole in its title. */
export function longName(text, attrs = {}) {
  return h('span', { class: 'long', title: text, ...attrs }, text);
}

/** A link to a tenant's page, its id cut to fit. */
export function tenantLink(id) {
  return h('a', { class: 'long', href: `#/tenants/${encodeURIComponent(id)}`, title: id }, id);
}

/** A labelled number: `label value`, as one unit. */
export function figure(label, value, attrs = {}) {
  return h('span', { class: 'figure', ...attrs }, h('span', { class: 'figure-label' }, label), ' ',
    h('span', { class: 'figure-value' }, value));
}

/** A section with a heading. */
export function section(title, ...children) {
  const id = uid('section');
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}
