//! What a request's flow leaves for its worker after a callback.

use tollgate_protocol::{LeaseRequest, ReleaseRequest};

use crate::budget::{RefillEnd, TakenLease, Unspent};
use crate::misconfigured::Misconfigured;

/// What a request's flow leaves for its worker after a callback.
#[derive(Debug, Default)]
pub struct FollowUps {
    /// Leases taken, to return when they expire.
    pub leases: Vec<TakenLease>,
    /// Lease returns to send.
    pub returns: Vec<LeaseRequest>,
    /// Budget spent for the request and not given back yet (its slot was busy).
    pub unspent: Vec<Unspent>,
    /// Checks to take back (`/v1/release` with `refund`): refused by the failure mode
    /// after they may have been counted.
    pub cancels: Vec<ReleaseRequest>,
    /// This request now waits for the refill of this budget (its slot key).
    pub waits_for: Option<String>,
    /// Tokens of the callouts this request dispatched.
    pub dispatched: Vec<u32>,
    /// Refills that ended (slot keys): wake whoever waits for them.
    pub refills_ended: Vec<(String, RefillEnd)>,
    /// The control plane answered as a misconfigured filter's: the worker logs it once.
    pub misconfigured: Option<Misconfigured>,
}

/// What became of a request woken by the end of the refill it waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// Decided (admitted, refused, failure mode), or nothing left to decide.
    Done,
    /// It needs a callout: still waiting, to be decided from the worker's root context.
    Deferred,
}
