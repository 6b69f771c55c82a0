//! Quota definitions as the decisions read them: cached in process (so a check does not
//! query PostgreSQL on the hot path, and keeps deciding while PostgreSQL is slow or
//! down), and invalidated on every instance within a second of an admin write.
//!
//! # Layout
//! - [`cache`] — [`DefinitionsCache`]: the catalog and tenant chains, single flight,
//!   stale-while-revalidate and stale-while-error.
//! - [`directory`] — [`TenantDirectory`]: every tenant's own definitions, compact and
//!   bounded, to build a chain that is not cached while PostgreSQL does not answer.
//! - [`directory_sync`] — the background task that keeps the directory current.
//! - [`invalidation`] — the messages between instances and the task that applies them.

pub mod cache;
pub mod directory;
pub mod directory_sync;
pub mod invalidation;

pub use cache::{DefinitionsCache, Freshness, LoadError};
pub use directory::TenantDirectory;
pub use directory_sync::{keep_directory, sync_directory, SyncReport, RESYNC_EVERY};
pub use invalidation::{instance_id, listen, tenant_message, CATALOG_MESSAGE, WEBHOOKS_MESSAGE};
