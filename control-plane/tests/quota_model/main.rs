//! The quota model against a real PostgreSQL: one fresh database per test
//! (`#[sqlx::test]`), one PostgreSQL for the whole binary, started by the end-to-end
//! harness (or the one `DATABASE_URL` names).
//!
//! - `schema` — the model's rules, through the repository.
//! - `admin_api` — every admin endpoint through the router, and the OpenAPI document.
//! - `decisions` — `/v1/check`, `/v1/leases`, `/v1/settle` and `/v1/release` through the
//!   router: hierarchy, multiple limits, modes, gauges, calendar boundaries, re-seeding,
//!   several instances, settlements, budgets.
//! - `fallback` — deciding while Redis is down, and reconciling once it is back.
//! - `quota_view` — `/v1/quota`, a tenant's own view: usage samples, burn rates,
//!   forecasts.
//! - `directory` — deciding tenants never looked up from the tenant directory while
//!   PostgreSQL is down, and keeping it current.
//! - `grants` — grants raising hard limits until their instant: decisions, budgets, the
//!   quota explanation, the admin API, other instances and the directory.
//! - `tenant_search` — the tenant listing and its query plans at 100,000 tenants.
//! - `webhooks` — webhook subscriptions, threshold crossings recorded once, the outbox,
//!   claims, retries, and the crossings decisions and the history flusher find.
//! - `usage_export` — the billing export: which windows, in which order, open or
//!   closed, the three formats, refusals, and its query plan at scale.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_api;
mod decisions;
mod directory;
mod fallback;
mod grants;
mod quota_view;
mod schema;
mod support;
mod tenant_search;
mod usage_export;
mod webhooks;

/// Points `#[sqlx::test]` at the harness's PostgreSQL, unless one is given.
#[ctor::ctor(unsafe)]
fn postgres_for_this_run() {
    if std::env::var_os("DATABASE_URL").is_none() {
        match tollgate_e2e::shared::postgres_url() {
            Ok(url) => std::env::set_var("DATABASE_URL", url),
            Err(error) => eprintln!("cannot start PostgreSQL for the tests: {error:#}"),
        }
    }
}
