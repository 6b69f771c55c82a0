//! The walking skeleton's scenarios, through real Envoy, the real `.wasm`, the control
//! plane, Redis and PostgreSQL.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use chrono::{Datelike, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use tollgate_e2e::gateway::send;
use tollgate_e2e::response::header;
use tollgate_e2e::{eventually, Gateway, GatewayOptions};

/// Quota 10 000 bytes a month, 2 000 more as overage (hard limit 12 000), warn from 80 %.
async fn gateway_with_pro_tier(options: GatewayOptions) -> Gateway {
    let gateway = Gateway::start(options).await.expect("gateway starts");
    gateway
        .create_monthly_bytes_tier("pro", 10_000, 2_000, 0.8)
        .await
        .expect("tier created");
    gateway
}

/// Seconds from now to 00:00 UTC on the 1st of next month.
fn seconds_to_month_end() -> i64 {
    let now = Utc::now();
    let (year, month) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let reset = Utc
        .with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    (reset - now).num_seconds()
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_under_quota_is_admitted_with_quota_headers() {
    let gateway = gateway_with_pro_tier(GatewayOptions::default()).await;
    gateway.create_tenant("acme", "pro").await.unwrap();

    let response = gateway.send(Some("acme"), 1_000).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-quota-status"), "ok");
    assert_eq!(header(&response, "x-quota-limit"), "12000");
    assert_eq!(header(&response, "x-quota-used"), "1000");
    assert_eq!(header(&response, "x-quota-remaining"), "11000");
    assert_eq!(
        header(&response, "ratelimit-policy"),
        r#""monthly";q=12000;qu="content-bytes""#
    );
    let reset: i64 = header(&response, "x-quota-reset").parse().unwrap();
    assert!((reset - seconds_to_month_end()).abs() <= 5, "reset {reset}");
    assert_eq!(
        header(&response, "ratelimit"),
        format!(r#""monthly";r=11000;t={reset}"#)
    );
    assert_eq!(gateway.upstream.received("acme").bytes, 1_000);
    assert_eq!(gateway.usage("acme").await.unwrap(), 1_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_past_warn_at_and_into_overage_is_admitted_with_warning() {
    let gateway = gateway_with_pro_tier(GatewayOptions::default()).await;
    gateway.create_tenant("acme", "pro").await.unwrap();

    let at_threshold = gateway.send(Some("acme"), 8_000).await.unwrap();
    assert_eq!(at_threshold.status(), StatusCode::OK);
    assert_eq!(
        header(&at_threshold, "x-quota-status"),
        "ok",
        "8000 is exactly 80 %"
    );

    let past_threshold = gateway.send(Some("acme"), 1).await.unwrap();
    assert_eq!(past_threshold.status(), StatusCode::OK);
    assert_eq!(header(&past_threshold, "x-quota-status"), "warning");

    let into_overage = gateway.send(Some("acme"), 3_999).await.unwrap();
    assert_eq!(into_overage.status(), StatusCode::OK);
    assert_eq!(header(&into_overage, "x-quota-status"), "warning");
    assert_eq!(header(&into_overage, "x-quota-used"), "12000");
    assert_eq!(header(&into_overage, "x-quota-remaining"), "0");
    assert_eq!(gateway.upstream.received("acme").bytes, 12_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_past_the_hard_limit_gets_429_and_changes_nothing() {
    let gateway = gateway_with_pro_tier(GatewayOptions::default()).await;
    gateway.create_tenant("acme", "pro").await.unwrap();
    assert_eq!(
        gateway.send(Some("acme"), 11_000).await.unwrap().status(),
        StatusCode::OK
    );
    let upstream_before = gateway.upstream.received("acme");

    let response = gateway.send(Some("acme"), 1_001).await.unwrap();

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    assert_eq!(header(&response, "x-quota-status"), "exceeded");
    let retry_after: i64 = header(&response, "retry-after").parse().unwrap();
    assert!(
        retry_after >= seconds_to_month_end() - 5,
        "retry-after {retry_after}"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(problem["violated-policies"], serde_json::json!(["monthly"]));
    assert_eq!(problem["tenant"], "acme");
    assert_eq!(problem["resource"], "request_bytes");
    assert_eq!(problem["limit"], 12_000);
    assert_eq!(problem["used"], 11_000);
    assert_eq!(problem["reset_after_s"].as_i64(), Some(retry_after));

    assert_eq!(
        gateway.upstream.received("acme"),
        upstream_before,
        "upstream saw nothing"
    );
    assert_eq!(
        gateway.usage("acme").await.unwrap(),
        11_000,
        "usage unchanged"
    );
    // What still fits is still admitted.
    let fits = gateway.send(Some("acme"), 1_000).await.unwrap();
    assert_eq!(fits.status(), StatusCode::OK);
    assert_eq!(gateway.usage("acme").await.unwrap(), 12_000);
    assert_eq!(
        gateway
            .envoy
            .stat("wasmcustom.tollgate.rejected")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_count_exactly_what_was_admitted_and_never_pass_the_hard_limit() {
    const CLIENTS: usize = 64;
    const WRITES: usize = 1_000;
    let gateway = Gateway::start(GatewayOptions {
        timeout_ms: 2_000, // a loaded two-core machine must not turn this into fail-open
        ..GatewayOptions::default()
    })
    .await
    .unwrap();
    // Sizes average ~2 KiB, so 1 000 writes offer ~2 MiB against a 1 MiB hard limit:
    // about half must be refused.
    gateway
        .create_monthly_bytes_tier("metered", 1_000_000, 48_576, 0.8)
        .await
        .unwrap();
    gateway.create_tenant("acme", "metered").await.unwrap();
    let hard = 1_048_576u64;

    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let http = http.clone();
        let url = gateway.envoy.url();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(client as u64);
            let (mut admitted, mut rejected, mut other) = (0u64, 0u64, 0u64);
            for _ in 0..WRITES / CLIENTS + usize::from(client < WRITES % CLIENTS) {
                let size = rng.usize(1..=4_096);
                let response = http
                    .post(format!("{url}/upload"))
                    .header("x-tenant-id", "acme")
                    .body(vec![b'x'; size])
                    .send()
                    .await
                    .expect("gateway answers");
                match response.status() {
                    StatusCode::OK if response.headers()["x-quota-status"] != "unknown" => {
                        admitted += size as u64
                    }
                    StatusCode::TOO_MANY_REQUESTS => rejected += 1,
                    _ => other += 1,
                }
            }
            (admitted, rejected, other)
        }));
    }
    let (mut admitted, mut rejected, mut other) = (0, 0, 0);
    for task in tasks {
        let (a, r, o) = task.await.unwrap();
        admitted += a;
        rejected += r;
        other += o;
    }

    assert_eq!(
        other, 0,
        "every write was either admitted with a decision or refused"
    );
    assert!(
        rejected > 0 && admitted > 0,
        "the load must straddle the limit"
    );
    let counted = gateway.usage("acme").await.unwrap();
    assert_eq!(counted, admitted, "counted usage == sum of admitted writes");
    assert_eq!(
        gateway.upstream.received("acme").bytes,
        admitted,
        "upstream got exactly those bytes"
    );
    assert!(counted <= hard, "{counted} passed the hard limit {hard}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_never_see_each_others_usage() {
    let gateway = gateway_with_pro_tier(GatewayOptions::default()).await;
    gateway.create_tenant("acme", "pro").await.unwrap();
    gateway.create_tenant("globex", "pro").await.unwrap();

    assert_eq!(
        gateway.send(Some("acme"), 11_500).await.unwrap().status(),
        StatusCode::OK
    );
    let globex = gateway.send(Some("globex"), 700).await.unwrap();

    assert_eq!(globex.status(), StatusCode::OK);
    assert_eq!(header(&globex, "x-quota-used"), "700");
    assert_eq!(header(&globex, "x-quota-status"), "ok");
    assert_eq!(gateway.usage("acme").await.unwrap(), 11_500);
    assert_eq!(gateway.usage("globex").await.unwrap(), 700);
    // acme at its limit does not stop globex, and globex's use does not count for acme.
    // Twice: the second refusal comes from the rejection every worker remembers, which
    // must answer for acme alone.
    for _ in 0..2 {
        let refused = gateway.send(Some("acme"), 501).await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&refused, "x-quota-used"), "11500");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(
            (&problem["tenant"], &problem["used"]),
            (&"acme".into(), &11_500.into())
        );
        assert!(!problem.to_string().contains("globex"), "{problem}");
    }
    assert_eq!(
        gateway
            .envoy
            .filter_stat("reject_cache_hits")
            .await
            .unwrap(),
        1
    );
    let globex = gateway.send(Some("globex"), 501).await.unwrap();
    assert_eq!(globex.status(), StatusCode::OK);
    assert_eq!(header(&globex, "x-quota-used"), "1201");
    assert_eq!(header(&globex, "x-quota-remaining"), "10799");
    assert_eq!(gateway.usage("acme").await.unwrap(), 11_500);
}

#[tokio::test(flavor = "multi_thread")]
async fn control_plane_down_applies_the_failure_mode_without_hanging_and_recovers() {
    let mut gateway = gateway_with_pro_tier(GatewayOptions::default()).await;
    gateway.create_tenant("acme", "pro").await.unwrap();
    let closed = gateway
        .another_envoy(GatewayOptions {
            failure_mode: "closed",
            ..GatewayOptions::default()
        })
        .await
        .unwrap();
    // A generous client timeout: the point is that the answer comes at all.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    gateway.control_plane.stop();

    let open = send(&http, &gateway.envoy, Some("acme"), 100)
        .await
        .expect("no hang (open)");
    assert_eq!(open.status(), StatusCode::OK);
    assert_eq!(header(&open, "x-quota-status"), "unknown");
    assert_eq!(
        gateway.upstream.received("acme").bytes,
        100,
        "failure mode open lets it through"
    );
    let refused = send(&http, &closed, Some("acme"), 100)
        .await
        .expect("no hang (closed)");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&refused, "content-type"), "application/problem+json");
    assert_eq!(
        gateway.upstream.received("acme").bytes,
        100,
        "failure mode closed keeps it out"
    );
    assert_eq!(
        gateway
            .envoy
            .stat("wasmcustom.tollgate.failed_open")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        closed
            .stat("wasmcustom.tollgate.failed_closed")
            .await
            .unwrap(),
        1
    );

    gateway.control_plane.restart().await.unwrap();

    eventually(Duration::from_secs(10), "decisions are back", || async {
        let response = send(&http, &closed, Some("acme"), 10).await;
        response.is_ok_and(|r| r.status() == StatusCode::OK && header(&r, "x-quota-status") == "ok")
    })
    .await
    .unwrap();
    let back = send(&http, &gateway.envoy, Some("acme"), 10).await.unwrap();
    assert_eq!(header(&back, "x-quota-status"), "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_without_tenant_is_401_and_counts_nothing() {
    let gateway = gateway_with_pro_tier(GatewayOptions::default()).await;
    gateway.create_tenant("acme", "pro").await.unwrap();

    let response = gateway.send(None, 100).await.unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 401);
    assert!(problem["detail"].as_str().unwrap().contains("x-tenant-id"));
    assert_eq!(
        gateway.upstream.received("").requests,
        0,
        "upstream saw nothing"
    );
    assert_eq!(
        gateway
            .envoy
            .stat("wasmcustom.tollgate.callouts")
            .await
            .unwrap(),
        0
    );
    assert_eq!(gateway.usage("acme").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tenant_is_403_and_never_reaches_the_upstream() {
    let gateway = gateway_with_pro_tier(GatewayOptions::default()).await;

    let response = gateway.send(Some("stranger"), 100).await.unwrap();

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    assert_eq!(gateway.upstream.received("stranger").requests, 0);
}
