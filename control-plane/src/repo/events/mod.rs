//! The event log: every admin change with its actor and before/after (written in the
//! change's own transaction), usage resets and adjustments, the first warning of each
//! window, and rejections aggregated per limit and interval (written in the background,
//! so that a check never waits on PostgreSQL).
//!
//! # Layout
//! - [`event`] — an event, appended or stored; the append inside an admin transaction.
//! - [`log`] — the `events` table: batches of appends and listings.
//! - [`sink`] — [`EventSink`]: events of the decision path, queued and written in batches.

pub mod event;
pub mod log;
pub mod sink;

pub use event::{EventFilter, NewEvent, StoredEvent};
pub use sink::{EventSink, LimitRef};
