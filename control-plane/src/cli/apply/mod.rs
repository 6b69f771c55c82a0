//! `tollgate apply -f quotas.yaml [--dry-run] [--prune]`: make the server's tiers,
//! tenants, override limits and assignments match a declarative file, printing one diff
//! line per change and a summary.
//!
//! # Layout
//! - [`command`] — [`ApplyArgs`] and [`run`]: the subcommand.
//! - [`spec`] — a tier, a tenant and an assignment: the shapes both sides share.
//! - [`file`] — the YAML file, parsed strictly and checked on its own.
//! - [`state`] — what the server has, read through the admin API's listings.
//! - [`diff`] — the pure plan: desired + current → ordered changes.
//! - [`change`] — one change: its diff line and its API request ([`request`]).
//! - [`webhooks`] — webhook subscriptions: entries, matching by id, their changes, and
//!   the write-only secret.
//! - [`grants`] — grants under their tenants: checked, matched by key, created or (with
//!   `--prune`) revoked, never changed.

pub mod change;
pub mod command;
pub mod diff;
pub mod file;
pub mod grants;
pub mod request;
pub mod spec;
pub mod state;
pub mod webhooks;

pub use command::{run, ApplyArgs};
