//! The filter's request handling end to end: real Envoy (with `jwt_authn` where the
//! reference config has it), the real `.wasm`, the control plane, Redis and PostgreSQL.
//!
//! Each test starts its own gateway. Usage that a settlement corrects (sent after the
//! response) is polled for a bounded time, never slept for.
//!
//! # Layout
//! - [`identity`] — who a request is charged to: a JWT claim, the path, a header, a
//!   default; missing, invalid and unknown tenants.
//! - [`costs`] — what a request costs: a count, request bytes (chunked, or not what
//!   content-length said), response bytes, a header, a JSON or event-stream body.
//! - [`bodies`] — bodies no honest client sends: a negative, overflowing or absurd
//!   content-length, a trickle that stops (slow-loris), a body that never ends.
//! - [`answers`] — which requests count and how they are answered: header options,
//!   excluded paths and methods, shadow mode, the reject cache, the stats.
//! - [`budgets`] — the fast path: budgets leased, spent without callouts, returned.
//! - [`failures`] — a control plane that hangs or has no healthy host, and a filter
//!   configuration Envoy must refuse.
//! - [`misconfigured`] — a filter pointed at the admin listener, or with the wrong
//!   token: its own stat, and one line in Envoy's log.
//! - [`faults`] — Redis, the control plane and PostgreSQL stopped and started again
//!   under load: deadlines kept, nothing lost.
//! - [`self_view`] — the caller's own quota at `quota_path`: live usage, a burn rate,
//!   nothing counted, a second's caching, a quick 503, the token's tenant only.
//! - [`grants`] — a tenant at its hard limit admitted while a grant lasts and refused
//!   from its expiry, per request and from budgets.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod answers;
mod bodies;
mod budgets;
mod costs;
mod failures;
mod faults;
mod grants;
mod identity;
mod misconfigured;
mod self_view;

use std::time::Duration;

use reqwest::Response;
use serde_json::{json, Value};
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::{Gateway, GatewayOptions};

/// Held by each test that drives load through the gateway for seconds (the faults, the
/// budget exactness and killed-Envoy tests): on two cores, two of them side by side
/// starve each other's callouts past their deadlines, and a test of what a fault does
/// would see what the machine did. The other tests still run beside them.
static UNDER_LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A client that gives up after 10 s, so a hanging request fails the test instead of
/// hanging it.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.filter_stat(name).await.unwrap()
}

async fn start(options: GatewayOptions) -> Gateway {
    Gateway::start(options).await.expect("gateway starts")
}

/// A gateway started with `options`, a tier `tier` with `limits` (a JSON array of limit
/// objects) and `tenants` on that tier.
async fn start_with_tier(
    options: GatewayOptions,
    tier: &str,
    limits: Value,
    tenants: &[&str],
) -> Gateway {
    let gateway = start(options).await;
    gateway.create_tier(tier, limits).await.unwrap();
    for tenant in tenants {
        gateway.create_tenant(tenant, tier).await.unwrap();
    }
    gateway
}

/// One limit of `quota` `resource` a month, as the `limits` of a tier.
fn per_month(resource: &str, quota: u64) -> Value {
    json!([{"resource": resource, "period": "month", "quota": quota}])
}

/// `tenant`'s own usage of `resource` per `period`, from the admin API.
async fn own_usage(gateway: &Gateway, tenant: &str, resource: &str, period: &str) -> u64 {
    gateway
        .usage_at(tenant, tenant, resource, period)
        .await
        .unwrap()
}

/// A default gateway with tenant `acme` on `tier`: `quota` request bytes a month, no
/// overage, a warning from 80 %.
async fn start_with_bytes_tier(tier: &str, quota: u64) -> Gateway {
    let gateway = start(GatewayOptions::default()).await;
    gateway
        .create_monthly_bytes_tier(tier, quota, 0, 0.8)
        .await
        .unwrap();
    gateway.create_tenant("acme", tier).await.unwrap();
    gateway
}

/// The `x-quota-status` the filter last sent the upstream with `tenant`'s request.
fn upstream_status(gateway: &Gateway, tenant: &str) -> Option<String> {
    gateway.upstream.last_header(tenant, "x-quota-status")
}

fn with_filter(filter: Value) -> GatewayOptions {
    GatewayOptions {
        filter,
        ..GatewayOptions::default()
    }
}

/// GET `path` through `envoy` with `headers`.
async fn get(envoy: &Envoy, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = http().get(format!("{}{path}", envoy.url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("the gateway answers")
}
