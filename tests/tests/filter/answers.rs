//! Which requests count and how they are answered: excluded paths and methods, the
//! header options, shadow mode, the reject cache, and the filter's stats.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tollgate_e2e::response::{has_header, header, quota_exceeded};
use tollgate_e2e::GatewayOptions;

use super::{
    get, http, own_usage, per_month, start_with_bytes_tier, start_with_tier, stat, upstream_status,
    with_filter,
};

/// Every stat the filter defines at start-up (`wasmcustom.tollgate.<name>`).
const STATS: [&str; 25] = [
    "allowed",
    "warned",
    "rejected",
    "shadow_rejected",
    "reject_cache_hits",
    "callouts",
    "callout_failures",
    "callout_timeouts",
    "failed_open",
    "failed_closed",
    "tenant_missing",
    "tenant_invalid",
    "tenant_unknown",
    "settlements",
    "settlement_failures",
    "budget_hits",
    "leases",
    "budget_waits",
    "control_plane_misconfigured",
    "quota_views",
    "budget_contention",
    "leases_recovered",
    "returns_dropped",
    "unknown_models",
    "stream_usage_added",
];

#[tokio::test(flavor = "multi_thread")]
async fn excluded_paths_and_methods_are_not_counted_and_get_no_quota_headers() {
    let gateway = start_with_tier(
        GatewayOptions::default(),
        "basic",
        per_month("requests", 100),
        &["acme"],
    )
    .await;
    let envoy = &gateway.envoy;
    let acme = [("x-tenant-id", "acme")];

    for path in ["/health", "/ready", "/metrics", "/health/deep"] {
        let response = get(envoy, path, &acme).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        for name in [
            "x-quota-status",
            "x-quota-limit",
            "ratelimit",
            "ratelimit-policy",
        ] {
            assert!(!has_header(&response, name), "{path} got {name}");
        }
    }
    // Not even a missing tenant matters there.
    assert_eq!(get(envoy, "/health", &[]).await.status(), StatusCode::OK);
    assert_eq!(gateway.upstream.received("acme").requests, 4);
    assert_eq!(
        upstream_status(&gateway, "acme"),
        None,
        "uncounted requests carry no status to the upstream"
    );
    assert_eq!(stat(envoy, "callouts").await, 0);
    assert_eq!(own_usage(&gateway, "acme", "requests", "month").await, 0);
    let counted = get(envoy, "/api/x", &acme).await;
    assert_eq!(header(&counted, "x-quota-used"), "1");

    // Methods and prefixes of one's own; other header names.
    let custom = gateway
        .another_envoy(with_filter(json!({
            "match": {"methods": ["POST", "GET"], "exclude_methods": ["GET"],
                      "include_paths": ["/api"], "exclude_paths": ["/api/public"]},
            "headers": {"prefix": "x-ratelimit-", "draft": false,
                        "cache_quota_names": true, "upstream_status": "x-upstream-quota"}
        })))
        .await
        .unwrap();
    let post = |path: &'static str| {
        let url = format!("{}{path}", custom.url());
        async move {
            http()
                .post(url)
                .header("x-tenant-id", "acme")
                .body("hi")
                .send()
                .await
                .unwrap()
        }
    };
    for response in [
        get(&custom, "/api/x", &acme).await,
        post("/api/public/x").await,
        post("/elsewhere").await,
    ] {
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!has_header(&response, "x-ratelimit-limit"));
    }
    assert_eq!(stat(&custom, "callouts").await, 0);
    let counted = post("/api/x").await;
    assert_eq!(counted.status(), StatusCode::OK);
    assert_eq!(header(&counted, "x-ratelimit-used"), "2");
    assert_eq!(header(&counted, "x-cache-quota-used"), "2");
    assert_eq!(header(&counted, "x-cache-quota-status"), "ok");
    assert!(!has_header(&counted, "x-quota-used"));
    assert!(
        !has_header(&counted, "ratelimit-policy"),
        "draft headers off"
    );
    assert_eq!(
        gateway
            .upstream
            .last_header("acme", "x-upstream-quota")
            .as_deref(),
        Some("ok")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shadow_mode_never_rejects_but_counts_past_the_limit() {
    let gateway = start_with_tier(
        with_filter(json!({"shadow": true})),
        "small",
        per_month("requests", 2),
        &["acme"],
    )
    .await;
    let envoy = &gateway.envoy;

    let mut statuses = Vec::new();
    for n in 1..=4 {
        let response = get(envoy, "/api", &[("x-tenant-id", "acme")]).await;
        assert_eq!(response.status(), StatusCode::OK, "request {n}");
        statuses.push(header(&response, "x-quota-status").to_string());
    }
    // Past the hard limit: admitted, with a warning for the client and the upstream.
    assert_eq!(statuses[2..], ["warning", "warning"], "{statuses:?}");
    assert_eq!(
        upstream_status(&gateway, "acme").as_deref(),
        Some("warning")
    );
    assert_eq!(gateway.upstream.received("acme").requests, 4);
    assert_eq!(
        own_usage(&gateway, "acme", "requests", "month").await,
        4,
        "counted past the hard limit of 2"
    );
    assert_eq!(stat(envoy, "shadow_rejected").await, 2);
    assert_eq!(stat(envoy, "rejected").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_tenant_is_answered_from_the_reject_cache_without_callouts() {
    let gateway = start_with_tier(
        GatewayOptions::default(),
        "one",
        per_month("requests", 1),
        &["acme", "globex"],
    )
    .await;
    let envoy = &gateway.envoy;
    // A new connection per request, so both Envoy workers get some: the cache is
    // shared data, visible to every worker.
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let send = |tenant: &'static str| {
        let request = fresh
            .get(format!("{}/api", envoy.url()))
            .header("x-tenant-id", tenant);
        async move { request.send().await.unwrap() }
    };

    assert_eq!(send("acme").await.status(), StatusCode::OK);
    quota_exceeded(send("acme").await, "requests").await;
    let callouts = stat(envoy, "callouts").await;
    assert_eq!(callouts, 2);

    for _ in 0..6 {
        let body = quota_exceeded(send("acme").await, "requests").await;
        assert_eq!(body["tenant"], "acme");
    }
    assert_eq!(stat(envoy, "callouts").await, callouts, "no callout");
    assert_eq!(stat(envoy, "reject_cache_hits").await, 6);
    assert_eq!(stat(envoy, "rejected").await, 7);
    assert_eq!(gateway.upstream.received("acme").requests, 1);
    // Another tenant is still asked about.
    assert_eq!(send("globex").await.status(), StatusCode::OK);
    assert_eq!(stat(envoy, "callouts").await, callouts + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_filter_stat_exists_from_the_start_and_unknown_names_are_errors() {
    let gateway = start_with_bytes_tier("pro", 10_000).await;
    let envoy = &gateway.envoy;

    for name in STATS {
        assert_eq!(stat(envoy, name).await, 0, "{name}");
    }
    let error = envoy.filter_stat("no_such_stat").await.unwrap_err();
    assert!(error.to_string().contains("no_such_stat"), "{error}");
    assert!(envoy.stat("wasmcustom.tollgate.allowed ").await.is_err());

    assert_eq!(
        gateway.send(Some("acme"), 10).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(stat(envoy, "allowed").await, 1);
    assert_eq!(stat(envoy, "callouts").await, 1);
    // In Prometheus form the name is bare: no `wasmcustom` prefix, dots as underscores.
    let prometheus = envoy.prometheus().await.unwrap();
    for name in STATS {
        let sample = prometheus
            .lines()
            .find(|line| line.starts_with(&format!("tollgate_{name}{{")))
            .unwrap_or_else(|| panic!("no tollgate_{name} in /stats/prometheus"));
        let expected = if matches!(name, "allowed" | "callouts") {
            1
        } else {
            0
        };
        assert!(sample.ends_with(&format!(" {expected}")), "{sample}");
    }
}
