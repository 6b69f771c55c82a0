//! One request's way through the filter.
//!
//! ```text
//! headers ──not counted (match)──▶ Passed (untouched)
//!    │──no/invalid tenant──▶ Replied (401/400)
//!    │──remembered rejection──▶ Replied (429, no callout)
//!    └──check──▶ waiting ──allow/warn──▶ Counted ──body past its reservation──▶ waiting (check)
//!                  │                         │                                    │──reject──▶ Replied (429)
//!                  │──reject──▶ Replied       └──response: quota headers, costs read──▶ settlement
//!                  └──failure or deadline──▶ Counted(unknown) | Replied (503)
//! ```
//!
//! At most one check is in flight per request. The first of its answer and the deadline
//! wins; whatever comes second finds nothing waiting and is ignored. Envoy holds the
//! request (and buffers its body) while a check is in flight.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use tollgate_protocol::check::{AMOUNT_MAX, CHECK_PATH, DEADLINE_HEADER};
use tollgate_protocol::headers::quota_headers;
use tollgate_protocol::problem::{self, Problem};
use tollgate_protocol::{
    resource, CheckRequest, CheckResponse, Decision, FailureMode, FilterConfig, PolicyStatus,
    QuotaStatus, RejectReason, ReleaseRequest, SettleRequest,
};

mod budgets;

pub use budgets::{FollowUps, RefillEnd, Woken};

use crate::body::BodyMeter;
use crate::host::{Callout, Host, Metric};
use crate::identity::{identify, Identity, IdentityError};
use crate::reject_cache;
use crate::response_cost::{post_paid_resources, ResponseMeter};

/// How much later than the filter's own deadline Envoy's callout timeout fires: it is
/// only the backstop, so a hung callout is always answered by the filter's deadline.
const ENVOY_TIMEOUT_BACKSTOP_MS: u64 = 1_000;

/// What Envoy should do with the request after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on to the upstream.
    Continue,
    /// Hold the request (waiting for a decision, or answered locally).
    Pause,
}

/// Where the request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Headers not seen yet.
    Start,
    /// Not counted: passes untouched.
    Passed,
    /// Admitted (or let through by the failure mode): flowing, metered.
    Counted,
    /// The filter answered the request itself.
    Replied,
}

/// What a check in flight is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The decision on the request.
    Admission,
    /// `asked` more body bytes, for bytes Envoy holds; `exact` when that is no more
    /// than was seen.
    Body { asked: u64, exact: bool },
    /// `asked` more body bytes ahead of need, while the body keeps flowing within
    /// what is already counted (a chunked upload's next reservation).
    Ahead { asked: u64 },
    /// A new lease of a budget (`/v1/leases`), for this request and the next ones.
    Lease,
    /// No callout: another request of this worker is refilling the budget this one
    /// needs, and this one waits for that answer (single flight).
    Refill,
}

/// A check in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiting {
    purpose: Purpose,
    deadline_ms: u64,
}

/// The filter logic of one HTTP request.
#[derive(Debug)]
pub struct RequestFlow {
    config: Rc<FilterConfig>,
    phase: Phase,
    identity: Option<Identity>,
    method: String,
    path: String,
    /// What the admission check asks for: kept to know what was counted.
    amounts: BTreeMap<String, u64>,
    /// The id of the concurrency slot the request holds, if it takes one.
    request_id: Option<String>,
    /// The id the admission check carried (the slot's, if any): a request refused by
    /// the failure mode after its check may have been counted is taken back under it.
    check_id: Option<String>,
    waiting: Option<Waiting>,
    /// Whether Envoy holds the request because a callback answered `Pause`.
    paused: bool,
    /// The control plane counted this request (it is to be settled).
    counted: bool,
    /// Body bytes are still checked (off once the failure mode let the body through).
    metering: bool,
    /// The body has no `content-length`: its reservations are asked for ahead.
    streaming: bool,
    /// An ask ahead did not fit: from now on only exactly what was seen is asked for.
    exact_only: bool,
    checked_at_ms: u64,
    status: QuotaStatus,
    policy: Option<PolicyStatus>,
    body: BodyMeter,
    response: ResponseMeter,
    /// A budget refill in flight for this request.
    refill: Option<budgets::Refill>,
    /// A refill already happened for this request (one per request at most).
    refilled: bool,
    /// This request already waited for another's refill (once at most).
    waited: bool,
    /// When the admission must be decided: set by its first wait, so that the waits
    /// one admission can chain (a refill, or another's refill, then a check) share one
    /// deadline instead of each taking a whole one.
    admission_by_ms: Option<u64>,
    /// What the worker is to pick up after this callback.
    follow_ups: FollowUps,
}

