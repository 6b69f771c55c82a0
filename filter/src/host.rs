//! What the request logic needs from Envoy, as a trait so it can run natively in tests.

use std::time::Duration;

/// Counters the filter exports as Envoy stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Admitted below the warning threshold.
    Allowed,
    /// Admitted past the warning threshold.
    Warned,
    /// Answered 429.
    Rejected,
    /// Callouts dispatched to the control plane.
    Callouts,
    /// Callouts that failed, timed out or answered garbage.
    CalloutFailures,
    /// Requests let through without a decision (failure mode open).
    FailedOpen,
    /// Requests answered 503 without a decision (failure mode closed).
    FailedClosed,
    /// Requests refused for a missing or invalid tenant.
    TenantMissing,
}

impl Metric {
    /// Every metric, for defining them all at start-up.
    pub const ALL: [Metric; 8] = [
        Metric::Allowed,
        Metric::Warned,
        Metric::Rejected,
        Metric::Callouts,
        Metric::CalloutFailures,
        Metric::FailedOpen,
        Metric::FailedClosed,
        Metric::TenantMissing,
    ];

    /// The stat name (`wasmcustom.tollgate.<name>` in Envoy's `/stats`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Allowed => "tollgate.allowed",
            Metric::Warned => "tollgate.warned",
            Metric::Rejected => "tollgate.rejected",
            Metric::Callouts => "tollgate.callouts",
            Metric::CalloutFailures => "tollgate.callout_failures",
            Metric::FailedOpen => "tollgate.failed_open",
            Metric::FailedClosed => "tollgate.failed_closed",
            Metric::TenantMissing => "tollgate.tenant_missing",
        }
    }
}

/// A callout request: everything `dispatch_http_call` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout<'a> {
    /// The Envoy cluster to call.
    pub cluster: &'a str,
    /// Pseudo-headers and headers of the call.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The JSON body.
    pub body: &'a [u8],
    /// Envoy's own timeout for the call.
    pub timeout: Duration,
}

/// The host calls of one request's context.
///
/// Every method is infallible to its caller: the implementation logs host errors, and
/// the logic decides from the return values alone, so no host hiccup becomes a panic.
pub trait Host {
    /// A request header (pseudo-headers included), if present.
    fn request_header(&self, name: &str) -> Option<String>;
    /// Dispatches a callout; `None` when Envoy refused it at once.
    fn dispatch(&self, callout: Callout<'_>) -> Option<u32>;
    /// Answers the request locally; the upstream never sees it.
    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]);
    /// Lets a paused request continue to the upstream.
    fn resume_request(&self);
    /// Adds a header to the response on its way to the client.
    fn add_response_header(&self, name: &str, value: &str);
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Counts one event.
    fn count(&self, metric: Metric);
    /// Logs a warning to Envoy's log.
    fn warn(&self, message: &str);
}
