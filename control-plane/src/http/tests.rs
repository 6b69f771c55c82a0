//! Handler tests through the whole router, with counters in memory and a PostgreSQL
//! pool that points nowhere: tenants are put in the definitions cache, so the check
//! path never reaches the database, exactly as in production once cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use tollgate_protocol::{Limit, WarnAt};
use tower::ServiceExt;

use crate::config::Secret;
use crate::model::{LimitDef, TenantQuota};
use crate::state::{AppConfig, AppState};
use crate::store::MemoryStore;
use crate::window::Period;

use super::app;

const TOKEN: &str = "test-admin-token";

fn state() -> AppState {
    // Port 1 refuses connections: any query fails fast as "unavailable".
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://tollgate@127.0.0.1:1/tollgate")
        .unwrap();
    let config = AppConfig {
        admin_token: Secret::new(TOKEN),
        definitions_ttl: Duration::from_secs(60),
    };
    let state = AppState::new(config, pool, Arc::new(MemoryStore::new())).unwrap();
    let acme = TenantQuota {
        tenant: "acme".into(),
        root: "acme".into(),
        tier: "pro".into(),
        limits: vec![LimitDef {
            resource: "requests".into(),
            period: Period::Day,
            limit: Limit {
                quota: 10,
                overage: 2,
                warn_at: WarnAt::DEFAULT,
                unlimited: false,
            },
        }],
    };
    let generation = state.definitions.generation();
    let now = Instant::now();
    state
        .definitions
        .insert("acme", Some(Arc::new(acme)), generation, now);
    state.definitions.insert("ghost", None, generation, now);
    state
}

async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

fn post(path: &str, body: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(path).header("content-type", "application/json");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Body::from(body.to_string())).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn check(state: &AppState, tenant: &str, requests: u64) -> (StatusCode, Value) {
    let body = json!({"tenant": tenant, "amounts": {"requests": requests}}).to_string();
    send(state, post("/v1/check", &body, None)).await
}

#[tokio::test]
async fn admin_request_with_a_wrong_or_missing_bearer_token_is_unauthorized() {
    let state = state();
    let body = r#"{"name":"pro"}"#;
    for token in [Some("wrong-token"), None] {
        let (status, json) = send(&state, post("/admin/v1/tiers", body, token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json["error"]["code"], "unauthorized");
    }
    let (status, _) = send(&state, get("/admin/v1/tenants/acme")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_json_is_a_400_in_our_error_shape() {
    let (status, json) = send(&state(), post("/v1/check", r#"{"tenant":"#, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["code"], "validation");
    assert!(json["error"]["message"].as_str().unwrap().contains("JSON"));
}

#[tokio::test]
async fn body_without_json_content_type_is_a_400_in_our_error_shape() {
    let request = Request::post("/v1/check")
        .body(Body::from(r#"{"tenant":"acme","amounts":{}}"#))
        .unwrap();
    let (status, json) = send(&state(), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["code"], "validation");
}

#[tokio::test]
async fn invalid_tenant_id_on_check_is_a_422_naming_the_field() {
    let (status, json) = check(&state(), "a b", 1).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["error"]["field"], "tenant");
}

#[tokio::test]
async fn amount_above_the_counter_maximum_is_a_422_naming_the_resource() {
    let (status, json) = check(&state(), "acme", u64::MAX).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["error"]["field"], "amounts.requests");
}

#[tokio::test]
async fn checks_allow_then_warn_then_reject_without_counting_the_rejected_amount() {
    let state = state();
    let (status, first) = check(&state, "acme", 5).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["decision"], "allow");
    assert_eq!(first["policy"]["name"], "daily");
    assert_eq!(first["policy"]["used"], 5);
    assert_eq!(first["policy"]["limit"], 12);
    assert_eq!(first["policy"]["remaining"], 7);
    assert_eq!(first["policy"]["window_s"], 86_400);
    assert_eq!(first["cache_reject_for_s"], 0);

    let (_, second) = check(&state, "acme", 5).await;
    assert_eq!(second["decision"], "warn");
    assert_eq!(second["policy"]["used"], 10);

    let (_, rejected) = check(&state, "acme", 3).await;
    assert_eq!(rejected["decision"], "reject");
    assert_eq!(rejected["reason"], "quota_exceeded");
    assert_eq!(rejected["policy"]["used"], 10);
    let reset = rejected["policy"]["reset_after_s"].as_u64().unwrap();
    assert!(reset >= 1);
    assert_eq!(rejected["cache_reject_for_s"], reset);

    // The rejected 3 were not counted: exactly 2 still fit under the hard limit.
    let (_, last) = check(&state, "acme", 2).await;
    assert_eq!(last["decision"], "warn");
    assert_eq!(last["policy"]["used"], 12);
    assert_eq!(last["policy"]["remaining"], 0);
}

#[tokio::test]
async fn unknown_tenant_is_rejected_without_a_policy() {
    let (status, json) = check(&state(), "ghost", 1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["decision"], "reject");
    assert_eq!(json["reason"], "unknown_tenant");
    assert!(json.get("policy").is_none());
}

#[tokio::test]
async fn resource_without_limits_is_allowed_without_a_policy() {
    let body = json!({"tenant": "acme", "amounts": {"tokens": 1000}}).to_string();
    let (status, json) = send(&state(), post("/v1/check", &body, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["decision"], "allow");
    assert!(json.get("policy").is_none());
}

#[tokio::test]
async fn metrics_count_decisions_and_cache_hits() {
    let state = state();
    check(&state, "acme", 1).await;
    let response = app(state.clone()).oneshot(get("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        text.contains(r#"tollgate_checks_total{decision="allow"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"tollgate_definition_cache_total{result="hit"} 1"#));
    assert!(text.contains("tollgate_check_duration_seconds_count 1"));
    assert!(text.contains(r#"tollgate_store_errors_total{store="redis"} 0"#));
}

#[tokio::test]
async fn health_is_ok_and_ready_names_the_store_that_is_down() {
    let state = state();
    let (status, json) = send(&state, get("/health")).await;
    assert_eq!((status, json), (StatusCode::OK, json!({"status": "ok"})));
    let (status, json) = send(&state, get("/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["postgres"], "down");
    assert_eq!(json["redis"], "ok");
}

#[tokio::test]
async fn admin_write_with_postgres_unreachable_is_a_503() {
    let state = state();
    let body = r#"{"id":"new-tenant","tier":"pro"}"#;
    let (status, json) = send(&state, post("/admin/v1/tenants", body, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"]["code"], "unavailable");
}

#[tokio::test]
async fn tenant_with_an_invalid_id_is_a_422_naming_id_before_any_query() {
    let body = r#"{"id":"a b","tier":"pro"}"#;
    let (status, json) = send(&state(), post("/admin/v1/tenants", body, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["error"]["field"], "id");
}

#[tokio::test]
async fn tier_with_a_negative_quota_is_a_422_naming_the_path() {
    let body = r#"{"name":"pro","limits":[{"resource":"requests","period":"day","quota":-1}]}"#;
    let (status, json) = send(&state(), post("/admin/v1/tiers", body, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["error"]["field"], "limits[0].quota");
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let (status, json) = send(&state(), get("/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "not_found");
}
