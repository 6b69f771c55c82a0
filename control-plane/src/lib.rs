//! Tollgate's control plane: quota definitions in PostgreSQL, live usage counters in
//! Redis, the decision API the Envoy filter calls (`/v1/check`, `/v1/leases`,
//! `/v1/settle`, `/v1/release`, and `/v1/quota` for its self-view), the admin API (`/admin/v1`), health, readiness and
//! Prometheus metrics.
//!
//! # Layout
//! One folder per concern, each importing only from the ones listed before it (a test,
//! `tests/tests/architecture/`, holds the code to it; `ARCHITECTURE.md` has the map):
//! - [`model`] — the quota model, pure: tiers, limits, tenants, windows, which limits
//!   apply to a request, what may name what, the JSON views.
//! - [`store`] — the live counters behind one trait: Redis (its Lua scripts) and memory.
//! - [`plan`] — pure planning: a check, settlement or lease as one atomic store call,
//!   and the decision from its outcome.
//! - [`repo`] — PostgreSQL: definitions and admin writes, the event log, usage history.
//! - [`metrics`] — every Prometheus metric, in one registry.
//! - [`error`] — [`error::ApiError`], the problem+json every API answers with.
//! - [`engine`] — runs the decisions: definitions cache, deadline, breaker, PostgreSQL
//!   fallback, recording.
//! - [`http`] — the decision and admin APIs, auth, the OpenAPI document.
//! - [`server`] — the wiring: configuration, start-up, background tasks, shutdown.
//! - [`cli`] — the `tollgate` command line: serve, migrate, admin commands, `apply`.

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
