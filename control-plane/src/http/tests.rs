//! Router tests that need no database: counters in memory and a PostgreSQL pool that
//! points nowhere (port 1 refuses at once), as in production while PostgreSQL is down.
//! The API against a real PostgreSQL is tested in `tests/quota_model/`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;

use super::{app, app_for, Surface};
use crate::http::state::{AppConfig, AppState};
use crate::http::token::TokenDigest;
use crate::store::bus::MemoryBus;
use crate::store::MemoryStore;

const TOKEN: &str = "test-admin-token";

fn state() -> AppState {
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://tollgate@127.0.0.1:1/tollgate")
        .unwrap();
    let config = AppConfig::with_token(TOKEN);
    AppState::new(
        config,
        pool,
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryBus::default()),
    )
    .unwrap()
}

async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, String, Value) {
    send_to(app(state.clone()), request).await
}

async fn send_to(router: axum::Router, request: Request<Body>) -> (StatusCode, String, Value) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, content_type, body)
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

#[tokio::test]
async fn admin_request_with_a_wrong_or_missing_bearer_token_is_unauthorized() {
    let state = state();
    for token in [Some("wrong-token"), Some(""), None] {
        let (status, content_type, body) =
            send(&state, post("/admin/v1/tiers", r#"{"name":"pro"}"#, token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["code"], "unauthorized");
        assert_eq!(body["status"], 401);
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let (status, content_type, body) =
        send(&state(), post("/v1/check", r#"{"tenant":"#, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["title"], "Bad Request");
    assert!(body["detail"].as_str().unwrap().contains("JSON"));
}

#[tokio::test]
async fn body_without_json_content_type_is_a_400_problem() {
    let request = Request::post("/v1/check")
        .body(Body::from(r#"{"tenant":"acme","amounts":{}}"#))
        .unwrap();
    let (status, _, body) = send(&state(), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "validation");
}

#[tokio::test]
async fn invalid_tenant_id_on_check_is_a_422_naming_the_field_before_any_query() {
    let body = json!({"tenant": "a b", "amounts": {"requests": 1}}).to_string();
    let (status, _, body) = send(&state(), post("/v1/check", &body, None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["invalid-params"][0]["name"], "tenant");
}

#[tokio::test]
async fn a_check_without_reachable_definitions_is_a_503_for_the_filters_failure_mode() {
    let body = json!({"tenant": "acme", "amounts": {"requests": 1}}).to_string();
    let (status, content_type, body) = send(&state(), post("/v1/check", &body, None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], "unavailable");
}

#[tokio::test]
async fn admin_write_with_postgres_unreachable_is_a_503_problem() {
    let body = r#"{"id":"new-tenant","tier":"pro"}"#;
    let (status, content_type, body) =
        send(&state(), post("/admin/v1/tenants", body, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["detail"], "postgres is unavailable");
}

#[tokio::test]
async fn health_is_ok_and_ready_names_what_is_down() {
    let state = state();
    let (status, _, body) = send(&state, get("/health")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, _, body) = send(&state, get("/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["postgres"], "down");
    assert_eq!(body["definitions"], "down");
    assert_eq!(body["redis"], "ok");
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_every_series_from_the_start() {
    let (status, _, body) = send(&state(), get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    for series in [
        r#"tollgate_checks_total{decision="allow"} 0"#,
        r#"tollgate_settlements_total{outcome="settled"} 0"#,
        r#"tollgate_settlements_total{outcome="duplicate"} 0"#,
        r#"tollgate_store_errors_total{store="postgres"} 0"#,
        r#"tollgate_definition_cache_total{result="stale"} 0"#,
        "tollgate_history_flush_lag_seconds",
        "tollgate_events_dropped_total 0",
    ] {
        assert!(text.contains(series), "{series} missing from\n{text}");
    }
    assert!(
        !text.contains("tollgate_tenant_decisions_total"),
        "tenant labels are opt-in"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let (status, content_type, body) = send(&state(), get("/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], "not_found");
    let (status, _, body) = send(&state(), get("/v1/check")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed");
}

#[tokio::test]
async fn the_settle_endpoint_is_documented_with_its_bodies() {
    let document = serde_json::to_value(super::openapi()).unwrap();
    let settle = &document["paths"]["/v1/settle"]["post"];
    assert_eq!(
        settle["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SettleRequest"
    );
    let schemas = &document["components"]["schemas"];
    let required = schemas["SettleRequest"]["required"].as_array().unwrap();
    assert!(required.contains(&json!("checked_at_ms")), "{required:?}");
    assert!(required.contains(&json!("id")), "{required:?}");
    assert!(schemas["SettleResponse"]["properties"]["released"].is_object());
    assert!(schemas["CheckRequest"]["properties"]["shadow"].is_object());
}

#[tokio::test]
async fn a_settlement_without_checked_at_ms_names_the_field() {
    let body = r#"{"id":"s1","tenant":"acme","amounts":{"tokens":5}}"#;
    let (status, content_type, body) = send(&state(), post("/v1/settle", body, None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["invalid-params"][0]["name"], "checked_at_ms");
}

#[tokio::test]
async fn the_lease_endpoint_is_documented_with_its_bodies_and_the_deadline_header() {
    let document = serde_json::to_value(super::openapi()).unwrap();
    let lease = &document["paths"]["/v1/leases"]["post"];
    assert_eq!(
        lease["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LeaseRequest"
    );
    let parameters = lease["parameters"].as_array().unwrap();
    assert!(
        parameters
            .iter()
            .any(|p| p["name"] == "x-envoy-expected-rq-timeout-ms" && p["in"] == "header"),
        "{parameters:?}"
    );
    let schemas = &document["components"]["schemas"];
    let required = schemas["LeaseRequest"]["required"].as_array().unwrap();
    for field in ["id", "gateway", "tenant", "resource", "want"] {
        assert!(required.contains(&json!(field)), "{field}: {required:?}");
    }
    for field in ["granted", "ttl_ms", "warn_after", "refunded"] {
        assert!(
            schemas["LeaseResponse"]["properties"][field].is_object(),
            "{field}"
        );
    }
    assert!(schemas["LeaseReturn"]["properties"]["spent"].is_object());
}

#[tokio::test]
async fn a_lease_of_a_gauge_names_the_resource_before_any_lookup() {
    let state = state();
    let body =
        r#"{"id":"l1","gateway":"g1","tenant":"acme","resource":"concurrent_requests","want":1}"#;
    let (status, content_type, body) = send(&state, post("/v1/leases", body, None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["invalid-params"][0]["name"], "resource");
    assert_eq!(
        state
            .engine
            .metrics
            .leases
            .with_label_values(&["invalid"])
            .get(),
        1
    );
}

fn admin_get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap()
}

fn admin_patch(path: &str, body: &str) -> Request<Body> {
    Request::patch(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// PostgreSQL is unreachable here, so a 422 (not a 503) shows the request was refused
/// before any query: a NUL would have failed the query as a 500.
#[tokio::test]
async fn nul_in_a_path_query_or_body_is_a_422_naming_where_it_is_before_any_query() {
    let state = state();
    let cases = [
        (admin_get("/admin/v1/tenants/a%00b"), "id"),
        (admin_get("/admin/v1/tiers/pro%00"), "name"),
        (admin_get("/admin/v1/tenants/a%00b/usage/history"), "id"),
        (admin_get("/admin/v1/tenants?parent=a%00b"), "parent"),
        (admin_get("/admin/v1/assignments?tier=%00"), "tier"),
        (
            post(
                "/admin/v1/tenants",
                r#"{"id":"acme","labels":{"team":["ok","a\u0000b"]}}"#,
                Some(TOKEN),
            ),
            "labels.team[1]",
        ),
        (
            admin_patch("/admin/v1/tenants/acme", r#"{"labels":{"k\u0000":1}}"#),
            "labels",
        ),
        (
            post(
                "/admin/v1/tiers",
                r#"{"name":"pro","description":"\u0000"}"#,
                Some(TOKEN),
            ),
            "description",
        ),
    ];
    for (request, field) in cases {
        let uri = request.uri().to_string();
        let (status, content_type, body) = send(&state, request).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {body}");
        assert_eq!(content_type, "application/problem+json", "{uri}");
        assert_eq!(body["invalid-params"][0]["name"], field, "{uri}: {body}");
    }
}

#[tokio::test]
async fn an_escaped_backslash_before_u0000_is_text_not_nul() {
    // `\\u0000` in JSON is a backslash and "u0000": storable, so it reaches PostgreSQL
    // (unreachable here: 503).
    let body = r#"{"id":"acme","labels":{"path":"C:\\u0000"}}"#;
    let (status, _, body) = send(&state(), post("/admin/v1/tenants", body, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_problem_naming_it() {
    let (status, content_type, body) = send(&state(), admin_get("/admin/v1/tenants/%FF")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["invalid-params"][0]["name"], "id");
}

#[tokio::test]
async fn an_instant_postgresql_cannot_hold_is_a_422_naming_it_before_any_query() {
    let state = state();
    let too_early = "-100000-01-01T00:00:00Z";
    for (path, field) in [
        (format!("/admin/v1/events?since={too_early}"), "since"),
        (format!("/admin/v1/events?until={too_early}"), "until"),
        (
            format!("/admin/v1/tenants/acme/usage/history?from={too_early}"),
            "from",
        ),
        (
            "/admin/v1/tenants/acme/usage/history?to=%2B10000-01-01T00:00:00Z".to_string(),
            "to",
        ),
    ] {
        let (status, _, body) = send(&state, admin_get(&path)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["invalid-params"][0]["name"], field, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_body_past_the_size_limit_is_a_413_problem() {
    let big = format!(r#"{{"id":"{}"}}"#, "a".repeat(3 << 20));
    let (status, content_type, body) =
        send(&state(), post("/admin/v1/tenants", &big, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], "too_large");
}

#[tokio::test]
async fn every_operation_documents_what_its_extractors_can_answer() {
    let document = serde_json::to_value(super::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let has_parameters = parameters
                .iter()
                .any(|p| p["in"] == "path" || p["in"] == "query");
            if operation["requestBody"].is_object() {
                for status in ["400", "413", "422"] {
                    assert!(
                        responses[status].is_object(),
                        "{method} {path}: no {status}"
                    );
                }
                checked += 1;
            }
            if has_parameters {
                assert!(responses["422"].is_object(), "{method} {path}: no 422");
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} operations checked");
    let responses = &document["components"]["responses"];
    assert!(responses["TooLarge"]["content"]["application/problem+json"].is_object());
}

#[tokio::test]
async fn the_document_gives_tenant_ids_tier_names_and_page_sizes_their_rules() {
    let document = serde_json::to_value(super::openapi()).unwrap();
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["TenantId"]["pattern"],
        super::names::TENANT_ID_PATTERN
    );
    assert_eq!(
        schemas["TierName"]["pattern"],
        super::names::TIER_NAME_PATTERN
    );
    assert_eq!(
        schemas["CreateTenant"]["properties"]["id"]["$ref"],
        "#/components/schemas/TenantId"
    );
    assert_eq!(
        schemas["CreateTier"]["properties"]["name"]["$ref"],
        "#/components/schemas/TierName"
    );
    let paths = &document["paths"];
    for path in ["/admin/v1/tenants/{id}", "/admin/v1/tenants/{id}/usage"] {
        let parameter = &paths[path]["get"]["parameters"][0];
        assert_eq!(
            parameter["schema"]["$ref"], "#/components/schemas/TenantId",
            "{path}"
        );
    }
    let limit = paths["/admin/v1/events"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(500))
    );
}

#[tokio::test]
async fn every_link_leads_to_an_operation_taking_its_parameter() {
    let document = serde_json::to_value(super::openapi()).unwrap();
    let mut taking = std::collections::HashMap::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let parameters: Vec<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            taking.insert(
                operation["operationId"].as_str().unwrap().to_string(),
                parameters,
            );
        }
    }
    let created = &document["paths"]["/admin/v1/tenants"]["post"]["responses"]["201"];
    assert_eq!(
        created["links"]["get_tenant"]["parameters"]["id"],
        "$response.body#/id"
    );
    let mut links = 0;
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let Some(answers) = operation["responses"].as_object() else {
                continue;
            };
            for answer in answers.values() {
                for link in answer["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    let target = link["operationId"].as_str().unwrap();
                    let parameters = taking.get(target).unwrap_or_else(|| panic!("{target}"));
                    for name in link["parameters"].as_object().unwrap().keys() {
                        assert!(parameters.contains(name), "{target} takes no {name}");
                    }
                    links += 1;
                }
            }
        }
    }
    assert!(links >= 17, "only {links} links");
}

/// PostgreSQL is unreachable here: a 422 shows the body was refused before any query.
#[tokio::test]
async fn a_body_or_limit_written_as_an_array_is_a_422_not_a_struct() {
    let state = state();
    let (status, _, body) = send(&state, admin_patch("/admin/v1/tiers/pro", "[null, null]")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("a JSON object"),
        "{body}"
    );
    let positional = r#"{"name":"pro","limits":[["requests","minute",5]]}"#;
    let (status, _, body) = send(&state, post("/admin/v1/tiers", positional, Some(TOKEN))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["invalid-params"][0]["name"], "limits[0]", "{body}");
    let change = r#"{"limits":[["requests","minute",5]]}"#;
    let (status, _, body) = send(&state, admin_patch("/admin/v1/tiers/pro", change)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["invalid-params"][0]["name"], "limits[0]", "{body}");
}

#[tokio::test]
async fn usage_history_of_an_id_no_tenant_can_have_is_a_422_naming_it() {
    let path = "/admin/v1/tenants/%C3%BCn%C3%AF/usage/history";
    let (status, _, body) = send(&state(), admin_get(path)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["invalid-params"][0]["name"], "id", "{body}");
}

#[tokio::test]
async fn the_deadline_headers_are_documented_as_the_hints_they_are() {
    // A deadline that is not a whole number is ignored, not refused
    // (`decisions::tests`), so the document may not promise an integer.
    let document = serde_json::to_value(super::openapi()).unwrap();
    for path in ["/v1/check", "/v1/leases", "/v1/settle", "/v1/release"] {
        let parameters = document["paths"][path]["post"]["parameters"]
            .as_array()
            .unwrap();
        for name in ["x-tollgate-deadline-ms", "x-envoy-expected-rq-timeout-ms"] {
            let header = parameters.iter().find(|p| p["name"] == name).unwrap();
            assert_eq!(header["in"], "header");
            assert_eq!(
                header["schema"]["type"],
                json!(["string", "null"]),
                "{path} {name}"
            );
        }
    }
}

#[tokio::test]
async fn with_a_decision_token_the_decision_api_refuses_callers_without_it() {
    let mut state = state();
    state.config = Arc::new(AppConfig {
        decision_token: Some(TokenDigest::of("gateway-secret")),
        ..(*state.config).clone()
    });
    let check = r#"{"tenant":"acme","amounts":{"requests":1}}"#;
    for path in ["/v1/check", "/v1/leases", "/v1/settle", "/v1/release"] {
        for token in [None, Some("wrong"), Some(TOKEN)] {
            let (status, content_type, body) = send(&state, post(path, check, token)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with {token:?}");
            assert_eq!(content_type, "application/problem+json");
            assert_eq!(body["code"], "unauthorized");
        }
    }
    // The right secret passes: definitions are unreachable here, hence a 503.
    let (status, _, body) = send(&state, post("/v1/check", check, Some("gateway-secret"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn the_decision_and_admin_listeners_each_serve_only_their_own_api() {
    let state = state();
    let check = r#"{"tenant":"acme","amounts":{"requests":1}}"#;
    let decisions = || app_for(state.clone(), Surface::Decisions);
    let admin = || app_for(state.clone(), Surface::Admin);
    let (status, _, _) = send_to(decisions(), post("/v1/check", check, None)).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "served, stores down"
    );
    for path in ["/health", "/ready"] {
        let (status, _, body) = send_to(decisions(), get(path)).await;
        assert_ne!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    for path in ["/admin/v1/tiers", "/metrics", "/admin/v1/openapi.json"] {
        let (status, _, _) = send_to(decisions(), get(path)).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path} on the decision listener"
        );
    }
    // A gateway pointed at the admin listener is told where the decision API is.
    for path in ["/v1/check", "/v1/leases", "/v1"] {
        let (status, content_type, body) = send_to(admin(), post(path, check, None)).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path} on the admin listener"
        );
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["code"], "wrong_listener", "{body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("--decision-listen"), "{detail}");
    }
    let (status, _, body) = send_to(admin(), get("/v2/check")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "other unknown routes stay a plain 404"
    );
    let (status, _, document) = send_to(admin(), get("/admin/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        document["paths"]["/v1/check"].is_object(),
        "both APIs documented"
    );
}
