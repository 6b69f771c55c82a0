//! One fake host for every test of the filter's logic: its unit tests, `filter/tests/`
//! and the fuzz targets (`fuzz/`, through the `testing` feature).
//!
//! A [`FakeHost`] is one Envoy worker as the logic sees it through [`Host`]: request
//! contexts, each with its headers and what the filter did to it, one of which is the
//! effective context that per-request host calls act on (or the root, which has no
//! request); the callouts dispatched, the stats counted, the lines logged; and the
//! shared data, which another `FakeHost` can share as Envoy's workers do
//! ([`FakeHost::sharing`]). It records everything and decides nothing: tests assert on
//! the recordings.

// Test support: a recording that is missing is a failed test, so the conveniences
// below unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde::de::DeserializeOwned;
use tollgate_protocol::CheckRequest;

use crate::host::{Callout, Host, Metric};

/// The root context's id in a [`FakeHost`].
pub const ROOT: u32 = 1;
/// The context of the request [`FakeHost::request`] opens.
pub const REQUEST: u32 = 2;

/// Shared data: each key's value and its compare-and-swap token.
type SharedData = HashMap<String, (Vec<u8>, u32)>;

/// Header names and values, in order.
pub type Headers = Vec<(String, String)>;

/// One callout the filter dispatched (or tried to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    /// The effective context it was dispatched from.
    pub context: u32,
    /// Its token; `None` when the host refused it.
    pub token: Option<u32>,
    /// The Envoy cluster.
    pub cluster: String,
    /// Pseudo-headers and headers.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
}

impl Dispatched {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The control-plane endpoint it calls.
    pub fn path(&self) -> &str {
        self.header(":path").unwrap_or_default()
    }

    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).expect("a JSON callout body")
    }
}

/// A local reply: status, headers and body.
pub type LocalReply = (u32, Headers, Vec<u8>);

/// One request as the host sees it.
#[derive(Debug, Clone, Default)]
pub struct FakeRequest {
    /// Its request headers (the filter's writes included).
    pub headers: HashMap<String, String>,
    /// Request headers the filter set, in order.
    pub set_headers: Headers,
    /// The upstream's response headers.
    pub response_headers: HashMap<String, String>,
    /// The response body chunk being passed on.
    pub response_chunk: Vec<u8>,
    /// Response headers the filter added, in order.
    pub added_headers: Headers,
    /// Every local reply the filter sent.
    pub replies: Vec<LocalReply>,
    /// How often the filter resumed it.
    pub resumed: u32,
}

/// One Envoy worker: see the module's documentation.
#[derive(Debug)]
pub struct FakeHost {
    shared: Rc<RefCell<SharedData>>,
    /// The last id handed out, counted across every host sharing the data.
    ids: Rc<Cell<u64>>,
    gateway: String,
    now_ms: Cell<u64>,
    refuse_dispatch: Cell<bool>,
    next_token: Cell<u32>,
    current: Cell<u32>,
    requests: RefCell<BTreeMap<u32, FakeRequest>>,
    dispatched: RefCell<Vec<Dispatched>>,
    counted: RefCell<Vec<Metric>>,
    warnings: RefCell<Vec<String>>,
}

