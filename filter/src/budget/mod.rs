//! The fast path: budgets leased from the control plane (`POST /v1/leases`) and spent
//! by every worker of this Envoy from shared data, so a request whose whole cost is
//! known at its headers is admitted without a callout.
//!
//! The control plane reserves a budget as usage at every level of the tenant's chain
//! when it grants it, so budgets never let usage pass a hard limit; what is not spent
//! is refunded when the lease comes back (with the next refill, when it expires, or
//! when the config that leased it goes). When a budget runs out, one request refills
//! it (one refill per budget at a time); the other requests of the same worker wait
//! for that answer (single flight), those of other workers are checked.
//!
//! # Layout
//! - `slots` — the table of budgets in shared data, changed only by compare-and-swap.
//! - `record` — a slot as shared data holds it: 64 bytes, and the ids of leases.
//! - `terms` — what a lease answers with in headers, kept beside its slot and read once
//!   per lease by each worker.
//! - `spending` — paying a request's every resource from budgets, all or nothing, and
//!   the quota status that gives it.
//! - `refill` — a refill in flight: the lease call it makes, how it ended, and the
//!   leases to give back.

mod record;
mod refill;
mod slots;
mod spending;
mod terms;

pub use refill::{Refill, RefillEnd, TakenLease};
pub use slots::{
    abandon_refill, begin_refill, finish_refill, slot_key, spend, take_back, take_expired, unspend,
    Contended, Owner, Refilled, Spend, Taken, SLOTS,
};
pub use spending::{pay, Payment, Receipt, Shortfall, Spent, Unspent};
