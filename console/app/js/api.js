// The admin API client: every call carries the bearer token, and every refusal becomes
// an ApiError holding the problem+json body (RFC 9457) with its invalid-params by name.

/** A refusal of the API, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem?.detail || problem?.title || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.title = problem?.title || '';
    this.detail = detail;
    this.code = problem?.code || '';
    /** Field name (`quota`, `limits[0].warn_at`) → what is wrong with it. */
    this.params = new Map((problem?.['invalid-params'] || []).map((p) => [p.name, p.reason]));
  }

  /** "422 Unprocessable Entity: quota: …" */
  describe() {
    if (this.status === 0) return this.detail;
    return `${this.status} ${this.title}: ${this.detail}`;
  }
}

/** A tenant id (or any name) as one path segment: `/` is written `%2F`. */
export function seg(name) {
  return encodeURIComponent(name);
}

/**
 * A client with `token`. `onUnauthorized` runs when the API answers 401 (the token
 * was revoked or the server restarted with another one).
 */
export function client(token, onUnauthorized = () => {}) {
  async function call(method, path, { query, body } = {}) {
    const url = new URL(`/admin/v1${path}`, window.location.origin);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
    }
    const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      throw new ApiError(0, { detail: `The control plane did not answer (${error.message}).` });
    }
    const type = response.headers.get('content-type') || '';
    const payload = type.includes('json') ? await response.json().catch(() => null) : null;
    if (!response.ok) {
      const error = new ApiError(response.status, payload || { title: response.statusText });
      if (response.status === 401) onUnauthorized(error);
      throw error;
    }
    return payload;
  }
  return {
    get: (path, query) => call('GET', path, { query }),
    post: (path, body) => call('POST', path, { body }),
    patch: (path, body) => call('PATCH', path, { body }),
    delete: (path) => call('DELETE', path),
  };
}
