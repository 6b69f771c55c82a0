//! The live usage counters, behind one async trait so that the control plane runs
//! against Redis (single or Cluster) in production and against memory in unit tests, with
//! the same semantics — one contract test body runs against every implementation.
//!
//! The rule every store keeps (SPEC §2): a check is atomic over every limit of every
//! level of a request. Either each stays within its cap and all are counted, or nothing
//! changes. And a store that lost its counters says so (a missing seed marker) instead
//! of counting from zero, so the caller re-seeds them from the persisted history first.
//! A settlement (what a counted request really cost, once it is over) is one atomic step
//! too, and is never applied to counters the store lost.
//!
//! Key layout, every key of one tenant tree sharing the hash tag `{root}`:
//! - `tollgate:{root}:c:<tenant>:<resource>:<series>:<window start>` — a window counter,
//!   a hash: `u` usage, `e` epoch (bumped by resets and adjustments);
//! - `tollgate:{root}:g:<tenant>:<resource>` / `…:h:…` — a gauge's leases and holdings;
//! - `tollgate:{root}:s:<tenant>` — the tenant's seed marker;
//! - `tollgate:{root}:l:<request id>` — the gauges one request holds;
//! - `tollgate:{root}:k:<request id>` — what one request's check counted, line by line
//!   (`<counter key>\t<amount>`), so a check the filter refused after all can be taken
//!   back;
//! - `tollgate:{root}:d:<settlement id>` — a settlement applied lately (a retry of it is
//!   a duplicate);
//! - `tollgate:{root}:b:<lease id>` — a budget granted by `POST /v1/leases` and not yet
//!   returned (a hash: `g` granted, `w` gateway, `x` expiry, `k` the counters charged);
//! - `tollgate:{root}:p:<tenant>:<resource>` — the budget holders at one level of the
//!   tree: every gateway and tenant at or below `<tenant>` holding a budget of the
//!   resource (a sorted set of [`budget_holder`] ids by lease expiry).
//!
//! The one-letter kind right after the hash tag keeps the kinds apart even though tenant
//! ids may contain `:`; resource names and series cannot.

mod memory;
mod redis;

use std::future::Future;
use std::pin::Pin;

pub use self::memory::MemoryStore;
pub use self::redis::{RedisStore, RedisTls};

/// The largest value a counter can hold (Redis counters are signed 64-bit).
pub const COUNTER_MAX: u64 = i64::MAX as u64;

/// How long a seed marker lives without a check refreshing it: longer than any window.
pub const MARKER_TTL_S: i64 = 40 * 86_400;

/// How long the id of an applied settlement is remembered, so that a retry of it
/// changes nothing: longer than the filter's whole retry span (at most 5 attempts, each
/// answered within 10 s — about a minute), with room for a slow queue, and short enough
/// that the keys of busy tenants do not pile up.
pub const SETTLEMENT_ID_TTL_S: i64 = 3_600;

/// A boxed future, because `async fn` in a trait cannot be called through `dyn`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The key of a window counter.
pub fn counter_key(root: &str, tenant: &str, resource: &str, series: &str, start: i64) -> String {
    format!("tollgate:{{{root}}}:c:{tenant}:{resource}:{series}:{start}")
}

/// The key of a gauge's leases.
pub fn gauge_key(root: &str, tenant: &str, resource: &str) -> String {
    format!("tollgate:{{{root}}}:g:{tenant}:{resource}")
}

/// The key of a tenant's seed marker.
pub fn marker_key(root: &str, tenant: &str) -> String {
    format!("tollgate:{{{root}}}:s:{tenant}")
}

/// The key of the record of the gauges a request holds.
pub fn lease_record_key(root: &str, request_id: &str) -> String {
    format!("tollgate:{{{root}}}:l:{request_id}")
}

/// The key of the record of what request `request_id`'s check counted.
pub fn check_record_key(root: &str, request_id: &str) -> String {
    format!("tollgate:{{{root}}}:k:{request_id}")
}

/// How long a check's record is kept: longer than the filter retries a take-back (about
/// half a minute), with room for a control plane that restarts meanwhile.
pub const CHECK_RECORD_TTL_MS: i64 = 120_000;

/// The key remembering that the settlement `id` of the tree `root` was applied.
pub fn settlement_key(root: &str, id: &str) -> String {
    format!("tollgate:{{{root}}}:d:{id}")
}

