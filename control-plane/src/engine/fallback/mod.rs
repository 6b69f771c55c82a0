//! Deciding while Redis is unreachable (`--redis-outage postgres`, the default): checks
//! and settlements are counted in PostgreSQL instead (the fallback
//! counters: the persisted usage of each window plus what was counted there since), and
//! once Redis answers again, [`reconcile`] adds what was counted there to the Redis
//! counters — each step once, by an idempotent settlement — so no admitted unit is lost
//! and none is counted twice.
//!
//! The persisted usage a fallback decision starts from is at most one history flush old
//! (`--history-flush-ms`): usage counted in Redis in that last interval before the
//! outage is not seen by the fallback, so it may admit up to that much past a hard
//! limit. Gauges (`concurrent_requests`) are not kept in PostgreSQL: a check that takes
//! a slot answers 503 during an outage (the filter's failure mode).
//!
//! # Layout
//! - [`decide`] — whether to decide here after a Redis error, and each call counted here.
//! - [`reconcile`] — what was counted here, carried to Redis once it is back.
//! - [`counters`] — the tables (migrations `0003`, `0004`): fallback counters under row
//!   locks, checks counted here, lease returns remembered.

pub mod counters;
pub mod decide;
pub mod reconcile;

pub use counters::FallbackCounters;
pub use decide::{cancel, check, redis_down, remember_return, settle};
pub use reconcile::{reconcile, reconcile_once};
