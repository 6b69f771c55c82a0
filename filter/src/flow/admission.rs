//! Deciding a request's admission: budgets (the fast path: spent without a callout), then
//! a rejection remembered in shared data, read only when no budget paid (an exhausted
//! tenant has none to pay from; one with budgets left needs no other read), then a
//! budget refilled by this request, or by another request of its worker whose answer
//! this one waits for, then a check.
//!
//! A request a budget cannot decide is checked (`/v1/check`). Requests of other
//! workers, which cannot be woken from here, are checked rather than wait.

use tollgate_protocol::lease::LEASES_PATH;
use tollgate_protocol::{
    resource, CheckResponse, Decision, LeaseResponse, LeaseReturn, QuotaStatus,
};

use super::follow_ups::Woken;
use super::request::{Next, RequestFlow};
use super::state::{BodyAsks, Event, Purpose, Wait};
use crate::budget::{
    self, Owner, Payment, Receipt, Refill, RefillEnd, Shortfall, Spent, TakenLease,
};
use crate::host::{Host, Metric};
use crate::reject_cache;
use crate::response_cost::post_paid_resources;

impl RequestFlow {
    /// A rejection of this request's tenant remembered in shared data (never in shadow
    /// mode, which always asks), answered: 429 without a callout.
    fn remembered_refusal(&mut self, host: &dyn Host) -> Option<Next> {
        let identity = self.identity.as_ref().filter(|_| !self.config.shadow)?;
        let policy = reject_cache::refusal(host, identity, &self.amounts)?;
        host.count(Metric::RejectCacheHits);
        Some(self.reject(host, policy))
    }

    /// Decides the request from budgets if it can, else from a remembered rejection,
    /// else asks the control plane.
    pub(super) fn decide(&mut self, host: &dyn Host) -> Next {
        if self.budget_eligible() {
            if let Some(next) = self.try_budgets(host, true) {
                return next;
            }
        } else if let Some(refused) = self.remembered_refusal(host) {
            return refused;
        }
        self.check(host)
    }

    /// Asks the control plane to decide and count this request.
    pub(super) fn check(&mut self, host: &dyn Host) -> Next {
        let id = (self.hold_id.clone()).unwrap_or_else(|| host.unique_id());
        self.check_id = Some(id.clone());
        let request = self.check_request(self.amounts.clone(), Some(id));
        self.checked_at_ms = host.now_ms();
        self.ask(host, &request, Purpose::Admission)
    }

    /// Whether budgets may decide this request: its whole cost is known at the headers
    /// (no streamed body, no cost read from the response, no hold), and it costs
    /// something.
    fn budget_eligible(&self) -> bool {
        let config = &self.config;
        config.budgets.enabled
            && !config.shadow
            && self.state.body_asks() != BodyAsks::Streamed
            && self.hold_id.is_none()
            && (config.costs.response_reserve == 0 || post_paid_resources(&config.costs).is_empty())
            && (config.costs.priced.as_ref()).is_none_or(|p| p.reserves().iter().all(|r| r.1 == 0))
            && self.amounts.values().any(|amount| *amount > 0)
    }

    /// Admits the request from budgets, or answers a remembered rejection, or starts the
    /// refill of a budget (or waits for one) if it `may_call_out`: `Some` when that
    /// decided what happens, `None` when the request is to be checked.
    fn try_budgets(&mut self, host: &dyn Host, may_call_out: bool) -> Option<Next> {
        let identity = self.identity.as_ref()?;
        let now = host.now_ms();
        let (owner, short) = match budget::pay(host, identity, &self.amounts, now) {
            Payment::Paid(spent) => return Some(self.admit_from_budgets(host, &spent, now)),
            Payment::Short {
                owner,
                why,
                pending,
            } => {
                self.follow_ups.unspent.extend(pending);
                (owner, why)
            }
        };
        if let Some(refused) = self.remembered_refusal(host) {
            return Some(refused);
        }
        match short {
            _ if !may_call_out => {}
            Shortfall::Empty if self.state.may_refill() => {
                let until = self.deadline_for(host, Purpose::Lease);
                if let Some(previous) = budget::begin_refill(host, &owner, now, until) {
                    return Some(self.ask_lease(host, owner, previous));
                }
            }
            // Once: a request woken to find the budget spent again is checked.
            Shortfall::Refilling { here: true } if self.state.may_wait_for_refill() => {
                return Some(self.wait_for_refill(host, &owner));
            }
            _ => {}
        }
        None
    }

