//! A filter config replaced while Envoy runs (an xDS update, here LDS from a file):
//! the old config's budgets are returned before it goes, so usage comes back to what
//! was admitted instead of staying counted until the window resets.

use serde_json::json;
use tollgate_e2e::envoy::Envoy;

use crate::{get, start_with_tier, stat, GatewayOptions};

fn budgets(want: u64) -> GatewayOptions {
    GatewayOptions {
        filter: json!({"budgets": {"enabled": true, "want": want}}),
        // Leases far longer than the test: only a return brings their unspent part back.
        control_plane_args: vec!["--lease-ttl-ms", "600000"],
        ..GatewayOptions::default()
    }
}

async fn admit(envoy: &Envoy, tenant: &str, requests: usize) {
    for _ in 0..requests {
        let response = get(envoy, "/x", &[("x-tenant-id", tenant)]).await;
        assert_eq!(response.status(), 200, "{tenant}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_filter_config_returns_its_budgets_and_usage_is_what_was_admitted() {
    let gateway = start_with_tier(
        budgets(100),
        "daily",
        json!([{"resource": "requests", "period": "day", "quota": 1000}]),
        &["acme", "globex"],
    )
    .await;
    let envoy = Envoy::start_reloadable(gateway.dir.path(), &gateway.envoy_settings(&budgets(100)))
        .await
        .unwrap();
    let admitted: [(&str, u64); 2] = [("acme", 20), ("globex", 7)];
    for (tenant, requests) in admitted {
        admit(&envoy, tenant, requests as usize).await;
    }
    for (tenant, requests) in admitted {
        let used = gateway
            .usage_at(tenant, tenant, "requests", "day")
            .await
            .unwrap();
        assert!(
            used > requests,
            "{tenant}: budgets are counted ahead ({used} for {requests} admitted)"
        );
    }
    assert!(stat(&envoy, "budget_hits").await >= 20);

    // The operator changes the filter's config: Envoy builds the new one and lets the
    // old one go once its connections drained (1 s here).
    envoy
        .reload(&gateway.envoy_settings(&budgets(50)))
        .await
        .unwrap();
    for (tenant, requests) in admitted {
        gateway
            .wait_usage(tenant, "requests", "day", requests)
            .await
            .unwrap();
    }
    // The new config decides from budgets of its own.
    admit(&envoy, "acme", 5).await;
    let used = gateway
        .usage_at("acme", "acme", "requests", "day")
        .await
        .unwrap();
    assert!((25..=25 + 50).contains(&used), "{used}");
}
