//! The event log: every admin change with its actor and before/after (written in the
//! change's own transaction), usage resets and adjustments, the first warning of each
//! window, and rejections aggregated per limit and interval (written in the background,
//! so that a check never waits on PostgreSQL).
//!
//! # Layout
//! - [`log`] — the `events` table: appends and listings.
//! - [`sink`] — [`EventSink`]: events of the decision path, queued and written in batches.

pub mod log;
pub mod sink;

pub use log::{EventFilter, NewEvent, StoredEvent};
pub use sink::{EventSink, LimitRef};
