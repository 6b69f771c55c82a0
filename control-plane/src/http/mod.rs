//! The HTTP surface: the decision API the filter calls (`/v1`) and the admin API
//! operators use (`/admin/v1`), with health, readiness, metrics and the OpenAPI
//! document. One route table builds both the router and the document ([`routes`]).
//!
//! May import: [`crate::engine`] and everything below it.
//!
//! # Layout
//! - [`decisions`] — `POST /v1/check`, `/v1/leases`, `/v1/settle`, `/v1/release`,
//!   `/v1/quota` (the filter's API).
//! - [`tiers`], [`limits`], [`tenants`], [`assignments`], [`grants`], [`usage`],
//!   [`events`], [`webhooks`] — the admin API under `/admin/v1`, one module per resource;
//!   [`webhook_bodies`] the webhook bodies and their checks, [`webhook_event`] the
//!   schema of the event deliveries send; [`export`] the billing export of the usage
//!   history (`/admin/v1/usage/export`), streamed.
//! - [`ops`] — `/health`, `/ready`, `/metrics`, the OpenAPI document; [`whoami`] —
//!   what the presented admin token may do.
//! - [`console`] — the admin console's files at `/console/` (admin listener only).
//! - [`auth`], [`json`], [`paging`] — bearer tokens, JSON, query and path extraction
//!   with problem+json rejections, cursor pagination.
//! - [`names`] — the schemas of tenant ids and tier names in the document.
//! - `document` — what [`openapi`] adds to the generated document: the extractors'
//!   rejections, links.
//! - [`routes`] — the route table, the router and the document; [`serve`] — listeners.
//! - [`state`] — [`AppState`]: the configuration and the engine; [`token`] — digests.
//! - [`responses`] — the problem+json answers the document names once.

mod assignments;
pub mod auth;
pub mod console;
mod decisions;
mod document;
mod events;
mod export;
mod grants;
pub mod json;
mod limits;
pub mod names;
mod ops;
pub mod paging;
pub mod responses;
pub mod routes;
pub mod serve;
pub mod state;
mod tenants;
mod tiers;
pub mod token;
mod usage;
mod webhook_bodies;
mod webhook_event;
mod webhooks;
mod whoami;

#[cfg(test)]
mod tests;

pub use json::{ApiJson, ApiPath, ApiQuery};
pub use routes::{app, app_for, openapi, routes, Surface};
pub use serve::{serve, Listeners};
pub use state::{AppConfig, AppState};
