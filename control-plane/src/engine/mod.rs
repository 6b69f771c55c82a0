//! The decision engine: runs what [`crate::plan`] plans against the stores, one way
//! through four steps — resolve the tenant from cached definitions ([`lookup`]), plan
//! one atomic store call, count it ([`count`]: Redis through a breaker, re-seeding lost
//! counters; PostgreSQL while Redis is down, [`fallback`]), record what it did
//! ([`record`]) — within the deadline of the filter that waits for it ([`deadline`]).
//!
//! May import: [`crate::model`], [`crate::plan`], [`crate::store`], [`crate::repo`],
//! [`crate::metrics`] and [`crate::error`]. The HTTP API calls it.
//!
//! # Layout
//! - [`state`] — [`Engine`]: the stores, caches and settings every decision needs.
//! - [`check`], [`lease`], [`settle`], [`release`] — one decision endpoint each;
//!   [`validate`] what they accept.
//! - [`usage`] — live usage, resets and adjustments for operators.
//! - [`quota_view`] — a tenant's own view of its quota (`/v1/quota`), for the gateway.
//! - [`lookup`], [`count`], [`record`] — the steps they share.
//! - [`definitions`] — the definitions cache and its invalidation between instances.
//! - [`fallback`] — counting in PostgreSQL while Redis is unreachable, and reconciling.
//! - [`breaker`] — the circuit breaker in front of Redis; [`deadline`] — the caller's.
//! - [`webhooks`] — threshold crossings from the decisions, the subscriptions they are
//!   compared with, and the deliverer of the outbox.

pub mod breaker;
pub mod check;
pub mod count;
pub mod deadline;
pub mod definitions;
pub mod fallback;
pub mod lease;
pub mod lookup;
pub mod quota_view;
pub mod record;
pub mod release;
pub mod settle;
pub mod state;
pub mod usage;
pub mod validate;
pub mod webhooks;

pub use check::check;
pub use deadline::Deadline;
pub use lease::{count_lease, lease};
pub use lookup::resolve_fresh;
pub use quota_view::quota_view;
pub use release::release;
pub use settle::{count_settlement, settle};
pub use state::{Clock, Engine, EngineSettings, RedisOutage};
