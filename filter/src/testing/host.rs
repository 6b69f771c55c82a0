//! [`FakeHost`]: building one, driving it (request contexts, the clock, callout
//! answers), and the [`Host`] implementation that records every call.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::recordings::{Dispatched, FakeRequest, Headers};
use crate::host::{Callout, Host, Level, Metric};

/// The next id prefix a new [`FakeHost`] takes.
static NEXT_ID_PREFIX: AtomicU64 = AtomicU64::new(0xf0_0000);

/// The root context's id in a [`FakeHost`].
pub const ROOT: u32 = 1;
/// The context of the request [`FakeHost::request`] opens.
pub const REQUEST: u32 = 2;

/// Shared data as Envoy keeps it: each key's value and its compare-and-swap token,
/// the tokens drawn from one counter for every key (never 0); and, for tests, how many
/// more conditional writes of a key find that another worker wrote it first.
#[derive(Debug, Default)]
pub(super) struct SharedData {
    pub(super) values: HashMap<String, (Vec<u8>, u32)>,
    last_cas: u32,
    pub(super) interference: HashMap<String, u32>,
}

impl SharedData {
    fn next_cas(&mut self) -> u32 {
        self.last_cas = self.last_cas.wrapping_add(1).max(1);
        self.last_cas
    }
}

/// One Envoy worker: see the module's documentation.
#[derive(Debug)]
pub struct FakeHost {
    pub(super) shared: Rc<RefCell<SharedData>>,
    /// The last id handed out, counted across every host sharing the data.
    ids: Rc<Cell<u64>>,
    /// The prefix of the ids it hands out (`<prefix, 16 hex digits>-<n>`, as Envoy's
    /// workers do): different for every host not made by sharing, so that ids are
    /// unique across all the tests of a process.
    pub(super) id_prefix: u64,
    /// This Envoy's id, the same for every worker of it.
    gateway: String,
    /// This worker's id.
    worker: String,
    now_ms: Cell<u64>,
    refuse_dispatch: Cell<bool>,
    next_token: Cell<u32>,
    /// The context whose callback runs: the SDK hands the answers to the callouts it
    /// dispatches to it, whatever the effective context was.
    callback: Cell<u32>,
    /// The effective context, which per-request calls act on.
    current: Cell<u32>,
    pub(super) requests: RefCell<BTreeMap<u32, FakeRequest>>,
    pub(super) dispatched: RefCell<Vec<Dispatched>>,
    /// The callout answer being delivered: status and body.
    answer: RefCell<(Option<u32>, Vec<u8>)>,
    pub(super) counted: RefCell<Vec<Metric>>,
    pub(super) logged: RefCell<Vec<(Level, String)>>,
    pub(super) done: Cell<u32>,
}

impl Default for FakeHost {
    /// A worker `g` at time 0 with no request, the root context effective.
    fn default() -> Self {
        FakeHost {
            shared: Rc::default(),
            ids: Rc::default(),
            id_prefix: NEXT_ID_PREFIX.fetch_add(1, Ordering::Relaxed),
            gateway: "g".into(),
            worker: "w".into(),
            now_ms: Cell::new(0),
            refuse_dispatch: Cell::new(false),
            next_token: Cell::new(0),
            callback: Cell::new(ROOT),
            current: Cell::new(ROOT),
            requests: RefCell::default(),
            dispatched: RefCell::default(),
            answer: RefCell::default(),
            counted: RefCell::default(),
            logged: RefCell::default(),
            done: Cell::new(0),
        }
    }
}

impl FakeHost {
    /// A worker at 1 000 ms with one request ([`REQUEST`], effective) carrying `headers`.
    pub fn request(headers: &[(&str, &str)]) -> FakeHost {
        let host = FakeHost::default().at(1_000);
        host.open(REQUEST, headers);
        host
    }

    /// A `POST /upload` of `tenant` (header `x-tenant-id`, and `x-request-id: req-1`)
    /// announcing `content_length`.
    pub fn upload(tenant: &str, content_length: Option<u64>) -> FakeHost {
        let length = content_length.map(|n| n.to_string());
        let mut headers = vec![
            (":path", "/upload"),
            (":method", "POST"),
            ("x-tenant-id", tenant),
            ("x-request-id", "req-1"),
        ];
        if let Some(length) = &length {
            headers.push(("content-length", length));
        }
        FakeHost::request(&headers)
    }

    /// A `GET /x` of `tenant`.
    pub fn get(tenant: &str) -> FakeHost {
        FakeHost::request(&[(":path", "/x"), (":method", "GET"), ("x-tenant-id", tenant)])
    }

