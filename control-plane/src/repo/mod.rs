//! PostgreSQL: the quota model's definitions and their admin writes, the event log and
//! the usage history, through runtime-checked `sqlx` queries (no database is needed to
//! build; the queries are covered by the tests that run against a real one).
//!
//! May import: [`crate::model`], [`crate::store`] (counter keys, snapshots for the
//! history) and [`crate::metrics`].
//!
//! # Layout
//! - [`connection`] — [`QuotaRepo`] and the admin transaction every write runs in.
//! - `catalog` — what the decisions cache: the catalog and a tenant's chain.
//! - `directory` — every tenant's own definitions, paged, for the tenant directory the
//!   decisions fall back on while PostgreSQL is down.
//! - `tiers`, `limits`, `tenants`, `assignments`, `grants` — one table family each; `limit_rows`
//!   the `limits` row both ways; `rules` the hierarchy rules checked inside writes.
//! - [`events`] — the event log and the sink the decision path writes through.
//! - [`history`] — the usage history and its flusher.
//! - [`webhooks`] — webhook subscriptions, threshold crossings, the outbox and its
//!   deliveries.
//! - [`page`], [`error`] — keyset paging; [`RepoError`].

mod assignments;
mod catalog;
pub mod connection;
mod directory;
pub mod error;
pub mod events;
mod grants;
pub mod history;
mod limit_rows;
mod limits;
pub mod page;
mod rules;
mod tenants;
mod tiers;
pub mod webhooks;

pub use assignments::{AssignmentFilter, AssignmentPatch, NewAssignment};
pub use connection::{AdminTx, QuotaRepo, MIGRATOR};
pub use directory::TenantRow;
pub use error::RepoError;
pub use events::{EventFilter, NewEvent, StoredEvent};
pub use grants::{GrantFilter, GrantsAt, NewGrant};
pub use history::{
    push_export, ExportFilter, ExportKey, ExportRow, HistoryFilter, HistoryRow, TenantScope,
};
pub use limits::{LimitFilter, LimitPatch};
pub use page::{Page, Paging};
pub use tenants::{push_listing, NewTenant, TenantFilter, TenantPatch};
pub use tiers::{NewTier, TierPatch};
