//! The fast path of a request: spend budgets every worker shares instead of making a
//! callout (see [`crate::budget`]). When a budget runs out, this request refills it
//! (`POST /v1/leases`, one refill per budget at a time) while others are checked; a
//! request a budget cannot decide is checked (`/v1/check`).

use tollgate_protocol::lease::LEASES_PATH;
use tollgate_protocol::{LeaseRequest, LeaseResponse, LeaseReturn};

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

    /// Admits the request from budgets, or starts the refill of one: `Some` when that
    /// decided what happens, `None` when the request is to be checked.
    pub(super) fn try_budgets(&mut self, host: &dyn Host) -> Option<Next> {
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
                    if outcome == Spend::Empty && !self.refilled {
                        let until = now.saturating_add(self.config.control_plane.timeout_ms);
                        if let Some(previous) = budget::begin_refill(host, &owner, now, until) {
                            return Some(self.ask_lease(host, owner, previous));
                        }
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

    /// Asks for a new lease of `owner`'s budget, returning the `previous` one. It asks
    /// for at least [`LEASE_REQUESTS`] requests like this one, so a large body does not
    /// outgrow every lease.
    fn ask_lease(&mut self, host: &dyn Host, owner: Owner, previous: Option<LeaseReturn>) -> Next {
        let amount = self.amounts.get(&owner.resource).copied().unwrap_or(0);
        let want = self
            .config
            .budgets
            .want
            .max(amount.saturating_mul(LEASE_REQUESTS));
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
        budget::finish_refill(host, &owner, &request.id, &answer, now);
        if answer.granted > 0 {
            let expires_ms = now.saturating_add(answer.ttl_ms);
            self.new_leases.push((owner, request.id, expires_ms));
        }
        self.refilled = true;
        if self.try_budgets(host).is_none() {
            self.check(host);
        }
    }

    /// No lease: give the refill up, send the previous lease's return again (it may
    /// not have landed; a return is applied once), and apply the failure mode.
    pub(super) fn lease_failed(&mut self, host: &dyn Host, why: &str) -> Next {
        if let Some(Refill { owner, request }) = self.refill.take() {
            budget::abandon_refill(host, &owner);
            if let Some(previous) = request.previous {
                self.returns.push(LeaseRequest {
                    id: host.unique_id(),
                    want: 0,
                    previous: Some(previous),
                    ..request
                });
            }
        }
        self.fail(host, Purpose::Admission, why)
    }

    /// The request ends (the client went away) while its refill is in flight: the
    /// answer will never be read, so return both the old lease and the new one (a
    /// return of a lease that was never granted, or already returned, refunds nothing).
    pub fn abandon(&mut self, host: &dyn Host) {
        let Some(Refill { owner, request }) = self.refill.take() else {
            return;
        };
        budget::abandon_refill(host, &owner);
        let mut give_back = |previous: LeaseReturn| {
            self.returns.push(LeaseRequest {
                id: host.unique_id(),
                want: 0,
                previous: Some(previous),
                ..request.clone()
            });
        };
        if let Some(previous) = request.previous.clone() {
            give_back(previous);
        }
        give_back(LeaseReturn {
            id: request.id.clone(),
            spent: 0,
        });
    }

    /// Leases this request took (to return when they expire) and returns to send,
    /// since the last call.
    pub fn take_follow_ups(&mut self) -> (Vec<(Owner, String, u64)>, Vec<LeaseRequest>) {
        (
            std::mem::take(&mut self.new_leases),
            std::mem::take(&mut self.returns),
        )
    }
}