impl Default for FakeHost {
    /// A worker `g` at time 0 with no request, the root context effective.
    fn default() -> Self {
        FakeHost {
            shared: Rc::default(),
            ids: Rc::default(),
            gateway: "g".into(),
            now_ms: Cell::new(0),
            refuse_dispatch: Cell::new(false),
            next_token: Cell::new(0),
            current: Cell::new(ROOT),
            requests: RefCell::default(),
            dispatched: RefCell::default(),
            counted: RefCell::default(),
            warnings: RefCell::default(),
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
        self.gateway = other.gateway.clone();
        self
    }

    /// This host as worker `gateway` (its gateway id).
    pub fn on_worker(mut self, gateway: &str) -> FakeHost {
        self.gateway = gateway.into();
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
        later.requests.borrow_mut().insert(
            REQUEST,
            FakeRequest {
                headers: self.of(REQUEST).headers,
                ..FakeRequest::default()
            },
        );
        later.current.set(REQUEST);
        later
    }

    /// Opens request `context` with `headers` and makes it the effective context.
    pub fn open(&self, context: u32, headers: &[(&str, &str)]) {
        let request = FakeRequest {
            headers: (headers.iter())
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..FakeRequest::default()
        };
        self.requests.borrow_mut().insert(context, request);
        self.current.set(context);
    }

    /// Request `context` is gone: host calls can no longer act on it.
    pub fn close(&self, context: u32) {
        self.requests.borrow_mut().remove(&context);
        if self.current.get() == context {
            self.current.set(ROOT);
        }
    }

    /// Makes `context` effective (as a callback of it does), whether or not it is open.
    pub fn enter(&self, context: u32) {
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

    /// What request `context` saw (empty if it is gone).
    pub fn of(&self, context: u32) -> FakeRequest {
        let requests = self.requests.borrow();
        requests.get(&context).cloned().unwrap_or_default()
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

    /// Every callout dispatched (not those refused), in order.
    pub fn dispatched(&self) -> Vec<Dispatched> {
        let dispatched = self.dispatched.borrow();
        (dispatched.iter())
            .filter(|d| d.token.is_some())
            .cloned()
            .collect()
    }

    /// Every callout tried, the refused ones included, in order.
    pub fn attempted(&self) -> Vec<Dispatched> {
        self.dispatched.borrow().clone()
    }

    /// The last callout dispatched.
    pub fn last_dispatched(&self) -> Dispatched {
        self.dispatched().pop().expect("a callout was dispatched")
    }

    /// Every `/v1/check` body dispatched.
    pub fn checks(&self) -> Vec<CheckRequest> {
        (self.dispatched().iter())
            .filter(|d| d.path() == tollgate_protocol::check::CHECK_PATH)
            .map(Dispatched::json)
            .collect()
    }

    /// The last `/v1/check` body dispatched.
    pub fn last_check(&self) -> CheckRequest {
        self.checks().pop().expect("a check was sent")
    }

    /// The last local reply to [`REQUEST`], its body as JSON.
    pub fn local(&self) -> (u32, Headers, serde_json::Value) {
        let (status, headers, body) = self.local_reply().expect("a local reply");
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    /// The last local reply to [`REQUEST`], if any.
    pub fn local_reply(&self) -> Option<LocalReply> {
        self.of(REQUEST).replies.pop()
    }

    /// The status of the last local reply to [`REQUEST`], if any.
    pub fn local_status(&self) -> Option<u32> {
        self.local_reply().map(|(status, _, _)| status)
    }

    /// How often [`REQUEST`] was resumed.
    pub fn resumed(&self) -> u32 {
        self.of(REQUEST).resumed
    }

    /// A response header the filter added to [`REQUEST`]'s response.
    pub fn added_header(&self, name: &str) -> Option<String> {
        (self.of(REQUEST).added_headers.into_iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Sets the response body chunk [`REQUEST`] is passing on.
    pub fn set_response_chunk(&self, chunk: &[u8]) {
        self.with_request(REQUEST, |request| request.response_chunk = chunk.to_vec());
    }

    /// How often `metric` was counted.
    pub fn counted(&self, metric: Metric) -> usize {
        let counted = self.counted.borrow();
        counted.iter().filter(|m| **m == metric).count()
    }

    /// Every warning logged.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.borrow().clone()
    }

    /// The keys of the shared data.
    pub fn shared_keys(&self) -> Vec<String> {
        self.shared.borrow().keys().cloned().collect()
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
            context: self.current.get(),
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

    fn warn(&self, message: &str) {
        self.warnings.borrow_mut().push(message.to_string());
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
        format!("s-{n}")
    }

    fn gateway_id(&self) -> String {
        self.gateway.clone()
    }

    fn shared_get_cas(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.shared.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn shared_set_cas(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        // As in Envoy: no token writes unconditionally, a stale one is refused.
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map(|(_, cas)| *cas);
        if cas.is_some() && cas != current {
            return false;
        }
        let next = current.unwrap_or(0) + 1;
        shared.insert(key.to_string(), (value.to_vec(), next));
        true
    }
}
