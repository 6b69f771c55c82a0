//! The quota model end to end: real Envoy with the real `.wasm`, real `tollgate serve`
//! processes, real Redis (single and Cluster) and PostgreSQL — including restarting
//! Redis empty and stopping PostgreSQL under the running gateway.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tollgate_e2e::control_plane::{ControlPlane, ADMIN_TOKEN, DECISION_TOKEN};
use tollgate_e2e::postgres::Postgres;
use tollgate_e2e::redis::Redis;
use tollgate_e2e::redis_cluster::RedisCluster;
use tollgate_e2e::response::header;
use tollgate_e2e::{eventually, Gateway, GatewayOptions};
use tollgate_protocol::check::DEADLINE_HEADER;

async fn post(gateway: &Gateway, path: &str, body: Value) {
    gateway.admin(Method::POST, path, Some(body)).await.unwrap();
}

/// Waits, if needed, so that the next few seconds stay within one UTC minute.
async fn at_the_start_of_a_minute() {
    let second = Utc::now().second();
    if second > 45 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_minute_request_limit_and_a_monthly_byte_limit_on_one_tier_both_hold() {
    let gateway = Gateway::start(GatewayOptions::default()).await.unwrap();
    post(
        &gateway,
        "/tiers",
        json!({"name": "metered", "limits": [
            {"resource": "requests", "period": "minute", "quota": 3},
            {"resource": "request_bytes", "period": "month", "quota": 5000},
        ]}),
    )
    .await;
    post(
        &gateway,
        "/tenants",
        json!({"id": "acme", "tier": "metered"}),
    )
    .await;
    post(
        &gateway,
        "/tenants",
        json!({"id": "globex", "tier": "metered"}),
    )
    .await;
    at_the_start_of_a_minute().await;

    // Requests without a body count against the request limit too.
    for _ in 0..3 {
        assert_eq!(
            gateway.send(Some("acme"), 0).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let fourth = gateway.send(Some("acme"), 0).await.unwrap();
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&fourth, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(
        header(&fourth, "ratelimit-policy"),
        r#""per-minute";q=3;qu="requests";w=60"#
    );
    assert_eq!(gateway.upstream.received("acme").requests, 3);

    // The byte limit holds on its own: 4000 bytes fit, 1001 more do not.
    assert_eq!(
        gateway.send(Some("globex"), 4_000).await.unwrap().status(),
        StatusCode::OK
    );
    let over = gateway.send(Some("globex"), 1_001).await.unwrap();
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&over, "ratelimit-policy"),
        r#""monthly";q=5000;qu="content-bytes""#
    );
    // Neither the rejected bytes nor the rejected request were counted.
    assert_eq!(
        gateway
            .usage_at("globex", "globex", "request_bytes", "month")
            .await
            .unwrap(),
        4_000
    );
    assert_eq!(
        gateway
            .usage_at("globex", "globex", "requests", "minute")
            .await
            .unwrap(),
        1
    );
}

/// org (1000 requests/month, warns at 10 %) → team (5000 bytes/month) → users
/// (100 requests and 1 MB a month each).
async fn organization(gateway: &Gateway) {
    post(
        gateway,
        "/tiers",
        json!({"name": "org", "limits": [
        {"resource": "requests", "period": "month", "quota": 1000, "warn_at": 0.1}]}),
    )
    .await;
    post(
        gateway,
        "/tiers",
        json!({"name": "team", "limits": [
        {"resource": "request_bytes", "period": "month", "quota": 5000}]}),
    )
    .await;
    post(
        gateway,
        "/tiers",
        json!({"name": "user", "limits": [
        {"resource": "requests", "period": "month", "quota": 100},
        {"resource": "request_bytes", "period": "month", "quota": 1000000}]}),
    )
    .await;
    post(
        gateway,
        "/tenants",
        json!({"id": "acme", "tier": "org", "overcommit": 10}),
    )
    .await;
    post(
        gateway,
        "/tenants",
        json!({"id": "acme/team", "parent_id": "acme", "tier": "team", "overcommit": 1000}),
    )
    .await;
    for user in ["acme/team/alice", "acme/team/bob"] {
        post(
            gateway,
            "/tenants",
            json!({"id": user, "parent_id": "acme/team", "tier": "user"}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_at_its_hard_limit_rejects_a_user_with_headroom_and_charges_nobody() {
    let gateway = Gateway::start(GatewayOptions::default()).await.unwrap();
    organization(&gateway).await;
    assert_eq!(
        gateway
            .send(Some("acme/team/alice"), 5_000)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let bob = gateway.send(Some("acme/team/bob"), 10).await.unwrap();
    assert_eq!(bob.status(), StatusCode::TOO_MANY_REQUESTS);
    let problem: Value = bob.json().await.unwrap();
    assert_eq!(problem["tenant"], "acme/team/bob");
    assert_eq!(
        (problem["limit"].clone(), problem["used"].clone()),
        (json!(5000), json!(5000))
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("parent acme/team"),
        "{problem}"
    );
    assert_eq!(gateway.upstream.received("acme/team/bob").requests, 0);
    for (level, resource, used) in [
        ("acme/team/bob", "requests", 0),
        ("acme/team/bob", "request_bytes", 0),
        ("acme/team", "request_bytes", 5_000),
        ("acme", "requests", 1),
    ] {
        let counted = gateway
            .usage_at("acme/team/bob", level, resource, "month")
            .await
            .unwrap();
        assert_eq!(counted, used, "{level} {resource}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organization_level_warning_shows_on_a_users_response() {
    let gateway = Gateway::start(GatewayOptions::default()).await.unwrap();
    organization(&gateway).await;
    // The org warns past 100 requests; alice alone stays far from her own 100.
    post(
        &gateway,
        "/tenants",
        json!({"id": "acme/other", "parent_id": "acme"}),
    )
    .await;
    post(
        &gateway,
        "/limits",
        json!({"tenant": "acme/other", "resource": "requests", "period": "month", "quota": 1000}),
    )
    .await;
    for _ in 0..100 {
        assert_eq!(
            gateway.send(Some("acme/other"), 0).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let alice = gateway.send(Some("acme/team/alice"), 1).await.unwrap();
    assert_eq!(alice.status(), StatusCode::OK);
    assert_eq!(header(&alice, "x-quota-status"), "warning");
    assert_eq!(
        header(&alice, "x-quota-limit"),
        "1000",
        "the org's policy binds"
    );
    assert_eq!(header(&alice, "x-quota-used"), "101");
}

/// Hammers `/v1/check` of two control planes at once and proves counted usage equals
/// what was admitted, at both levels of a tree, and never passes the hard limit.
async fn two_instances_count_exactly_together(one: &ControlPlane, two: &ControlPlane) {
    const HARD: u64 = 300_000;
    let http = reqwest::Client::new();
    let admin = |path: &str, body: Value| {
        http.post(format!("{}/admin/v1{path}", one.url()))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    assert!(admin(
        "/tiers",
        json!({"name": "org", "limits": [
        {"resource": "request_bytes", "period": "month", "quota": HARD}]})
    )
    .await
    .unwrap()
    .status()
    .is_success());
    assert!(admin(
        "/tiers",
        json!({"name": "user", "limits": [
        {"resource": "request_bytes", "period": "month", "quota": 200_000}]})
    )
    .await
    .unwrap()
    .status()
    .is_success());
    assert!(admin(
        "/tenants",
        json!({"id": "org", "tier": "org", "overcommit": 10})
    )
    .await
    .unwrap()
    .status()
    .is_success());
    for user in 0..4 {
        let body = json!({"id": format!("org/u{user}"), "parent_id": "org", "tier": "user"});
        assert!(admin("/tenants", body).await.unwrap().status().is_success());
    }
    let urls = [one.decision_url(), two.decision_url()];
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let http = http.clone();
        let url = urls[(task % 2) as usize].clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(task);
            let tenant = format!("org/u{}", task % 4);
            let mut admitted = 0u64;
            let mut rejected = 0u64;
            for _ in 0..40 {
                let amount = rng.u64(1..=1_000) * rng.u64(1..=40);
                let reply: Value = http
                    .post(format!("{url}/v1/check"))
                    .bearer_auth(DECISION_TOKEN)
                    // Exactness is what is tested, not speed: 32 callers on two cores
                    // can take longer than the default 200 ms to a decision.
                    .header(DEADLINE_HEADER, "5000")
                    .json(&json!({"tenant": tenant, "amounts": {"request_bytes": amount}}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                match reply["decision"].as_str() {
                    Some("allow" | "warn") => admitted += amount,
                    Some("reject") => rejected += 1,
                    other => panic!("no decision: {other:?} in {reply}"),
                }
            }
            (tenant, admitted, rejected)
        }));
    }
    let mut per_user = std::collections::BTreeMap::new();
    let mut rejected = 0;
    for task in tasks {
        let (tenant, a, r) = task.await.unwrap();
        *per_user.entry(tenant).or_insert(0u64) += a;
        rejected += r;
    }
    assert!(rejected > 0, "the load must reach the limit");
    let usage = |tenant: String| {
        let http = http.clone();
        let url = two.url();
        async move {
            let body: Value = http
                .get(format!(
                    "{url}/admin/v1/tenants/{}/usage",
                    tenant.replace('/', "%2F")
                ))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["usage"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| {
                    (
                        row["tenant"].as_str().unwrap().to_string(),
                        row["used"].as_u64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let mut total = 0;
    for (tenant, admitted) in &per_user {
        let rows = usage(tenant.clone()).await;
        assert_eq!(
            rows[0],
            (tenant.clone(), *admitted),
            "{tenant}: counted == admitted"
        );
        total += admitted;
    }
    let org = usage("org".into()).await;
    assert_eq!(
        org[0],
        ("org".to_string(), total),
        "the org counted exactly its users' sum"
    );
    assert!(total <= HARD, "{total} passed the hard limit");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_control_planes_sharing_redis_count_exactly_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, postgres) =
        tokio::try_join!(Redis::start(dir.path()), Postgres::start(dir.path())).unwrap();
    let one = ControlPlane::start(dir.path(), &postgres.url(), &redis.url())
        .await
        .unwrap();
    let two = ControlPlane::start(dir.path(), &postgres.url(), &redis.url())
        .await
        .unwrap();
    one.wait_ready(Duration::from_secs(30)).await.unwrap();
    two.wait_ready(Duration::from_secs(30)).await.unwrap();
    two_instances_count_exactly_together(&one, &two).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_control_planes_on_a_redis_cluster_count_exactly_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, postgres) =
        tokio::try_join!(RedisCluster::start(dir.path()), Postgres::start(dir.path())).unwrap();
    let nodes = cluster.url_list();
    let one = ControlPlane::start_with(dir.path(), &postgres.url(), &nodes, &["--redis-cluster"])
        .await
        .unwrap();
    let two = ControlPlane::start_with(dir.path(), &postgres.url(), &nodes, &["--redis-cluster"])
        .await
        .unwrap();
    one.wait_ready(Duration::from_secs(30)).await.unwrap();
    two.wait_ready(Duration::from_secs(30)).await.unwrap();
    two_instances_count_exactly_together(&one, &two).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_empty_mid_month_continues_from_the_persisted_usage() {
    let mut gateway = Gateway::start(GatewayOptions::default()).await.unwrap();
    gateway
        .create_monthly_bytes_tier("metered", 1_000_000, 0, 0.8)
        .await
        .unwrap();
    gateway.create_tenant("acme", "metered").await.unwrap();
    assert_eq!(
        gateway.send(Some("acme"), 999_993).await.unwrap().status(),
        StatusCode::OK
    );
    // Wait until the usage is persisted (every 200 ms in tests).
    eventually(Duration::from_secs(10), "usage persisted", || async {
        let history = gateway
            .admin(
                Method::GET,
                "/tenants/acme/usage/history?resource=request_bytes",
                None,
            )
            .await
            .unwrap();
        history["items"][0]["used"] == 999_993
    })
    .await
    .unwrap();

    let port = gateway.redis.port;
    gateway.redis.stop();
    gateway.redis = Redis::start_on(gateway.dir.path(), port).await.unwrap();
    gateway
        .control_plane
        .wait_ready(Duration::from_secs(15))
        .await
        .unwrap();

    let over = gateway.send(Some("acme"), 8).await.unwrap();
    assert_eq!(
        over.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "not back at zero"
    );
    assert_eq!(header(&over, "x-quota-used"), "999993");
    let fits = gateway.send(Some("acme"), 7).await.unwrap();
    assert_eq!(fits.status(), StatusCode::OK);
    assert_eq!(gateway.usage("acme").await.unwrap(), 1_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_postgres_stopped_checks_decide_from_cached_definitions_and_admin_writes_answer_503() {
    let mut gateway = Gateway::start(GatewayOptions {
        // Definitions go stale quickly, so the outage outlasts their freshness.
        control_plane_args: vec!["--definitions-ttl-ms", "300"],
        ..GatewayOptions::default()
    })
    .await
    .unwrap();
    gateway
        .create_monthly_bytes_tier("pro", 10_000, 0, 0.8)
        .await
        .unwrap();
    gateway.create_tenant("acme", "pro").await.unwrap();
    assert_eq!(
        gateway.send(Some("acme"), 1_000).await.unwrap().status(),
        StatusCode::OK
    );

    gateway.postgres.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let response = gateway.send(Some("acme"), 1_000).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "x-quota-status"),
            "ok",
            "decided, not failed open: {}",
            gateway.control_plane.log()
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "took {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let over = gateway.send(Some("acme"), 5_000).await.unwrap();
    assert_eq!(
        over.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "still enforced"
    );

    let (status, problem) = gateway
        .admin_reply(
            Method::POST,
            "/tenants",
            Some(json!({"id": "globex", "tier": "pro"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["code"], "unavailable");
    assert_eq!(problem["detail"], "postgres is unavailable");
    let ready: Value = reqwest::get(format!("{}/ready", gateway.control_plane.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (ready["status"].clone(), ready["postgres"].clone()),
        (json!("ok"), json!("down"))
    );
    let age = (gateway.control_plane)
        .metric("tollgate_definitions_age_seconds", "")
        .await
        .unwrap();
    assert!(age > 0.3, "the stale definitions' age is exported: {age}");

    gateway.postgres.restart().await.unwrap();
    eventually(
        Duration::from_secs(15),
        "admin writes work again",
        || async {
            gateway
                .admin_reply(
                    Method::POST,
                    "/tenants",
                    Some(json!({"id": "globex", "tier": "pro"})),
                )
                .await
                .is_ok_and(|(status, _)| status == StatusCode::CREATED)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        gateway.send(Some("globex"), 10).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(gateway.usage("acme").await.unwrap(), 6_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_postgres_stopped_a_tenant_this_control_plane_never_saw_is_decided_from_its_directory()
{
    let dir = tempfile::tempdir().unwrap();
    let (redis, mut postgres) =
        tokio::try_join!(Redis::start(dir.path()), Postgres::start(dir.path())).unwrap();
    let one = ControlPlane::start(dir.path(), &postgres.url(), &redis.url())
        .await
        .unwrap();
    let two = ControlPlane::start(dir.path(), &postgres.url(), &redis.url())
        .await
        .unwrap();
    one.wait_ready(Duration::from_secs(30)).await.unwrap();
    two.wait_ready(Duration::from_secs(30)).await.unwrap();
    let http = reqwest::Client::new();
    let admin = |method: Method, path: &str, body: Option<Value>| {
        let request = http
            .request(method, format!("{}/admin/v1{path}", one.url()))
            .bearer_auth(ADMIN_TOKEN);
        match body {
            Some(body) => request.json(&body).send(),
            None => request.send(),
        }
    };
    let tier = json!({"name": "pro", "limits": [
        {"resource": "requests", "period": "month", "quota": 1000}]});
    for (path, body) in [
        ("/tiers", tier),
        (
            "/tenants",
            json!({"id": "acme", "tier": "pro", "overcommit": 10}),
        ),
        (
            "/tenants",
            json!({"id": "acme/web", "parent_id": "acme", "tier": "pro"}),
        ),
    ] {
        let reply = admin(Method::POST, path, Some(body)).await.unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
    }
    let check = |url: String, tenant: &str| {
        http.post(format!("{url}/v1/check"))
            .bearer_auth(DECISION_TOKEN)
            .header(DEADLINE_HEADER, "1000")
            .json(&json!({"tenant": tenant, "amounts": {"requests": 1}}))
            .send()
    };
    // Counted by the other control plane (its counters are in Redis); the second one
    // learns of the tenants only through the invalidation bus.
    let counted = check(one.decision_url(), "acme/web").await.unwrap();
    assert_eq!(counted.status(), StatusCode::OK);
    eventually(
        Duration::from_secs(10),
        "the directory has both",
        || async { two.metric("tollgate_directory_tenants", "").await.ok() == Some(2.0) },
    )
    .await
    .unwrap();

    postgres.stop();
    let reply = check(two.decision_url(), "acme/web").await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK, "{}", two.log());
    let decision: Value = reply.json().await.unwrap();
    assert_eq!(decision["decision"], "allow", "{decision}");
    let from_directory = two
        .metric("tollgate_definition_cache_total", "result=\"directory\"")
        .await
        .unwrap();
    assert!(from_directory >= 1.0, "{from_directory}");
    let unknown = check(two.decision_url(), "nobody").await.unwrap();
    assert_eq!(unknown.status(), StatusCode::SERVICE_UNAVAILABLE);

    postgres.restart().await.unwrap();
    eventually(
        Duration::from_secs(15),
        "counted at both levels",
        || async {
            let Ok(reply) = admin(Method::GET, "/tenants/acme%2Fweb/usage", None).await else {
                return false;
            };
            let Ok(usage) = reply.json::<Value>().await else {
                return false;
            };
            let used = |tenant: &str| {
                usage["usage"].as_array().and_then(|rows| {
                    rows.iter()
                        .find(|row| row["tenant"] == tenant)
                        .and_then(|row| row["used"].as_u64())
                })
            };
            (used("acme/web"), used("acme")) == (Some(2), Some(2))
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_plane_starts_without_postgres_and_becomes_ready_when_it_can_decide() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await.unwrap();
    let mut postgres = Postgres::start(dir.path()).await.unwrap();
    postgres.stop();
    let control_plane = ControlPlane::start(dir.path(), &postgres.url(), &redis.url())
        .await
        .unwrap();
    let ready = reqwest::get(format!("{}/ready", control_plane.url()))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(
        (body["postgres"].clone(), body["definitions"].clone()),
        (json!("down"), json!("down"))
    );
    postgres.restart().await.unwrap();
    control_plane
        .wait_ready(Duration::from_secs(20))
        .await
        .unwrap();
    // Readiness waits for the migrations (a tenant's chain reads the newest tables), which
    // the migration task logs just before; the line is awaited all the same, as the log
    // is read from a file.
    eventually(Duration::from_secs(5), "migrations applied", || async {
        control_plane.log().contains("migrations applied")
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_stopped_with_sigterm_persists_usage_history_and_events_first() {
    // Neither would be written within the test on its own: only the shutdown writes them.
    let options = GatewayOptions {
        control_plane_args: vec!["--history-flush-ms", "60000", "--events-flush-ms", "60000"],
        ..GatewayOptions::default()
    };
    let mut gateway = Gateway::start(options).await.unwrap();
    gateway
        .create_monthly_bytes_tier("metered", 10_000, 0, 0.5)
        .await
        .unwrap();
    gateway.create_tenant("acme", "metered").await.unwrap();
    for bytes in [4_000, 2_345] {
        assert_eq!(
            gateway.send(Some("acme"), bytes).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let history = "/tenants/acme/usage/history?resource=request_bytes";
    let warnings = "/events?tenant=acme&kind=quota.warning";
    let persisted = gateway.admin(Method::GET, history, None).await.unwrap();
    assert_eq!(
        persisted["items"],
        json!([]),
        "not flushed yet: {persisted}"
    );
    let logged = gateway.admin(Method::GET, warnings, None).await.unwrap();
    assert_eq!(logged["items"], json!([]), "not written yet: {logged}");

    gateway.control_plane.stop();
    assert!(
        gateway.control_plane.log().contains("shut down"),
        "{}",
        gateway.control_plane.log()
    );
    gateway.control_plane.restart().await.unwrap();
    gateway
        .control_plane
        .wait_ready(Duration::from_secs(15))
        .await
        .unwrap();
    let persisted = gateway.admin(Method::GET, history, None).await.unwrap();
    assert_eq!(persisted["items"][0]["used"], 6_345, "{persisted}");
    let logged = gateway.admin(Method::GET, warnings, None).await.unwrap();
    assert_eq!(
        logged["items"].as_array().map(Vec::len),
        Some(1),
        "the first warning of the window: {logged}"
    );
}
