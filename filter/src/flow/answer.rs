//! A check's answer, or its deadline: admitted, refused (429, or 403 for a tenant the
//! control plane does not know), or no decision, and the failure mode.

use tollgate_protocol::check::CHECK_PATH;
use tollgate_protocol::headers::quota_headers;
use tollgate_protocol::problem::{self, Problem};
use tollgate_protocol::{
    resource, CheckResponse, Decision, FailureMode, PolicyStatus, QuotaStatus, RejectReason,
    ReleaseRequest,
};

use super::request::{Next, RequestFlow};
use super::state::{Event, Purpose};
use crate::host::{Host, Metric};
use crate::misconfigured::Misconfigured;
use crate::reject_cache;

impl RequestFlow {
    /// The control plane answered (`status` is Envoy's, synthetic 503/504 included).
    pub fn on_check_response(&mut self, host: &dyn Host, status: Option<u32>, body: &[u8]) {
        let Some(waiting) = self.state.wait() else {
            return; // the deadline already decided
        };
        self.state.on(Event::WaitOver);
        match waiting.purpose {
            Purpose::Lease => return self.on_lease_answer(host, status, body),
            Purpose::View => return self.on_view_answer(host, status, body),
            _ => {}
        }
        if status != Some(200) {
            host.count(Metric::CalloutFailures);
            self.misconfigured(host, status, CHECK_PATH);
            let why = format!("control plane answered status {status:?}");
            self.fail(host, waiting.purpose, &why);
            return;
        }
        match serde_json::from_slice::<CheckResponse>(body) {
            Ok(response) => self.apply(host, waiting.purpose, response),
            Err(e) => {
                host.count(Metric::CalloutFailures);
                self.fail(host, waiting.purpose, &format!("unreadable answer: {e}"));
            }
        }
    }

    /// Counts an answer of `status` to a call of `path` that says the filter is
    /// misconfigured, for the worker to log once.
    pub(super) fn misconfigured(
        &mut self,
        host: &dyn Host,
        status: Option<u32>,
        path: &'static str,
    ) {
        if let Some(answer) = Misconfigured::of(status, path) {
            host.count(Metric::ControlPlaneMisconfigured);
            self.follow_ups.misconfigured = Some(answer);
        }
    }

    /// The deadline passed with no answer.
    pub fn on_deadline(&mut self, host: &dyn Host) {
        if let Some(waiting) = self.state.wait() {
            self.state.on(Event::WaitOver);
            if waiting.purpose != Purpose::Refill {
                host.count(Metric::CalloutTimeouts);
            }
            self.fail(host, waiting.purpose, "no decision within the deadline");
        }
    }

    /// Whether a failed check leaves nothing to decide: an ask ahead while the body
    /// flows within what is counted (the next one that is needed will pause it).
    fn failure_is_moot(&self, purpose: Purpose) -> bool {
        matches!(purpose, Purpose::Ahead { .. }) && !self.state.is_paused()
    }

    pub(super) fn apply(&mut self, host: &dyn Host, purpose: Purpose, response: CheckResponse) {
        let refused = response.decision == Decision::Reject;
        if refused && response.reason == Some(RejectReason::UnknownTenant) {
            let tenant = self.tenant().to_string();
            if self.config.shadow {
                host.count(Metric::ShadowRejected);
                self.let_through(host, QuotaStatus::Unknown, None);
                return;
            }
            host.count(Metric::TenantUnknown);
            let detail = format!("tenant {tenant} is not known to the gateway");
            self.reply(host, &Problem::plain(403, "Forbidden", detail), &[]);
            return;
        }
        if refused {
            return self.refused(host, purpose, response);
        }
        if response.shadow_reject {
            host.count(Metric::ShadowRejected);
        }
        self.status = response.decision.status();
        self.policy = response.policy;
        match purpose {
            Purpose::Admission => {
                host.count(if response.decision == Decision::Warn {
                    Metric::Warned
                } else {
                    Metric::Allowed
                });
                let announced = self.amounts.get(resource::REQUEST_BYTES).copied();
                self.body.reserve(announced.unwrap_or(0));
                self.admit(host);
            }
            Purpose::Body { asked, .. } => {
                self.body.reserve(asked);
                self.continue_body(host);
            }
            Purpose::Ahead { asked } => {
                self.body.reserve(asked);
                if self.state.is_paused() {
                    self.continue_body(host);
                }
            }
            // Lease and view answers go through `on_lease_answer` and `on_view_answer`;
            // a refill waited for is no callout of this request.
            Purpose::Lease | Purpose::Refill | Purpose::View => {}
        }
    }

