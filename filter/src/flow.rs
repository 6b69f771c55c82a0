//! One request's way through the filter.
//!
//! ```text
//! headers ──excluded path──▶ Passed (no headers added)
//!    │──no/invalid tenant──▶ RepliedLocally (401/400)
//!    └──callout──▶ AwaitingDecision ──allow/warn──▶ Admitted ──▶ quota headers on the response
//!                        │──reject──▶ RepliedLocally (429 / 403)
//!                        └──failure or deadline──▶ Admitted(unknown) | RepliedLocally (503)
//! ```
//!
//! The first of the callout's answer and the deadline wins; whatever comes second finds
//! the request no longer awaiting a decision and is ignored.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use tollgate_protocol::check::CHECK_PATH;
use tollgate_protocol::headers::quota_headers;
use tollgate_protocol::problem::{self, Problem};
use tollgate_protocol::{
    is_valid_tenant_id, resource, CheckRequest, CheckResponse, Decision, FailureMode, FilterConfig,
    PolicyStatus, QuotaStatus, RejectReason,
};

use crate::host::{Callout, Host, Metric};

/// What Envoy should do with the request after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on to the upstream.
    Continue,
    /// Hold the request (waiting for a decision, or answered locally).
    Pause,
}

/// Where the request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Headers not seen yet.
    Start,
    /// Not counted (excluded path): passes untouched.
    Passed,
    /// A callout is in flight; the request is paused until it answers or `deadline_ms`.
    AwaitingDecision { tenant: String, deadline_ms: u64 },
    /// Let through; the response gets these quota headers.
    Admitted {
        status: QuotaStatus,
        policy: Option<PolicyStatus>,
    },
    /// The filter answered the request itself.
    RepliedLocally,
}

/// The filter logic of one HTTP request.
#[derive(Debug)]
pub struct RequestFlow {
    config: Rc<FilterConfig>,
    stage: Stage,
}

impl RequestFlow {
    /// A flow for a new request under `config`.
    pub fn new(config: Rc<FilterConfig>) -> RequestFlow {
        RequestFlow {
            config,
            stage: Stage::Start,
        }
    }

    /// The deadline of the pending callout, while the request waits for one.
    pub fn awaiting_until(&self) -> Option<u64> {
        match self.stage {
            Stage::AwaitingDecision { deadline_ms, .. } => Some(deadline_ms),
            _ => None,
        }
    }

