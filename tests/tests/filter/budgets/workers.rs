//! The workers of one Envoy hold its budgets as one gateway: the control plane splits a
//! tenant's headroom per gateway holding a budget (`headroom / (2 × holders)`), so an
//! Envoy with two workers must count once, as one with one worker does.

use std::collections::BTreeSet;

use serde_json::json;

use crate::{start_with_tier, GatewayOptions};

#[tokio::test(flavor = "multi_thread")]
async fn the_workers_of_one_envoy_lease_as_one_gateway() {
    let options = GatewayOptions {
        // Small leases (16 requests' worth), so that both workers refill many times.
        filter: json!({"budgets": {"enabled": true, "want": 1}}),
        ..GatewayOptions::default()
    };
    let gateway = start_with_tier(
        options,
        "daily",
        json!([{"resource": "requests", "period": "day", "quota": 100000}]),
        &["acme"],
    )
    .await;
    // 32 clients of a connection each: Envoy's two workers (`--concurrency 2`) share
    // the connections, and with them the refills.
    let url = format!("{}/x", gateway.envoy.url());
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for _ in 0..16 {
                    let response = client
                        .get(&url)
                        .header("x-tenant-id", "acme")
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }

    let client = ::redis::Client::open(gateway.redis.url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    // A lease's id is `<worker's prefix>-<n>`: the workers that refilled.
    let leases: Vec<String> = ::redis::cmd("KEYS")
        .arg("tollgate:{acme}:b:*")
        .query_async(&mut redis)
        .await
        .unwrap();
    let workers: BTreeSet<&str> = leases
        .iter()
        .filter_map(|key| key.rsplit(':').next()?.split('-').next())
        .collect();
    assert!(
        workers.len() == 2,
        "both workers refilled ({} leases, workers {workers:?})",
        leases.len()
    );
    let mut gateways = BTreeSet::new();
    for key in &leases {
        let holder: Option<String> = ::redis::cmd("HGET")
            .arg(key)
            .arg("w")
            .query_async(&mut redis)
            .await
            .unwrap();
        gateways.extend(holder); // a returned lease keeps only its mark
    }
    let holders: Vec<String> = ::redis::cmd("ZRANGE")
        .arg("tollgate:{acme}:p:acme:requests")
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(gateways.len(), 1, "one gateway id: {gateways:?}");
    let gateway_id = gateways.first().unwrap();
    assert_eq!(holders, [format!("{gateway_id}|acme")], "one holder");
}
