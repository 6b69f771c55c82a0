//! Webhooks in PostgreSQL: the subscriptions, the threshold crossings with the outbox
//! rows written in the same statement, the deliveries and their attempts, and the sink
//! the decision path hands crossings to.
//!
//! # Layout
//! - [`subscriptions`] — `webhook_subscriptions`: admin writes with their events, and
//!   the enabled subscriptions' filters for the decisions.
//! - [`crossings`] — a crossing and the one statement that records it with its
//!   deliveries; [`Watch`], the history flusher's safety net.
//! - [`sink`] — [`CrossingSink`]: crossings queued off the decision path, written in
//!   batches.
//! - [`outbox`] — claiming, finishing, pruning; the delivery log.
//! - [`event`] — a recorded crossing and the payload its deliveries send.

pub mod crossings;
pub mod event;
pub mod outbox;
pub mod sink;
pub mod subscriptions;

pub use crossings::{CrossedLimit, NewCrossing, Recorded, Watch};
pub use event::{CrossingEvent, EVENT_TYPE};
pub use outbox::{Attempt, AttemptRow, Claimed, Delivery, Finished, Pending};
pub use sink::CrossingSink;
pub use subscriptions::WebhookPatch;
