//! One atomic check or read over the counters of one tenant tree ([`Call`]), what it
//! found ([`Outcome`]), and the other plain calls: seeding lost counters from the
//! history, reading them for the history, adjusting them by hand.

/// The largest value a counter can hold (Redis counters are signed 64-bit).
pub const COUNTER_MAX: u64 = i64::MAX as u64;

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
pub struct Hold {
    /// The request id the gauges are held under.
    pub request_id: String,
    /// The key recording which gauges it holds ([`hold_record_key`]).
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
    pub hold: Option<Hold>,
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
