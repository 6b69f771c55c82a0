//! The live usage counters, behind one async trait so that the control plane runs
//! against Redis (single or Cluster) in production and against memory in unit tests, with
//! the same semantics — one contract test body runs against every implementation
//! (`control-plane/tests/counter_store.rs`).
//!
//! The rule every store keeps: a check is atomic over every limit of every level of a
//! request. Either each stays within its cap (`used + amount <= cap`, the reject rule
//! of [`Limit::decide`](tollgate_protocol::Limit::decide), through
//! [`fits`](tollgate_protocol::decision::fits)) and all are counted, or nothing changes.
//! A store that lost its counters says so (a missing seed marker) instead of counting
//! from zero, so the caller re-seeds them from the persisted history first. A settlement
//! (what a counted request really cost, once it is over) and a lease (a budget counted
//! ahead) are one atomic step each too, and are never applied to counters the store lost.
//!
//! May import: [`crate::model`] (windows, to parse a counter key) and the protocol crate.
//!
//! # Layout
//! - [`counter_store`] — the [`CounterStore`] trait.
//! - [`call`] — a check or read ([`Call`]), seeds, snapshots, adjustments.
//! - [`settlement`] — a settlement, a take-back.
//! - [`lease`] — a lease's return and next budget ([`LeaseCall`]).
//! - [`samples`] — usage samples the history flusher leaves beside counters, for burn
//!   rates.
//! - [`keys`] — the key of every kind of value, and how long each lives.
//! - [`validate`] — the shape of a call, checked before any store runs it.
//! - [`error`] — [`StoreError`], transient or not.
//! - [`bus`] — the invalidation stream between control planes.
//! - `memory/`, `redis/` — the two implementations (the Lua scripts in
//!   `redis/scripts/`).

pub mod bus;
pub mod call;
pub mod counter_store;
pub mod error;
pub mod keys;
pub mod lease;
mod memory;
mod redis;
pub mod samples;
pub mod settlement;
pub mod validate;

pub use call::{
    Adjustment, Call, CallMode, Hold, Op, OpKind, Outcome, Reply, Seed, Seeded, Snapshot,
    COUNTER_MAX,
};
pub use counter_store::{CounterStore, StoreFuture};
pub use error::StoreError;
pub use keys::{
    check_record_key, counter_key, gauge_key, hold_record_key, lease_holder, lease_holders_key,
    lease_key, marker_key, samples_key, settlement_key, Counter, CHECK_RECORD_TTL_MS, MARKER_TTL_S,
    SETTLEMENT_ID_TTL_S,
};
pub use lease::{Grant, LeaseCall, LeaseLevel, LeaseOutcome, LeaseReply, Leased, ReturnedLease};
pub use memory::MemoryStore;
pub use redis::{RedisStore, RedisTls};
pub use samples::{Sample, Sampled};
pub use settlement::{
    Cancelled, Change, Move, Release, SettleOutcome, SettleReply, Settled, Settlement,
};