/// The key of the record of the budget granted under lease `id` in the tree `root`.
pub fn budget_key(root: &str, id: &str) -> String {
    format!("tollgate:{{{root}}}:b:{id}")
}

/// The key of the budget holders of `resource` at the level of `tenant`: the gateways
/// holding budgets of it for `tenant` or any tenant below it, one member per gateway and
/// tenant ([`budget_holder`]).
pub fn budget_holders_key(root: &str, tenant: &str, resource: &str) -> String {
    format!("tollgate:{{{root}}}:p:{tenant}:{resource}")
}

/// A budget holder's member in the sets of [`budget_holders_key`]: `gateway|tenant`.
/// Neither gateway ids nor tenant ids may contain `|`, so it is unambiguous.
pub fn budget_holder(gateway: &str, tenant: &str) -> String {
    format!("{gateway}|{tenant}")
}

/// Whether a call counts or only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallMode {
    /// Check every op and count all or none.
    Check,
    /// Report usage; never write.
    Read,
}

/// What one limit of a call touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// A windowed limit: its usage is the sum of these counters, current first; the
    /// amount is added to the first, which lives `ttl_s` more seconds.
    Window {
        /// The counters: one calendar window, or the buckets of a rolling window.
        keys: Vec<String>,
        /// Seconds the current counter lives after being counted.
        ttl_s: i64,
        /// The seed marker (index into [`Call::markers`]) of the tenant the counters
        /// belong to: refreshed when this op starts a new counter.
        marker: Option<usize>,
    },
    /// A gauge: its usage is what requests hold now.
    Gauge {
        /// The gauge's lease key ([`gauge_key`]).
        key: String,
    },
}

/// One limit of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// What it touches.
    pub kind: OpKind,
    /// What the request adds.
    pub amount: u64,
    /// The largest usage it may reach: the hard limit, or [`COUNTER_MAX`].
    pub cap: u64,
}

/// Gauge leases taken by a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The request id the gauges are held under.
    pub request_id: String,
    /// The key recording which gauges it holds ([`lease_record_key`]).
    pub record_key: String,
    /// Seconds before an unreleased lease lapses (a crashed gateway cannot leak slots).
    pub ttl_s: i64,
}

/// One atomic store call over the counters of one tenant tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Check-and-count or read.
    pub mode: CallMode,
    /// Unix seconds, from the control plane's clock.
    pub now: i64,
    /// Seed markers of the tenants whose counters the ops touch.
    pub markers: Vec<String>,
    /// The limits.
    pub ops: Vec<Op>,
    /// Where gauge leases are recorded; required when a gauge op has an amount.
    pub lease: Option<Lease>,
    /// Where an admitted check records what it counted in window counters
    /// ([`check_record_key`]), for [`CounterStore::cancel`]; kept [`CHECK_RECORD_TTL_MS`].
    pub check_record: Option<String>,
    /// Unix milliseconds after which a check must count nothing, by the store's own
    /// clock: its caller has given up and the filter has applied its failure mode.
    /// Such a call fails with [`StoreError::PastDeadline`]. `None`: no deadline.
    pub deadline_ms: Option<i64>,
}

/// What a store call that counts found: markers missing, or its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded<T> {
    /// These markers (indices into the call's markers) are missing: re-seed, then retry.
    /// Nothing was changed.
    NeedsSeed(Vec<usize>),
    /// The call ran.
    Done(T),
}

/// What a [`Call`] found.
pub type Reply = Seeded<Outcome>;

/// What a [`Settlement`] found.
pub type SettleReply = Seeded<SettleOutcome>;

/// What a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether everything was counted (always true for reads).
    pub admitted: bool,
    /// The first op that would have passed its cap.
    pub violated: Option<usize>,
    /// Each op's usage: after counting when admitted, unchanged otherwise.
    pub used: Vec<u64>,
    /// For window ops, the position of the oldest counter that holds usage (for
    /// rolling windows: when usage starts to free up).
    pub oldest: Vec<Option<usize>>,
}

/// What a settlement does to one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Add unconditionally, up to [`COUNTER_MAX`]: the upstream already did the work, so
    /// it is counted even past the hard limit.
    Add(u64),
    /// Take back up to this much, never going below zero. A counter that does not exist
    /// (its window is over, or nothing was counted) is left alone.
    Refund(u64),
}

