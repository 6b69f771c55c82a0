// A hash router: `#/tenants/acme%2Fweb?x=1` → the view for `tenants/:id` with
// `{id: 'acme/web'}` and the query. Each view may return a function that stops what it
// started (timers) when the page changes.

/** The current location: path segments (decoded) and query. */
export function current() {
  const hash = window.location.hash.replace(/^#\/?/, '');
  const [path, search = ''] = hash.split('?');
  const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { segments, query: new URLSearchParams(search) };
}

/** A hash for `path` (segments are encoded) and `query` (empty values dropped). */
export function href(segments, query = {}) {
  const path = segments.map(encodeURIComponent).join('/');
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, value);
  }
  const search = params.toString();
  return `#/${path}${search ? `?${search}` : ''}`;
}

/** Goes to `hash` (which renders it through `start`'s listener). */
export function go(hash) {
  if (window.location.hash === hash) {
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    window.location.hash = hash;
  }
}

/**
 * Renders the matching view on every hash change. `routes` maps a first segment to
 * `(segments, query) => stop?`; `fallback` is the first segment when none matches.
 */
export function start(routes, fallback) {
  let stop = null;
  let generation = 0;
  async function render() {
    if (stop) stop();
    stop = null;
    generation += 1;
    const mine = generation;
    const { segments, query } = current();
    const view = routes[segments[0]];
    if (!view) {
      window.location.replace(`#/${fallback}`);
      return;
    }
    const result = await view(segments.slice(1), query);
    if (typeof result !== 'function') return;
    // A page left before it finished loading stops at once.
    if (mine === generation) stop = result;
    else result();
  }
  window.addEventListener('hashchange', render);
  render();
  return () => {
    window.removeEventListener('hashchange', render);
    if (stop) stop();
  };
}