    /// The control plane refused: past a hard limit.
    fn refused(&mut self, host: &dyn Host, purpose: Purpose, response: CheckResponse) {
        if matches!(
            purpose,
            Purpose::Body { exact: false, .. } | Purpose::Ahead { .. }
        ) {
            // Asked ahead and did not fit: from now on ask for exactly what was seen,
            // and refuse only a body that really crosses the limit.
            self.state.on(Event::AheadRefused);
            if self.state.is_paused() {
                self.continue_body(host);
            }
            return;
        }
        if self.config.shadow {
            // An old control plane that ignores `shadow`: still never reject.
            host.count(Metric::ShadowRejected);
            let policy = response.policy;
            self.let_through(host, QuotaStatus::Exceeded, policy);
            return;
        }
        let Some(policy) = response.policy else {
            host.count(Metric::Rejected);
            let detail = format!("tenant {} has exceeded its quota", self.tenant());
            let mut body = Problem::plain(429, "Too Many Requests", detail);
            body.problem_type = problem::QUOTA_EXCEEDED_TYPE.into();
            self.reply(host, &body, &[]);
            return;
        };
        if self.config.reject_cache_max_s > 0 && response.cache_reject_for_s > 0 {
            if let Some(identity) = &self.identity {
                let for_s = response
                    .cache_reject_for_s
                    .min(self.config.reject_cache_max_s);
                reject_cache::remember(host, identity, &policy, for_s);
            }
        }
        self.reject(host, policy);
    }

    /// Admitted and counted: let the request (and whatever body is already buffered)
    /// go on.
    pub(super) fn admit(&mut self, host: &dyn Host) -> Next {
        self.state.on(Event::Admitted);
        self.tell_upstream(host);
        self.continue_body(host)
    }

    /// Lets the request through uncounted from here on, with `status`.
    fn let_through(
        &mut self,
        host: &dyn Host,
        status: QuotaStatus,
        policy: Option<PolicyStatus>,
    ) -> Next {
        self.status = status;
        self.policy = policy.or(self.policy.take());
        let was_flowing = self.state.is_flowing();
        self.state.on(Event::LetThrough);
        if !was_flowing {
            self.tell_upstream(host);
        }
        self.body.release();
        self.proceed(host)
    }

    /// The request goes on to the upstream, which is told the quota status.
    fn tell_upstream(&self, host: &dyn Host) {
        let header = &self.config.headers.upstream_status;
        if !header.is_empty() {
            host.set_request_header(header, self.status.as_str());
        }
    }

    /// The admission check may have been counted although its answer never came in
    /// time (or nobody is left to read it), and nothing of the request is admitted:
    /// ask for it to be taken back. Taking back a check never counted changes nothing.
    pub(super) fn take_back_check(&mut self) {
        if let Some(id) = self.check_id.take() {
            self.follow_ups.cancels.push(ReleaseRequest {
                tenant: self.tenant().to_string(),
                request_id: id,
                refund: true,
            });
        }
    }

    /// No decision could be had: apply the failure mode.
    pub(super) fn fail(&mut self, host: &dyn Host, purpose: Purpose, why: &str) -> Next {
        if self.failure_is_moot(purpose) {
            return Next::Continue;
        }
        match purpose {
            Purpose::Lease => return self.lease_failed(host, why),
            // Nothing to let through: the view is the filter's own answer.
            Purpose::View => return self.view_unavailable(host, why),
            _ => {}
        }
        host.warn(&format!(
            "tollgate: {why} (tenant {}); failure mode {:?}",
            self.tenant(),
            self.config.failure_mode
        ));
        match self.config.failure_mode {
            FailureMode::Open => {
                host.count(Metric::FailedOpen);
                match purpose {
                    // Not counted: the request passes as `unknown`.
                    Purpose::Admission | Purpose::Lease | Purpose::Refill | Purpose::View => {
                        self.let_through(host, QuotaStatus::Unknown, None)
                    }
                    // Counted so far; the rest of the body passes unchecked and is
                    // settled to what the upstream got.
                    Purpose::Body { .. } | Purpose::Ahead { .. } => {
                        self.state.on(Event::LetThrough);
                        self.body.release();
                        self.proceed(host)
                    }
                }
            }
            FailureMode::Closed => {
                host.count(Metric::FailedClosed);
                if purpose == Purpose::Admission {
                    self.take_back_check();
                }
                let detail = "the quota service is unavailable; try again later";
                self.reply(
                    host,
                    &Problem::plain(503, "Service Unavailable", detail),
                    &[],
                )
            }
        }
    }

    pub(super) fn reject(&mut self, host: &dyn Host, policy: PolicyStatus) -> Next {
        host.count(Metric::Rejected);
        let retry_after = policy.reset_after_s.max(1).to_string();
        let mut headers = quota_headers(&self.config.headers, QuotaStatus::Exceeded, Some(&policy));
        headers.push(("retry-after".into(), retry_after));
        let body = Problem::quota_exceeded(self.tenant(), &policy);
        self.reply(host, &body, &headers)
    }

    /// Answers the request with `problem` (and `extra` headers).
    pub(super) fn reply(
        &mut self,
        host: &dyn Host,
        problem: &Problem,
        extra: &[(String, String)],
    ) -> Next {
        let mut headers: Vec<(&str, &str)> = vec![("content-type", problem::CONTENT_TYPE)];
        headers.extend(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let status = u32::from(problem.status);
        self.answer(host, status, &headers, &problem.to_json())
    }

    /// Answers the request itself: the upstream never sees (the rest of) it.
    pub(super) fn answer(
        &mut self,
        host: &dyn Host,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Next {
        self.state.on(Event::Replied);
        host.send_local_response(status, headers, body);
        Next::Pause
    }
}
