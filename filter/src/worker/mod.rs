//! What one Envoy worker (one VM) keeps for its requests between their callbacks, and
//! does in its root context's tick: the deadlines of requests waiting on a callout,
//! the requests waiting for another's refill, the callouts the root makes for a
//! request and routes back by token, the leases the worker took, and the settlements
//! and lease returns it sends.
//!
//! The SDK hands a callout's answer to the context whose callback dispatched it (not
//! the effective context), and drops it if that context is gone. So a callout that
//! must outlive the request it is made in (settlements, lease returns) or is made for
//! another request (one woken when the refill it waited for ended) is dispatched from
//! the root context, in its tick, and the root routes the answer by token. Host calls
//! act on the effective context: before it acts on a request from another context's
//! callback, the worker makes that request's context effective (a request that is gone
//! is skipped), and the calling context effective again afterwards.
//!
//! Every `RefCell` is borrowed with `try_borrow*`: a re-entrant callback must be
//! skipped, never turned into a panic that traps the VM.
//!
//! # Layout
//! - `shared` — [`Worker`]: what the root context and the requests of one worker share.
//! - `requests` — what a request's callbacks leave with the worker, and the requests
//!   woken when a refill they waited for ends.
//! - `root` — the root context's part: the tick (deadlines, deferred decisions, expired
//!   leases, settlements), callout answers routed by token, closing.
//! - `deadlines` — requests waiting on a callout, and which of them ran out of time.
//! - `taken` — the leases this worker took, by expiry.
//! - `outbox` — settlements, take-backs and lease returns: queued, sent, reported.
//! - `settlements` — the outbox's queue: retries with back-off, bounds.

mod deadlines;
mod outbox;
mod requests;
mod root;
mod settlements;
mod shared;
mod taken;

#[cfg(test)]
mod tests;

pub use deadlines::Deadlines;
pub use settlements::{Outcome, Outgoing, Pending, Settlements};
pub use shared::{SharedFlow, Worker};