    /// This host sharing `other`'s shared data (and its ids, unique across both), as
    /// another request of its worker, or of another worker ([`FakeHost::on_worker`]).
    pub fn sharing(mut self, other: &FakeHost) -> FakeHost {
        self.shared = other.shared.clone();
        self.ids = other.ids.clone();
        self.id_prefix = other.id_prefix;
        self.worker = other.worker.clone();
        self.gateway = other.gateway.clone();
        self
    }

    /// This host as worker `worker` (its worker id) of the same Envoy.
    pub fn on_worker(mut self, worker: &str) -> FakeHost {
        self.worker = worker.into();
        self
    }

    /// This host with its clock at `now_ms`.
    pub fn at(self, now_ms: u64) -> FakeHost {
        self.now_ms.set(now_ms);
        self
    }

    /// This host refusing every dispatch (as Envoy does for an unknown cluster).
    pub fn refusing_dispatch(self) -> FakeHost {
        self.refuse_dispatch.set(true);
        self
    }

    /// This host's request answered by the upstream with `headers`.
    pub fn with_response_headers(self, headers: &[(&str, &str)]) -> FakeHost {
        self.with_request(REQUEST, |request| {
            request.response_headers = (headers.iter())
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
        });
        self
    }

    /// The same request (headers, shared data, ids, worker) `elapsed_ms` later, with
    /// nothing recorded yet.
    pub fn later(&self, elapsed_ms: u64) -> FakeHost {
        let later = FakeHost::default()
            .sharing(self)
            .at(self.now_ms().saturating_add(elapsed_ms));
        let request = FakeRequest {
            headers: self.of(REQUEST).headers,
            ..FakeRequest::default()
        };
        later.requests.borrow_mut().insert(REQUEST, request);
        later.enter(REQUEST);
        later
    }

    /// Opens request `context` with `headers` and makes it the effective context, as
    /// Envoy does for a new request's first callback.
    pub fn open(&self, context: u32, headers: &[(&str, &str)]) {
        let request = FakeRequest {
            headers: (headers.iter())
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..FakeRequest::default()
        };
        self.requests.borrow_mut().insert(context, request);
        self.enter(context);
    }

    /// Request `context` is gone: host calls can no longer act on it.
    pub fn close(&self, context: u32) {
        self.requests.borrow_mut().remove(&context);
        if self.current.get() == context {
            self.current.set(ROOT);
        }
    }

    /// Runs a callback of `context` from now on: it is the effective context too.
    pub fn enter(&self, context: u32) {
        self.callback.set(context);
        self.current.set(context);
    }

    /// The effective context.
    pub fn current(&self) -> u32 {
        self.current.get()
    }

    /// Changes request `context` (nothing if it is gone).
    pub fn with_request(&self, context: u32, change: impl FnOnce(&mut FakeRequest)) {
        if let Some(request) = self.requests.borrow_mut().get_mut(&context) {
            change(request);
        }
    }

    /// Sets the request body Envoy buffers for [`REQUEST`] (what the filter reads).
    pub fn set_request_buffer(&self, body: &[u8]) {
        self.with_request(REQUEST, |request| request.request_buffer = body.to_vec());
    }

    /// Sets the response body chunk [`REQUEST`] is passing on.
    pub fn set_response_chunk(&self, chunk: &[u8]) {
        self.with_request(REQUEST, |request| request.response_chunk = chunk.to_vec());
    }

    /// The callout answer Envoy delivers next: `status` (`None`: no `:status`) and
    /// `body`.
    pub fn deliver(&self, status: Option<u32>, body: &[u8]) {
        *self.answer.borrow_mut() = (status, body.to_vec());
    }

    /// Refuses (or not) the dispatches from now on.
    pub fn set_refuse_dispatch(&self, refuse: bool) {
        self.refuse_dispatch.set(refuse);
    }

    /// Sets the clock.
    pub fn set_now(&self, now_ms: u64) {
        self.now_ms.set(now_ms);
    }

    /// Moves the clock on.
    pub fn advance(&self, ms: u64) {
        self.now_ms.set(self.now_ms.get().saturating_add(ms));
    }

    /// Runs `f` on the effective request; `None` when the root or a gone request is
    /// effective (Envoy then refuses the call).
    fn current_request<T>(&self, f: impl FnOnce(&mut FakeRequest) -> T) -> Option<T> {
        let mut requests = self.requests.borrow_mut();
        requests.get_mut(&self.current.get()).map(f)
    }
}