impl RequestFlow {
    /// A flow for a new request under `config`.
    pub fn new(config: Rc<FilterConfig>) -> RequestFlow {
        RequestFlow {
            config,
            phase: Phase::Start,
            identity: None,
            method: String::new(),
            path: String::new(),
            amounts: BTreeMap::new(),
            request_id: None,
            check_id: None,
            waiting: None,
            paused: false,
            counted: false,
            metering: false,
            streaming: false,
            exact_only: false,
            checked_at_ms: 0,
            status: QuotaStatus::Unknown,
            policy: None,
            body: BodyMeter::default(),
            response: ResponseMeter::default(),
            refill: None,
            refilled: false,
            waited: false,
            admission_by_ms: None,
            follow_ups: FollowUps::default(),
        }
    }

    /// Until when a wait for `purpose` that starts now may last: the admission's one
    /// deadline, or for a body's check a whole timeout from now.
    fn deadline_for(&mut self, host: &dyn Host, purpose: Purpose) -> u64 {
        let fresh = host
            .now_ms()
            .saturating_add(self.config.control_plane.timeout_ms);
        match purpose {
            Purpose::Admission | Purpose::Lease | Purpose::Refill => {
                *self.admission_by_ms.get_or_insert(fresh)
            }
            Purpose::Body { .. } | Purpose::Ahead { .. } => fresh,
        }
    }

    /// The deadline of the check in flight, if one is.
    pub fn awaiting_until(&self) -> Option<u64> {
        self.waiting.map(|w| w.deadline_ms)
    }

    /// Request headers arrived: find the tenant and the costs and ask for a decision.
    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Next {
        self.method = host.request_header(":method").unwrap_or_default();
        self.path = host.request_header(":path").unwrap_or_default();
        if !self.config.counts(&self.method, &self.path) {
            self.phase = Phase::Passed;
            return Next::Continue;
        }
        let identity = match identify(&self.config.tenant, &self.path, |name| {
            host.request_header(name)
        }) {
            Ok(identity) => identity,
            Err(IdentityError::Missing(what)) => {
                host.count(Metric::TenantMissing);
                let detail = format!("{what} is required");
                return self.reply(host, &Problem::plain(401, "Unauthorized", detail), &[]);
            }
            Err(IdentityError::Invalid(why)) => {
                host.count(Metric::TenantInvalid);
                return self.reply(host, &Problem::plain(400, "Bad Request", why), &[]);
            }
        };
        self.amounts = self.admission_amounts(host, end_of_stream);
        self.body.on_data(0, end_of_stream);
        self.identity = Some(identity);
        if let Some(policy) = self.remembered_refusal(host) {
            host.count(Metric::RejectCacheHits);
            return self.reject(host, policy);
        }
        self.decide(host)
    }

    /// A rejection of this request's tenant remembered in shared data (never in shadow
    /// mode, which always asks).
    fn remembered_refusal(&self, host: &dyn Host) -> Option<PolicyStatus> {
        let identity = self.identity.as_ref().filter(|_| !self.config.shadow)?;
        reject_cache::refusal(host, identity, &self.amounts)
    }

    /// Decides the request from budgets if it can, else asks the control plane.
    fn decide(&mut self, host: &dyn Host) -> Next {
        if self.budget_eligible() {
            if let Some(next) = self.try_budgets(host, true) {
                return next;
            }
        }
        self.check(host)
    }

    /// Asks the control plane to decide and count this request.
    fn check(&mut self, host: &dyn Host) -> Next {
        let id = (self.request_id.clone()).unwrap_or_else(|| host.unique_id());
        self.check_id = Some(id.clone());
        let request = self.check_request(self.amounts.clone(), Some(id));
        self.checked_at_ms = host.now_ms();
        self.ask(host, &request, Purpose::Admission)
    }

