//! The self-view (`quota_path`) through a real Envoy and the real `.wasm`: traffic
//! shows in the view with a burn rate once the control plane has sampled it (every
//! 200 ms here, `--history-flush-ms`), viewing costs nothing, the answer may be kept a
//! second at most, a dead control plane is a quick 503, and behind `jwt_authn` a
//! tenant header next to a token shows the token's tenant only.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::response::{header, problem};
use tollgate_e2e::{GatewayOptions, Template};

use super::identity::{bearer, claims, token};
use super::{get, http, own_usage, per_month, start, start_with_tier, stat, with_filter};

const QUOTA_PATH: &str = "/.well-known/quota";

/// `GET` the view through `envoy` with `headers`: 200, `application/json`, kept a
/// second at most.
async fn view(envoy: &Envoy, path: &str, headers: &[(&str, &str)]) -> Value {
    let response = get(envoy, path, headers).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/json");
    assert_eq!(header(&response, "cache-control"), "private, max-age=1");
    response.json().await.unwrap()
}

/// The view's entry of `tenant`'s monthly limit on `resource`.
fn monthly<'v>(view: &'v Value, tenant: &str, resource: &str) -> &'v Value {
    view["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["tenant"] == tenant && l["resource"] == resource && l["period"] == "month")
        .unwrap_or_else(|| panic!("no monthly {resource} of {tenant} in {view}"))
}

