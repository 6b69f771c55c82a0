//! One atomic settlement over the counters of one tenant tree: what a counted request
//! really cost, once it is over ([`Settlement`]); and what taking back a refused
//! request's check gave back ([`Cancelled`]).

use super::call::Seeded;

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
    /// The request's lease record ([`hold_record_key`]).
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

/// What a [`Settlement`] found.
pub type SettleReply = Seeded<SettleOutcome>;

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
