//! The flow of one request: what it keeps from callback to callback, and what every
//! step shares (pausing, resuming, the check body).

use std::collections::BTreeMap;
use std::rc::Rc;

use tollgate_protocol::{CheckRequest, FilterConfig, PolicyStatus, QuotaStatus};

use super::follow_ups::FollowUps;
use super::state::{Event, State};
use crate::body::BodyMeter;
use crate::budget::Refill;
use crate::host::Host;
use crate::identity::Identity;
use crate::request_json::RequestJson;
use crate::response_cost::ResponseMeter;

/// What Envoy should do with the request after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on to the upstream.
    Continue,
    /// Keep the request paused (waiting for a decision, or answered locally).
    Pause,
}

/// The filter logic of one HTTP request.
#[derive(Debug)]
pub struct RequestFlow {
    pub(super) config: Rc<FilterConfig>,
    /// Where it stands: every change goes through [`State::on`].
    pub(super) state: State,
    pub(super) identity: Option<Identity>,
    pub(super) method: String,
    pub(super) path: String,
    /// What the admission check asks for: kept to know what was counted.
    pub(super) amounts: BTreeMap<String, u64>,
    /// The id of the request's hold (its `concurrent_requests` slot), if it takes one:
    /// the settlement releases it (`release_request_id`).
    pub(super) hold_id: Option<String>,
    /// The id the admission check carried (the hold's, if any): a request refused by
    /// the failure mode after its check may have been counted is taken back under it.
    pub(super) check_id: Option<String>,
    pub(super) checked_at_ms: u64,
    pub(super) status: QuotaStatus,
    pub(super) policy: Option<PolicyStatus>,
    pub(super) body: BodyMeter,
    /// A priced cost's reading (and holding) of the request's JSON body, if it reads it.
    pub(super) request_json: Option<RequestJson>,
    pub(super) response: ResponseMeter,
    /// A budget refill in flight for this request.
    pub(super) refill: Option<Refill>,
    /// When the admission must be decided: set by its first wait, so that the waits
    /// one admission can chain (a refill, or another's refill, then a check) share one
    /// deadline instead of each taking a whole one.
    pub(super) admission_by_ms: Option<u64>,
    /// What the worker is to pick up after this callback.
    pub(super) follow_ups: FollowUps,
}

impl RequestFlow {
    /// A flow for a new request under `config`.
    pub fn new(config: Rc<FilterConfig>) -> RequestFlow {
        RequestFlow {
            config,
            state: State::default(),
            identity: None,
            method: String::new(),
            path: String::new(),
            amounts: BTreeMap::new(),
            hold_id: None,
            check_id: None,
            checked_at_ms: 0,
            status: QuotaStatus::Unknown,
            policy: None,
            body: BodyMeter::default(),
            request_json: None,
            response: ResponseMeter::default(),
            refill: None,
            admission_by_ms: None,
            follow_ups: FollowUps::default(),
        }
    }

    /// The deadline of the wait in flight, if one is.
    pub fn awaiting_until(&self) -> Option<u64> {
        self.state.wait().map(|w| w.deadline_ms)
    }

    /// What this request left for its worker since the last call.
    pub fn take_follow_ups(&mut self) -> FollowUps {
        std::mem::take(&mut self.follow_ups)
    }

    /// The callback answers `Pause`: Envoy keeps the request paused until it is resumed.
    pub(super) fn pause(&mut self) -> Next {
        self.state.on(Event::Paused);
        Next::Pause
    }

    /// Goes on: resumes a paused request, or lets the current callback continue (a
    /// held body goes on as its body callback answers `Continue`).
    pub(super) fn proceed(&mut self, host: &dyn Host) -> Next {
        if self.state.is_paused() {
            self.state.on(Event::Resumed);
            host.resume_request();
        } else if self.state.is_holding() {
            self.state.on(Event::Resumed);
        }
        Next::Continue
    }

    pub(super) fn tenant(&self) -> &str {
        self.identity.as_ref().map_or("", |i| i.tenant.as_str())
    }

    /// A check of `amounts` for this request, under `id` (the admission's).
    pub(super) fn check_request(
        &self,
        amounts: BTreeMap<String, u64>,
        id: Option<String>,
    ) -> CheckRequest {
        let identity = self.identity.as_ref();
        CheckRequest {
            tenant: identity.map(|i| i.tenant.clone()).unwrap_or_default(),
            roles: identity.map(|i| i.roles.clone()).unwrap_or_default(),
            amounts,
            method: self.method.clone(),
            path: self.path.clone(),
            request_id: id,
            shadow: self.config.shadow,
        }
    }
}