/// Everything a HEAD request through `envoy` gets back on its connection within a
/// second: the head, and nothing after it.
async fn head_bytes(envoy: &Envoy, path: &str, tenant: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", envoy.port))
        .await
        .unwrap();
    let request = format!("HEAD {path} HTTP/1.1\r\nhost: gateway\r\nx-tenant-id: {tenant}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut piece = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(1);
    while let Ok(Ok(n)) = tokio::time::timeout_at(until.into(), stream.read(&mut piece)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&piece[..n]);
    }
    String::from_utf8_lossy(&got).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_view_shows_live_usage_and_its_burn_rate_costs_nothing_and_fails_fast() {
    let mut gateway = start_with_tier(
        with_filter(json!({"quota_path": QUOTA_PATH})),
        "monthly",
        per_month("requests", 100_000),
        &["acme", "globex"],
    )
    .await;
    let acme = [("x-tenant-id", "acme")];

    // Traffic until a sample taken after the first request and a second old shows a
    // positive rate.
    let started = Instant::now();
    let shown = loop {
        let response = get(&gateway.envoy, "/x", &acme).await;
        assert_eq!(response.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let view = view(&gateway.envoy, QUOTA_PATH, &acme).await;
        let rate = &monthly(&view, "acme", "requests")["burn_rate"];
        if rate["basis"] == "sample" && rate["per_second"].as_f64().unwrap() > 0.0 {
            break view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no burn rate after 20 s: {view}"
        );
    };
    assert_eq!(shown["tenant"], "acme");
    let limit = monthly(&shown, "acme", "requests");
    let rate = &limit["burn_rate"];
    assert!(rate["units"].as_u64().unwrap() > 0, "{rate}");
    assert!(rate["span_ms"].as_u64().unwrap() >= 1_000, "{rate}");
    assert!(rate["since"].is_string(), "{rate}");
    let forecast = &limit["forecast"]["outcome"];
    assert!(
        forecast == "runs_out" || forecast == "resets_first",
        "{limit}"
    );
    assert_eq!(
        (&limit["binding"], &limit["status"]),
        (&json!(true), &json!("ok"))
    );
    assert_eq!(shown["binding"]["name"], "monthly");

    // Viewing costs nothing: usage, the admitted count and the upstream stay as they were.
    let used = own_usage(&gateway, "acme", "requests", "month").await;
    let allowed = stat(&gateway.envoy, "allowed").await;
    let views = stat(&gateway.envoy, "quota_views").await;
    for _ in 0..3 {
        let view = view(&gateway.envoy, QUOTA_PATH, &acme).await;
        assert_eq!(monthly(&view, "acme", "requests")["used"], used);
    }
    assert_eq!(own_usage(&gateway, "acme", "requests", "month").await, used);
    assert_eq!(stat(&gateway.envoy, "allowed").await, allowed);
    assert_eq!(stat(&gateway.envoy, "quota_views").await, views + 3);
    assert_eq!(gateway.upstream.received("acme").requests, used);
    // Another tenant sees its own, untouched.
    let globex = view(&gateway.envoy, QUOTA_PATH, &[("x-tenant-id", "globex")]).await;
    assert_eq!(monthly(&globex, "globex", "requests")["used"], 0);
    assert!(globex["limits"].to_string().find("\"acme\"").is_none());

    // HEAD: the head alone, as long as GET's; other methods: 405.
    let head = head_bytes(&gateway.envoy, QUOTA_PATH, "acme").await;
    let (status, rest) = head.split_once("\r\n\r\n").expect("a response head");
    assert!(status.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        status.contains("cache-control: private, max-age=1"),
        "{head}"
    );
    assert_eq!(rest, "", "no body after a HEAD's head");
    let post = http()
        .post(format!("{}{QUOTA_PATH}", gateway.envoy.url()))
        .header("x-tenant-id", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&post, "allow"), "GET, HEAD");
    problem(post, StatusCode::METHOD_NOT_ALLOWED).await;
    // No tenant: the same 401 as any request.
    let missing = get(&gateway.envoy, QUOTA_PATH, &[]).await;
    problem(missing, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        gateway.upstream.received(QUOTA_PATH).requests,
        0,
        "never upstream"
    );

    // With the tenant in the path, the view is under the tenant's prefix.
    let by_path = gateway
        .another_envoy(with_filter(json!({
            "quota_path": QUOTA_PATH,
            "tenant": {"from": "path", "path_pattern": "/tenants/{tenant}"}
        })))
        .await
        .unwrap();
    let view_by_path = view(&by_path, "/tenants/globex/.well-known/quota", &acme).await;
    assert_eq!(
        view_by_path["tenant"], "globex",
        "the path's, not the header's"
    );

    // The control plane gone: a 503 at once, though the failure mode is open.
    gateway.control_plane.stop();
    let asked = Instant::now();
    let down = get(&gateway.envoy, QUOTA_PATH, &acme).await;
    assert_eq!(header(&down, "cache-control"), "no-store");
    problem(down, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(gateway.upstream.received(QUOTA_PATH).requests, 0);
    assert_eq!(stat(&gateway.envoy, "failed_open").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_header_next_to_a_token_shows_the_tokens_tenant_only() {
    // envoy/reference.yaml as shipped: jwt_authn in front, the tenant from `org.id`,
    // the self-view at /.well-known/quota.
    let gateway = start(GatewayOptions {
        template: Template::Reference,
        ..GatewayOptions::default()
    })
    .await;
    gateway
        .create_tier("pro", per_month("requests", 5))
        .await
        .unwrap();
    gateway
        .create_tier("free", per_month("requests", 2))
        .await
        .unwrap();
    gateway.assign_role("pro", "pro").await.unwrap();
    gateway.create_tenant("globex", "free").await.unwrap();
    gateway.create_tenant_without_tier("acme").await.unwrap();
    let envoy = &gateway.envoy;
    let acme = token(
        "private.pem",
        &claims(json!({"org": {"id": "acme"}, "roles": ["pro"]})),
    );
    let auth = bearer(&acme);
    let response = get(
        envoy,
        "/v1/things",
        &[("authorization", &auth), ("x-test-tenant", "acme")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    let view = view(
        envoy,
        QUOTA_PATH,
        &[("authorization", &auth), ("x-tenant-id", "globex")],
    )
    .await;
    assert_eq!(view["tenant"], "acme");
    let limits = view["limits"].as_array().unwrap();
    assert_eq!(limits.len(), 1, "{view}");
    let limit = monthly(&view, "acme", "requests");
    assert_eq!(
        (&limit["limit"], &limit["used"]),
        (&json!(5), &json!(1)),
        "the pro role's"
    );
    assert!(!view.to_string().contains("globex"), "{view}");

    // No token: jwt_authn's 401; a token without the claim: the filter's 401.
    let callouts = stat(envoy, "callouts").await;
    let bare = get(envoy, QUOTA_PATH, &[("x-tenant-id", "globex")]).await;
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        stat(envoy, "callouts").await,
        callouts,
        "never reached the filter"
    );
    let anonymous = bearer(&token("private.pem", &claims(json!({"roles": ["pro"]}))));
    let response = get(
        envoy,
        QUOTA_PATH,
        &[("authorization", &anonymous), ("x-tenant-id", "globex")],
    )
    .await;
    let body = problem(response, StatusCode::UNAUTHORIZED).await;
    assert!(
        body["detail"].as_str().unwrap().contains("org.id"),
        "{body}"
    );
    assert_eq!(gateway.upstream.received("globex").requests, 0);
}
