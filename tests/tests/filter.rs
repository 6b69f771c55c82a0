//! The filter's request handling end to end: real Envoy (with `jwt_authn` where the
//! reference config has it), the real `.wasm`, the control plane, Redis and PostgreSQL.
//!
//! Each test starts its own gateway. Usage that a settlement corrects (sent after the
//! response) is polled for a bounded time, never slept for.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::hanging::Hanging;
use tollgate_e2e::process::repo_root;
use tollgate_e2e::raw::{chunked_upload, RawConnection};
use tollgate_e2e::{eventually, ControlPlaneTarget, Gateway, GatewayOptions, Template};

const QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// Every stat the filter defines at start-up (`wasmcustom.tollgate.<name>`).
const STATS: [&str; 15] = [
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
];

/// A client that gives up after 10 s, so a hanging request fails the test instead of
/// hanging it.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {:?}", response.headers()))
}

fn has_header(response: &Response, name: &str) -> bool {
    response.headers().contains_key(name)
}

async fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.filter_stat(name).await.unwrap()
}

async fn start(options: GatewayOptions) -> Gateway {
    Gateway::start(options).await.expect("gateway starts")
}

fn with_filter(filter: Value) -> GatewayOptions {
    GatewayOptions {
        filter,
        ..GatewayOptions::default()
    }
}

/// GET `path` through `envoy` with `headers`.
async fn get(envoy: &Envoy, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = http().get(format!("{}{path}", envoy.url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("the gateway answers")
}

/// Asserts a problem+json answer with `status` and returns its body.
async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "{:?}", response.headers());
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    body
}

/// Asserts a 429 quota-exceeded answer on `resource`, with `retry-after` no earlier than
/// the reset the body reports, and returns the body.
async fn quota_exceeded(response: Response, resource: &str) -> Value {
    let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
    let body = problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["type"], QUOTA_EXCEEDED, "{body}");
    assert_eq!(body["resource"], resource, "{body}");
    let reset = body["reset_after_s"].as_u64().unwrap();
    assert!(
        retry_after >= reset,
        "retry-after {retry_after} < reset {reset}"
    );
    body
}

// ---------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------

