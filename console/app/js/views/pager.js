// Keyset paging for a listing: the API gives `next_cursor`; going back replays the
// cursors seen. The listing is never counted (no COUNT(*) over 100,000 tenants).

import { h } from '../dom.js';

/**
 * A pager over `load(cursor) → page`, rendering each page with `show(page)`.
 * Returns `{el, reload}`; `el` holds the page and the buttons.
 */
export function pager({ label, pageSize, load, show }) {
  const cursors = [undefined];
  const body = h('div', { class: 'page-body' });
  const where = h('span', { class: 'page-where' });
  const previous = h('button', { type: 'button', class: 'quiet', 'aria-label': `Previous page of ${label}` }, '← Previous page');
  const next = h('button', { type: 'button', class: 'quiet', 'aria-label': `Next page of ${label}` }, 'Next page →');
  const bar = h('div', { class: 'pager' }, previous, where, next);
  let nextCursor;

  async function render() {
    const index = cursors.length - 1;
    previous.disabled = true;
    next.disabled = true;
    let page;
    try {
      page = await load(cursors[index]);
    } catch (error) {
      body.replaceChildren(show(null, error));
      return;
    }
    nextCursor = page.next_cursor;
    const first = index * pageSize + 1;
    where.textContent = page.items.length === 0
      ? `Page ${index + 1}: none`
      : `Page ${index + 1}: ${label} ${first}–${first + page.items.length - 1}`;
    previous.disabled = index === 0;
    next.disabled = !nextCursor;
    body.replaceChildren(show(page));
  }
  previous.addEventListener('click', () => {
    if (cursors.length > 1) cursors.pop();
    render();
  });
  next.addEventListener('click', () => {
    if (nextCursor) cursors.push(nextCursor);
    render();
  });
  render();
  return { el: h('div', { class: 'paged' }, body, bar), reload: render };
}
