//! The fast path: requests admitted from budgets leased from the control plane.
//!
//! # Exactness under load (issue 7, "Exactness must survive the speed")
//!
//! One Envoy (`--concurrency 2`, the harness's) or two, in front of two control planes
//! that share Redis and PostgreSQL, budgets on, leases of 2 s; 64 clients POST bodies of
//! 1–4096 bytes (content-length set, so budgets can decide them) for 50 tenants under two
//! organizations, every level with limits on `requests` and `request_bytes`:
//! - `org-a` binds on its bytes (its 25 tenants have room of their own);
//! - in `org-b` (room to spare), a third of the tenants bind on their own requests and a
//!   third on their own bytes.
//!
//! An organization's request limit is not made to bind: a parent's headroom is split
//! only between the gateways of the tenant asking, so siblings' budgets take it in a few
//! leases and its tenants are refused while the org has used little.
//!
//! # Layout
//! - this file — one tenant admitted from a budget, usage settling to what was admitted.
//! - [`tree`] — the tenant tree and its tiers, the options of the exactness tests, and
//!   what is checked of them against the limits.
//! - [`load`] — the concurrent clients and what they saw, per Envoy and tenant.
//! - [`usage`] — what the control plane counted and still holds: usage (sampled during a
//!   load), budget records in Redis, its metrics.
//! - [`exactness`] — usage exactly what was admitted, through two control planes.
//! - [`envoy_killed`] — an Envoy killed mid-run: usage reconciled, never past a limit.
//! - [`reloaded`] — a filter config replaced while Envoy runs: its budgets returned.
//! - [`single_flight`] — requests waiting for the refill in flight instead of calling out.
//! - [`workers`] — the workers of one Envoy leasing as one gateway.

mod envoy_killed;
mod exactness;
mod load;
mod reloaded;
mod single_flight;
mod tree;
mod usage;
mod workers;

use crate::{get, start_with_tier, stat, GatewayOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_admitted_from_a_budget_and_usage_settles_to_what_was_admitted() {
    let options = GatewayOptions {
        filter: json!({"budgets": {"enabled": true, "want": 100}}),
        // Short leases, so the unspent part comes back within the test.
        control_plane_args: vec!["--lease-ttl-ms", "1500"],
        ..GatewayOptions::default()
    };
    let gateway = start_with_tier(
        options,
        "daily",
        json!([
            {"resource": "requests", "period": "day", "quota": 1000}
        ]),
        &["acme"],
    )
    .await;
    for _ in 0..20 {
        let response = get(&gateway.envoy, "/x", &[("x-tenant-id", "acme")]).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-quota-used"));
    }
    let hits = stat(&gateway.envoy, "budget_hits").await;
    let leases = stat(&gateway.envoy, "leases").await;
    assert!(
        hits >= 15,
        "{hits} of 20 requests from a budget ({leases} leases)"
    );
    assert_eq!(gateway.upstream.received("acme").requests, 20);
    // The budgets are reserved as usage at once; once the leases expire and come
    // back, usage is exactly what was admitted.
    gateway
        .wait_usage("acme", "requests", "day", 20)
        .await
        .unwrap();
}
