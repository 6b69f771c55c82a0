//! Tollgate's control plane: quota definitions in PostgreSQL, live usage counters in
//! Redis, the decision API the Envoy filter calls (`POST /v1/check`), the admin API
//! (`/admin/v1`), health, readiness and Prometheus metrics.
//!
//! # Layout
//! - [`config`] — `tollgate serve` / `tollgate migrate` flags and environment; secrets.
//! - [`http`] — the router ([`http::app`]), one module per resource, and [`http::serve`].
//! - [`state`] — [`state::AppState`], shared by every handler.
//! - [`check`] — the decision of `/v1/check` without I/O: counters, keys, the response.
//! - [`window`] — calendar-aligned UTC windows.
//! - [`store`] — the [`store::CounterStore`] trait; Redis (Lua script) and memory.
//! - [`repo`] — quota definitions in PostgreSQL; [`definitions`] caches them.
//! - [`model`] — tiers, limits, tenants, a tenant's resolved quota.
//! - [`metrics`] — the Prometheus registry.
//! - [`error`] — [`error::ApiError`], the JSON error body of every endpoint.

pub mod check;
pub mod config;
pub mod definitions;
pub mod error;
pub mod http;
pub mod metrics;
pub mod model;
pub mod repo;
pub mod state;
pub mod store;
pub mod window;

/// The migrations in `control-plane/migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub use http::{app, serve};
pub use state::{AppConfig, AppState};