    /// Every budget paid: admitted without a callout.
    fn admit_from_budgets(&mut self, host: &dyn Host, spent: &[Spent], now: u64) -> Next {
        host.count(Metric::BudgetHits);
        let receipt = Receipt::of(spent);
        self.policy = receipt.policy;
        self.status = receipt.status;
        host.count(if receipt.status == QuotaStatus::Warning {
            Metric::Warned
        } else {
            Metric::Allowed
        });
        self.checked_at_ms = now;
        let announced = self.amounts.get(resource::REQUEST_BYTES).copied();
        self.body.reserve(announced.unwrap_or(0));
        self.admit(host)
    }

    /// Waits for the refill of `owner`'s budget that another request of this worker
    /// has in flight, until this request's own deadline.
    fn wait_for_refill(&mut self, host: &dyn Host, owner: &Owner) -> Next {
        host.count(Metric::BudgetWaits);
        self.state.on(Event::WaitedForRefill);
        self.follow_ups.waits_for = Some(budget::slot_key(owner));
        let wait = Wait {
            purpose: Purpose::Refill,
            deadline_ms: self.deadline_for(host, Purpose::Refill),
        };
        self.state.on(Event::Waiting(wait));
        self.pause()
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
        if !self.state.waits_for(Purpose::Refill) {
            return Woken::Done; // the deadline already decided
        }
        if end == RefillEnd::Failed {
            self.state.on(Event::WaitOver);
            self.fail(
                host,
                Purpose::Refill,
                "the budget refill it waited for failed",
            );
            return Woken::Done;
        }
        if may_call_out {
            self.state.on(Event::WaitOver);
            self.decide(host);
            return Woken::Done;
        }
        let waiting = self.state.wait();
        self.state.on(Event::WaitOver);
        // Paid from the new budget, or refused as remembered.
        if self.budget_eligible() && self.try_budgets(host, false).is_some() {
            return Woken::Done;
        }
        if let Some(wait) = waiting {
            self.state.on(Event::Waiting(wait));
        }
        Woken::Deferred
    }

    /// Decides a request [`Woken::Deferred`] (from the worker's root context).
    pub fn decide_deferred(&mut self, host: &dyn Host) {
        if self.state.waits_for(Purpose::Refill) {
            self.state.on(Event::WaitOver);
            self.decide(host);
        }
    }

    /// Tells this request's worker that the refill of `owner`'s budget ended.
    pub(super) fn refill_ended(&mut self, owner: &Owner, end: RefillEnd) {
        let key = budget::slot_key(owner);
        self.follow_ups.refills_ended.push((key, end));
    }

    /// Asks for a new lease of `owner`'s budget, returning the `previous` one.
    fn ask_lease(&mut self, host: &dyn Host, owner: Owner, previous: Option<LeaseReturn>) -> Next {
        let amount = self.amounts.get(&owner.resource).copied().unwrap_or(0);
        let refill = Refill::new(host, owner, amount, self.config.budgets.want, previous);
        host.count(Metric::Leases);
        let sent = self.send_json(host, LEASES_PATH, &refill.request, Purpose::Lease);
        self.refill = Some(refill);
        match sent {
            Ok(()) => self.pause(),
            Err(why) => self.lease_failed(host, why),
        }
    }

    /// The lease answer (`status` is Envoy's).
    pub(super) fn on_lease_answer(&mut self, host: &dyn Host, status: Option<u32>, body: &[u8]) {
        let answer = match (status, serde_json::from_slice::<LeaseResponse>(body)) {
            (Some(200), Ok(answer)) => answer,
            (status, _) => {
                host.count(Metric::CalloutFailures);
                self.misconfigured(host, status, LEASES_PATH);
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
        let refilled = budget::finish_refill(host, &owner, &request.id, &answer, now);
        for back in refilled.give_back {
            let back = owner
                .clone()
                .giving_back(host.unique_id(), host.gateway_id(), back);
            self.follow_ups.returns.push(back);
        }
        if refilled.landed {
            self.follow_ups.leases.push(TakenLease {
                owner,
                id: request.id,
                expires_ms: now.saturating_add(answer.ttl_ms),
            });
        }
        self.state.on(Event::Refilled);
        if self.try_budgets(host, true).is_none() {
            self.check(host);
        }
    }

    /// No lease: give the refill up, send the previous lease's return again and return
    /// the new lease too ([`Refill::give_back`]), and apply the failure mode.
    pub(super) fn lease_failed(&mut self, host: &dyn Host, why: &str) -> Next {
        if let Some(refill) = self.refill.take() {
            budget::abandon_refill(host, &refill.owner);
            self.refill_ended(&refill.owner, RefillEnd::Failed);
            let returns = refill.give_back(host);
            self.follow_ups.returns.extend(returns);
        }
        self.fail(host, Purpose::Admission, why)
    }
}