    /// What the admission check asks for: one request, the announced body, a reserve
    /// for each cost known only after the response, a concurrency slot.
    fn admission_amounts(&mut self, host: &dyn Host, end_of_stream: bool) -> BTreeMap<String, u64> {
        let costs = &self.config.costs;
        let mut amounts = BTreeMap::new();
        if costs.requests {
            amounts.insert(resource::REQUESTS.to_string(), 1);
        }
        if costs.request_bytes {
            // No quota is larger than what a check may ask for; the upstream gets no
            // more than is counted either way, and the settlement corrects to it.
            let announced = host
                .request_header("content-length")
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(|bytes| bytes.min(AMOUNT_MAX));
            self.streaming = announced.is_none() && !end_of_stream;
            let bytes = if end_of_stream {
                0
            } else {
                announced.unwrap_or(0)
            };
            amounts.insert(resource::REQUEST_BYTES.to_string(), bytes);
        }
        if costs.response_reserve > 0 {
            for resource in post_paid_resources(costs) {
                amounts.insert(resource, costs.response_reserve);
            }
        }
        if costs.concurrent_requests {
            // The slot is held under an id of the filter's own: a client's
            // x-request-id could repeat (two requests sharing one slot) or be one the
            // control plane refuses (failing the request open, uncounted).
            amounts.insert(resource::CONCURRENT_REQUESTS.to_string(), 1);
            self.request_id = Some(host.unique_id());
        }
        amounts
    }

    /// A body chunk arrived; `buffered` is everything Envoy holds for the filter.
    pub fn on_request_body(&mut self, host: &dyn Host, buffered: u64, end_of_stream: bool) -> Next {
        if self.phase == Phase::Replied || self.paused {
            self.body.on_data(buffered, end_of_stream);
            return Next::Pause; // Envoy buffers it until the check in flight answers
        }
        self.body.on_data(buffered, end_of_stream);
        if self.phase != Phase::Counted {
            return Next::Continue;
        }
        if self.waiting.is_some() {
            // An ask ahead is in flight: go on within what is counted; hold what is not,
            // and hold the end, so the request is not over before its reservation is known.
            if self.body.shortfall() > 0 || end_of_stream {
                return self.hold();
            }
            self.body.release();
            return Next::Continue;
        }
        self.continue_body(host)
    }

    /// Request trailers arrived: the body has ended.
    pub fn on_request_trailers(&mut self) -> Next {
        self.body.end();
        if self.phase == Phase::Replied || self.paused {
            Next::Pause
        } else if self.waiting.is_some() {
            self.hold()
        } else {
            Next::Continue
        }
    }

