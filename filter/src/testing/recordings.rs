//! What a [`FakeHost`] recorded, and the accessors tests read it with.

use serde::de::DeserializeOwned;
use tollgate_protocol::CheckRequest;

use super::host::{FakeHost, REQUEST};
use crate::host::{Level, Metric};

/// Header names and values, in order.
pub type Headers = Vec<(String, String)>;

/// A local reply: status, headers and body.
pub type LocalReply = (u32, Headers, Vec<u8>);

/// One callout the filter dispatched (or tried to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    /// The context whose callback dispatched it: the SDK hands the answer to that
    /// context (and drops it if that context is gone).
    pub context: u32,
    /// The effective context when it was dispatched.
    pub effective: u32,
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

/// One request as the host sees it.
#[derive(Debug, Clone, Default)]
pub struct FakeRequest {
    /// Its request headers (the filter's writes included).
    pub headers: std::collections::HashMap<String, String>,
    /// Request headers the filter set, in order.
    pub set_headers: Headers,
    /// The upstream's response headers.
    pub response_headers: std::collections::HashMap<String, String>,
    /// The response body chunk being passed on.
    pub response_chunk: Vec<u8>,
    /// Response headers the filter added, in order.
    pub added_headers: Headers,
    /// Every local reply the filter sent.
    pub replies: Vec<LocalReply>,
    /// How often the filter resumed it.
    pub resumed: u32,
}

impl FakeHost {
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

    /// What request `context` saw (empty if it is gone).
    pub fn of(&self, context: u32) -> FakeRequest {
        let requests = self.requests.borrow();
        requests.get(&context).cloned().unwrap_or_default()
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

    /// How often `metric` was counted.
    pub fn counted(&self, metric: Metric) -> usize {
        let counted = self.counted.borrow();
        counted.iter().filter(|m| **m == metric).count()
    }

    /// Every line logged at `level`.
    pub fn logged(&self, level: Level) -> Vec<String> {
        let logged = self.logged.borrow();
        (logged.iter())
            .filter(|(l, _)| *l == level)
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Every warning logged.
    pub fn warnings(&self) -> Vec<String> {
        self.logged(Level::Warn)
    }

    /// How often the host was told a closing VM is done.
    pub fn done_calls(&self) -> u32 {
        self.done.get()
    }

    /// The keys of the shared data.
    pub fn shared_keys(&self) -> Vec<String> {
        self.shared.borrow().keys().cloned().collect()
    }
}
