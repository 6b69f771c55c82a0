//! The fast path of a request: spend budgets every worker shares instead of making a
//! callout (see [`crate::budget`]). When a budget runs out, this request refills it
//! (`POST /v1/leases`, one refill per budget at a time). Other requests of the same
//! worker wait for that answer (single flight, within their own deadline); those of
//! other workers, which cannot be woken from here, are checked. A request a budget
//! cannot decide is checked (`/v1/check`).

use tollgate_protocol::check::AMOUNT_MAX;
use tollgate_protocol::lease::LEASES_PATH;
use tollgate_protocol::{LeaseRequest, LeaseResponse, LeaseReturn, ReleaseRequest};

use super::*;
use crate::budget::{self, Owner, Spend};

/// A lease asks for at least this many requests' worth of the resource.
const LEASE_REQUESTS: u64 = 16;

/// One resource's budget spent for this request.
struct Spent {
    owner: Owner,
    lease: String,
    amount: u64,
    used: Option<u64>,
    policy: Option<PolicyStatus>,
    warn_after: Option<u64>,
}

/// A refill in flight for this request.
#[derive(Debug)]
pub(super) struct Refill {
    owner: Owner,
    request: LeaseRequest,
}

/// How a refill ended, for the requests of the same worker that waited for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefillEnd {
    /// Answered (a lease, none, or a refusal), or its request went away: the waiters
    /// decide again (from the new budget, the remembered refusal, or a refill of their
    /// own).
    Answered,
    /// No answer in time: the control plane is unreachable, so the waiters apply the
    /// failure mode rather than each wait for it again.
    Failed,
}

/// What became of a request woken by the end of the refill it waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// Decided (admitted, refused, failure mode), or nothing left to decide.
    Done,
    /// It needs a callout: still waiting, to be decided from the worker's root context.
    Deferred,
}

/// What a request's flow leaves for its worker after a callback.
#[derive(Debug, Default)]
pub struct FollowUps {
    /// Leases taken: (owner, lease id, expiry), to return when they expire.
    pub leases: Vec<(Owner, String, u64)>,
    /// Lease returns to send.
    pub returns: Vec<LeaseRequest>,
    /// Checks to take back (`/v1/release` with `refund`): refused by the failure mode
    /// after they may have been counted.
    pub cancels: Vec<ReleaseRequest>,
    /// This request now waits for the refill of this budget (its slot key).
    pub waits_for: Option<String>,
    /// Tokens of the callouts this request dispatched.
    pub dispatched: Vec<u32>,
    /// Refills that ended (slot keys): wake whoever waits for them.
    pub refills_ended: Vec<(String, RefillEnd)>,
}

impl RequestFlow {
    /// Whether budgets may decide this request: its whole cost is known at the headers
    /// (no streaming body, no cost read from the response, no concurrency slot), and
    /// it costs something.
    pub(super) fn budget_eligible(&self) -> bool {
        let config = &self.config;
        config.budgets.enabled
            && !config.shadow
            && !self.streaming
            && self.request_id.is_none()
            && (config.costs.response_reserve == 0 || post_paid_resources(&config.costs).is_empty())
            && self.amounts.values().any(|amount| *amount > 0)
    }

    /// Admits the request from budgets, or starts the refill of one (or waits for one)
    /// if it `may_call_out`: `Some` when that decided what happens, `None` when the
    /// request is to be checked.
    pub(super) fn try_budgets(&mut self, host: &dyn Host, may_call_out: bool) -> Option<Next> {
        let identity = self.identity.clone()?;
        let now = host.now_ms();
        let mut spent: Vec<Spent> = Vec::new();
        for (resource, &amount) in self.amounts.iter().filter(|(_, amount)| **amount > 0) {
            let owner = Owner {
                tenant: identity.tenant.clone(),
                roles: identity.roles.clone(),
                resource: resource.clone(),
            };
            match budget::spend(host, &owner, amount, now) {
                Spend::Spent {
                    lease,
                    used,
                    policy,
                    warn_after,
                } => spent.push(Spent {
                    owner,
                    lease,
                    amount,
                    used,
                    policy,
                    warn_after,
                }),
                outcome => {
                    // All or nothing: what was spent for this request goes back.
                    for s in &spent {
                        budget::unspend(host, &s.owner, &s.lease, s.amount);
                    }
                    match outcome {
                        _ if !may_call_out => {}
                        Spend::Empty if !self.refilled => {
                            let until = self.deadline_for(host, Purpose::Lease);
                            if let Some(previous) = budget::begin_refill(host, &owner, now, until) {
                                return Some(self.ask_lease(host, owner, previous));
                            }
                        }
                        // Once: a request woken to find the budget spent again is checked.
                        Spend::Refilling { here: true } if !self.waited => {
                            return Some(self.wait_for_refill(host, &owner));
                        }
                        _ => {}
                    }
                    return None;
                }
            }
        }
        Some(self.admit_from_budgets(host, &spent, now))
    }

