//! Grants through a real Envoy: a tenant at its hard limit is admitted once a grant
//! raises it — the quota headers' hard limit grows by the grant — and refused again from
//! the instant the grant expires, what it admitted staying counted. Per request, and on
//! the fast path, whose budgets end with the grant.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::json;
use tollgate_e2e::response::{header, quota_exceeded};
use tollgate_e2e::{Gateway, GatewayOptions};

use super::{get, own_usage, per_month, start_with_tier, stat};

/// How long the grants of these tests last: long enough for a few requests on a busy
/// machine, short enough to wait out.
const GRANT_FOR: Duration = Duration::from_secs(5);

/// Grants `acme` `amount` more requests a month until [`GRANT_FOR`] from now; returns
/// when the grant ends.
async fn grant(gateway: &Gateway, amount: u64) -> tokio::time::Instant {
    let ends = tokio::time::Instant::now() + GRANT_FOR;
    let expires_at = Utc::now() + GRANT_FOR;
    let body = json!({
        "resource": "requests", "period": "month", "amount": amount,
        "expires_at": expires_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "reason": "e2e: a short credit",
    });
    let created = gateway
        .admin(reqwest::Method::POST, "/tenants/acme/grants", Some(body))
        .await
        .unwrap();
    assert_eq!(created["state"], "in_force", "{created}");
    ends
}

/// Options that fail closed with a generous deadline: a decision that did not come is a
/// 503 the test sees, never a request let through uncounted.
fn closed(filter: serde_json::Value) -> GatewayOptions {
    GatewayOptions {
        failure_mode: "closed",
        timeout_ms: 2_000,
        filter,
        ..GatewayOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_at_its_hard_limit_is_admitted_while_a_grant_lasts_and_refused_after() {
    let gateway = start_with_tier(
        closed(json!({})),
        "small",
        per_month("requests", 2),
        &["acme"],
    )
    .await;
    let envoy = &gateway.envoy;
    let acme = [("x-tenant-id", "acme")];
    for _ in 0..2 {
        assert_eq!(get(envoy, "/api", &acme).await.status(), StatusCode::OK);
    }
    // At its hard limit, not past it: no rejection is remembered in Envoy yet.
    assert_eq!(own_usage(&gateway, "acme", "requests", "month").await, 2);

    let ends = grant(&gateway, 3).await;
    for used in ["3", "4"] {
        let admitted = get(envoy, "/api", &acme).await;
        assert_eq!(admitted.status(), StatusCode::OK);
        assert_eq!(
            (
                header(&admitted, "x-quota-limit"),
                header(&admitted, "x-quota-used"),
                header(&admitted, "x-quota-status")
            ),
            ("5", used, "warning"),
            "the hard limit is the quota plus the grant"
        );
    }
    assert_eq!(gateway.upstream.received("acme").requests, 4);

    tokio::time::sleep_until(ends + Duration::from_millis(200)).await;
    let refused = get(envoy, "/api", &acme).await;
    assert_eq!(header(&refused, "x-quota-limit"), "2");
    let body = quota_exceeded(refused, "requests").await;
    assert_eq!(body["tenant"], "acme", "{body}");
    assert_eq!(gateway.upstream.received("acme").requests, 4);
    assert_eq!(
        own_usage(&gateway, "acme", "requests", "month").await,
        4,
        "what the grant admitted stays counted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_spend_a_grant_only_while_it_lasts() {
    let gateway = start_with_tier(
        closed(json!({"budgets": {"enabled": true, "want": 100}})),
        "small",
        per_month("requests", 2),
        &["acme"],
    )
    .await;
    let envoy = &gateway.envoy;
    let acme = [("x-tenant-id", "acme")];
    // At its hard limit without a lease: a lease answered with no budget is not asked
    // again for its TTL, so the first one comes after the grant.
    gateway
        .admin(
            reqwest::Method::POST,
            "/tenants/acme/usage:adjust",
            Some(json!({"resource": "requests", "period": "month", "delta": 2})),
        )
        .await
        .unwrap();
    let ends = grant(&gateway, 40).await;
    for _ in 0..10 {
        let admitted = get(envoy, "/api", &acme).await;
        assert_eq!(admitted.status(), StatusCode::OK);
        assert_eq!(header(&admitted, "x-quota-limit"), "42");
    }
    assert!(stat(envoy, "budget_hits").await > 0, "spent from a budget");

    tokio::time::sleep_until(ends + Duration::from_millis(200)).await;
    // The budget ended with the grant: the next request leases again (returning what
    // was left) and is refused against the hard limit without the grant.
    quota_exceeded(get(envoy, "/api", &acme).await, "requests").await;
    assert_eq!(gateway.upstream.received("acme").requests, 10);
    gateway
        .wait_usage("acme", "requests", "month", 12)
        .await
        .unwrap();
}
