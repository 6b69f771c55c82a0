//! Usage history: per tenant, resource and counter window, the usage persisted from
//! Redis, so that usage survives a Redis loss (counters are re-seeded from it) and can be
//! billed.
//!
//! # Layout
//! - [`rows`] — the `usage_history` table: upserts that only move forward, reads for
//!   re-seeding, listings.
//! - [`flusher`] — [`UsageFlusher`]: which counters changed, persisted every interval.
//! - [`export`] — the billing export: every tenant's windows of a time range, a page at a
//!   time, and when a window is closed (its value final).

pub mod export;
pub mod flusher;
pub mod rows;

pub use export::{push_export, ExportFilter, ExportKey, ExportRow, TenantScope, SETTLING};
pub use flusher::UsageFlusher;
pub use rows::{HistoryFilter, HistoryRow};
