//! When something is wrong: a control plane that never answers, one with no healthy
//! host, a Redis too slow for the deadline, answers that come after it, a gateway
//! without the decision secret, and a filter configuration that Envoy must refuse.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tollgate_e2e::envoy::{Envoy, EnvoySettings};
use tollgate_e2e::hanging::Hanging;
use tollgate_e2e::process::{eventually, free_port};
use tollgate_e2e::redis::Redis;
use tollgate_e2e::response::{header, problem};
use tollgate_e2e::slow::Slow;
use tollgate_e2e::{ControlPlaneTarget, GatewayOptions, Template};

use super::{get, http, own_usage, per_month, start, start_with_tier, stat, upstream_status};

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_that_never_answers_meets_the_filters_deadline_and_failure_mode() {
    let hanging = Hanging::start().await.unwrap();
    let options = |failure_mode| GatewayOptions {
        failure_mode,
        timeout_ms: 300,
        control_plane: ControlPlaneTarget::Port(hanging.port),
        ..GatewayOptions::default()
    };
    let gateway = start(options("open")).await;
    let closed = gateway.another_envoy(options("closed")).await.unwrap();
    let upload = |envoy: &Envoy| {
        let request = http()
            .post(format!("{}/upload", envoy.url()))
            .header("x-tenant-id", "acme")
            .body(vec![b'x'; 100]);
        async move {
            let started = Instant::now();
            let response = request.send().await.expect("an answer, not a hang");
            (response, started.elapsed())
        }
    };

    let (open, took) = upload(&gateway.envoy).await;
    assert_eq!(open.status(), StatusCode::OK);
    assert_eq!(header(&open, "x-quota-status"), "unknown");
    // The filter's deadline (300 ms) answers, well before Envoy's own callout timeout
    // (the deadline + 1 s, a backstop).
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_millis(1_200),
        "answered after {took:?}"
    );
    assert_eq!(gateway.upstream.received("acme").bytes, 100);
    assert_eq!(
        upstream_status(&gateway, "acme").as_deref(),
        Some("unknown")
    );
    assert!(
        hanging.accepted() >= 1,
        "the callout went to the hanging server"
    );
    assert_eq!(stat(&gateway.envoy, "callout_timeouts").await, 1);
    assert_eq!(stat(&gateway.envoy, "failed_open").await, 1);

    let (refused, took) = upload(&closed).await;
    assert!(
        took < Duration::from_millis(1_200),
        "answered after {took:?}"
    );
    let body = problem(refused, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body["detail"].is_string(), "{body}");
    assert_eq!(gateway.upstream.received("acme").requests, 1, "kept out");
    assert_eq!(stat(&closed, "callout_timeouts").await, 1);
    assert_eq!(stat(&closed, "failed_closed").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_cluster_without_a_healthy_host_does_not_hang_requests() {
    let hanging = Hanging::start().await.unwrap();
    let gateway = start(GatewayOptions {
        failure_mode: "closed",
        timeout_ms: 300,
        control_plane: ControlPlaneTarget::FailingHealthCheck(hanging.port),
        ..GatewayOptions::default()
    })
    .await;
    let empty = gateway
        .another_envoy(GatewayOptions {
            failure_mode: "open",
            timeout_ms: 300,
            control_plane: ControlPlaneTarget::NoEndpoints,
            ..GatewayOptions::default()
        })
        .await
        .unwrap();

    for (envoy, expected) in [
        (&gateway.envoy, StatusCode::SERVICE_UNAVAILABLE),
        (&empty, StatusCode::OK),
    ] {
        let started = Instant::now();
        let response = get(envoy, "/api", &[("x-tenant-id", "acme")]).await;
        let took = started.elapsed();
        assert_eq!(response.status(), expected);
        assert!(took < Duration::from_secs(3), "answered after {took:?}");
        // Envoy 1.40 refuses such a callout at once (`dispatch_http_call` fails): it is
        // not queued, so the answer comes before the deadline.
        assert_eq!(stat(envoy, "callout_failures").await, 1);
        assert_eq!(stat(envoy, "callout_timeouts").await, 0);
    }
    assert_eq!(stat(&gateway.envoy, "failed_closed").await, 1);
    assert_eq!(stat(&empty, "failed_open").await, 1);
    assert_eq!(
        gateway.upstream.received("acme").requests,
        1,
        "only the open one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_refused_because_redis_was_too_slow_is_never_counted() {
    let options = GatewayOptions {
        failure_mode: "closed",
        timeout_ms: 300,
        ..GatewayOptions::default()
    };
    let gateway = start_with_tier(options, "metered", per_month("requests", 100), &["acme"]).await;
    let request = || get(&gateway.envoy, "/api", &[("x-tenant-id", "acme")]);
    assert_eq!(request().await.status(), StatusCode::OK);

    // Redis stalls for longer than the filter waits; the check it then runs comes after
    // the control plane's deadline.
    let pause = Duration::from_millis(1_500);
    gateway.redis.pause(pause).await.unwrap();
    let paused = Instant::now();
    let refused = request().await;
    let took = paused.elapsed();
    assert!(
        took < Duration::from_millis(1_000),
        "answered after {took:?}"
    );
    problem(refused, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(gateway.upstream.received("acme").requests, 1, "kept out");

    // Once Redis runs the stalled check, it counts nothing: usage is what was admitted.
    tokio::time::sleep(pause.saturating_sub(paused.elapsed()) + Duration::from_millis(300)).await;
    assert_eq!(own_usage(&gateway, "acme", "requests", "month").await, 1);
    assert_eq!(request().await.status(), StatusCode::OK);
    assert_eq!(own_usage(&gateway, "acme", "requests", "month").await, 2);
    assert_eq!(gateway.upstream.received("acme").requests, 2);
    assert_eq!(stat(&gateway.envoy, "failed_closed").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_answered_after_the_deadline_is_taken_back_from_redis_or_from_postgres() {
    // Every callout reaches the control plane 500 ms late: it counts the check in time
    // for its own deadline, but the filter has given up (300 ms) and failed closed.
    let slow = Slow::start(Duration::from_millis(500)).await.unwrap();
    let options = GatewayOptions {
        failure_mode: "closed",
        timeout_ms: 300,
        control_plane: ControlPlaneTarget::Port(slow.port),
        durable_redis: true,
        ..GatewayOptions::default()
    };
    let mut gateway =
        start_with_tier(options, "metered", per_month("requests", 100), &["acme"]).await;
    slow.forward_to(gateway.control_plane.decision_port);
    let direct = gateway
        .another_envoy(GatewayOptions {
            failure_mode: "closed",
            ..GatewayOptions::default()
        })
        .await
        .unwrap();
    let late = || get(&gateway.envoy, "/api", &[("x-tenant-id", "acme")]);
    let metric = |name: &'static str, labels: &'static str| {
        let control_plane = &gateway.control_plane;
        async move { control_plane.metric(name, labels).await.unwrap() as u64 }
    };
    let taken_back = || metric("tollgate_check_refunds_units_total", "");
    // A release goes out on the filter's next tick, and is 500 ms late too.
    const WAIT: Duration = Duration::from_secs(10);

    // Counted in Redis, then taken back there by the filter's release.
    problem(late().await, StatusCode::SERVICE_UNAVAILABLE).await;
    eventually(WAIT, "the check taken back from Redis", || async {
        taken_back().await == 1
    })
    .await
    .unwrap();
    assert_eq!(own_usage(&gateway, "acme", "requests", "month").await, 0);

    // With Redis stopped the control plane counts in PostgreSQL; the releases find
    // those checks there.
    let port = gateway.redis.port;
    gateway.redis.stop();
    for _ in 0..3 {
        problem(late().await, StatusCode::SERVICE_UNAVAILABLE).await;
    }
    // The last check reaches the control plane 200 ms after its 503.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let counted_in_postgres = metric(
        "tollgate_fallback_calls_total",
        r#"op="check",outcome="admitted""#,
    )
    .await;
    assert!(
        counted_in_postgres >= 1,
        "the outage was decided from PostgreSQL"
    );
    eventually(WAIT, "the checks taken back from PostgreSQL", || async {
        metric(
            "tollgate_fallback_calls_total",
            r#"op="cancel",outcome="refunded""#,
        )
        .await
            == counted_in_postgres
    })
    .await
    .unwrap();

    // Once Redis is back, what PostgreSQL counted reaches it: nothing, as nothing passed.
    gateway.redis = Redis::start_durable_on(gateway.dir.path(), port)
        .await
        .unwrap();
    assert_eq!(gateway.upstream.received("acme").requests, 0, "kept out");
    let admitted = get(&direct, "/api", &[("x-tenant-id", "acme")]).await;
    assert_eq!(admitted.status(), StatusCode::OK);
    gateway
        .wait_usage("acme", "requests", "month", 1)
        .await
        .unwrap();
    // Reconciling (every 500 ms) has carried what PostgreSQL counted: nothing is left.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(own_usage(&gateway, "acme", "requests", "month").await, 1);
    assert_eq!(gateway.upstream.received("acme").requests, 1);
    assert_eq!(stat(&gateway.envoy, "failed_closed").await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_without_the_decision_secret_cannot_spend_quota() {
    let options = GatewayOptions {
        failure_mode: "closed",
        ..GatewayOptions::default()
    };
    let gateway = start_with_tier(options, "metered", per_month("requests", 100), &["acme"]).await;
    let impostor = gateway
        .another_envoy(GatewayOptions {
            failure_mode: "closed",
            filter: json!({"control_plane": {"token": "guessed-secret"}}),
            ..GatewayOptions::default()
        })
        .await
        .unwrap();
    let refused = get(&impostor, "/api", &[("x-tenant-id", "acme")]).await;
    problem(refused, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(stat(&impostor, "callout_failures").await, 1);
    // Nor can anyone who reaches the decision listener without the secret.
    let check = json!({"tenant": "acme", "amounts": {"requests": 1}});
    let url = format!("{}/v1/check", gateway.control_plane.decision_url());
    for token in [None, Some("guessed-secret")] {
        let mut request = http().post(&url).json(&check);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        problem(request.send().await.unwrap(), StatusCode::UNAUTHORIZED).await;
    }
    // The admin listener does not serve the decision API at all.
    let admin = format!("{}/v1/check", gateway.control_plane.url());
    let reply = http().post(&admin).json(&check).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    assert_eq!(own_usage(&gateway, "acme", "requests", "month").await, 0);

    // The gateway that has the secret is served.
    let served = get(&gateway.envoy, "/api", &[("x-tenant-id", "acme")]).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(own_usage(&gateway, "acme", "requests", "month").await, 1);
    assert_eq!(gateway.upstream.received("acme").requests, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn envoy_refuses_an_invalid_filter_configuration_and_logs_the_field() {
    // Nothing needs to run behind it: Envoy must stop at the filter's `on_configure`.
    let dir = tempfile::tempdir().unwrap();
    let cluster = "tollgate_control_plane";
    let cases = [
        (
            json!({"control_plane": {"cluster": cluster, "timeout_ms": 0}}),
            "invalid filter configuration: control_plane.timeout_ms",
        ),
        (
            json!({"control_plane": {"cluster": cluster, "timeout_ms": 200}, "failure": "open"}),
            "invalid filter configuration: unknown field `failure`",
        ),
    ];
    for (filter_config, error) in cases {
        let settings = EnvoySettings {
            template: Template::Gateway,
            upstream_port: free_port().unwrap(),
            control_plane_ports: vec![free_port().unwrap()],
            filter_config,
            extra_clusters: String::new(),
            stream_idle_timeout: Duration::from_secs(60),
        };
        let config = &settings.filter_config;
        // What `scripts/test.sh` runs on shipped configs, and what a deploy should run.
        let validated = Envoy::validate(dir.path(), &settings).await.unwrap();
        // A real start: Envoy 1.40 exits with 1 before any listener opens, even with
        // `failure_policy: FAIL_OPEN` (it covers a VM that fails later; a plugin that
        // fails to load is fail-closed).
        let started =
            Envoy::start_expecting_refusal(dir.path(), &settings, Duration::from_secs(30))
                .await
                .unwrap();
        for (how, exit) in [("validate", &validated), ("start", &started)] {
            assert_eq!(
                exit.status.and_then(|s| s.code()),
                Some(1),
                "{how} {config}: {exit:?}"
            );
            assert!(!exit.listened, "{how} {config}: ran unprotected");
            assert!(exit.log.contains(error), "{how} {config}: {}", exit.log);
            assert!(
                exit.log.contains("Unable to create Wasm plugin tollgate"),
                "{how} {config}: {}",
                exit.log
            );
        }
    }
}
