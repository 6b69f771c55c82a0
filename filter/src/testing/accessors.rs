//! The accessors tests read a [`FakeHost`]'s recordings with.

use tollgate_protocol::CheckRequest;

use super::host::{FakeHost, REQUEST};
use super::recordings::{Dispatched, FakeRequest, Headers, LocalReply};
use crate::host::{Level, Metric};
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
        self.shared.borrow().values.keys().cloned().collect()
    }

    /// Makes the next `writes` compare-and-swap writes of `key` find that another
    /// worker wrote it since it was read (each is refused, the key's token moved on):
    /// contention, on demand.
    pub fn interfere(&self, key: &str, writes: u32) {
        self.shared
            .borrow_mut()
            .interference
            .insert(key.to_string(), writes);
    }

    /// The `n`-th id (from 1) this host and those sharing with it hand out.
    pub fn id(&self, n: u64) -> String {
        format!("{:016x}-{n}", self.id_prefix)
    }
}
