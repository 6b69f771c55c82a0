//! The fast path: requests admitted from budgets leased from the control plane.

use super::*;

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
