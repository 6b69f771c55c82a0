//! `GET /admin/v1/usage/export`: the usage history of every tenant (or one tenant, or
//! one tenant's subtree) over a range of window starts, for billing, streamed a page
//! at a time as CSV, NDJSON or CloudEvents.
//!
//! # Layout
//! - `handler` — the route, its OpenAPI description, the answer's headers.
//! - `query` — the parameters, checked: the repository's filter and the format.
//! - `stream` — the body as a stream of pages read from PostgreSQL one at a time.
//! - `format` — the CSV, NDJSON and CloudEvents bodies, written a page at a time.
//! - `cloudevents` — a closed window as a CloudEvent, as OpenMeter ingests it.
//!
//! Which windows are closed (their value final) is the repository's rule:
//! [`crate::repo::history::export`].

mod cloudevents;
mod format;
mod handler;
mod query;
mod stream;

pub use handler::routes;