/// One counter a settlement moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The counter key ([`counter_key`]).
    pub key: String,
    /// What happens to it.
    pub change: Change,
    /// Seconds the counter lives after an addition, as after a check; a refund keeps the
    /// counter's expiry.
    pub ttl_s: i64,
    /// The seed marker (index into [`Settlement::markers`]) of the counter's tenant:
    /// refreshed when an addition starts the counter, as a check does.
    pub marker: Option<usize>,
}

/// Gauge slots to give back with a settlement, as [`CounterStore::release`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The request's lease record ([`lease_record_key`]).
    pub record_key: String,
    /// The request id the slots are held under.
    pub request_id: String,
}

/// One atomic settlement over the counters of one tenant tree: what a counted request
/// really cost, once it is over (`POST /v1/settle`). Applied at most once per id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The key remembering that the settlement was applied ([`settlement_key`]): set,
    /// for [`SETTLEMENT_ID_TTL_S`], in the step that applies it; while it exists, the
    /// settlement is a duplicate and changes nothing. Not set when a marker is missing,
    /// so the retry after the re-seed is applied.
    pub id_key: String,
    /// Seed markers of the tenants whose counters the moves touch: a lost counter must
    /// be re-seeded before it is corrected, never corrected from zero.
    pub markers: Vec<String>,
    /// The counters, each at most once.
    pub moves: Vec<Move>,
    /// Gauge slots released in the same step.
    pub release: Option<Release>,
}

/// Whether a settlement was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Applied now.
    Applied(Settled),
    /// Applied before (its id key exists): a retry whose answer was lost. Nothing
    /// changed.
    Duplicate,
}

/// What an applied settlement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// Each moved counter's usage afterwards, in the order of [`Settlement::moves`].
    pub used: Vec<u64>,
    /// How many gauges held a slot for the released request.
    pub released: u64,
}

/// What [`CounterStore::cancel`] gave back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cancelled {
    /// Gauges that held a slot for the request.
    pub released: u64,
    /// Units the check had counted, taken back.
    pub refunded: u64,
    /// The counters that went down.
    pub keys: Vec<String>,
}

/// A budget given back with a lease request ([`Budget::previous`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetReturn {
    /// Its record ([`budget_key`]).
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
///    ([`BudgetOutcome::Overspent`]); otherwise the unspent part is taken back from the
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
///    ([`budget_holder`] of `gateway` and `tenant`) included. An op in no level bounds
///    the grant by its whole headroom. Below `min_grant` the grant is 0.
/// 5. A grant above 0 is added to the current counter of every op (which then lives its
///    `ttl_s`, refreshing its tenant's marker when it starts the counter), recorded under
///    `record_key` for `record_ttl_ms`, and the asker holds a budget at every level until
///    `now_ms + ttl_ms`; with no grant (or none at all) it holds none at any level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Unix milliseconds, from the control plane's clock: lease expiries run on it.
    pub now_ms: i64,
    /// Seed markers of the tenants whose counters the ops charge.
    pub markers: Vec<String>,
    /// The limits of the resource, every one a window op; their amounts are ignored (the
    /// store adds what it grants) and their caps bound the grant.
    pub ops: Vec<Op>,
    /// The new lease's record ([`budget_key`]).
    pub record_key: String,
    /// The levels of the tenant's chain whose enforced limits bound the grant, each
    /// sharing its headroom between its own budget holders.
    pub levels: Vec<BudgetLevel>,
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
    pub previous: Option<BudgetReturn>,
    /// Unix milliseconds after which nothing is granted, by the store's own clock (the
    /// gateway has stopped waiting, and a budget it never gets would stay counted);
    /// `previous` is still given back. `None`: no deadline.
    pub deadline_ms: Option<i64>,
}

/// One level of a [`Budget`]: its headroom is shared between the budgets held at or
/// below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLevel {
    /// The budget holders of the resource at this level ([`budget_holders_key`] of the
    /// level's tenant): one member per gateway and tenant at or below it.
    pub holders_key: String,
    /// The level's enforced limits (indices into [`Budget::ops`]), at least one: the
    /// least headroom among them is the level's.
    pub ops: Vec<usize>,
}

/// What a [`Budget`] call found.
pub type BudgetReply = Seeded<BudgetOutcome>;

