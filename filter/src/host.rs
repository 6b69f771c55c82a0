//! What the filter's logic needs from Envoy, as a trait so it runs natively in tests:
//! the calls of a request's context, those of a worker's root context (switching the
//! effective context, reading a callout's answer, finishing a closing VM), and what
//! both share (time, stats, logs, shared data, ids).

use std::time::Duration;

use tollgate_protocol::config::ControlPlaneConfig;

pub use crate::metrics::Metric;

/// A callout request: everything `dispatch_http_call` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout<'a> {
    /// The Envoy cluster to call.
    pub cluster: &'a str,
    /// Pseudo-headers and headers of the call.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The JSON body.
    pub body: &'a [u8],
    /// Envoy's own timeout for the call: a backstop behind the filter's deadline.
    pub timeout: Duration,
}

impl<'a> Callout<'a> {
    /// A JSON `POST` of `body` to `path` on the control plane.
    pub fn post(
        control_plane: &'a ControlPlaneConfig,
        path: &'a str,
        body: &'a [u8],
        timeout: Duration,
    ) -> Callout<'a> {
        let mut headers = vec![
            (":method", "POST"),
            (":path", path),
            (":authority", control_plane.authority.as_str()),
            ("content-type", "application/json"),
        ];
        if let Some(authorization) = &control_plane.authorization {
            headers.push(("authorization", authorization.expose()));
        }
        Callout {
            cluster: &control_plane.cluster,
            headers,
            body,
            timeout,
        }
    }
}

/// How much a line in Envoy's log matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Worth knowing (a VM closing).
    Info,
    /// Something failed and the filter coped (a callout, a failure mode applied).
    Warn,
    /// Something is misconfigured and an operator must act.
    Error,
}

/// The host calls of one worker (VM): per-request calls act on the effective context.
///
/// Every method is infallible to its caller: the implementation logs host errors, and
/// the logic decides from the return values alone, so no host hiccup becomes a panic.
pub trait Host {
    /// A request header (pseudo-headers included), if present.
    fn request_header(&self, name: &str) -> Option<String>;
    /// Sets a header on the request on its way to the upstream.
    fn set_request_header(&self, name: &str, value: &str);
    /// Removes a header from the request on its way to the upstream.
    fn remove_request_header(&self, name: &str);
    /// `size` bytes from `start` of the request body Envoy buffers for the filter (the
    /// current chunk, or everything held since the filter last let the body go).
    fn request_body(&self, start: usize, size: usize) -> Vec<u8>;
    /// Replaces the request body Envoy buffers for the filter with `body`; `false` when
    /// Envoy refused.
    fn set_request_body(&self, body: &[u8]) -> bool;
    /// A response header, if present.
    fn response_header(&self, name: &str) -> Option<String>;
    /// The response body chunk Envoy is passing on (`size` bytes).
    fn response_body(&self, size: usize) -> Vec<u8>;
    /// Dispatches a callout; `None` when Envoy refused it at once.
    fn dispatch(&self, callout: Callout<'_>) -> Option<u32>;
    /// Answers the request locally; the upstream never sees (the rest of) it.
    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]);
    /// Lets a paused request continue to the upstream.
    fn resume_request(&self);
    /// Adds a header to the response on its way to the client.
    fn add_response_header(&self, name: &str, value: &str);
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Counts one event.
    fn count(&self, metric: Metric);
    /// Logs `message` to Envoy's log.
    fn log(&self, level: Level, message: &str);
    /// Logs a warning to Envoy's log.
    fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }
    /// A value of the data every worker of this Envoy shares.
    fn shared_get(&self, key: &str) -> Option<Vec<u8>>;
    /// Stores a value every worker of this Envoy sees.
    fn shared_set(&self, key: &str, value: &[u8]);
    /// An id no other call of any worker or Envoy makes (settlements, leases).
    fn unique_id(&self) -> String;
    /// This worker's (VM's) id: which worker's request refills a budget, so that the
    /// other requests of that worker wait for its answer.
    fn worker_id(&self) -> String;
    /// This Envoy's id, one for all its workers ([`crate::gateway`]): the control plane
    /// splits a tenant's headroom between the gateways holding its budgets.
    fn gateway_id(&self) -> String;
    /// A shared value with its compare-and-swap token (`None`, `None` when absent).
    fn shared_get_cas(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Stores a shared value only if it still has the token `cas` read with it; `None`
    /// writes unconditionally, and an absent key is created whatever the token (as
    /// Envoy does). `false` when another worker wrote it in between.
    fn shared_set_cas(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool;
    /// A compare-and-swap token that no key in shared data holds once this returns, for
    /// creating a key the caller read absent without erasing one another worker made
    /// meanwhile (written with it, an absent key is created, an existing one refused).
    /// Envoy draws every write's token from one counter, so the token of a write made
    /// now differs from that of any key that existed when the caller read its key, and
    /// from any written since (until the 32-bit counter wraps, billions of writes on).
    fn fresh_cas(&self) -> Option<u32> {
        const TOKEN_KEY: &str = "tollgate.token";
        self.shared_set(TOKEN_KEY, b"");
        self.shared_get_cas(TOKEN_KEY).1
    }
    /// Makes `context_id` the context later host calls act on (a request the worker
    /// wakes, answers or decides from another context's callback); `false` when that
    /// request is gone.
    fn set_effective_context(&self, context_id: u32) -> bool;
    /// The `:status` of the callout answer being delivered (Envoy's, synthetic 503/504
    /// included).
    fn callout_status(&self) -> Option<u32>;
    /// The body of the callout answer being delivered (`size` bytes).
    fn callout_body(&self, size: usize) -> Vec<u8>;
    /// Tells Envoy that a closing VM is done, after its `on_done` answered `false`.
    fn done(&self);
}
