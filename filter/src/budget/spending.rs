//! Paying a request from budgets: every resource it costs, all or nothing, and what the
//! quota headers say about it.

use std::collections::BTreeMap;

use std::rc::Rc;

use tollgate_protocol::{PolicyStatus, QuotaStatus};

use super::record::LeaseId;
use super::slots::{spend, unspend, Contended, Owner, Spend};
use super::terms::Terms;
use crate::host::Host;
use crate::identity::Identity;

/// One resource's budget spent for a request.
#[derive(Debug)]
pub struct Spent {
    owner: Owner,
    lease: LeaseId,
    amount: u64,
    used: Option<u64>,
    terms: Option<Rc<Terms>>,
}

/// What paying a request from budgets came to.
#[derive(Debug)]
pub enum Payment {
    /// Every resource it costs was paid.
    Paid(Vec<Spent>),
    /// `owner`'s budget could not pay; what was spent for the request's other
    /// resources went back, or is `pending`.
    Short {
        /// The budget that could not pay.
        owner: Owner,
        /// Why.
        why: Shortfall,
        /// What was spent for the request's other resources and could not go back
        /// yet: other workers kept its slot busy. The worker's tick gives it back.
        pending: Vec<Unspent>,
    },
}

/// Spent from a budget for a request that was not admitted, still to give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unspent {
    owner: Owner,
    lease: LeaseId,
    amount: u64,
}

impl Unspent {
    /// Gives it back to its lease (nothing if the lease has left the slot); `Err` with
    /// itself while the slot is still too busy.
    pub fn give_back(self, host: &dyn Host) -> Result<(), Unspent> {
        unspend(host, &self.owner, self.lease, self.amount).map_err(|Contended| self)
    }
}

/// Why a budget could not pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// No budget left and nobody refilling: the request may refill it.
    Empty,
    /// Another request is refilling it; `here` when that request is on this worker,
    /// so this one can wait for its answer.
    Refilling { here: bool },
    /// The control plane said to check each request.
    PerRequest,
}

/// Pays `amounts` (the resources that cost something) of `identity`'s request from its
/// budgets at `now_ms`.
pub fn pay(
    host: &dyn Host,
    identity: &Identity,
    amounts: &BTreeMap<String, u64>,
    now_ms: u64,
) -> Payment {
    let mut spent: Vec<Spent> = Vec::new();
    for (resource, &amount) in amounts.iter().filter(|(_, amount)| **amount > 0) {
        let owner = Owner {
            tenant: identity.tenant.clone(),
            roles: identity.roles.clone(),
            resource: resource.clone(),
        };
        let why = match spend(host, &owner, amount, now_ms) {
            Spend::Spent { lease, used, terms } => {
                spent.push(Spent {
                    owner,
                    lease,
                    amount,
                    used,
                    terms,
                });
                continue;
            }
            Spend::Empty => Shortfall::Empty,
            Spend::Refilling { here } => Shortfall::Refilling { here },
            Spend::PerRequest => Shortfall::PerRequest,
        };
        // All or nothing: what was spent for this request goes back.
        let pending = spent
            .into_iter()
            .filter_map(|s| {
                let unspent = Unspent {
                    owner: s.owner,
                    lease: s.lease,
                    amount: s.amount,
                };
                unspent.give_back(host).err()
            })
            .collect();
        return Payment::Short {
            owner,
            why,
            pending,
        };
    }
    Payment::Paid(spent)
}

/// What the quota headers say about a request paid from budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The binding policy: the one with the least headroom left, as in a decision.
    pub policy: Option<PolicyStatus>,
    /// `warning` once any budget's binding policy is past its warning threshold.
    pub status: QuotaStatus,
}

impl Receipt {
    /// The receipt of what `spent` paid.
    pub fn of(spent: &[Spent]) -> Receipt {
        let binding = spent
            .iter()
            .filter_map(|s| Some((s.terms.as_ref()?.policy.as_ref()?, s.used?)))
            .min_by_key(|(policy, used)| policy.limit.saturating_sub(*used));
        let policy = binding.map(|(policy, used)| PolicyStatus {
            used,
            remaining: policy.limit.saturating_sub(used),
            ..policy.clone()
        });
        let warned = spent.iter().any(|s| {
            let after = s.terms.as_ref().and_then(|t| t.warn_after);
            matches!((s.used, after), (Some(used), Some(after)) if used > after)
        });
        let status = if warned {
            QuotaStatus::Warning
        } else {
            QuotaStatus::Ok
        };
        Receipt { policy, status }
    }
}