/// Whether a budget call ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetOutcome {
    /// `previous` reported spending more than it was granted (`granted`): nothing
    /// changed.
    Overspent {
        /// What the previous lease granted.
        granted: u64,
    },
    /// The call ran.
    Done(Budgeted),
}

/// What a budget call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budgeted {
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

/// One counter to seed from the persisted history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The counter key.
    pub key: String,
    /// Its persisted usage.
    pub used: u64,
    /// Its persisted epoch.
    pub epoch: u64,
    /// Seconds it should live.
    pub ttl_s: i64,
}

/// A counter as the history flusher reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Its usage.
    pub used: u64,
    /// Its epoch.
    pub epoch: u64,
}

/// A hand-made change to one limit's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    /// Set the usage (a reset is `To(0)`).
    To(u64),
    /// Add a signed amount, never going below zero or above [`COUNTER_MAX`].
    By(i64),
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time; retrying later may work.
    #[error("counter store unreachable")]
    Unreachable(#[source] ::redis::RedisError),
    /// The store answered with an error of its own (script error, wrong type, …).
    #[error("counter store command failed")]
    Command(#[source] ::redis::RedisError),
    /// The store answered something this code does not understand.
    #[error("unexpected answer from the counter store: {0}")]
    Protocol(String),
    /// The caller asked for something the store refuses (a gauge without a request id).
    #[error("invalid store call: {0}")]
    Invalid(String),
    /// The call did not finish within its caller's deadline; a check the store got to
    /// only after it counted nothing.
    #[error("no answer from the counter store within the caller's deadline")]
    PastDeadline,
    /// The store failed several calls in a row: calls skip it for a while
    /// ([`crate::breaker`]).
    #[error("the counter store is considered down (circuit open)")]
    CircuitOpen,
}

impl StoreError {
    /// Whether the failure is about reaching the store (answer 503 and let the filter
    /// apply its failure mode) rather than a bug (answer 500).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable(_) | StoreError::PastDeadline | StoreError::CircuitOpen
        )
    }
}

impl StoreError {
    /// Whether the call certainly never reached the store, so nothing of it can have
    /// been counted: the breaker kept it back, or the connection was refused. A timeout
    /// or a dropped connection is not such a proof (the store may have run the call).
    pub fn never_reached_the_store(&self) -> bool {
        match self {
            StoreError::CircuitOpen => true,
            StoreError::Unreachable(error) => error.is_connection_refusal(),
            _ => false,
        }
    }
}

impl From<::redis::RedisError> for StoreError {
    fn from(error: ::redis::RedisError) -> StoreError {
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
            || error.is_cluster_error()
        {
            StoreError::Unreachable(error)
        } else {
            StoreError::Command(error)
        }
    }
}

/// Live usage counters.
pub trait CounterStore: Send + Sync {
    /// Runs one call atomically (see [`Call`]). All keys share one hash tag.
    fn call<'a>(&'a self, call: &'a Call) -> StoreFuture<'a, Reply>;

    /// Creates each counter that does not exist with its persisted usage, then sets the
    /// markers. Counters that exist are left alone. Returns how many were created.
    fn seed<'a>(&'a self, markers: &'a [String], seeds: &'a [Seed]) -> StoreFuture<'a, u64>;

    /// Applies `adjustment` to one limit's counters (current first), bumping their
    /// epochs; `ttl_s` for a counter it creates. Returns the usage before and after.
    fn adjust<'a>(
        &'a self,
        keys: &'a [String],
        adjustment: Adjustment,
        ttl_s: i64,
    ) -> StoreFuture<'a, (u64, u64)>;

    /// Applies a settlement atomically (see [`Settlement`]): every move and the release,
    /// or nothing when a marker is missing or the settlement was applied before (its id
    /// key exists). All keys share one hash tag.
    fn settle<'a>(&'a self, settlement: &'a Settlement) -> StoreFuture<'a, SettleReply>;

    /// Gives back a budget and reserves one atomically (see [`Budget`]). All keys share
    /// one hash tag.
    fn budget<'a>(&'a self, budget: &'a Budget) -> StoreFuture<'a, BudgetReply>;

    /// Releases every gauge the request recorded at `record_key` holds. Idempotent.
    /// Returns how many gauges it released.
    fn release<'a>(&'a self, record_key: &'a str, request_id: &'a str) -> StoreFuture<'a, u64>;

    /// Gives back everything request `request_id`'s check took: the gauges it holds
    /// (`lease_record`), and what it counted in window counters, as recorded at
    /// `check_record` (each never below zero, its epoch bumped). Idempotent: the
    /// records go with it.
    fn cancel<'a>(
        &'a self,
        lease_record: &'a str,
        check_record: &'a str,
        request_id: &'a str,
    ) -> StoreFuture<'a, Cancelled>;

    /// Each counter's usage and epoch, `None` where it does not exist. Keys may belong
    /// to different tenant trees.
    fn snapshot<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Snapshot>>>;

    /// Whether the store answers, for `/ready`.
    fn ping(&self) -> StoreFuture<'_, ()>;
}

