//! Every admin endpoint through the router against a real PostgreSQL: happy paths,
//! validation (422 naming the field, 400 for malformed input), 401, 404, 409, cursor
//! pagination — and the OpenAPI document compared with the router it describes.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::{assert_invalid, assert_problem, enc, Api, READ_TOKEN};

fn problem_field(body: &Value) -> &str {
    body["invalid-params"][0]["name"].as_str().unwrap_or("")
}

async fn pro_tier(api: &Api) -> Value {
    let body = json!({"name": "pro", "description": "Pro plan", "limits": [
        {"resource": "requests", "period": "minute", "quota": 100},
        {"resource": "request_bytes", "period": "month", "quota": 1000, "overage": 100, "warn_at": 0.5},
    ]});
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/tiers",
        Some(body),
    )
    .await
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_read_only_token_reads_everything_and_every_write_is_forbidden(pool: PgPool) {
    let api = Api::new(pool);
    pro_tier(&api).await;
    for path in ["/admin/v1/tiers", "/admin/v1/tiers/pro", "/admin/v1/events"] {
        let reply = api.send_as(Some(READ_TOKEN), Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {path}: {}", reply.body);
    }
    let writes = [
        (
            Method::POST,
            "/admin/v1/tiers",
            Some(json!({"name": "free"})),
        ),
        (
            Method::PATCH,
            "/admin/v1/tiers/pro",
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, "/admin/v1/tiers/pro", None),
        (
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({"id": "acme", "tier": "pro"})),
        ),
    ];
    for (method, path, body) in writes {
        let reply = api
            .send_as(Some(READ_TOKEN), method.clone(), path, body)
            .await;
        assert_problem(&reply, StatusCode::FORBIDDEN);
        assert_eq!(reply.body["code"], "forbidden", "{method} {path}");
    }
    // Nothing was written.
    let tier = api
        .expect(StatusCode::OK, Method::GET, "/admin/v1/tiers/pro", None)
        .await;
    assert_eq!(tier["description"], "Pro plan");
    api.expect(
        StatusCode::NOT_FOUND,
        Method::GET,
        "/admin/v1/tiers/free",
        None,
    )
    .await;
    api.expect(
        StatusCode::NOT_FOUND,
        Method::GET,
        "/admin/v1/tenants/acme",
        None,
    )
    .await;
    // A token that is neither is still unauthorized, for reads too.
    let reply = api
        .send_as(Some("guess"), Method::GET, "/admin/v1/tiers", None)
        .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn tiers_are_created_listed_changed_and_deleted(pool: PgPool) {
    let api = Api::new(pool);
    let tier = pro_tier(&api).await;
    assert_eq!(tier["limits"][1]["warn_at"], 0.5);
    assert_eq!(tier["limits"][1]["window"], "calendar");
    let again = api
        .admin(
            Method::POST,
            "/admin/v1/tiers",
            Some(json!({"name": "pro"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.headers["content-type"], "application/problem+json");
    assert_eq!(again.body["code"], "conflict");

    let bad = api
        .admin(
            Method::POST,
            "/admin/v1/tiers",
            Some(json!({"name": "p", "limits": [
            {"resource": "requests", "period": "minute", "quota": -1}]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_field(&bad.body), "limits[0].quota");
    let unknown_field = api
        .admin(
            Method::POST,
            "/admin/v1/tiers",
            Some(json!({"name": "x", "tire": 1})),
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_name = api
        .admin(
            Method::POST,
            "/admin/v1/tiers",
            Some(json!({"name": "Pro!"})),
        )
        .await;
    assert_eq!(problem_field(&bad_name.body), "name");

    for name in ["basic", "team", "zeta"] {
        api.expect(
            StatusCode::CREATED,
            Method::POST,
            "/admin/v1/tiers",
            Some(json!({"name": name})),
        )
        .await;
    }
    let first = api
        .expect(StatusCode::OK, Method::GET, "/admin/v1/tiers?limit=3", None)
        .await;
    let names: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["basic", "pro", "team"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("/admin/v1/tiers?limit=3&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(second["items"][0]["name"], "zeta");
    assert!(second.get("next_cursor").is_none());
    let bad_cursor = api
        .admin(Method::GET, "/admin/v1/tiers?cursor=%21%21", None)
        .await;
    assert_eq!(problem_field(&bad_cursor.body), "cursor");
    let bad_limit = api
        .admin(Method::GET, "/admin/v1/tiers?limit=many", None)
        .await;
    assert_eq!(bad_limit.status, StatusCode::UNPROCESSABLE_ENTITY);

    let got = api
        .expect(StatusCode::OK, Method::GET, "/admin/v1/tiers/pro", None)
        .await;
    assert_eq!(got["description"], "Pro plan");
    let requests_id = got["limits"][0]["id"].clone();
    let changed = api
        .expect(
            StatusCode::OK,
            Method::PATCH,
            "/admin/v1/tiers/pro",
            Some(json!({"limits": [
                {"resource": "requests", "period": "minute", "quota": 200},
                {"resource": "requests", "period": "hour", "window": "rolling", "quota": 5000},
            ]})),
        )
        .await;
    assert_eq!(
        changed["limits"][0]["id"], requests_id,
        "kept limits keep their id"
    );
    assert_eq!(changed["limits"][0]["quota"], 200);
    assert_eq!(changed["limits"].as_array().unwrap().len(), 2);
    assert_eq!(changed["description"], "Pro plan", "absent fields stay");

    api.expect(
        StatusCode::NOT_FOUND,
        Method::GET,
        "/admin/v1/tiers/nope",
        None,
    )
    .await;
    api.expect(
        StatusCode::NOT_FOUND,
        Method::PATCH,
        "/admin/v1/tiers/nope",
        Some(json!({})),
    )
    .await;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/tenants",
        Some(json!({"id": "acme", "tier": "pro"})),
    )
    .await;
    let in_use = api
        .expect(
            StatusCode::CONFLICT,
            Method::DELETE,
            "/admin/v1/tiers/pro",
            None,
        )
        .await;
    assert!(in_use["detail"].as_str().unwrap().contains("in use"));
    api.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        "/admin/v1/tiers/zeta",
        None,
    )
    .await;
    api.expect(
        StatusCode::NOT_FOUND,
        Method::DELETE,
        "/admin/v1/tiers/zeta",
        None,
    )
    .await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn limits_are_managed_one_by_one_on_tiers_and_as_tenant_overrides(pool: PgPool) {
    let api = Api::new(pool);
    pro_tier(&api).await;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/tenants",
        Some(json!({"id": "acme/x", "tier": "pro"})),
    )
    .await;
    let on_tier = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/admin/v1/limits",
            Some(json!({
            "tier": "pro", "resource": "concurrent_requests", "period": "none", "quota": 10})),
        )
        .await;
    assert_eq!(on_tier["period"], "none");
    let override_ = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/admin/v1/limits",
            Some(json!({
            "tenant": "acme/x", "resource": "requests", "period": "minute", "quota": 7})),
        )
        .await;
    assert_eq!(override_["tenant"], "acme/x");
    let both = api
        .admin(
            Method::POST,
            "/admin/v1/limits",
            Some(json!({"tier": "pro", "tenant": "acme/x",
            "resource": "r", "period": "day", "quota": 1})),
        )
        .await;
    assert_eq!(problem_field(&both.body), "tier");
    let unknown = api
        .admin(
            Method::POST,
            "/admin/v1/limits",
            Some(json!({"tier": "gold", "resource": "r", "period": "day", "quota": 1})),
        )
        .await;
    assert_eq!(
        (unknown.status, problem_field(&unknown.body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "tier")
    );
    let dup = api
        .admin(
            Method::POST,
            "/admin/v1/limits",
            Some(
                json!({"tenant": "acme/x", "resource": "requests", "period": "minute", "quota": 9}),
            ),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);

    let listed = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/limits?tenant=acme/x",
            None,
        )
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let id = override_["id"].as_i64().unwrap();
    let patched = api
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &format!("/admin/v1/limits/{id}"),
            Some(json!({"quota": 8, "overage": 2})),
        )
        .await;
    assert_eq!(
        (
            patched["quota"].clone(),
            patched["overage"].clone(),
            patched["period"].clone()
        ),
        (json!(8), json!(2), json!("minute"))
    );
    api.expect(
        StatusCode::OK,
        Method::GET,
        &format!("/admin/v1/limits/{id}"),
        None,
    )
    .await;
    api.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("/admin/v1/limits/{id}"),
        None,
    )
    .await;
    api.expect(
        StatusCode::NOT_FOUND,
        Method::GET,
        &format!("/admin/v1/limits/{id}"),
        None,
    )
    .await;
    api.expect(
        StatusCode::NOT_FOUND,
        Method::GET,
        "/admin/v1/limits/not-a-number",
        None,
    )
    .await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn tenants_form_a_hierarchy_with_labels_modes_and_overcommit(pool: PgPool) {
    let api = Api::new(pool);
    pro_tier(&api).await;
    let org = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({
            "id": "acme", "tier": "pro", "overcommit": 2.5, "labels": {"plan": "pro"}})),
        )
        .await;
    assert_eq!(
        (org["overcommit"].clone(), org["mode"].clone()),
        (json!(2.5), json!("enforce"))
    );
    let team = api
        .expect(StatusCode::CREATED, Method::POST, "/admin/v1/tenants", Some(json!({
            "id": "acme/research", "parent_id": "acme", "mode": "shadow", "labels": {"plan": "free"}})))
        .await;
    assert_eq!(team["tier"], Value::Null);
    for (body, field) in [
        (json!({"id": "a b"}), "id"),
        (json!({"id": "x", "parent_id": "ghost"}), "parent_id"),
        (json!({"id": "x", "tier": "gold"}), "tier"),
        (json!({"id": "x", "mode": "loud"}), "mode"),
        (json!({"id": "x", "overcommit": 0}), "overcommit"),
        (json!({"id": "x", "labels": [1]}), "labels"),
    ] {
        let reply = api
            .admin(Method::POST, "/admin/v1/tenants", Some(body.clone()))
            .await;
        assert_eq!(
            (reply.status, problem_field(&reply.body)),
            (StatusCode::UNPROCESSABLE_ENTITY, field),
            "{body}"
        );
    }
    api.expect(
        StatusCode::CONFLICT,
        Method::POST,
        "/admin/v1/tenants",
        Some(json!({"id": "acme"})),
    )
    .await;
    let malformed = api
        .send_as(
            Some(crate::support::TOKEN),
            Method::POST,
            "/admin/v1/tenants",
            None,
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);

    let got = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("/admin/v1/tenants/{}", enc("acme/research")),
            None,
        )
        .await;
    assert_eq!(got["parent_id"], "acme");
    let children = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/tenants?parent=acme",
            None,
        )
        .await;
    assert_eq!(children["items"].as_array().unwrap().len(), 1);
    let labelled = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/tenants?label=plan=pro",
            None,
        )
        .await;
    assert_eq!(labelled["items"][0]["id"], "acme");
    let shadowed = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/tenants?mode=shadow",
            None,
        )
        .await;
    assert_eq!(shadowed["items"][0]["id"], "acme/research");

    let path = format!("/admin/v1/tenants/{}", enc("acme/research"));
    let patched = api
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &path,
            Some(json!({"tier": "pro", "mode": "off"})),
        )
        .await;
    assert_eq!(
        (patched["tier"].clone(), patched["mode"].clone()),
        (json!("pro"), json!("off"))
    );
    let cleared = api
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &path,
            Some(json!({"tier": null})),
        )
        .await;
    assert_eq!(cleared["tier"], Value::Null);
    assert_eq!(cleared["mode"], "off", "absent fields stay");
    api.expect(
        StatusCode::CONFLICT,
        Method::PATCH,
        "/admin/v1/tenants/acme",
        Some(json!({"parent_id": "acme/research"})),
    )
    .await;
    api.expect(
        StatusCode::NOT_FOUND,
        Method::PATCH,
        "/admin/v1/tenants/ghost",
        Some(json!({})),
    )
    .await;
    api.expect(
        StatusCode::CONFLICT,
        Method::DELETE,
        "/admin/v1/tenants/acme",
        None,
    )
    .await;
    api.expect(StatusCode::NO_CONTENT, Method::DELETE, &path, None)
        .await;
    api.expect(StatusCode::NOT_FOUND, Method::GET, &path, None)
        .await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn assignments_give_tiers_to_tenants_roles_and_everyone(pool: PgPool) {
    let api = Api::new(pool);
    pro_tier(&api).await;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/tiers",
        Some(json!({"name": "free"})),
    )
    .await;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/tenants",
        Some(json!({"id": "acme", "tier": "free"})),
    )
    .await;
    let later = (api.clock.now() + chrono::Duration::days(30)).to_rfc3339();
    let direct = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/admin/v1/assignments",
            Some(json!({
            "tier": "pro", "tenant": "acme", "expires_at": later})),
        )
        .await;
    assert_eq!(
        (direct["kind"].clone(), direct["priority"].clone()),
        (json!("tenant"), json!(300))
    );
    let role = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/admin/v1/assignments",
            Some(json!({"tier": "pro", "role": "beta"})),
        )
        .await;
    assert_eq!(role["priority"], 200);
    let default = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/admin/v1/assignments",
            Some(json!({"tier": "free", "default": true})),
        )
        .await;
    assert_eq!(default["priority"], 100);
    for (body, field) in [
        (json!({"tier": "pro"}), "tenant"),
        (
            json!({"tier": "pro", "role": "a", "default": true}),
            "tenant",
        ),
        (json!({"tier": "gold", "role": "a"}), "tier"),
        (json!({"tier": "pro", "tenant": "ghost"}), "tenant"),
        (
            json!({"tier": "pro", "role": "a", "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"tier": "pro", "role": "a", "expires_at": "tomorrow"}),
            "expires_at",
        ),
    ] {
        let reply = api
            .admin(Method::POST, "/admin/v1/assignments", Some(body.clone()))
            .await;
        assert_eq!(
            (reply.status, problem_field(&reply.body)),
            (StatusCode::UNPROCESSABLE_ENTITY, field),
            "{body}"
        );
    }

    // The effective quota says which assignment won and why.
    let quota = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/tenants/acme/quota",
            None,
        )
        .await;
    let level = &quota["levels"][0];
    assert_eq!(
        (level["tier"].clone(), level["priority"].clone()),
        (json!("pro"), json!(300))
    );
    assert_eq!(level["assignment_id"], direct["id"]);
    assert!(
        level["reason"].as_str().unwrap().contains("temporary"),
        "{level}"
    );

    let id = direct["id"].as_i64().unwrap();
    let disabled = api
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &format!("/admin/v1/assignments/{id}"),
            Some(json!({"enabled": false, "expires_at": null})),
        )
        .await;
    assert_eq!(
        (disabled["enabled"].clone(), disabled["expires_at"].clone()),
        (json!(false), Value::Null)
    );
    let quota = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/tenants/acme/quota",
            None,
        )
        .await;
    assert_eq!(quota["levels"][0]["tier"], "free");
    assert!(quota["levels"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("own tier"));

    let active = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/assignments?active=true",
            None,
        )
        .await;
    assert_eq!(active["items"].as_array().unwrap().len(), 2);
    let by_role = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/assignments?kind=role",
            None,
        )
        .await;
    assert_eq!(by_role["items"][0]["role"], "beta");
    api.expect(
        StatusCode::UNPROCESSABLE_ENTITY,
        Method::GET,
        "/admin/v1/assignments?kind=team",
        None,
    )
    .await;
    api.expect(
        StatusCode::OK,
        Method::GET,
        &format!("/admin/v1/assignments/{id}"),
        None,
    )
    .await;
    api.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("/admin/v1/assignments/{id}"),
        None,
    )
    .await;
    api.expect(
        StatusCode::NOT_FOUND,
        Method::DELETE,
        &format!("/admin/v1/assignments/{id}"),
        None,
    )
    .await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn usage_is_read_reset_adjusted_and_kept_as_history(pool: PgPool) {
    let api = Api::new(pool);
    pro_tier(&api).await;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/tenants",
        Some(json!({"id": "acme"})),
    )
    .await;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/tenants",
        Some(json!({"id": "acme/r", "parent_id": "acme", "tier": "pro"})),
    )
    .await;
    api.check("acme/r", json!({"requests": 1, "request_bytes": 600}))
        .await;
    let usage_path = format!("/admin/v1/tenants/{}/usage", enc("acme/r"));
    let usage = api
        .expect(StatusCode::OK, Method::GET, &usage_path, None)
        .await;
    let bytes = usage["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["resource"] == "request_bytes")
        .unwrap();
    assert_eq!(
        (
            bytes["used"].clone(),
            bytes["remaining"].clone(),
            bytes["status"].clone()
        ),
        (json!(600), json!(500), json!("warning"))
    );
    assert!(bytes["window_start"]
        .as_str()
        .unwrap()
        .ends_with("-01T00:00:00Z"));

    let adjust_path = format!("/admin/v1/tenants/{}/usage:adjust", enc("acme/r"));
    let credit = api
        .expect(
            StatusCode::OK,
            Method::POST,
            &adjust_path,
            Some(json!({"resource": "request_bytes", "period": "month", "delta": -250})),
        )
        .await;
    assert_eq!(
        (
            credit["changes"][0]["before"].clone(),
            credit["changes"][0]["after"].clone()
        ),
        (json!(600), json!(350))
    );
    api.expect(
        StatusCode::NOT_FOUND,
        Method::POST,
        &adjust_path,
        Some(json!({"resource": "tokens", "period": "month", "delta": 1})),
    )
    .await;
    // A period or resource that cannot exist is named, not a search that finds nothing;
    // and nothing is changed.
    let reset_path = format!("/admin/v1/tenants/{}/usage:reset", enc("acme/r"));
    for (path, body, field) in [
        (
            &adjust_path,
            json!({"resource": "request_bytes", "period": "fortnight", "delta": 1}),
            "period",
        ),
        (
            &adjust_path,
            json!({"resource": "request_bytes", "period": "none", "delta": 1}),
            "period",
        ),
        (
            &adjust_path,
            json!({"resource": "Request Bytes", "period": "month", "delta": 1}),
            "resource",
        ),
        (&reset_path, json!({"period": "fortnight"}), "period"),
        (&reset_path, json!({"resource": "x:y"}), "resource"),
    ] {
        let reply = api.admin(Method::POST, path, Some(body.clone())).await;
        assert_invalid(&reply, field, &body);
    }
    let unchanged = api
        .expect(StatusCode::OK, Method::GET, &usage_path, None)
        .await;
    let bytes = unchanged["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["resource"] == "request_bytes")
        .unwrap();
    assert_eq!(bytes["used"], 350, "a refused change changes nothing");
    let reset_path = format!("/admin/v1/tenants/{}/usage:reset", enc("acme/r"));
    let reset = api
        .expect(StatusCode::OK, Method::POST, &reset_path, Some(json!({})))
        .await;
    assert_eq!(reset["changes"].as_array().unwrap().len(), 2);
    let after = api.check("acme/r", json!({"request_bytes": 10})).await;
    assert_eq!(after["policy"]["used"], 10);

    // The reset and the credit are in the history and in the log.
    let history = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{usage_path}/history?resource=request_bytes"),
            None,
        )
        .await;
    assert_eq!(history["items"][0]["used"], 0, "persisted at the reset");
    api.flush_usage().await;
    let history = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{usage_path}/history?resource=request_bytes"),
            None,
        )
        .await;
    assert_eq!(history["items"][0]["used"], 10);
    assert_eq!(history["items"][0]["series"], "month");
    let events = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/events?kind=usage.&tenant=acme/r",
            None,
        )
        .await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["usage.reset", "usage.adjusted"]);
    api.expect(
        StatusCode::NOT_FOUND,
        Method::GET,
        "/admin/v1/tenants/ghost/usage",
        None,
    )
    .await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn admin_changes_are_logged_with_the_acting_person(pool: PgPool) {
    let api = Api::new(pool);
    let reply = api
        .send_as(
            Some(crate::support::TOKEN),
            Method::POST,
            "/admin/v1/tiers",
            Some(json!({"name": "pro"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let events = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/events?kind=tier.created",
            None,
        )
        .await;
    assert_eq!(events["items"][0]["actor"], "admin");
    assert_eq!(events["items"][0]["after"]["name"], "pro");
    let bad_since = api
        .admin(Method::GET, "/admin/v1/events?since=yesterday", None)
        .await;
    assert_eq!(problem_field(&bad_since.body), "since");
}

/// Every documented operation, as (method, path).
fn documented() -> Vec<(Method, String, bool)> {
    let api = tollgate_control_plane::http::openapi();
    let mut operations = Vec::new();
    for (path, item) in &api.paths.paths {
        let ops = [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                // Secured: every alternative names a scheme. The decision API's
                // `{}` alternative makes its token optional (only when configured).
                let secured = op.security.as_ref().is_some_and(|alternatives| {
                    !alternatives.is_empty()
                        && alternatives
                            .iter()
                            .all(|r| serde_json::to_value(r).is_ok_and(|v| v != json!({})))
                });
                operations.push((method, path.clone(), secured));
            }
        }
    }
    operations
}

fn concrete(path: &str) -> String {
    path.replace("{name}", "pro").replace("{id}", "1")
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn the_openapi_document_describes_exactly_the_routes_the_router_serves(pool: PgPool) {
    let api = Api::new(pool);
    let reply = api
        .send_as(None, Method::GET, "/admin/v1/openapi.json", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let operations = documented();
    let paths: std::collections::BTreeSet<&str> =
        operations.iter().map(|(_, p, _)| p.as_str()).collect();
    for expected in [
        "/v1/check",
        "/v1/leases",
        "/v1/settle",
        "/v1/release",
        "/admin/v1/tiers",
        "/admin/v1/tenants/{id}/usage:reset",
        "/health",
    ] {
        assert!(paths.contains(expected), "{expected} is not documented");
    }
    // Every documented operation is served: admin ones answer 401 without a token
    // (authentication runs only once a route matched), the others anything but the
    // router's own 404/405.
    for (method, path, secured) in &operations {
        let reply = api
            .send_as(None, method.clone(), &concrete(path), Some(json!({})))
            .await;
        if *secured {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
            assert!(path.starts_with("/admin/v1/"), "{path} needs no token");
        } else {
            assert_ne!(reply.body["detail"], "route not found", "{method} {path}");
            assert_ne!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
        }
        let wrong = api
            .send_as(
                Some("wrong-token"),
                method.clone(),
                &concrete(path),
                Some(json!({})),
            )
            .await;
        if *secured {
            assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
    // And the router serves nothing else on those paths: other methods are 405.
    for path in &paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if operations.iter().any(|(m, p, _)| m == method && p == path) {
                continue;
            }
            let reply = api
                .admin(method.clone(), &concrete(path), Some(json!({})))
                .await;
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(reply.headers["content-type"], "application/problem+json");
        }
    }
    let unknown = api.admin(Method::GET, "/admin/v1/nothing", None).await;
    assert_eq!(
        (unknown.status, unknown.body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
}
