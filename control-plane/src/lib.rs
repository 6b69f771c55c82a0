//! Tollgate's control plane: quota definitions in PostgreSQL, live usage counters in
//! Redis, the decision API the Envoy filter calls (`/v1/check`, `/v1/leases`,
//! `/v1/settle`, `/v1/release`), the admin API (`/admin/v1`), health, readiness and
//! Prometheus metrics.
//!
//! # Layout
//! - [`config`] — the command line and environment; secrets.
//! - [`http`] — the router and the OpenAPI document, one module per resource.
//! - [`state`] — [`state::AppState`], shared by every handler and background task.
//! - The quota model: [`model`] (types), [`resolve`] (which limits apply, pure),
//!   [`window`] (calendar and rolling windows), [`views`] (their JSON shapes).
//! - Deciding: [`decision`] (the check path), [`accounting`] (plan a store call,
//!   decide from its outcome, pure), [`settlement`] (plan a settlement of what a request
//!   really cost, pure), [`budget`] (plan a lease's budget and answer it, pure),
//!   [`store`] (Redis scripts and memory),
//!   [`definitions`] (the cache), [`bus`] (invalidations between instances).
//! - Durability: [`repo`] (PostgreSQL), [`flusher`] (usage history), [`audit`] (events
//!   of the decision path), [`usage`] (usage views, resets, adjustments).
//! - [`metrics`] — the Prometheus registry; [`error`] — problem+json errors.
//! - [`cli`] — the admin subcommands and `tollgate apply`.

pub mod cli;
pub mod engine;
pub mod error;
pub mod http;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod repo;
pub mod server;
pub mod store;

pub use http::{app, serve, AppConfig, AppState};
pub use repo::MIGRATOR;