const ISSUER: &str = "https://auth.tollgate.example";
const AUDIENCE: &str = "tollgate-gateway";

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An RS256 token over `claims`, signed with the fixture key `key` (`private.pem` is
/// the one the reference config's JWKS trusts).
fn token(key: &str, claims: &Value) -> String {
    let pem = std::fs::read(repo_root().join("tests/fixtures/jwt").join(key)).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("tollgate-test".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

/// Standard claims valid for an hour, plus `extra`.
fn claims(extra: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1",
        "iat": now_s(), "exp": now_s() + 3600,
    });
    tollgate_e2e::gateway::merge(&mut claims, &extra);
    claims
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_claim_names_the_tenant_and_roles_choose_its_tier_and_bad_tokens_never_count() {
    // envoy/reference.yaml as shipped: jwt_authn in front, tenant from `org.id`, roles
    // from `roles`.
    let gateway = start(GatewayOptions {
        template: Template::Reference,
        ..GatewayOptions::default()
    })
    .await;
    let requests =
        |quota: u64| json!([{"resource": "requests", "period": "month", "quota": quota}]);
    gateway.create_tier("pro", requests(5)).await.unwrap();
    gateway.create_tier("free", requests(2)).await.unwrap();
    gateway.assign_role("pro", "pro").await.unwrap();
    gateway.assign_role("free", "free").await.unwrap();
    gateway.create_tenant_without_tier("acme").await.unwrap();
    gateway.create_tenant_without_tier("globex").await.unwrap();
    let envoy = &gateway.envoy;
    let acme = token(
        "private.pem",
        &claims(json!({"org": {"id": "acme"}, "roles": ["viewer", "pro"]})),
    );
    // Roles as one space-separated string (an OAuth `scope`-like claim).
    let globex = token(
        "private.pem",
        &claims(json!({"org": {"id": "globex"}, "roles": "basic free"})),
    );

    let first = get(
        envoy,
        "/v1/things",
        &[("authorization", &bearer(&acme)), ("x-test-tenant", "acme")],
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-quota-limit"), "5", "the pro role's tier");
    assert_eq!(header(&first, "x-quota-used"), "1");
    assert_eq!(
        gateway
            .upstream
            .last_header("acme", "x-quota-status")
            .as_deref(),
        Some("ok")
    );
    assert_eq!(
        gateway.upstream.last_header("acme", "authorization"),
        None,
        "the token is not forwarded"
    );
    for used in 1..=2 {
        let response = get(
            envoy,
            "/v1/things",
            &[
                ("authorization", &bearer(&globex)),
                ("x-test-tenant", "globex"),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "x-quota-limit"),
            "2",
            "the free role's tier"
        );
        assert_eq!(header(&response, "x-quota-used"), used.to_string());
    }
    let over = get(
        envoy,
        "/v1/things",
        &[
            ("authorization", &bearer(&globex)),
            ("x-test-tenant", "globex"),
        ],
    )
    .await;
    let body = quota_exceeded(over, "requests").await;
    assert_eq!(body["tenant"], "globex");
    assert_eq!(gateway.upstream.received("globex").requests, 2);

    // Tokens that must never reach the filter's count.
    let callouts = stat(envoy, "callouts").await;
    let forged = token(
        "forger-private.pem",
        &claims(json!({"org": {"id": "acme"}, "roles": ["pro"]})),
    );
    let expired = token(
        "private.pem",
        &claims(json!({"org": {"id": "acme"}, "roles": ["pro"],
                       "iat": now_s() - 7200, "exp": now_s() - 3600})),
    );
    let wrong_audience = token(
        "private.pem",
        &claims(json!({"org": {"id": "acme"}, "aud": "someone-else"})),
    );
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"org": {"id": "acme"}, "roles": ["pro"]}).to_string());
    let cases: [(&str, Vec<(&str, String)>); 4] = [
        ("forged", vec![("authorization", bearer(&forged))]),
        ("expired", vec![("authorization", bearer(&expired))]),
        ("no token", vec![]),
        (
            "a payload header written by the client",
            vec![("x-jwt-payload", payload.clone())],
        ),
    ];
    for (what, headers) in &cases {
        let mut headers: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.push(("x-test-tenant", "acme"));
        let response = get(envoy, "/v1/things", &headers).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            !has_header(&response, "x-quota-used"),
            "{what}: answered by jwt_authn, not the filter"
        );
    }
    // A token for someone else: jwt_authn answers 403.
    let response = get(
        envoy,
        "/v1/things",
        &[
            ("authorization", &bearer(&wrong_audience)),
            ("x-test-tenant", "acme"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!has_header(&response, "x-quota-used"));
    // A path that only looks excluded is normalised before jwt_authn and the filter.
    let mut sneaky = RawConnection::start(
        envoy.port,
        "GET",
        "/health/../v1/things",
        &[("x-test-tenant", "acme")],
    )
    .await
    .unwrap();
    let response = sneaky.response(Duration::from_secs(10)).await.unwrap();
    assert_eq!(response.status, 401, "{response:?}");
    assert_eq!(
        stat(envoy, "callouts").await,
        callouts,
        "no callout for any"
    );
    assert_eq!(gateway.upstream.received("acme").requests, 1);
    assert_eq!(
        gateway
            .usage_with_roles("acme", &["pro"], "requests", "month")
            .await
            .unwrap(),
        1
    );

    // With a valid token, a payload header the client wrote is replaced by the real one.
    let mixed = get(
        envoy,
        "/v1/things",
        &[
            ("authorization", &bearer(&acme)),
            (
                "x-jwt-payload",
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(json!({"org": {"id": "globex"}}).to_string()),
            ),
            ("x-test-tenant", "acme"),
        ],
    )
    .await;
    assert_eq!(mixed.status(), StatusCode::OK);
    assert_eq!(header(&mixed, "x-quota-used"), "2", "counted for acme");
    assert_eq!(
        gateway
            .usage_with_roles("acme", &["pro"], "requests", "month")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        gateway
            .usage_with_roles("globex", &["free"], "requests", "month")
            .await
            .unwrap(),
        2,
        "globex unchanged"
    );

    // A valid token without the tenant claim: the filter's own 401.
    let anonymous = token("private.pem", &claims(json!({"roles": ["pro"]})));
    let missing_before = stat(envoy, "tenant_missing").await;
    let response = get(
        envoy,
        "/v1/things",
        &[("authorization", &bearer(&anonymous))],
    )
    .await;
    let body = problem(response, StatusCode::UNAUTHORIZED).await;
    assert!(
        body["detail"].as_str().unwrap().contains("org.id"),
        "{body}"
    );
    assert_eq!(stat(envoy, "tenant_missing").await, missing_before + 1);

    // Excluded paths need no token and are not counted.
    let callouts = stat(envoy, "callouts").await;
    let health = get(envoy, "/health", &[("x-test-tenant", "acme")]).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(!has_header(&health, "x-quota-limit"));
    assert_eq!(stat(envoy, "callouts").await, callouts);
}

#[tokio::test(flavor = "multi_thread")]
async fn path_tenant_and_bad_missing_unknown_or_default_tenants() {
    let gateway = start(with_filter(json!({
        "tenant": {"from": "path", "path_pattern": "/tenants/{tenant}"}
    })))
    .await;
    let requests = json!([{"resource": "requests", "period": "month", "quota": 100}]);
    gateway.create_tier("basic", requests).await.unwrap();
    gateway.create_tenant("acme", "basic").await.unwrap();
    gateway.create_tenant("anonymous", "basic").await.unwrap();
    let envoy = &gateway.envoy;

    let response = get(envoy, "/tenants/acme/files/1", &[("x-test-tenant", "acme")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-quota-used"), "1");
    assert_eq!(
        gateway
            .usage_at("acme", "acme", "requests", "month")
            .await
            .unwrap(),
        1
    );
    assert_eq!(gateway.upstream.received("acme").requests, 1);

    // A client-written tenant header means nothing here.
    let response = get(
        envoy,
        "/tenants/acme/files/2",
        &[("x-test-tenant", "acme"), ("x-tenant-id", "anonymous")],
    )
    .await;
    assert_eq!(header(&response, "x-quota-used"), "2");

    let callouts = stat(envoy, "callouts").await;
    let long = format!("/tenants/{}/files", "x".repeat(129));
    for path in ["/tenants/bad!id/files", long.as_str(), "/tenants/../files"] {
        let mut raw = RawConnection::start(envoy.port, "GET", path, &[])
            .await
            .unwrap();
        let response = raw.response(Duration::from_secs(10)).await.unwrap();
        assert_eq!(response.status, 400, "{path}: {response:?}");
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json")
        );
    }
    assert_eq!(stat(envoy, "tenant_invalid").await, 3);

    let missing = get(envoy, "/other/things", &[]).await;
    let body = problem(missing, StatusCode::UNAUTHORIZED).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("/tenants/{tenant}"),
        "{body}"
    );
    assert_eq!(stat(envoy, "tenant_missing").await, 1);
    assert_eq!(
        stat(envoy, "callouts").await,
        callouts,
        "no callout for a missing or invalid tenant"
    );

    let unknown = get(envoy, "/tenants/stranger/x", &[]).await;
    problem(unknown, StatusCode::FORBIDDEN).await;
    assert_eq!(stat(envoy, "tenant_unknown").await, 1);
    assert_eq!(gateway.upstream.received("/tenants/stranger/x").requests, 0);
    assert_eq!(
        gateway.upstream.received("/other/things").requests,
        0,
        "nothing refused reached the upstream"
    );

    // With a default tenant, requests without one are charged to it.
    let defaulted = gateway
        .another_envoy(with_filter(json!({
            "tenant": {"from": "path", "path_pattern": "/tenants/{tenant}", "default": "anonymous"}
        })))
        .await
        .unwrap();
    let response = get(&defaulted, "/other/things", &[("x-test-tenant", "anon")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        gateway
            .usage_at("anonymous", "anonymous", "requests", "month")
            .await
            .unwrap(),
        1
    );
    assert_eq!(stat(&defaulted, "tenant_missing").await, 0);

    // The default source, a header: an id that cannot be a tenant is 400.
    let by_header = gateway
        .another_envoy(GatewayOptions::default())
        .await
        .unwrap();
    for bad in ["bad id", "..", &"y".repeat(129)] {
        let response = get(&by_header, "/x", &[("x-tenant-id", bad)]).await;
        problem(response, StatusCode::BAD_REQUEST).await;
    }
    let response = get(&by_header, "/x", &[]).await;
    let body = problem(response, StatusCode::UNAUTHORIZED).await;
    assert!(
        body["detail"].as_str().unwrap().contains("x-tenant-id"),
        "{body}"
    );
    assert_eq!(stat(&by_header, "tenant_invalid").await, 3);
    assert_eq!(stat(&by_header, "callouts").await, 0);
}

// ---------------------------------------------------------------------------------
// What a request costs
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_request_count_quota_is_enforced_on_gets_with_quota_headers() {
    let gateway = start(GatewayOptions::default()).await;
    gateway
        .create_tier(
            "metered",
            json!([{"resource": "requests", "period": "day", "quota": 3, "warn_at": 0.5}]),
        )
        .await
        .unwrap();
    gateway.create_tenant("acme", "metered").await.unwrap();
    let envoy = &gateway.envoy;
    let acme = [("x-tenant-id", "acme")];

    let first = get(envoy, "/items", &acme).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        header(&first, "ratelimit-policy"),
        r#""daily";q=3;qu="requests";w=86400"#
    );
    let reset: u64 = header(&first, "x-quota-reset").parse().unwrap();
    assert!((1..=86_400).contains(&reset));
    assert_eq!(
        header(&first, "ratelimit"),
        format!(r#""daily";r=2;t={reset}"#)
    );
    assert_eq!(header(&first, "x-quota-limit"), "3");
    assert_eq!(header(&first, "x-quota-used"), "1");
    assert_eq!(header(&first, "x-quota-remaining"), "2");
    assert_eq!(header(&first, "x-quota-status"), "ok");
    assert_eq!(
        gateway
            .upstream
            .last_header("acme", "x-quota-status")
            .as_deref(),
        Some("ok")
    );
    let second = get(envoy, "/items", &acme).await;
    assert_eq!(header(&second, "x-quota-status"), "warning");
    assert_eq!(
        gateway
            .upstream
            .last_header("acme", "x-quota-status")
            .as_deref(),
        Some("warning"),
        "the upstream is told"
    );
    assert_eq!(get(envoy, "/items", &acme).await.status(), StatusCode::OK);

    let fourth = get(envoy, "/items", &acme).await;
    assert_eq!(header(&fourth, "x-quota-status"), "exceeded");
    let body = quota_exceeded(fourth, "requests").await;
    assert_eq!(body["violated-policies"], json!(["daily"]));
    assert_eq!(
        (body["limit"].clone(), body["used"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(gateway.upstream.received("acme").requests, 3);
    assert_eq!(
        gateway
            .usage_at("acme", "acme", "requests", "day")
            .await
            .unwrap(),
        3
    );
    assert_eq!(stat(envoy, "allowed").await, 1);
    assert_eq!(stat(envoy, "warned").await, 2);
    assert_eq!(stat(envoy, "rejected").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_upload_over_quota_is_refused_before_the_upstream_gets_its_end() {
    let gateway = start(GatewayOptions::default()).await;
    gateway
        .create_monthly_bytes_tier("bytes", 200_000, 0, 0.8)
        .await
        .unwrap();
    gateway.create_tenant("acme", "bytes").await.unwrap();

    // 1 MiB in 16 KiB chunks 10 ms apart, without content-length, against a
    // 200 000-byte limit: what fits flows to the upstream chunk by chunk.
    let upload = chunked_upload(
        gateway.envoy.port,
        "/upload",
        &[("x-tenant-id", "acme")],
        16 * 1024,
        64,
        Duration::from_millis(10),
    )
    .await
    .unwrap();

    let response = &upload.response;
    // Once the upstream saw its request cut off, what it got is final.
    eventually(
        Duration::from_secs(5),
        "the upstream request ends",
        || async { gateway.upstream.received("acme").aborted == 1 },
    )
    .await
    .unwrap();
    let received = gateway.upstream.received("acme");
    eprintln!(
        "client sent {} body bytes, the upstream got {received:?}",
        upload.body_bytes_sent
    );
    assert_eq!(response.status, 429, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    let body = response.json().unwrap();
    assert_eq!(body["type"], QUOTA_EXCEEDED);
    assert_eq!(body["resource"], "request_bytes");
    assert!(
        !upload.finished,
        "refused while the client was still sending"
    );
    assert_eq!(received.requests, 1);
    assert_eq!(
        received.completed, 0,
        "the upstream never saw the body's end"
    );
    assert!(
        (100_000..=200_000).contains(&received.bytes),
        "the upstream got {} bytes: what fits the limit should pass, no more",
        received.bytes
    );
    // What was counted is what the upstream got (the reservation ahead is refunded).
    gateway
        .wait_usage("acme", "request_bytes", "month", received.bytes)
        .await
        .unwrap();
    assert!(stat(&gateway.envoy, "rejected").await >= 1);
    assert!(
        stat(&gateway.envoy, "callouts").await >= 2,
        "checked again as the body streamed"
    );
    // A tenant under its limit uploads chunked in full, and pays exactly its size.
    gateway.create_tenant("globex", "bytes").await.unwrap();
    let upload = chunked_upload(
        gateway.envoy.port,
        "/upload",
        &[("x-tenant-id", "globex")],
        10_000,
        15,
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert_eq!(upload.response.status, 200, "{:?}", upload.response);
    assert!(upload.finished);
    assert_eq!(gateway.upstream.received("globex").completed, 1);
    gateway
        .wait_usage("globex", "request_bytes", "month", 150_000)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_shorter_than_its_content_length_settles_to_the_bytes_seen() {
    let gateway = start(GatewayOptions::default()).await;
    gateway
        .create_monthly_bytes_tier("bytes", 1_000_000, 0, 0.8)
        .await
        .unwrap();
    gateway.create_tenant("acme", "bytes").await.unwrap();

    let mut connection = RawConnection::start(
        gateway.envoy.port,
        "POST",
        "/upload",
        &[("x-tenant-id", "acme"), ("content-length", "10000")],
    )
    .await
    .unwrap();
    connection.send(&[b'x'; 4_000]).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "4000 bytes reach the upstream",
        || async { gateway.upstream.received("acme").bytes == 4_000 },
    )
    .await
    .unwrap();
    // 10 000 bytes were reserved at the headers.
    assert_eq!(gateway.usage("acme").await.unwrap(), 10_000);
    connection.close();

    gateway
        .wait_usage("acme", "request_bytes", "month", 4_000)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "the upstream request ends",
        || async { gateway.upstream.received("acme").aborted == 1 },
    )
    .await
    .unwrap();
    assert_eq!(gateway.upstream.received("acme").bytes, 4_000);
    assert_eq!(gateway.upstream.received("acme").completed, 0);
    assert_eq!(stat(&gateway.envoy, "settlements").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_longer_than_its_content_length_is_refused_by_envoy_and_not_counted() {
    let gateway = start(GatewayOptions::default()).await;
    gateway
        .create_monthly_bytes_tier("bytes", 1_000_000, 0, 0.8)
        .await
        .unwrap();
    gateway.create_tenant("acme", "bytes").await.unwrap();

    // HTTP/2 is the only way to send more DATA than content-length announced (over
    // HTTP/1.1 the extra bytes would be the next request).
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", gateway.envoy.port))
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1:{}/upload", gateway.envoy.port))
        .header("x-tenant-id", "acme")
        .header("content-length", "100")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    // Let the check at the headers (which reserves 100 bytes) happen first.
    eventually(Duration::from_secs(5), "the reservation", || async {
        gateway.usage("acme").await.is_ok_and(|u| u == 100)
    })
    .await
    .unwrap();
    body.send_data(bytes::Bytes::from(vec![b'x'; 300]), true)
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("an answer or a reset within 10 s");
    eprintln!("a body past content-length: {outcome:?}");
    match &outcome {
        Ok(response) => assert!(
            !response.status().is_success(),
            "a body past content-length was accepted: {response:?}"
        ),
        Err(error) => assert!(
            error.is_reset() || error.is_go_away() || error.is_io(),
            "{error:?}"
        ),
    }
    let received = gateway.upstream.received("acme");
    assert_eq!(received.completed, 0, "the upstream never got a whole body");
    // Whatever reached the upstream is what counts; the reservation is refunded.
    gateway
        .wait_usage("acme", "request_bytes", "month", received.bytes)
        .await
        .unwrap();
    assert_eq!(received.bytes, 0, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn response_bytes_are_settled_after_the_response_and_refuse_the_next_request() {
    let gateway = start(with_filter(json!({"costs": {"response_bytes": true}}))).await;
    gateway
        .create_tier(
            "downloads",
            json!([{"resource": "response_bytes", "period": "month", "quota": 1000}]),
        )
        .await
        .unwrap();
    gateway.create_tenant("acme", "downloads").await.unwrap();
    let envoy = &gateway.envoy;

    let big = get(
        envoy,
        "/download",
        &[("x-tenant-id", "acme"), ("x-test-response-bytes", "1500")],
    )
    .await;
    assert_eq!(big.status(), StatusCode::OK);
    assert_eq!(big.bytes().await.unwrap().len(), 1_500);
    gateway
        .wait_usage("acme", "response_bytes", "month", 1_500)
        .await
        .unwrap();

    let next = get(envoy, "/download", &[("x-tenant-id", "acme")]).await;
    quota_exceeded(next, "response_bytes").await;
    assert_eq!(gateway.upstream.received("acme").requests, 1);
    assert_eq!(stat(envoy, "settlements").await, 1, "one admitted request");
    assert_eq!(stat(envoy, "settlement_failures").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cost_header_is_settled_after_the_response_and_refuses_the_next_request() {
    let gateway = start(with_filter(json!({
        "costs": {"response_header": {"header": "x-usage-tokens", "resource": "tokens"}}
    })))
    .await;
    gateway
        .create_tier(
            "ai",
            json!([{"resource": "tokens", "period": "month", "quota": 100}]),
        )
        .await
        .unwrap();
    gateway.create_tenant("acme", "ai").await.unwrap();
    let envoy = &gateway.envoy;
    let ask = |tokens: &'static str| async move {
        get(
            envoy,
            "/v1/completions",
            &[("x-tenant-id", "acme"), ("x-test-usage-header", tokens)],
        )
        .await
    };

    let first = ask("40").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-usage-tokens"), "40");
    gateway
        .wait_usage("acme", "tokens", "month", 40)
        .await
        .unwrap();
    // The upstream already did the work: billed even past the hard limit.
    assert_eq!(ask("70").await.status(), StatusCode::OK);
    gateway
        .wait_usage("acme", "tokens", "month", 110)
        .await
        .unwrap();
    quota_exceeded(ask("1").await, "tokens").await;
    assert_eq!(gateway.upstream.received("acme").requests, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cost_in_a_json_or_event_stream_body_is_settled_and_refuses_the_next_request() {
    let gateway = start(with_filter(json!({
        "costs": {"response_json": {"pointer": "/usage/total_tokens", "resource": "tokens"}}
    })))
    .await;
    gateway
        .create_tier(
            "ai",
            json!([{"resource": "tokens", "period": "month", "quota": 100}]),
        )
        .await
        .unwrap();
    gateway.create_tenant("acme", "ai").await.unwrap();
    gateway.create_tenant("globex", "ai").await.unwrap();
    let envoy = &gateway.envoy;

    // A plain JSON answer.
    let answer = get(
        envoy,
        "/v1/chat/completions",
        &[("x-tenant-id", "acme"), ("x-test-usage-json", "120")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["usage"]["total_tokens"], 120,
        "the body passes unchanged"
    );
    gateway
        .wait_usage("acme", "tokens", "month", 120)
        .await
        .unwrap();
    let next = get(envoy, "/v1/chat/completions", &[("x-tenant-id", "acme")]).await;
    quota_exceeded(next, "tokens").await;

    // A streamed answer: the usage arrives in the last event before [DONE], split
    // across two writes, after an event whose usage is null.
    let stream = get(
        envoy,
        "/v1/chat/completions",
        &[("x-tenant-id", "globex"), ("x-test-usage-sse", "130")],
    )
    .await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(header(&stream, "content-type"), "text/event-stream");
    let text = stream.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    gateway
        .wait_usage("globex", "tokens", "month", 130)
        .await
        .unwrap();
    let next = get(envoy, "/v1/chat/completions", &[("x-tenant-id", "globex")]).await;
    quota_exceeded(next, "tokens").await;
    assert_eq!(gateway.upstream.received("globex").requests, 1);
}

// ---------------------------------------------------------------------------------
// Which requests count, and how they are answered
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn excluded_paths_and_methods_are_not_counted_and_get_no_quota_headers() {
    let gateway = start(GatewayOptions::default()).await;
    gateway
        .create_tier(
            "basic",
            json!([{"resource": "requests", "period": "month", "quota": 100}]),
        )
        .await
        .unwrap();
    gateway.create_tenant("acme", "basic").await.unwrap();
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
        gateway.upstream.last_header("acme", "x-quota-status"),
        None,
        "uncounted requests carry no status to the upstream"
    );
    assert_eq!(stat(envoy, "callouts").await, 0);
    assert_eq!(
        gateway
            .usage_at("acme", "acme", "requests", "month")
            .await
            .unwrap(),
        0
    );
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
    let gateway = start(with_filter(json!({"shadow": true}))).await;
    gateway
        .create_tier(
            "small",
            json!([{"resource": "requests", "period": "month", "quota": 2}]),
        )
        .await
        .unwrap();
    gateway.create_tenant("acme", "small").await.unwrap();
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
        gateway
            .upstream
            .last_header("acme", "x-quota-status")
            .as_deref(),
        Some("warning")
    );
    assert_eq!(gateway.upstream.received("acme").requests, 4);
    assert_eq!(
        gateway
            .usage_at("acme", "acme", "requests", "month")
            .await
            .unwrap(),
        4,
        "counted past the hard limit of 2"
    );
    assert_eq!(stat(envoy, "shadow_rejected").await, 2);
    assert_eq!(stat(envoy, "rejected").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_tenant_is_answered_from_the_reject_cache_without_callouts() {
    let gateway = start(GatewayOptions::default()).await;
    gateway
        .create_tier(
            "one",
            json!([{"resource": "requests", "period": "month", "quota": 1}]),
        )
        .await
        .unwrap();
    gateway.create_tenant("acme", "one").await.unwrap();
    gateway.create_tenant("globex", "one").await.unwrap();
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

// ---------------------------------------------------------------------------------
// Failure
// ---------------------------------------------------------------------------------

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
        gateway
            .upstream
            .last_header("acme", "x-quota-status")
            .as_deref(),
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

// ---------------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn every_filter_stat_exists_from_the_start_and_unknown_names_are_errors() {
    let gateway = start(GatewayOptions::default()).await;
    gateway
        .create_monthly_bytes_tier("pro", 10_000, 0, 0.8)
        .await
        .unwrap();
    gateway.create_tenant("acme", "pro").await.unwrap();
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