/// Checks the shape of a settlement both stores rely on.
pub(crate) fn validate_settlement(settlement: &Settlement) -> Result<(), StoreError> {
    if settlement.id_key.is_empty() {
        return Err(StoreError::Invalid("a settlement needs its id key".into()));
    }
    for (i, m) in settlement.moves.iter().enumerate() {
        let amount = match m.change {
            Change::Add(amount) | Change::Refund(amount) => amount,
        };
        if amount > COUNTER_MAX {
            return Err(StoreError::Invalid(format!(
                "amounts are at most {COUNTER_MAX}"
            )));
        }
        if m.marker
            .is_some_and(|marker| marker >= settlement.markers.len())
        {
            return Err(StoreError::Invalid("a move names a missing marker".into()));
        }
        if settlement.moves[..i].iter().any(|other| other.key == m.key) {
            return Err(StoreError::Invalid(
                "a settlement moves each counter once".into(),
            ));
        }
    }
    Ok(())
}

/// Checks the shape of a budget call both stores rely on.
pub(crate) fn validate_budget(budget: &Budget) -> Result<(), StoreError> {
    for op in &budget.ops {
        match &op.kind {
            OpKind::Window { keys, marker, .. } => {
                if keys.is_empty() {
                    return Err(StoreError::Invalid("a window op needs a counter".into()));
                }
                if marker.is_some_and(|m| m >= budget.markers.len()) {
                    return Err(StoreError::Invalid("an op names a missing marker".into()));
                }
            }
            OpKind::Gauge { .. } => {
                return Err(StoreError::Invalid("a gauge cannot be budgeted".into()))
            }
        }
        if op.cap > COUNTER_MAX {
            return Err(StoreError::Invalid(format!(
                "caps are at most {COUNTER_MAX}"
            )));
        }
    }
    let previous_spent = budget.previous.as_ref().map_or(0, |p| p.spent);
    if budget.want > COUNTER_MAX || previous_spent > COUNTER_MAX {
        return Err(StoreError::Invalid(format!(
            "amounts are at most {COUNTER_MAX}"
        )));
    }
    for (i, level) in budget.levels.iter().enumerate() {
        if level.ops.is_empty() || level.ops.iter().any(|&op| op >= budget.ops.len()) {
            return Err(StoreError::Invalid(
                "a budget level names at least one op, and only ops of the call".into(),
            ));
        }
        if budget.levels[..i]
            .iter()
            .any(|other| other.holders_key == level.holders_key)
        {
            return Err(StoreError::Invalid(
                "each budget level has its own holders".into(),
            ));
        }
    }
    if budget.ttl_ms < 0 || budget.record_ttl_ms < budget.ttl_ms {
        return Err(StoreError::Invalid(
            "a budget's record outlives its lease".into(),
        ));
    }
    Ok(())
}

/// Checks the shape of a call both stores rely on.
pub(crate) fn validate_call(call: &Call) -> Result<(), StoreError> {
    for op in &call.ops {
        match &op.kind {
            OpKind::Window { keys, .. } if keys.is_empty() => {
                return Err(StoreError::Invalid("a window op needs a counter".into()))
            }
            OpKind::Gauge { .. } if op.amount > 0 && call.lease.is_none() => {
                return Err(StoreError::Invalid(
                    "a gauge can only be acquired with a request id".into(),
                ))
            }
            _ => {}
        }
        if op.amount > COUNTER_MAX || op.cap > COUNTER_MAX {
            return Err(StoreError::Invalid(format!(
                "amounts and caps are at most {COUNTER_MAX}"
            )));
        }
    }
    Ok(())
}