fn owned(headers: &[(&str, &str)]) -> Headers {
    (headers.iter())
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

impl Host for FakeHost {
    fn request_header(&self, name: &str) -> Option<String> {
        self.current_request(|r| r.headers.get(name).cloned())
            .flatten()
    }

    fn set_request_header(&self, name: &str, value: &str) {
        self.current_request(|r| {
            r.headers.insert(name.to_string(), value.to_string());
            r.set_headers.push((name.to_string(), value.to_string()));
        });
    }

    fn remove_request_header(&self, name: &str) {
        self.current_request(|r| {
            r.headers.remove(name);
            r.removed_headers.push(name.to_string());
        });
    }

    fn request_body(&self, start: usize, size: usize) -> Vec<u8> {
        self.current_request(|r| {
            let end = start.saturating_add(size).min(r.request_buffer.len());
            r.request_buffer
                .get(start..end)
                .unwrap_or_default()
                .to_vec()
        })
        .unwrap_or_default()
    }

    fn set_request_body(&self, body: &[u8]) -> bool {
        self.current_request(|r| {
            r.request_buffer = body.to_vec();
            r.replaced_bodies.push(body.to_vec());
        })
        .is_some()
    }

    fn response_header(&self, name: &str) -> Option<String> {
        self.current_request(|r| r.response_headers.get(name).cloned())
            .flatten()
    }

    fn response_body(&self, _size: usize) -> Vec<u8> {
        self.current_request(|r| r.response_chunk.clone())
            .unwrap_or_default()
    }

    fn dispatch(&self, callout: Callout<'_>) -> Option<u32> {
        let token = (!self.refuse_dispatch.get()).then(|| {
            let token = self.next_token.get() + 1;
            self.next_token.set(token);
            token
        });
        self.dispatched.borrow_mut().push(Dispatched {
            context: self.callback.get(),
            effective: self.current.get(),
            token,
            cluster: callout.cluster.to_string(),
            headers: owned(&callout.headers),
            body: callout.body.to_vec(),
        });
        token
    }

    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        self.current_request(|r| r.replies.push((status, owned(headers), body.to_vec())));
    }

    fn resume_request(&self) {
        self.current_request(|r| r.resumed += 1);
    }

    fn add_response_header(&self, name: &str, value: &str) {
        self.current_request(|r| {
            (r.added_headers).push((name.to_string(), value.to_string()));
        });
    }

    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    fn count(&self, metric: Metric) {
        self.counted.borrow_mut().push(metric);
    }

    fn log(&self, level: Level, message: &str) {
        self.logged.borrow_mut().push((level, message.to_string()));
    }

    fn shared_get(&self, key: &str) -> Option<Vec<u8>> {
        self.shared_get_cas(key).0
    }

    fn shared_set(&self, key: &str, value: &[u8]) {
        self.shared_set_cas(key, value, None);
    }

    fn unique_id(&self) -> String {
        let n = self.ids.get() + 1;
        self.ids.set(n);
        format!("{:016x}-{n}", self.id_prefix)
    }

    fn worker_id(&self) -> String {
        self.worker.clone()
    }

    fn gateway_id(&self) -> String {
        self.gateway.clone()
    }

    fn shared_get_cas(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.shared.borrow().values.get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn shared_set_cas(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        // As in Envoy (proxy-wasm's `SharedData::set`): no token writes unconditionally,
        // a token other than the key's is refused, and a key that does not exist is
        // created whatever the token.
        let mut shared = self.shared.borrow_mut();
        if cas.is_some() && shared.values.contains_key(key) {
            if let Some(left) = shared.interference.get_mut(key).filter(|left| **left > 0) {
                // Another worker wrote the key since this one read it.
                *left -= 1;
                let stale = shared.next_cas();
                if let Some(entry) = shared.values.get_mut(key) {
                    entry.1 = stale;
                }
                return false;
            }
        }
        let current = shared.values.get(key).map(|(_, cas)| *cas);
        if cas.is_some() && current.is_some() && cas != current {
            return false;
        }
        let next = shared.next_cas();
        shared
            .values
            .insert(key.to_string(), (value.to_vec(), next));
        true
    }

    fn set_effective_context(&self, context_id: u32) -> bool {
        let open = context_id == ROOT || self.requests.borrow().contains_key(&context_id);
        if open {
            self.current.set(context_id);
        }
        open
    }

    fn callout_status(&self) -> Option<u32> {
        self.answer.borrow().0
    }

    fn callout_body(&self, size: usize) -> Vec<u8> {
        let answer = self.answer.borrow();
        answer.1.iter().take(size).copied().collect()
    }

    fn done(&self) {
        self.done.set(self.done.get() + 1);
    }
}
