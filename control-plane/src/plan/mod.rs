//! The pure planning of every decision, without I/O: from a resolved tenant chain and a
//! request to one atomic store call, and from the store's outcome to the answer.
//!
//! May import: [`crate::model`], [`crate::store`]'s call types and keys, and the
//! protocol crate. The engine runs what is planned here.
//!
//! # Layout
//! - [`check`] — a check (or a read of every limit) as one store call.
//! - [`answer`] — the decision from a check's outcome: allow, warn or reject, the binding
//!   policy, first warnings.
//! - [`settlement`] — a settlement of what a request really cost.
//! - [`lease`] — a lease: the next budget's size and time, and the answer to the
//!   gateway.
//! - [`burn`] — a limit's burn rate from its windows and usage samples, and when it
//!   runs out at that rate.
//! - [`view`] — a tenant's view of its own quota from what the stores read.
//! - [`thresholds`] — which webhook thresholds a move of usage crosses.

pub mod answer;
pub mod burn;
pub mod check;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod lease;
pub mod settlement;
pub mod thresholds;
pub mod view;

pub use answer::{
    crosses_warning, decide, frees_at, policy_status, tightest, unknown_tenant, usage_status,
    Decided,
};
pub use check::{
    counter_ttl_s, plan, Plan, PlanError, Planned, Select, MAX_COUNTER_GRACE_S, MIN_COUNTER_GRACE_S,
};
pub use thresholds::Thresholds;