    /// Request headers arrived: find the tenant and amount and ask for a decision.
    pub fn on_request_headers(&mut self, host: &dyn Host) -> Next {
        let path = host.request_header(":path").unwrap_or_default();
        if !self.config.counts_path(&path) {
            self.stage = Stage::Passed;
            return Next::Continue;
        }
        let tenant = match host.request_header(&self.config.tenant_header) {
            Some(tenant) if is_valid_tenant_id(&tenant) => tenant,
            Some(_) => {
                return self.refuse_tenant(host, 400, "Bad Request", "is not a valid tenant id")
            }
            None => return self.refuse_tenant(host, 401, "Unauthorized", "is required"),
        };
        let amount = host
            .request_header("content-length")
            .and_then(|value| value.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let request = CheckRequest {
            tenant: tenant.clone(),
            roles: Vec::new(),
            // Every counted request is one `requests` and its body bytes, checked and
            // counted together: all or nothing.
            amounts: BTreeMap::from([
                (resource::REQUESTS.to_string(), 1),
                (resource::REQUEST_BYTES.to_string(), amount),
            ]),
            method: host.request_header(":method").unwrap_or_default(),
            path,
            // Gauges (`concurrent_requests`) need a request id and a release when the
            // request ends; the filter does not acquire them yet.
            request_id: None,
        };
        let Ok(body) = serde_json::to_vec(&request) else {
            return self.fail(host, "could not encode the check request");
        };
        let cp = &self.config.control_plane;
        let callout = Callout {
            cluster: &cp.cluster,
            headers: vec![
                (":method", "POST"),
                (":path", CHECK_PATH),
                (":authority", &cp.authority),
                ("content-type", "application/json"),
            ],
            body: &body,
            timeout: Duration::from_millis(cp.timeout_ms),
        };
        host.count(Metric::Callouts);
        if host.dispatch(callout).is_none() {
            return self.fail(host, "the control-plane callout could not be dispatched");
        }
        self.stage = Stage::AwaitingDecision {
            tenant,
            deadline_ms: host.now_ms().saturating_add(cp.timeout_ms),
        };
        Next::Pause
    }

    /// The control plane answered (`status` is Envoy's, synthetic 503/504 included).
    pub fn on_check_response(&mut self, host: &dyn Host, status: Option<u32>, body: &[u8]) {
        let Stage::AwaitingDecision { tenant, .. } = &self.stage else {
            return; // the deadline already decided
        };
        let tenant = tenant.clone();
        if status != Some(200) {
            let why = format!("control plane answered status {status:?}");
            self.fail(host, &why);
            return;
        }
        match serde_json::from_slice::<CheckResponse>(body) {
            Ok(response) => self.apply(host, &tenant, response),
            Err(e) => {
                self.fail(host, &format!("unreadable check response: {e}"));
            }
        }
    }

    /// The deadline passed with no answer.
    pub fn on_deadline(&mut self, host: &dyn Host) {
        if matches!(self.stage, Stage::AwaitingDecision { .. }) {
            self.fail(host, "no decision within the deadline");
        }
    }

    /// Response headers are on their way to the client: add the quota headers.
    pub fn on_response_headers(&mut self, host: &dyn Host) {
        if let Stage::Admitted { status, policy } = &self.stage {
            for (name, value) in quota_headers(&self.config.header_prefix, *status, policy.as_ref())
            {
                host.add_response_header(&name, &value);
            }
        }
    }

    fn apply(&mut self, host: &dyn Host, tenant: &str, response: CheckResponse) {
        match (response.decision, response.reason) {
            (Decision::Reject, Some(RejectReason::UnknownTenant)) => {
                host.count(Metric::TenantMissing);
                let detail = format!("tenant {tenant} is not known to the gateway");
                self.reply(host, &Problem::plain(403, "Forbidden", detail), &[]);
            }
            (Decision::Reject, _) => {
                host.count(Metric::Rejected);
                self.reject(host, tenant, response.policy);
            }
            (decision, _) => {
                host.count(if decision == Decision::Warn {
                    Metric::Warned
                } else {
                    Metric::Allowed
                });
                self.admit(host, decision.status(), response.policy);
            }
        }
    }

    fn reject(&mut self, host: &dyn Host, tenant: &str, policy: Option<PolicyStatus>) {
        let Some(policy) = policy else {
            let detail = format!("tenant {tenant} has exceeded its quota");
            let mut body = Problem::plain(429, "Too Many Requests", detail);
            body.problem_type = problem::QUOTA_EXCEEDED_TYPE.into();
            return self.reply(host, &body, &[]);
        };
        let retry_after = policy.reset_after_s.max(1).to_string();
        let mut headers = quota_headers(
            &self.config.header_prefix,
            QuotaStatus::Exceeded,
            Some(&policy),
        );
        headers.push(("retry-after".into(), retry_after));
        self.reply(host, &Problem::quota_exceeded(tenant, &policy), &headers);
    }

    fn admit(&mut self, host: &dyn Host, status: QuotaStatus, policy: Option<PolicyStatus>) {
        let was_paused = matches!(self.stage, Stage::AwaitingDecision { .. });
        self.stage = Stage::Admitted { status, policy };
        if was_paused {
            host.resume_request();
        }
    }

    fn refuse_tenant(&mut self, host: &dyn Host, status: u16, title: &str, what: &str) -> Next {
        host.count(Metric::TenantMissing);
        let detail = format!("the {} header {what}", self.config.tenant_header);
        self.reply(host, &Problem::plain(status, title, detail), &[]);
        Next::Pause
    }

    /// No decision could be had: apply the failure mode (resume or answer 503). Returns
    /// what the headers callback should tell Envoy when the failure happened there.
    fn fail(&mut self, host: &dyn Host, why: &str) -> Next {
        host.count(Metric::CalloutFailures);
        host.warn(&format!(
            "tollgate: {why}; failure mode {:?}",
            self.config.failure_mode
        ));
        match self.config.failure_mode {
            FailureMode::Open => {
                host.count(Metric::FailedOpen);
                self.admit(host, QuotaStatus::Unknown, None);
                Next::Continue
            }
            FailureMode::Closed => {
                host.count(Metric::FailedClosed);
                let detail = "the quota service is unavailable; try again later";
                self.reply(
                    host,
                    &Problem::plain(503, "Service Unavailable", detail),
                    &[],
                );
                Next::Pause
            }
        }
    }

    fn reply(&mut self, host: &dyn Host, problem: &Problem, extra: &[(String, String)]) {
        self.stage = Stage::RepliedLocally;
        let mut headers: Vec<(&str, &str)> = vec![("content-type", problem::CONTENT_TYPE)];
        headers.extend(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        host.send_local_response(u32::from(problem.status), &headers, &problem.to_json());
    }
}