    /// The control plane answered (`status` is Envoy's, synthetic 503/504 included).
    pub fn on_check_response(&mut self, host: &dyn Host, status: Option<u32>, body: &[u8]) {
        let Some(waiting) = self.waiting.take() else {
            return; // the deadline already decided
        };
        if waiting.purpose == Purpose::Lease {
            return self.on_lease_answer(host, status, body);
        }
        if status != Some(200) {
            host.count(Metric::CalloutFailures);
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

    /// The deadline passed with no answer.
    pub fn on_deadline(&mut self, host: &dyn Host) {
        if let Some(waiting) = self.waiting.take() {
            if waiting.purpose != Purpose::Refill {
                host.count(Metric::CalloutTimeouts);
            }
            self.fail(host, waiting.purpose, "no decision within the deadline");
        }
    }

    /// Whether a failed check leaves nothing to decide: an ask ahead while the body
    /// flows within what is counted (the next one that is needed will hold it).
    fn failure_is_moot(&self, purpose: Purpose) -> bool {
        matches!(purpose, Purpose::Ahead { .. }) && !self.paused
    }

    /// Response headers are on their way to the client: add the quota headers and read
    /// any cost the upstream reports in them.
    pub fn on_response_headers(&mut self, host: &dyn Host) {
        if self.phase != Phase::Counted {
            return;
        }
        let status = self.status;
        for (name, value) in quota_headers(&self.config.headers, status, self.policy.as_ref()) {
            host.add_response_header(&name, &value);
        }
        self.response
            .on_headers(&self.config.costs, |name| host.response_header(name));
    }

    /// A response body chunk of `size` bytes is passing.
    pub fn on_response_body(&mut self, host: &dyn Host, size: usize) {
        if self.phase != Phase::Counted || !self.counted {
            return;
        }
        let chunk = if self.response.reads_body() {
            host.response_body(size)
        } else {
            Vec::new()
        };
        self.response.on_body(
            &self.config.costs,
            u64::try_from(size).unwrap_or(u64::MAX),
            &chunk,
        );
    }

    /// The request is over: what to correct in what its checks counted, if anything
    /// (with a unique id, so a retry is recognised).
    pub fn settlement(&self, host: &dyn Host) -> Option<SettleRequest> {
        let identity = self.identity.as_ref()?;
        if !self.counted {
            return None;
        }
        let costs = &self.config.costs;
        let mut amounts = BTreeMap::new();
        if costs.request_bytes {
            amounts.insert(resource::REQUEST_BYTES.to_string(), self.body.correction());
        }
        if self.response.too_large() {
            host.warn("tollgate: response body too large to read its cost; counted 0");
        }
        for (resource, cost) in self.response.costs(costs) {
            let reserved = self.amounts.get(&resource).copied().unwrap_or(0);
            let cost = i64::try_from(cost).unwrap_or(i64::MAX);
            let reserved = i64::try_from(reserved).unwrap_or(i64::MAX);
            amounts.insert(resource, cost.saturating_sub(reserved));
        }
        amounts.retain(|_, amount| *amount != 0);
        if amounts.is_empty() && self.request_id.is_none() {
            return None;
        }
        Some(SettleRequest {
            id: host.unique_id(),
            tenant: identity.tenant.clone(),
            roles: identity.roles.clone(),
            amounts,
            checked_at_ms: self.checked_at_ms,
            release_request_id: self.request_id.clone(),
        })
    }

    fn check_request(
        &self,
        amounts: BTreeMap<String, u64>,
        request_id: Option<String>,
    ) -> CheckRequest {
        let identity = self.identity.as_ref();
        CheckRequest {
            tenant: identity.map(|i| i.tenant.clone()).unwrap_or_default(),
            roles: identity.map(|i| i.roles.clone()).unwrap_or_default(),
            amounts,
            method: self.method.clone(),
            path: self.path.clone(),
            request_id,
            shadow: self.config.shadow,
        }
    }

    /// Sends a check and holds the request until it answers or the deadline passes.
    fn ask(&mut self, host: &dyn Host, request: &CheckRequest, purpose: Purpose) -> Next {
        match self.send_json(host, CHECK_PATH, request, purpose) {
            Ok(()) => self.hold(),
            Err(why) => self.fail(host, purpose, why),
        }
    }

    /// Sends `request` to `path`; the request waits for it until the deadline (held or
    /// not, the caller decides).
    fn send_json(
        &mut self,
        host: &dyn Host,
        path: &'static str,
        request: &impl serde::Serialize,
        purpose: Purpose,
    ) -> Result<(), &'static str> {
        let Ok(body) = serde_json::to_vec(request) else {
            host.count(Metric::CalloutFailures);
            return Err("could not encode the request");
        };
        let deadline_ms = self.deadline_for(host, purpose);
        let left_ms = deadline_ms.saturating_sub(host.now_ms());
        if left_ms == 0 {
            host.count(Metric::CalloutTimeouts);
            return Err("no time left within the deadline");
        }
        let cp = &self.config.control_plane;
        let backstop = Duration::from_millis(left_ms + ENVOY_TIMEOUT_BACKSTOP_MS);
        let mut callout = Callout::post(cp, path, &body, backstop);
        // The control plane bounds its own work by what is left of the deadline.
        let deadline = left_ms.to_string();
        callout.headers.push((DEADLINE_HEADER, &deadline));
        host.count(Metric::Callouts);
        let Some(token) = host.dispatch(callout) else {
            host.count(Metric::CalloutFailures);
            return Err("the callout could not be dispatched");
        };
        self.follow_ups.dispatched.push(token);
        self.waiting = Some(Waiting {
            purpose,
            deadline_ms,
        });
        Ok(())
    }

    fn apply(&mut self, host: &dyn Host, purpose: Purpose, response: CheckResponse) {
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
                self.counted = true;
                self.metering = true;
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
                if self.paused {
                    self.continue_body(host);
                }
            }
            // Lease answers go through `on_lease_answer`; a refill waited for is no
            // callout of this request.
            Purpose::Lease | Purpose::Refill => {}
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
            self.exact_only = true;
            if self.paused {
                self.continue_body(host);
            }
            return;
        }
        if self.config.shadow {
            // An old control plane that ignores `shadow`: still never reject.
            host.count(Metric::ShadowRejected);
            self.metering = false;
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

    /// Lets the body go on as far as it is counted, or checks the rest first.
    fn continue_body(&mut self, host: &dyn Host) -> Next {
        let shortfall = self.body.shortfall();
        if !self.metering || !self.config.costs.request_bytes || shortfall == 0 {
            self.body.release();
            let next = self.proceed(host);
            if self.metering && self.config.costs.request_bytes {
                self.ask_ahead(host);
            }
            return next;
        }
        let asked = if self.exact_only {
            shortfall.min(AMOUNT_MAX)
        } else {
            self.body.ask(self.config.costs.stream_reserve_bytes)
        };
        if !self.config.shadow {
            if let Some(identity) = &self.identity {
                let needed = BTreeMap::from([(resource::REQUEST_BYTES.to_string(), shortfall)]);
                if let Some(policy) = reject_cache::refusal(host, identity, &needed) {
                    host.count(Metric::RejectCacheHits);
                    return self.reject(host, policy);
                }
            }
        }
        let request = self.body_check(asked);
        let exact = asked <= shortfall;
        self.ask(host, &request, Purpose::Body { asked, exact })
    }

    /// A streaming body nearing the end of its reservation asks for the next one while
    /// it keeps flowing, so a fast upload is rarely held (every hold is a chance for
    /// Envoy's buffer to fill, see envoy/README.md).
    fn ask_ahead(&mut self, host: &dyn Host) {
        let base = self.config.costs.stream_reserve_bytes;
        let asked = self.body.ahead(base);
        let wanted = self.streaming
            && !self.exact_only
            && self.waiting.is_none()
            && !self.body.ended()
            && self.body.running_low();
        if wanted {
            let request = self.body_check(asked);
            // A failed ask ahead changes nothing: the next needed one holds the body.
            let _ = self.send_json(host, CHECK_PATH, &request, Purpose::Ahead { asked });
        }
    }

    fn body_check(&self, bytes: u64) -> CheckRequest {
        let amounts = BTreeMap::from([(resource::REQUEST_BYTES.to_string(), bytes)]);
        self.check_request(amounts, None)
    }

    /// Admitted: let the request (and whatever body is already held) go on.
    fn admit(&mut self, host: &dyn Host) -> Next {
        self.enter_counted(host);
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
        self.metering = false;
        if self.phase != Phase::Counted {
            self.enter_counted(host);
        }
        self.body.release();
        self.proceed(host)
    }

    /// The request goes on to the upstream, which is told the quota status.
    fn enter_counted(&mut self, host: &dyn Host) {
        self.phase = Phase::Counted;
        let header = &self.config.headers.upstream_status;
        if !header.is_empty() {
            host.set_request_header(header, self.status.as_str());
        }
    }

    /// No decision could be had: apply the failure mode.
    /// The admission check may have been counted although its answer never came in
    /// time (or nobody is left to read it), and nothing of the request is admitted:
    /// ask for it to be taken back. Taking back a check never counted changes nothing.
    pub(crate) fn take_back_check(&mut self) {
        if let Some(id) = self.check_id.take() {
            self.follow_ups.cancels.push(ReleaseRequest {
                tenant: self.tenant().to_string(),
                request_id: id,
                refund: true,
            });
        }
    }

    fn fail(&mut self, host: &dyn Host, purpose: Purpose, why: &str) -> Next {
        if self.failure_is_moot(purpose) {
            return Next::Continue;
        }
        if purpose == Purpose::Lease {
            return self.lease_failed(host, why);
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
                    Purpose::Admission | Purpose::Lease | Purpose::Refill => {
                        self.let_through(host, QuotaStatus::Unknown, None)
                    }
                    // Counted so far; the rest of the body passes unchecked and is
                    // settled to what the upstream got.
                    Purpose::Body { .. } | Purpose::Ahead { .. } => {
                        self.metering = false;
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

    fn reject(&mut self, host: &dyn Host, policy: PolicyStatus) -> Next {
        host.count(Metric::Rejected);
        let retry_after = policy.reset_after_s.max(1).to_string();
        let mut headers = quota_headers(&self.config.headers, QuotaStatus::Exceeded, Some(&policy));
        headers.push(("retry-after".into(), retry_after));
        let body = Problem::quota_exceeded(self.tenant(), &policy);
        self.reply(host, &body, &headers)
    }

    fn reply(&mut self, host: &dyn Host, problem: &Problem, extra: &[(String, String)]) -> Next {
        self.phase = Phase::Replied;
        self.waiting = None;
        self.paused = false;
        let mut headers: Vec<(&str, &str)> = vec![("content-type", problem::CONTENT_TYPE)];
        headers.extend(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        host.send_local_response(u32::from(problem.status), &headers, &problem.to_json());
        Next::Pause
    }

    /// The callback answers `Pause`: Envoy holds the request until it is resumed.
    fn hold(&mut self) -> Next {
        self.paused = true;
        Next::Pause
    }

    /// Goes on: resumes a held request, or lets the current callback continue.
    fn proceed(&mut self, host: &dyn Host) -> Next {
        if self.paused {
            self.paused = false;
            host.resume_request();
        }
        Next::Continue
    }

    fn tenant(&self) -> &str {
        self.identity.as_ref().map_or("", |i| i.tenant.as_str())
    }
}
