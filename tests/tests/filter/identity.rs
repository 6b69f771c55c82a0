//! Who a request is charged to: a JWT claim checked by `jwt_authn` (the reference
//! config), a path segment, a header or a default; and the answers for a tenant that is
//! missing, invalid or unknown.

use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::process::repo_root;
use tollgate_e2e::raw::RawConnection;
use tollgate_e2e::response::{has_header, header, problem, quota_exceeded};
use tollgate_e2e::{GatewayOptions, Template};

use super::{
    get, own_usage, per_month, start, start_with_tier, stat, upstream_status, with_filter,
};

const ISSUER: &str = "https://auth.tollgate.example";
const AUDIENCE: &str = "tollgate-gateway";

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An RS256 token over `claims`, signed with the fixture key `key` (`private.pem` is
/// the one the reference config's JWKS trusts).
pub(super) fn token(key: &str, claims: &Value) -> String {
    let pem = std::fs::read(repo_root().join("tests/fixtures/jwt").join(key)).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("tollgate-test".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

/// Standard claims valid for an hour, plus `extra`.
pub(super) fn claims(extra: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1",
        "iat": now_s(), "exp": now_s() + 3600,
    });
    tollgate_e2e::gateway::merge(&mut claims, &extra);
    claims
}

pub(super) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// GET `/v1/things` with `token`; the upstream files the request under `tenant`.
async fn get_things(envoy: &Envoy, token: &str, tenant: &str) -> Response {
    get(
        envoy,
        "/v1/things",
        &[("authorization", &bearer(token)), ("x-test-tenant", tenant)],
    )
    .await
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
    gateway
        .create_tier("pro", per_month("requests", 5))
        .await
        .unwrap();
    gateway
        .create_tier("free", per_month("requests", 2))
        .await
        .unwrap();
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

    let first = get_things(envoy, &acme, "acme").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-quota-limit"), "5", "the pro role's tier");
    assert_eq!(header(&first, "x-quota-used"), "1");
    assert_eq!(upstream_status(&gateway, "acme").as_deref(), Some("ok"));
    assert_eq!(
        gateway.upstream.last_header("acme", "authorization"),
        None,
        "the token is not forwarded"
    );
    for used in 1..=2 {
        let response = get_things(envoy, &globex, "globex").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "x-quota-limit"),
            "2",
            "the free role's tier"
        );
        assert_eq!(header(&response, "x-quota-used"), used.to_string());
    }
    let over = get_things(envoy, &globex, "globex").await;
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
    let response = get_things(envoy, &wrong_audience, "acme").await;
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
    let gateway = start_with_tier(
        with_filter(json!({
            "tenant": {"from": "path", "path_pattern": "/tenants/{tenant}"}
        })),
        "basic",
        per_month("requests", 100),
        &["acme", "anonymous"],
    )
    .await;
    let envoy = &gateway.envoy;

    let response = get(envoy, "/tenants/acme/files/1", &[("x-test-tenant", "acme")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-quota-used"), "1");
    assert_eq!(own_usage(&gateway, "acme", "requests", "month").await, 1);
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
        own_usage(&gateway, "anonymous", "requests", "month").await,
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
