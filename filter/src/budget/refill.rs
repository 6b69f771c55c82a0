//! A refill in flight: the lease call one request makes for its worker, how it ended
//! for the requests that waited for it, and the leases given back when its answer will
//! never be read.

use tollgate_protocol::check::AMOUNT_MAX;
use tollgate_protocol::{LeaseRequest, LeaseReturn};

use super::slots::Owner;
use crate::host::Host;

/// A lease asks for at least this many requests' worth of the resource.
const LEASE_REQUESTS: u64 = 16;

/// A refill in flight: whose budget, and the lease call that asks for it.
#[derive(Debug)]
pub struct Refill {
    /// Whose budget it refills.
    pub owner: Owner,
    /// The lease call (`POST /v1/leases`), which also gives back the previous lease.
    pub request: LeaseRequest,
}

impl Refill {
    /// The refill of `owner`'s budget by a request costing `amount` of it, giving
    /// `previous` back. It asks for `want`, or for `LEASE_REQUESTS` (16) requests like
    /// this one if that is more (a large body must not outgrow every lease), never
    /// more than a call may ask for.
    pub fn new(
        host: &dyn Host,
        owner: Owner,
        amount: u64,
        want: u64,
        previous: Option<LeaseReturn>,
    ) -> Refill {
        let want = want
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
        Refill { owner, request }
    }

    /// The lease calls that give back the lease this refill gave back (it may not have
    /// landed; a return is applied once) and the one it asked for, whose answer will not
    /// be read (a return of a lease never granted, or returned before, refunds nothing).
    pub fn give_back(&self, host: &dyn Host) -> Vec<LeaseRequest> {
        let previous = self.request.previous.clone();
        let asked = LeaseReturn {
            id: self.request.id.clone(),
            spent: 0,
        };
        (previous.into_iter().chain([asked]))
            .map(|lease| {
                let owner = self.owner.clone();
                owner.giving_back(host.unique_id(), host.gateway_id(), lease)
            })
            .collect()
    }
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

/// A lease a worker took, to return when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenLease {
    /// Whose budget it is.
    pub owner: Owner,
    /// The lease's id.
    pub id: String,
    /// When it expires (ms since the epoch).
    pub expires_ms: u64,
}