    /// Every budget paid: admitted without a callout.
    fn admit_from_budgets(&mut self, host: &dyn Host, spent: &[Spent], now: u64) -> Next {
        host.count(Metric::BudgetHits);
        // The binding policy is the one with the least headroom left, as in a decision.
        let binding = spent
            .iter()
            .filter_map(|s| Some((s.policy.as_ref()?, s.used?)))
            .min_by_key(|(policy, used)| policy.limit.saturating_sub(*used));
        self.policy = binding.map(|(policy, used)| PolicyStatus {
            used,
            remaining: policy.limit.saturating_sub(used),
            ..policy.clone()
        });
        let warned = spent
            .iter()
            .any(|s| matches!((s.used, s.warn_after), (Some(used), Some(after)) if used > after));
        self.status = if warned {
            QuotaStatus::Warning
        } else {
            QuotaStatus::Ok
        };
        host.count(if warned {
            Metric::Warned
        } else {
            Metric::Allowed
        });
        self.counted = true;
        self.metering = true;
        self.checked_at_ms = now;
        let announced = self.amounts.get(resource::REQUEST_BYTES).copied();
        self.body.reserve(announced.unwrap_or(0));
        self.admit(host)
    }

    /// Waits for the refill of `owner`'s budget that another request of this worker
    /// has in flight, until this request's own deadline.
    fn wait_for_refill(&mut self, host: &dyn Host, owner: &Owner) -> Next {
        host.count(Metric::BudgetWaits);
        self.waited = true;
        self.follow_ups.waits_for = Some(budget::slot_key(owner));
        self.waiting = Some(Waiting {
            purpose: Purpose::Refill,
            deadline_ms: self.deadline_for(host, Purpose::Refill),
        });
        self.hold()
    }

    /// The refill this request waited for ended. This runs in another context's
    /// callback: unless `may_call_out` (that context lives as long as the worker), a
    /// callout made here could be answered to a request that is gone, so a request
    /// that needs one keeps waiting (its deadline still runs) and answers
    /// [`Woken::Deferred`]: call [`RequestFlow::decide_deferred`] from the worker's root.
    pub fn on_refill_ended(
        &mut self,
        host: &dyn Host,
        end: RefillEnd,
        may_call_out: bool,
    ) -> Woken {
        if !self.waits_for_refill() {
            return Woken::Done; // the deadline already decided
        }
        if end == RefillEnd::Failed {
            self.waiting = None;
            self.fail(
                host,
                Purpose::Refill,
                "the budget refill it waited for failed",
            );
            return Woken::Done;
        }
        if may_call_out {
            self.waiting = None;
            self.decide(host);
            return Woken::Done;
        }
        let waiting = self.waiting.take();
        if let Some(policy) = self.remembered_refusal(host) {
            host.count(Metric::RejectCacheHits);
            self.reject(host, policy);
            return Woken::Done;
        }
        if self.budget_eligible() && self.try_budgets(host, false).is_some() {
            return Woken::Done;
        }
        self.waiting = waiting;
        Woken::Deferred
    }

    /// Decides a request [`Woken::Deferred`] (from the worker's root context).
    pub fn decide_deferred(&mut self, host: &dyn Host) {
        if self.waits_for_refill() {
            self.waiting = None;
            self.decide(host);
        }
    }

    fn waits_for_refill(&self) -> bool {
        matches!(self.waiting, Some(w) if w.purpose == Purpose::Refill)
    }

    fn waits_for_admission(&self) -> bool {
        matches!(self.waiting, Some(w) if w.purpose == Purpose::Admission)
    }

    /// Tells this request's worker that the refill of `owner`'s budget ended.
    fn refill_ended(&mut self, owner: &Owner, end: RefillEnd) {
        let key = budget::slot_key(owner);
        self.follow_ups.refills_ended.push((key, end));
    }

