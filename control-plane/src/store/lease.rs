//! One atomic lease call over the counters of one tenant tree (`POST /v1/leases`): give
//! back the previous lease's unspent budget, then reserve the next budget at every level
//! at once, sized from the headroom ([`LeaseCall`]).

use super::call::{Op, Seeded};

/// A budget given back with a lease request ([`LeaseCall::previous`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnedLease {
    /// Its record ([`lease_key`]).
    pub record_key: String,
    /// How much of it the gateway spent; the rest is refunded.
    pub spent: u64,
}

/// One atomic budget call over the counters of one tenant tree (`POST /v1/leases`):
/// give back `previous`, then reserve a budget of one resource at every level at once,
/// sized from the headroom. Every key shares one hash tag.
///
/// In order, nothing changing until the seed markers all exist:
/// 1. `previous`, when its record exists: `spent` above what it granted changes nothing
///    ([`LeaseOutcome::Overspent`]); otherwise the unspent part is taken back from the
///    counters it charged (those that still exist, never below zero, bumping their
///    epochs as a settlement's refund does) and the record is deleted. A record that is
///    gone (returned before, or expired) refunds nothing.
/// 2. A record under `record_key` already exists: the lease was granted before, and is
///    answered again ([`Grant::Duplicate`]) without a second reservation.
/// 3. The headroom is the least `cap - used` over `ops`; none at all is
///    [`Grant::Exhausted`].
/// 4. The grant is sized per level: `min(want, min over levels of
///    headroom_level / (2 × holders_level))` (each share rounded down), where a level's
///    headroom is the least `cap - used` over its ops and its holders are the members of
///    its `holders_key` whose leases have not expired at `now_ms`, the asker
///    ([`lease_holder`] of `gateway` and `tenant`) included. An op in no level bounds
///    the grant by its whole headroom. Below `min_grant` the grant is 0.
/// 5. A grant above 0 is added to the current counter of every op (which then lives its
///    `ttl_s`, refreshing its tenant's marker when it starts the counter), recorded under
///    `record_key` for `record_ttl_ms`, and the asker holds a budget at every level until
///    `now_ms + ttl_ms`; with no grant (or none at all) it holds none at any level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseCall {
    /// Unix milliseconds, from the control plane's clock: lease expiries run on it.
    pub now_ms: i64,
    /// Seed markers of the tenants whose counters the ops charge.
    pub markers: Vec<String>,
    /// The limits of the resource, every one a window op; their amounts are ignored (the
    /// store adds what it grants) and their caps bound the grant.
    pub ops: Vec<Op>,
    /// The new lease's record ([`lease_key`]).
    pub record_key: String,
    /// The levels of the tenant's chain whose enforced limits bound the grant, each
    /// sharing its headroom between its own budget holders.
    pub levels: Vec<LeaseLevel>,
    /// The gateway asking.
    pub gateway: String,
    /// The tenant the budget is for: with `gateway`, the holder counted at every level.
    pub tenant: String,
    /// The most to grant; 0 grants nothing (a return only, or no time to lease).
    pub want: u64,
    /// A smaller grant is 0: the gateway checks each request instead.
    pub min_grant: u64,
    /// How long the budget may be spent, in milliseconds.
    pub ttl_ms: i64,
    /// How long its record is kept, in milliseconds (`ttl_ms` and a grace for late
    /// returns): a budget never returned stays counted.
    pub record_ttl_ms: i64,
    /// The budget given back first.
    pub previous: Option<ReturnedLease>,
    /// Unix milliseconds after which nothing is granted, by the store's own clock (the
    /// gateway has stopped waiting, and a budget it never gets would stay counted);
    /// `previous` is still given back. `None`: no deadline.
    pub deadline_ms: Option<i64>,
}

/// One level of a [`Budget`]: its headroom is shared between the budgets held at or
/// below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseLevel {
    /// The budget holders of the resource at this level ([`lease_holders_key`] of the
    /// level's tenant): one member per gateway and tenant at or below it.
    pub holders_key: String,
    /// The level's enforced limits (indices into [`LeaseCall::ops`]), at least one: the
    /// least headroom among them is the level's.
    pub ops: Vec<usize>,
}

/// What a [`Budget`] call found.
pub type LeaseReply = Seeded<LeaseOutcome>;

/// Whether a budget call ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// `previous` reported spending more than it was granted (`granted`): nothing
    /// changed.
    Overspent {
        /// What the previous lease granted.
        granted: u64,
    },
    /// The call ran.
    Done(Leased),
}

/// What a budget call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// The new lease's budget.
    pub grant: Grant,
    /// What was refunded of `previous` (0 when its record was gone).
    pub refunded: u64,
    /// The counters the refund lowered.
    pub refunded_keys: Vec<String>,
    /// Each op's usage, the refund counted and this lease's own reservation not.
    pub used: Vec<u64>,
    /// For each op, the position of the oldest counter that holds usage.
    pub oldest: Vec<Option<usize>>,
}

/// What a budget call granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Reserved now (0: nothing, the gateway checks each request).
    Reserved {
        /// The budget.
        granted: u64,
        /// How long it may be spent.
        ttl_ms: i64,
    },
    /// Granted before under the same lease id: the same budget, for what is left of its
    /// time.
    Duplicate {
        /// The budget.
        granted: u64,
        /// Milliseconds left of it (0 when it is over).
        ttl_ms: i64,
    },
    /// An op has no headroom at all: nothing reserved.
    Exhausted {
        /// The first op with none.
        violated: usize,
    },
}