    /// Asks for a new lease of `owner`'s budget, returning the `previous` one. It asks
    /// for at least [`LEASE_REQUESTS`] requests like this one, so a large body does not
    /// outgrow every lease.
    fn ask_lease(&mut self, host: &dyn Host, owner: Owner, previous: Option<LeaseReturn>) -> Next {
        let amount = self.amounts.get(&owner.resource).copied().unwrap_or(0);
        let want = self
            .config
            .budgets
            .want
            .max(amount.saturating_mul(LEASE_REQUESTS))
            .min(AMOUNT_MAX);
        let request = LeaseRequest {
            id: host.unique_id(),
            gateway: host.gateway_id(),
            tenant: owner.tenant.clone(),
            roles: owner.roles.clone(),
            resource: owner.resource.clone(),
            want,
            previous,
        };
        host.count(Metric::Leases);
        let sent = self.send_json(host, LEASES_PATH, &request, Purpose::Lease);
        self.refill = Some(Refill { owner, request });
        match sent {
            Ok(()) => self.hold(),
            Err(why) => self.lease_failed(host, why),
        }
    }

    /// The lease answer (`status` is Envoy's).
    pub(super) fn on_lease_answer(&mut self, host: &dyn Host, status: Option<u32>, body: &[u8]) {
        let answer = match (status, serde_json::from_slice::<LeaseResponse>(body)) {
            (Some(200), Ok(answer)) => answer,
            (status, _) => {
                host.count(Metric::CalloutFailures);
                let why = format!("lease answered status {status:?}");
                self.lease_failed(host, &why);
                return;
            }
        };
        let Some(Refill { owner, request }) = self.refill.take() else {
            return;
        };
        let now = host.now_ms();
        self.refill_ended(&owner, RefillEnd::Answered);
        if answer.decision == Decision::Reject {
            budget::abandon_refill(host, &owner);
            let response = CheckResponse {
                decision: answer.decision,
                reason: answer.reason,
                tenant: answer.tenant,
                policy: answer.policy,
                cache_reject_for_s: answer.cache_reject_for_s,
                shadow_reject: false,
            };
            self.apply(host, Purpose::Admission, response);
            return;
        }
        if let Some((displaced, back)) =
            budget::finish_refill(host, &owner, &request.id, &answer, now)
        {
            let back = displaced.giving_back(host.unique_id(), host.gateway_id(), back);
            self.follow_ups.returns.push(back);
        }
        if answer.granted > 0 {
            let expires_ms = now.saturating_add(answer.ttl_ms);
            (self.follow_ups.leases).push((owner, request.id, expires_ms));
        }
        self.refilled = true;
        if self.try_budgets(host, true).is_none() {
            self.check(host);
        }
    }

    /// No lease: give the refill up, send the previous lease's return again (it may
    /// not have landed; a return is applied once), return the new lease too (it may
    /// have been granted, its answer lost), and apply the failure mode.
    pub(super) fn lease_failed(&mut self, host: &dyn Host, why: &str) -> Next {
        if let Some(Refill { owner, request }) = self.refill.take() {
            budget::abandon_refill(host, &owner);
            self.refill_ended(&owner, RefillEnd::Failed);
            self.return_both(host, owner, &request);
        }
        self.fail(host, Purpose::Admission, why)
    }

    /// Returns the lease a refill gave back and the one it asked for, whose answer
    /// will not be read (a return of a lease never granted, or returned before,
    /// refunds nothing).
    fn return_both(&mut self, host: &dyn Host, owner: Owner, request: &LeaseRequest) {
        let mut give_back = |previous: LeaseReturn| {
            let back = owner
                .clone()
                .giving_back(host.unique_id(), host.gateway_id(), previous);
            self.follow_ups.returns.push(back);
        };
        if let Some(previous) = request.previous.clone() {
            give_back(previous);
        }
        give_back(LeaseReturn {
            id: request.id.clone(),
            spent: 0,
        });
    }

    /// The request ends (the client went away) while its check or its refill is in
    /// flight: the check is taken back, and both leases of the refill are returned.
    pub fn abandon(&mut self, host: &dyn Host) {
        if self.waits_for_refill() {
            self.waiting = None; // nobody to wake any more
        }
        // The client went away while its check was in flight: not admitted.
        if self.waits_for_admission() {
            self.waiting = None;
            self.take_back_check();
        }
        let Some(Refill { owner, request }) = self.refill.take() else {
            return;
        };
        budget::abandon_refill(host, &owner);
        self.refill_ended(&owner, RefillEnd::Answered);
        self.return_both(host, owner, &request);
    }

    /// What this request left for its worker since the last call.
    pub fn take_follow_ups(&mut self) -> FollowUps {
        std::mem::take(&mut self.follow_ups)
    }
}
