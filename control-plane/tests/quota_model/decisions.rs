//! `/v1/check`, `/v1/leases`, `/v1/settle` and `/v1/release` through the router, with
//! definitions in a real PostgreSQL and counters in memory (the Redis scripts keep the
//! same contract; see `counter_store.rs`) — settlements and budgets also in a real
//! Redis. The clock is the test's:
//! calendar boundaries are crossed by setting it, never by sleeping.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tollgate_control_plane::engine::definitions::listen;
use tollgate_control_plane::engine::RedisOutage;
use tollgate_control_plane::store::bus::{Bus, MemoryBus};
use tollgate_control_plane::store::{CounterStore, MemoryStore, RedisStore};

use crate::support::{assert_invalid, assert_problem, enc, one_changed, one_removed, Api, Reply};

pub(crate) async fn tier(api: &Api, name: &str, limits: Value) {
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/tiers",
        Some(json!({"name": name, "limits": limits})),
    )
    .await;
}

pub(crate) async fn tenant(api: &Api, body: Value) {
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/tenants",
        Some(body),
    )
    .await;
}

/// `used` of each of `tenant`'s usage rows on `resource`, by owning level.
pub(crate) async fn used(api: &Api, tenant: &str, resource: &str) -> Vec<(String, u64)> {
    let usage = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("/admin/v1/tenants/{}/usage", enc(tenant)),
            None,
        )
        .await;
    usage["usage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["resource"] == resource)
        .map(|row| {
            (
                row["tenant"].as_str().unwrap().to_string(),
                row["used"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_per_minute_request_limit_and_a_monthly_byte_limit_both_hold(pool: PgPool) {
    let api = Api::new(pool);
    tier(
        &api,
        "metered",
        json!([
            {"resource": "requests", "period": "minute", "quota": 3},
            {"resource": "request_bytes", "period": "month", "quota": 1000},
        ]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "metered"})).await;
    let request = json!({"requests": 1, "request_bytes": 100});
    for _ in 0..3 {
        assert_ne!(
            api.check("acme", request.clone()).await["decision"],
            "reject"
        );
    }
    let fourth = api.check("acme", request.clone()).await;
    assert_eq!(fourth["decision"], "reject");
    assert_eq!(
        (
            fourth["policy"]["name"].clone(),
            fourth["policy"]["resource"].clone()
        ),
        (json!("per-minute"), json!("requests"))
    );
    assert_eq!(
        used(&api, "acme", "request_bytes").await,
        vec![("acme".into(), 300)],
        "the rejected bytes were not counted"
    );

    api.clock
        .set(api.clock.now() + chrono::Duration::minutes(1));
    assert_ne!(
        api.check("acme", request).await["decision"],
        "reject",
        "a new minute"
    );
    let too_big = api
        .check("acme", json!({"requests": 1, "request_bytes": 700}))
        .await;
    assert_eq!(
        (
            too_big["decision"].clone(),
            too_big["policy"]["name"].clone()
        ),
        (json!("reject"), json!("monthly"))
    );
    assert_eq!(too_big["policy"]["used"], 400);
    assert_eq!(
        used(&api, "acme", "requests").await,
        vec![("acme".into(), 1)],
        "nor its request"
    );
}

async fn org_team_users(api: &Api, org: Value, team: Value, user: Value) {
    tier(api, "org", org).await;
    tier(api, "team", team).await;
    tier(api, "user", user).await;
    tenant(
        api,
        json!({"id": "acme", "tier": "org", "overcommit": 1000}),
    )
    .await;
    tenant(
        api,
        json!({"id": "acme/team", "parent_id": "acme", "tier": "team", "overcommit": 1000}),
    )
    .await;
    tenant(
        api,
        json!({"id": "acme/team/alice", "parent_id": "acme/team", "tier": "user"}),
    )
    .await;
    tenant(
        api,
        json!({"id": "acme/team/bob", "parent_id": "acme/team", "tier": "user"}),
    )
    .await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_team_at_its_hard_limit_rejects_a_user_with_headroom_and_charges_nobody(pool: PgPool) {
    let api = Api::new(pool);
    let monthly = |quota: u64| json!([{"resource": "requests", "period": "month", "quota": quota}]);
    org_team_users(&api, monthly(1000), monthly(5), monthly(100)).await;
    api.check("acme/team/alice", json!({"requests": 5})).await;
    let bob = api.check("acme/team/bob", json!({"requests": 1})).await;
    assert_eq!(bob["decision"], "reject");
    assert_eq!(
        bob["policy"]["tenant"], "acme/team",
        "the team's limit bound"
    );
    assert_eq!(
        (
            bob["policy"]["used"].clone(),
            bob["policy"]["limit"].clone()
        ),
        (json!(5), json!(5))
    );
    assert_eq!(
        used(&api, "acme/team/bob", "requests").await,
        vec![
            ("acme/team/bob".into(), 0),
            ("acme/team".into(), 5),
            ("acme".into(), 5)
        ],
        "nobody was charged for bob's rejected request"
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn an_organization_warning_shows_on_a_users_response(pool: PgPool) {
    let api = Api::new(pool);
    let org = json!([{"resource": "requests", "period": "month", "quota": 10, "warn_at": 0.5}]);
    org_team_users(
        &api,
        org,
        json!([]),
        json!([{"resource": "requests", "period": "month", "quota": 1000}]),
    )
    .await;
    let ok = api.check("acme/team/alice", json!({"requests": 5})).await;
    assert_eq!(ok["decision"], "allow");
    let warned = api.check("acme/team/alice", json!({"requests": 1})).await;
    assert_eq!(warned["decision"], "warn");
    assert_eq!(
        (
            warned["policy"]["tenant"].clone(),
            warned["policy"]["remaining"].clone()
        ),
        (json!("acme"), json!(4))
    );
}

/// An organization `org` with 100 requests a day and the overcommit to share them, and
/// one child `org/<name>` per entry of `children`, each with 2 requests a day and acting
/// in its `mode`.
async fn org_with_children(api: &Api, children: &[(&str, &str)]) {
    tier(
        api,
        "two-a-day",
        json!([{"resource": "requests", "period": "day", "quota": 2}]),
    )
    .await;
    tier(
        api,
        "roomy",
        json!([{"resource": "requests", "period": "day", "quota": 100}]),
    )
    .await;
    tenant(
        api,
        json!({"id": "org", "tier": "roomy", "overcommit": 1000}),
    )
    .await;
    for (name, mode) in children {
        let child = json!({"id": format!("org/{name}"), "parent_id": "org", "tier": "two-a-day",
                           "mode": mode});
        tenant(api, child).await;
    }
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn shadow_levels_count_but_never_reject_and_off_levels_are_not_counted(pool: PgPool) {
    let api = Api::new(pool);
    org_with_children(&api, &[("shadowed", "shadow"), ("off", "off")]).await;
    let mut last = Value::Null;
    for _ in 0..3 {
        last = api.check("org/shadowed", json!({"requests": 1})).await;
    }
    assert_eq!(
        (last["decision"].clone(), last["shadow_reject"].clone()),
        (json!("warn"), json!(true))
    );
    for _ in 0..5 {
        assert_eq!(
            api.check("org/off", json!({"requests": 1})).await["decision"],
            "allow"
        );
    }
    assert_eq!(
        used(&api, "org/shadowed", "requests").await[0],
        ("org/shadowed".into(), 3)
    );
    assert_eq!(
        used(&api, "org/off", "requests").await,
        vec![("org/off".into(), 0), ("org".into(), 8)],
        "the parent counts what its off child sends"
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn calendar_windows_turn_over_at_utc_midnight_monday_and_the_first(pool: PgPool) {
    let api = Api::new(pool);
    for period in ["day", "week", "month"] {
        tier(
            &api,
            period,
            json!([{"resource": "requests", "period": period, "quota": 1}]),
        )
        .await;
        tenant(&api, json!({"id": format!("t-{period}"), "tier": period})).await;
    }
    // Sunday 30 November 2026, one second before midnight UTC; Monday 1 December after it.
    let before = Utc.with_ymd_and_hms(2026, 11, 29, 23, 59, 59).unwrap();
    let boundaries = [
        (
            "day",
            before,
            Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap(),
        ),
        (
            "week",
            before,
            Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap(),
        ),
        (
            "month",
            Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        ),
    ];
    for (period, just_before, just_after) in boundaries {
        let tenant = format!("t-{period}");
        api.clock.set(just_before);
        let first = api.check(&tenant, json!({"requests": 1})).await;
        assert_eq!(first["policy"]["reset_after_s"], 1, "{period}");
        assert_eq!(
            api.check(&tenant, json!({"requests": 1})).await["decision"],
            "reject",
            "{period}"
        );
        api.clock.set(just_after);
        let next = api.check(&tenant, json!({"requests": 1})).await;
        assert_eq!(
            (next["decision"].clone(), next["policy"]["used"].clone()),
            (json!("warn"), json!(1)),
            "{period}: a new window"
        );
    }
    let december = api.check("t-month", json!({"requests": 0})).await;
    assert_eq!(
        december["policy"]["reset_after_s"],
        31 * 86_400,
        "December has 31 days"
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_rolling_window_frees_usage_as_it_slides(pool: PgPool) {
    let api = Api::new(pool);
    tier(
        &api,
        "rolling",
        json!([{"resource": "requests", "period": "hour", "window": "rolling", "quota": 3}]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "rolling"})).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 30).unwrap();
    api.clock.set(start);
    api.check("acme", json!({"requests": 2})).await;
    api.clock.set(start + chrono::Duration::minutes(30));
    api.check("acme", json!({"requests": 1})).await;
    let full = api.check("acme", json!({"requests": 1})).await;
    assert_eq!(full["decision"], "reject");
    // The 12:00 bucket counts until 13:01, 61 buckets after it began.
    assert_eq!(full["policy"]["reset_after_s"], 31 * 60 - 30);
    api.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 17, 13, 0, 59).unwrap());
    assert_eq!(
        api.check("acme", json!({"requests": 1})).await["decision"],
        "reject"
    );
    api.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 17, 13, 1, 0).unwrap());
    let freed = api.check("acme", json!({"requests": 2})).await;
    assert_ne!(freed["decision"], "reject");
    assert_eq!(freed["policy"]["used"], 3);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn concurrent_request_slots_are_held_until_released(pool: PgPool) {
    let api = Api::new(pool);
    tier(
        &api,
        "gauge",
        json!([{"resource": "concurrent_requests", "period": "none", "quota": 2}]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "gauge"})).await;
    let hold = |id: &str| json!({"tenant": "acme", "amounts": {"concurrent_requests": 1}, "request_id": id});
    let send = |body: Value| api.filter_post("/v1/check", body);
    assert_eq!(send(hold("r1")).await.body["decision"], "allow");
    assert_eq!(send(hold("r2")).await.body["decision"], "warn");
    let third = send(hold("r3")).await.body;
    assert_eq!(
        (third["decision"].clone(), third["policy"]["name"].clone()),
        (json!("reject"), json!("concurrent"))
    );
    let release =
        |id: &str| api.filter_post("/v1/release", json!({"tenant": "acme", "request_id": id}));
    assert_eq!(release("r1").await.body["released"], 1);
    assert_eq!(release("r1").await.body["released"], 0, "idempotent");
    assert_ne!(send(hold("r3")).await.body["decision"], "reject");
    let no_id = json!({"tenant": "acme", "amounts": {"concurrent_requests": 1}});
    assert_invalid(&send(no_id.clone()).await, "request_id", &no_id);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_store_that_lost_its_counters_continues_from_the_persisted_usage(pool: PgPool) {
    let store = Arc::new(MemoryStore::new());
    let api = Api::with_store(pool, store.clone());
    tier(
        &api,
        "bytes",
        json!([{"resource": "request_bytes", "period": "month", "quota": 1000}]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "bytes"})).await;
    api.check("acme", json!({"request_bytes": 900})).await;
    api.flush_usage().await;
    store.clear(); // Redis restarted without persistence, mid-month
    let over = api.check("acme", json!({"request_bytes": 200})).await;
    assert_eq!(
        (over["decision"].clone(), over["policy"]["used"].clone()),
        (json!("reject"), json!(900))
    );
    let fits = api.check("acme", json!({"request_bytes": 100})).await;
    assert_eq!(fits["policy"]["used"], 1000);
    let metrics = api.send_as(None, Method::GET, "/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn the_first_warning_of_a_window_and_aggregated_rejections_are_logged(pool: PgPool) {
    let api = Api::new(pool);
    tier(
        &api,
        "ten",
        json!([{"resource": "requests", "period": "minute", "quota": 10}]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "ten"})).await;
    for _ in 0..15 {
        api.check("acme", json!({"requests": 1})).await;
    }
    api.state.engine.events.flush(&api.state.engine.repo).await;
    let events = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/events?kind=quota.&tenant=acme",
            None,
        )
        .await;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{events}");
    let rejected = items
        .iter()
        .find(|e| e["kind"] == "quota.rejected")
        .unwrap();
    assert_eq!(rejected["data"]["count"], 5);
    let warning = items.iter().find(|e| e["kind"] == "quota.warning").unwrap();
    assert_eq!(warning["data"]["used"], 9, "the request that crossed 80 %");
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn roles_and_the_default_tier_decide_for_tenants_without_their_own(pool: PgPool) {
    let api = Api::new(pool);
    let unknown = api.check("stranger", json!({"requests": 1})).await;
    assert_eq!(
        (unknown["decision"].clone(), unknown["reason"].clone()),
        (json!("reject"), json!("unknown_tenant"))
    );
    tier(
        &api,
        "free",
        json!([{"resource": "requests", "period": "day", "quota": 1}]),
    )
    .await;
    tier(
        &api,
        "beta",
        json!([{"resource": "requests", "period": "day", "quota": 50}]),
    )
    .await;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/assignments",
        Some(json!({"tier": "free", "default": true})),
    )
    .await;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/assignments",
        Some(json!({"tier": "beta", "role": "tester"})),
    )
    .await;
    let by_default = api.check("stranger", json!({"requests": 1})).await;
    assert_eq!(by_default["policy"]["limit"], 1);
    let body = json!({"tenant": "stranger", "roles": ["tester"], "amounts": {"requests": 1}});
    let by_role = api.filter_post("/v1/check", body).await.body;
    assert_eq!(by_role["policy"]["limit"], 50);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn invalid_checks_are_refused_naming_the_field(pool: PgPool) {
    let api = Api::new(pool);
    for (body, field) in [
        (json!({"tenant": "a b", "amounts": {}}), "tenant"),
        (
            json!({"tenant": "a", "amounts": {"Bad:Name": 1}}),
            "amounts.Bad:Name",
        ),
        (
            json!({"tenant": "a", "amounts": {"requests": u64::MAX}}),
            "amounts.requests",
        ),
        (
            json!({"tenant": "a", "amounts": {"requests": -1}}),
            "amounts.requests",
        ),
        (
            json!({"tenant": "a", "amounts": {}, "roles": ["has space"]}),
            "roles[0]",
        ),
        (
            json!({"tenant": "a", "amounts": {}, "request_id": "{x}"}),
            "request_id",
        ),
        (json!({"tenant": "a", "amounts": {}, "tenantt": "b"}), ""),
    ] {
        assert_invalid(
            &api.filter_post("/v1/check", body.clone()).await,
            field,
            &body,
        );
    }
    let not_json = api.send_as(None, Method::POST, "/v1/check", None).await;
    assert_problem(&not_json, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn an_admin_write_on_one_instance_reaches_the_others_cache_within_a_second(pool: PgPool) {
    let store: Arc<dyn CounterStore> = Arc::new(MemoryStore::new());
    let shared_bus: Arc<dyn Bus> = Arc::new(MemoryBus::default());
    let one = Api::over(pool.clone(), store.clone(), shared_bus.clone());
    let two = Api::over(pool, store, shared_bus.clone());
    tokio::spawn(listen(
        shared_bus,
        two.state.engine.definitions.clone(),
        two.state.engine.webhooks.clone(),
        two.state.engine.instance.clone(),
        Duration::from_millis(50),
    ));
    tier(
        &one,
        "small",
        json!([{"resource": "requests", "period": "day", "quota": 5}]),
    )
    .await;
    tier(
        &one,
        "large",
        json!([{"resource": "requests", "period": "day", "quota": 500}]),
    )
    .await;
    // Instance two caches acme as unknown, then as small.
    assert_eq!(
        two.check("acme", json!({"requests": 1})).await["reason"],
        "unknown_tenant"
    );
    tenant(&one, json!({"id": "acme", "tier": "small"})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let decision = two.check("acme", json!({"requests": 0})).await;
        if decision["policy"]["limit"] == 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not seen within 1 s: {decision}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    one.expect(
        StatusCode::OK,
        Method::PATCH,
        "/admin/v1/tenants/acme",
        Some(json!({"tier": "large"})),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while two.check("acme", json!({"requests": 0})).await["policy"]["limit"] != 500 {
        assert!(
            std::time::Instant::now() < deadline,
            "tier change not seen within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /v1/settle` with `body`.
async fn settle(api: &Api, body: Value) -> Reply {
    api.filter_post("/v1/settle", body).await
}

/// `POST /v1/settle` with `body`, which must be accepted; returns how many gauge slots
/// it released.
async fn settled(api: &Api, body: Value) -> u64 {
    let reply = settle(api, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["released"].as_u64().unwrap()
}

/// How many settlements `api` counted under `outcome` (`tollgate_settlements_total`).
fn settlements(api: &Api, outcome: &str) -> u64 {
    api.state
        .engine
        .metrics
        .settlements
        .with_label_values(&[outcome])
        .get()
}

/// `used` of the persisted usage history rows of `tenant` on `resource`, newest first.
async fn history(api: &Api, tenant: &str, resource: &str) -> Vec<u64> {
    api.flush_usage().await;
    let rows = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!(
                "/admin/v1/tenants/{}/usage/history?resource={resource}",
                enc(tenant)
            ),
            None,
        )
        .await;
    rows["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["used"].as_u64().unwrap())
        .collect()
}

/// An organization and its app on a metered tier: 100 tokens a month (hard limit) and
/// five concurrent requests. Returns the app's id, `<org>/app`.
async fn metered_app(api: &Api, org: &str) -> String {
    tier(
        api,
        "metered",
        json!([
            {"resource": "tokens", "period": "month", "quota": 100},
            {"resource": "concurrent_requests", "period": "none", "quota": 5},
        ]),
    )
    .await;
    tier(
        api,
        "org",
        json!([{"resource": "tokens", "period": "month", "quota": 1000}]),
    )
    .await;
    tenant(api, json!({"id": org, "tier": "org", "overcommit": 1000})).await;
    let app = format!("{org}/app");
    tenant(api, json!({"id": app, "parent_id": org, "tier": "metered"})).await;
    app
}

/// A [`metered_app`] of `acme`, and a tenant `slotted` whose tier has only a gauge,
/// `slots` (3). Returns the app's id.
async fn metered_app_beside_a_gauge(api: &Api) -> String {
    tier(
        api,
        "slots",
        json!([{"resource": "slots", "period": "none", "quota": 3}]),
    )
    .await;
    tenant(api, json!({"id": "slotted", "tier": "slots"})).await;
    metered_app(api, "acme").await
}

/// The tokens a [`metered_app`] and its organization used, from the usage view.
async fn app_and_org_tokens(api: &Api, app: &str) -> (u64, u64) {
    let rows = used(api, app, "tokens").await;
    let org = app.strip_suffix("/app").unwrap();
    match rows.as_slice() {
        [(a, app_used), (o, org_used)] if a == app && o == org => (*app_used, *org_used),
        _ => panic!("usage of {app} and {org} expected: {rows:?}"),
    }
}

/// A check of `tokens` by a [`metered_app`] that also holds a concurrent slot under
/// `request_id`.
fn metered_check(app: &str, tokens: u64, request_id: &str) -> Value {
    json!({"tenant": app, "amounts": {"tokens": tokens, "concurrent_requests": 1},
           "request_id": request_id})
}

/// Settlement `id` of `tokens` (signed) for `tenant`, whose check counted at
/// `checked_at_ms`.
fn tokens_settlement(id: &str, tenant: &str, tokens: i64, checked_at_ms: i64) -> Value {
    json!({"id": id, "tenant": tenant, "amounts": {"tokens": tokens},
           "checked_at_ms": checked_at_ms})
}

async fn settlements_top_up_past_the_hard_limit_and_refund_headroom(api: Api, org: &str) {
    let app = metered_app(&api, org).await;
    let checked_at = api.clock.now().timestamp_millis();
    // The check reserves 50 tokens and holds a concurrent slot.
    let first = api
        .filter_post("/v1/check", metered_check(&app, 50, "r1"))
        .await;
    assert_eq!(first.body["decision"], "allow", "{}", first.body);
    assert_eq!(first.body["policy"]["resource"], "tokens");

    // The upstream used 120: 70 more than reserved. Counted in full, though past 100.
    let mut top_up = tokens_settlement("s-r1", &app, 70, checked_at);
    top_up["release_request_id"] = json!("r1");
    assert_eq!(settled(&api, top_up).await, 1);
    assert_eq!(app_and_org_tokens(&api, &app).await, (120, 120));
    assert_eq!(history(&api, &app, "tokens").await, vec![120], "billed");
    let refused = api
        .filter_post("/v1/check", metered_check(&app, 1, "r2"))
        .await;
    assert_eq!(
        (
            refused.body["decision"].clone(),
            refused.body["policy"]["resource"].clone()
        ),
        (json!("reject"), json!("tokens")),
        "the next request is refused; the released slot is not what binds"
    );

    // A refund of what another request reserved and did not use restores headroom.
    let refund = tokens_settlement("s-other", &app, -40, checked_at);
    assert_eq!(settled(&api, refund).await, 0);
    assert_eq!(app_and_org_tokens(&api, &app).await, (80, 80));
    assert_eq!(
        history(&api, &app, "tokens").await,
        vec![80],
        "the refund reaches the history too"
    );
    let admitted = api
        .filter_post("/v1/check", metered_check(&app, 1, "r3"))
        .await;
    assert_ne!(admitted.body["decision"], "reject", "{}", admitted.body);

    // A refund of a request checked last month gives this month nothing.
    api.clock
        .set(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 5).unwrap());
    let late = tokens_settlement("s-late", &app, -40, checked_at);
    assert_eq!(settled(&api, late).await, 0);
    api.filter_post("/v1/check", metered_check(&app, 10, "r4"))
        .await;
    assert_eq!(used(&api, &app, "tokens").await[0], (app.clone(), 10));

    assert_eq!(settlements(&api, "settled"), 3);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn settlements_top_up_past_the_hard_limit_and_refund_headroom_in_memory(pool: PgPool) {
    settlements_top_up_past_the_hard_limit_and_refund_headroom(Api::new(pool), "mem").await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn settlements_top_up_past_the_hard_limit_and_refund_headroom_in_redis(pool: PgPool) {
    let api = Api::on_redis(pool);
    settlements_top_up_past_the_hard_limit_and_refund_headroom(api, "settle-redis").await;
}

async fn a_settlement_posted_twice_counts_once(api: Api, org: &str) {
    let app = metered_app(&api, org).await;
    let checked_at = api.clock.now().timestamp_millis();
    let checked = api
        .filter_post("/v1/check", metered_check(&app, 10, "r1"))
        .await;
    assert_eq!(checked.body["decision"], "allow", "{}", checked.body);
    let mut body = tokens_settlement("r1-settle", &app, 30, checked_at);
    body["release_request_id"] = json!("r1");
    assert_eq!(settled(&api, body.clone()).await, 1);
    // The filter did not get the answer (a timeout, a reset connection) and retries.
    for _ in 0..2 {
        assert_eq!(settled(&api, body.clone()).await, 0);
    }
    assert_eq!(
        app_and_org_tokens(&api, &app).await,
        (40, 40),
        "counted once"
    );
    assert_eq!(history(&api, &app, "tokens").await, vec![40]);
    // Another settlement of the same amounts counts again.
    body["id"] = json!("r2-settle");
    settled(&api, body).await;
    assert_eq!(app_and_org_tokens(&api, &app).await, (70, 70));
    assert_eq!(settlements(&api, "settled"), 2);
    assert_eq!(settlements(&api, "duplicate"), 2);
    assert_eq!(api.state.engine.metrics.releases.get(), 1, "released once");
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_settlement_posted_twice_counts_once_in_memory(pool: PgPool) {
    a_settlement_posted_twice_counts_once(Api::new(pool), "mem").await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_settlement_posted_twice_counts_once_in_redis(pool: PgPool) {
    a_settlement_posted_twice_counts_once(Api::on_redis(pool), "settle-twice-redis").await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_settlement_on_lost_counters_is_reseeded_then_applied_once(pool: PgPool) {
    let store = Arc::new(MemoryStore::new());
    let api = Api::with_store(pool, store.clone());
    let app = metered_app(&api, "acme").await;
    let checked_at = api.clock.now().timestamp_millis();
    api.check(&app, json!({"tokens": 10})).await;
    assert_eq!(history(&api, &app, "tokens").await, vec![10], "persisted");
    // Redis restarts empty: the settlement is refused for a re-seed inside the control
    // plane, which re-seeds from the history and applies it — once.
    store.clear();
    let seeds_before = api.state.engine.metrics.seeds.get();
    let body = tokens_settlement("s-lost", &app, 5, checked_at);
    for _ in 0..2 {
        assert_eq!(settled(&api, body.clone()).await, 0);
    }
    assert_eq!(app_and_org_tokens(&api, &app).await, (15, 15));
    assert_eq!(settlements(&api, "settled"), 1);
    assert_eq!(settlements(&api, "duplicate"), 1);
    assert_eq!(
        api.state.engine.metrics.seeds.get() - seeds_before,
        2,
        "the app and its organization, re-seeded once"
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_settlement_with_nothing_to_correct_still_gives_back_the_slot(pool: PgPool) {
    // What the filter sends at the end of a request whose cost was known at the
    // headers: no amounts, only the slot. Refused, the slot would stay held.
    let api = Api::new(pool);
    let app = metered_app(&api, "acme").await;
    let at = api.clock.now().timestamp_millis();
    for id in ["r1", "r2"] {
        let reply = api
            .filter_post("/v1/check", metered_check(&app, 1, id))
            .await;
        assert_eq!(reply.body["decision"], "allow", "{}", reply.body);
    }
    let release = json!({"id": "s1", "tenant": app, "amounts": {}, "checked_at_ms": at,
                         "release_request_id": "r1"});
    assert_eq!(settled(&api, release).await, 1);
    let slots = used(&api, &app, "concurrent_requests").await;
    assert_eq!(slots, vec![(app.clone(), 1)], "only r2 holds one");
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn invalid_settlements_are_refused_naming_the_field_and_change_nothing(pool: PgPool) {
    let api = Api::new(pool);
    let app = metered_app_beside_a_gauge(&api).await;
    api.check(&app, json!({"tokens": 10})).await;
    let at = api.clock.now().timestamp_millis();
    // Each body is a valid settlement with one thing wrong.
    let valid = tokens_settlement("s1", &app, 5, at);
    let (with, without) = (one_changed(&valid), one_removed(&valid));
    for (body, field) in [
        (
            with("amounts", json!({"tokens": 5, "concurrent_requests": 1})),
            "amounts.concurrent_requests",
        ),
        (
            json!({"id": "s1", "tenant": "slotted", "amounts": {"slots": -1}, "checked_at_ms": at}),
            "amounts.slots",
        ),
        (without("checked_at_ms"), "checked_at_ms"),
        (with("checked_at_ms", json!(-1)), "checked_at_ms"),
        (with("checked_at_ms", json!(u64::MAX)), "checked_at_ms"),
        (with("tenant", json!("a b")), "tenant"),
        (with("amounts", json!({})), "amounts"),
        (with("amounts", json!({"Bad:Name": 5})), "amounts.Bad:Name"),
        (with("amounts", json!({"tokens": 1.5})), "amounts.tokens"),
        (
            with("release_request_id", json!("{x}")),
            "release_request_id",
        ),
        (with("roles", json!(["has space"])), "roles[0]"),
        (without("id"), "id"),
        (with("id", json!("")), "id"),
        (with("id", json!("has space")), "id"),
        (with("id", json!("x".repeat(129))), "id"),
        (with("id", json!(7)), "id"),
    ] {
        assert_invalid(&settle(&api, body.clone()).await, field, &body);
    }
    let not_json = api.send_as(None, Method::POST, "/v1/settle", None).await;
    assert_problem(&not_json, StatusCode::BAD_REQUEST);
    assert_eq!(
        app_and_org_tokens(&api, &app).await,
        (10, 10),
        "nothing was settled"
    );

    // A tenant nobody gave a tier was never counted: nothing to settle.
    let mut stranger = with("tenant", json!("stranger"));
    stranger["release_request_id"] = json!("r1");
    assert_eq!(settled(&api, stranger).await, 0);
    assert_eq!(settlements(&api, "invalid"), 17);
    assert_eq!(settlements(&api, "unknown_tenant"), 1);
    assert_eq!(settlements(&api, "settled"), 0);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_shadow_check_past_the_hard_limit_is_counted_with_a_warning(pool: PgPool) {
    let api = Api::new(pool);
    org_with_children(&api, &[("app", "enforce"), ("off", "off")]).await;
    let shadow =
        |tenant: &str| json!({"tenant": tenant, "amounts": {"requests": 1}, "shadow": true});
    let mut last = Value::Null;
    for _ in 0..3 {
        let reply = api.filter_post("/v1/check", shadow("org/app")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        last = reply.body;
    }
    assert_eq!(
        (
            last["decision"].clone(),
            last["shadow_reject"].clone(),
            last["policy"]["used"].clone()
        ),
        (json!("warn"), json!(true), json!(3))
    );
    assert_eq!(
        used(&api, "org/app", "requests").await,
        vec![("org/app".into(), 3), ("org".into(), 3)],
        "counted past the hard limit"
    );
    // Without the flag the tenant's limit is enforced again.
    assert_eq!(
        api.check("org/app", json!({"requests": 1})).await["decision"],
        "reject"
    );
    // An off level stays off: not counted, even in shadow.
    for _ in 0..3 {
        api.filter_post("/v1/check", shadow("org/off")).await;
    }
    assert_eq!(
        used(&api, "org/off", "requests").await,
        vec![("org/off".into(), 0), ("org".into(), 6)]
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn without_the_fallback_a_settlement_while_redis_is_down_is_a_503_problem(pool: PgPool) {
    let api = without_fallback(pool);
    let app = metered_app(&api, "acme").await;
    let at = api.clock.now().timestamp_millis();
    let reply = settle(&api, tokens_settlement("s1", &app, 5, at)).await;
    assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body["code"], "unavailable");
    assert_eq!(settlements(&api, "unavailable"), 1);
}

/// A control plane whose Redis is down, run with `--redis-outage fail`.
fn without_fallback(pool: PgPool) -> Api {
    let down = RedisStore::new("redis://127.0.0.1:1/").unwrap();
    Api::configured(pool, Arc::new(down), Arc::new(MemoryBus::default()), |c| {
        c.engine.redis_outage = RedisOutage::Fail;
    })
}

/// `POST /v1/leases` with `body`.
async fn lease(api: &Api, body: Value) -> Reply {
    api.filter_post("/v1/leases", body).await
}

/// `POST /v1/leases` with `body`, which must be answered; returns the answer.
async fn leased(api: &Api, body: Value) -> Value {
    let reply = lease(api, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

/// Lease `id` of `want` `resource` for `tenant`, by `gateway`.
fn lease_of(id: &str, gateway: &str, tenant: &str, resource: &str, want: u64) -> Value {
    json!({"id": id, "gateway": gateway, "tenant": tenant, "resource": resource, "want": want})
}

/// `body` giving back lease `id`, of which `spent` was spent.
fn giving_back(mut body: Value, id: &str, spent: u64) -> Value {
    body["previous"] = json!({"id": id, "spent": spent});
    body
}

/// How many lease requests `api` counted under `outcome` (`tollgate_leases_total`).
fn leases(api: &Api, outcome: &str) -> u64 {
    api.state
        .engine
        .metrics
        .leases
        .with_label_values(&[outcome])
        .get()
}

/// Units of budget `api` counted as `kind` (`tollgate_lease_units_total`).
fn lease_units(api: &Api, kind: &str) -> u64 {
    api.state
        .engine
        .metrics
        .lease_units
        .with_label_values(&[kind])
        .get()
}

async fn a_budget_granted_then_returned_leaves_what_was_spent(api: Api, org: &str) {
    let app = metered_app(&api, org).await;
    // The app's 100 tokens bind: half the headroom for the one gateway.
    let first = leased(&api, lease_of("g1-1", "g1", &app, "tokens", 1_000)).await;
    assert_eq!(
        (
            first["decision"].clone(),
            first["granted"].clone(),
            first["ttl_ms"].clone(),
            first["refunded"].clone()
        ),
        (json!("allow"), json!(50), json!(10_000), json!(0))
    );
    let policy = &first["policy"];
    assert_eq!(
        (
            policy["tenant"].clone(),
            policy["used"].clone(),
            policy["remaining"].clone()
        ),
        (json!(app), json!(0), json!(100)),
        "as of before the budget"
    );
    assert_eq!(first["warn_after"], 80);
    assert_eq!(
        app_and_org_tokens(&api, &app).await,
        (50, 50),
        "reserved at both levels"
    );
    // A check sees the budget as usage.
    let check = api.check(&app, json!({"tokens": 40})).await;
    assert_eq!(check["policy"]["used"], 90);
    assert_eq!(history(&api, &app, "tokens").await, vec![90]);

    // 20 of the 50 were spent: 30 come back, and the app asks for nothing more.
    let back = leased(
        &api,
        giving_back(lease_of("g1-2", "g1", &app, "tokens", 0), "g1-1", 20),
    )
    .await;
    assert_eq!(
        (back["granted"].clone(), back["refunded"].clone()),
        (json!(0), json!(30))
    );
    assert_eq!(back["policy"]["used"], 60);
    assert_eq!(app_and_org_tokens(&api, &app).await, (60, 60));
    assert_eq!(
        history(&api, &app, "tokens").await,
        vec![60],
        "the refund reaches the history, though lower"
    );
    // Returned once: giving it back again refunds nothing.
    let again = leased(
        &api,
        giving_back(lease_of("g1-3", "g1", &app, "tokens", 0), "g1-1", 20),
    )
    .await;
    assert_eq!(again["refunded"], 0);
    assert_eq!(app_and_org_tokens(&api, &app).await, (60, 60));
    assert_eq!((leases(&api, "granted"), leases(&api, "returned")), (1, 2));
    assert_eq!(
        (lease_units(&api, "granted"), lease_units(&api, "refunded")),
        (50, 30)
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_budget_granted_then_returned_leaves_what_was_spent_in_memory(pool: PgPool) {
    a_budget_granted_then_returned_leaves_what_was_spent(Api::new(pool), "mem").await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_budget_granted_then_returned_leaves_what_was_spent_in_redis(pool: PgPool) {
    let api = Api::on_redis(pool);
    a_budget_granted_then_returned_leaves_what_was_spent(api, "lease-redis").await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_budget_never_outlives_the_window_it_is_counted_in(pool: PgPool) {
    let api = Api::new(pool);
    tier(
        &api,
        "per-minute",
        json!([{"resource": "requests", "period": "minute", "quota": 100}]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "per-minute"})).await;
    let minute = Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap();
    api.clock.set(minute + chrono::Duration::seconds(55));
    let ask = |id: &str| lease_of(id, "g1", "acme", "requests", 1_000);
    let first = leased(&api, ask("l1")).await;
    assert_eq!(
        (first["granted"].clone(), first["ttl_ms"].clone()),
        (json!(50), json!(5_000)),
        "until the minute resets"
    );
    // Half a second before the reset: no budget, each request is checked.
    api.clock
        .set(minute + chrono::Duration::milliseconds(59_500));
    let near = leased(&api, giving_back(ask("l2"), "l1", 50)).await;
    assert_eq!(
        (
            near["decision"].clone(),
            near["granted"].clone(),
            near["ttl_ms"].clone(),
            near["refunded"].clone()
        ),
        (json!("allow"), json!(0), json!(500), json!(0))
    );
    assert_eq!(near["policy"]["used"], 50);
    assert_eq!(used(&api, "acme", "requests").await[0].1, 50);
    // A new minute: a new window, a full lease again.
    api.clock.set(minute + chrono::Duration::seconds(60));
    let next = leased(&api, ask("l3")).await;
    assert_eq!(
        (
            next["granted"].clone(),
            next["ttl_ms"].clone(),
            next["policy"]["used"].clone()
        ),
        (json!(50), json!(10_000), json!(0))
    );
    assert_eq!(
        (leases(&api, "granted"), leases(&api, "per_request")),
        (2, 1)
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn near_its_limit_a_tenant_gets_no_budget_and_at_it_a_reject(pool: PgPool) {
    let api = Api::new(pool);
    tier(
        &api,
        "ten",
        json!([{"resource": "requests", "period": "day", "quota": 10}]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "ten"})).await;
    api.check("acme", json!({"requests": 7})).await;
    let near = leased(&api, lease_of("l1", "g1", "acme", "requests", 100)).await;
    assert_eq!(
        (near["decision"].clone(), near["granted"].clone()),
        (json!("allow"), json!(0)),
        "3 left: a budget of 1 is not worth a lease"
    );
    api.check("acme", json!({"requests": 2})).await;
    let warned = leased(&api, lease_of("l2", "g1", "acme", "requests", 100)).await;
    assert_eq!(
        (warned["decision"].clone(), warned["granted"].clone()),
        (json!("warn"), json!(0))
    );
    api.check("acme", json!({"requests": 1})).await;
    let full = leased(&api, lease_of("l3", "g1", "acme", "requests", 100)).await;
    assert_eq!(
        (
            full["decision"].clone(),
            full["reason"].clone(),
            full["granted"].clone()
        ),
        (json!("reject"), json!("quota_exceeded"), json!(0))
    );
    assert_eq!(
        (
            full["policy"]["used"].clone(),
            full["policy"]["remaining"].clone()
        ),
        (json!(10), json!(0))
    );
    // 12:00 on the 17th: the day resets in 12 hours.
    assert_eq!(full["cache_reject_for_s"], 12 * 3_600);
    assert_eq!(used(&api, "acme", "requests").await[0].1, 10);
    assert_eq!(
        (leases(&api, "per_request"), leases(&api, "rejected")),
        (2, 1)
    );
    assert_eq!(lease_units(&api, "granted"), 0);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_retried_lease_is_answered_again_and_reserved_once(pool: PgPool) {
    let api = Api::new(pool);
    let app = metered_app(&api, "acme").await;
    let body = lease_of("g1-1", "g1", &app, "tokens", 10);
    let first = leased(&api, body.clone()).await;
    assert_eq!(first["granted"], 10);
    api.clock
        .set(api.clock.now() + chrono::Duration::seconds(3));
    let retry = leased(&api, body).await;
    assert_eq!(
        (
            retry["granted"].clone(),
            retry["ttl_ms"].clone(),
            retry["policy"]["used"].clone()
        ),
        (json!(10), json!(7_000), json!(0))
    );
    assert_eq!(app_and_org_tokens(&api, &app).await, (10, 10));
    assert_eq!((leases(&api, "granted"), leases(&api, "duplicate")), (1, 1));
    assert_eq!(lease_units(&api, "granted"), 10);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_lease_on_lost_counters_is_sized_from_the_persisted_usage(pool: PgPool) {
    let store = Arc::new(MemoryStore::new());
    let api = Api::with_store(pool, store.clone());
    let app = metered_app(&api, "acme").await;
    api.check(&app, json!({"tokens": 60})).await;
    assert_eq!(history(&api, &app, "tokens").await, vec![60]);
    store.clear(); // Redis restarted empty
    let reply = leased(&api, lease_of("l1", "g1", &app, "tokens", 1_000)).await;
    assert_eq!(
        (reply["granted"].clone(), reply["policy"]["used"].clone()),
        (json!(20), json!(60)),
        "(100 - 60) / 2, not 100 / 2"
    );
    assert_eq!(app_and_org_tokens(&api, &app).await, (80, 80));
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn invalid_leases_are_refused_naming_the_field_and_change_nothing(pool: PgPool) {
    let api = Api::new(pool);
    let app = metered_app_beside_a_gauge(&api).await;
    let granted = leased(&api, lease_of("g1-1", "g1", &app, "tokens", 10)).await;
    assert_eq!(granted["granted"], 10);
    // Each body is a valid lease with one thing wrong.
    let valid = giving_back(lease_of("g1-2", "g1", &app, "tokens", 10), "g1-1", 4);
    let (with, without) = (one_changed(&valid), one_removed(&valid));
    for (body, field) in [
        (without("id"), "id"),
        (with("id", json!("")), "id"),
        (with("id", json!("has space")), "id"),
        (with("id", json!("x".repeat(129))), "id"),
        (without("gateway"), "gateway"),
        (with("gateway", json!("{g}")), "gateway"),
        (with("tenant", json!("a b")), "tenant"),
        (with("roles", json!(["has space"])), "roles[0]"),
        (with("resource", json!("Bad:Name")), "resource"),
        (with("resource", json!("concurrent_requests")), "resource"),
        (
            json!({"id": "s1", "gateway": "g1", "tenant": "slotted", "resource": "slots",
                   "want": 1}),
            "resource",
        ),
        (without("want"), "want"),
        (with("want", json!(-1)), "want"),
        (with("want", json!(u64::MAX)), "want"),
        (
            with("previous", json!({"id": "{x}", "spent": 1})),
            "previous.id",
        ),
        (
            with("previous", json!({"id": "g1-2", "spent": 1})),
            "previous.id",
        ),
        (with("previous", json!({"id": "g1-1"})), "previous.spent"),
        (
            with("previous", json!({"id": "g1-1", "spent": 11})),
            "previous.spent",
        ),
        (with("wants", json!(1)), ""),
    ] {
        assert_invalid(&lease(&api, body.clone()).await, field, &body);
    }
    let not_json = api.send_as(None, Method::POST, "/v1/leases", None).await;
    assert_problem(&not_json, StatusCode::BAD_REQUEST);
    assert_eq!(
        app_and_org_tokens(&api, &app).await,
        (10, 10),
        "nothing was reserved or refunded"
    );
    // The lease refused for spending too much is still there to give back.
    let back = leased(&api, valid.clone()).await;
    assert_eq!(
        (back["refunded"].clone(), back["granted"].clone()),
        (json!(6), json!(10))
    );
    assert_eq!(app_and_org_tokens(&api, &app).await, (14, 14));
    assert_eq!(leases(&api, "invalid"), 20);
    assert_eq!(leases(&api, "granted"), 2);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn an_unknown_tenant_is_leased_nothing(pool: PgPool) {
    let api = Api::new(pool);
    let reply = leased(&api, lease_of("l1", "g1", "stranger", "requests", 10)).await;
    assert_eq!(
        (
            reply["decision"].clone(),
            reply["reason"].clone(),
            reply["granted"].clone()
        ),
        (json!("reject"), json!("unknown_tenant"), json!(0))
    );
    assert_eq!(leases(&api, "rejected"), 1);
    let metrics = api.state.engine.metrics.render().unwrap();
    assert!(
        metrics.contains("tollgate_leases_total{outcome=\"rejected\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tollgate_lease_units_total{kind=\"refunded\"} 0"));
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn without_the_fallback_a_lease_while_redis_is_down_is_a_503_problem(pool: PgPool) {
    let api = without_fallback(pool);
    let app = metered_app(&api, "acme").await;
    let reply = lease(&api, lease_of("l1", "g1", &app, "tokens", 10)).await;
    assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(leases(&api, "unavailable"), 1);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_budget_crossing_the_warning_and_a_refused_one_are_logged(pool: PgPool) {
    let api = Api::new(pool);
    tier(
        &api,
        "hundred",
        json!([{"resource": "requests", "period": "day", "quota": 100}]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "hundred"})).await;
    api.check("acme", json!({"requests": 70})).await;
    // 30 left: a budget of 15 takes usage from 70 to 85, past 80 %.
    let crossing = leased(&api, lease_of("l1", "g1", "acme", "requests", 100)).await;
    assert_eq!(
        (crossing["granted"].clone(), crossing["decision"].clone()),
        (json!(15), json!("allow")),
        "allowed as of before the budget"
    );
    assert_eq!(crossing["warn_after"], 80);
    api.check("acme", json!({"requests": 15})).await;
    let refused = leased(&api, lease_of("l2", "g2", "acme", "requests", 100)).await;
    assert_eq!(refused["decision"], "reject");
    api.state.engine.events.flush(&api.state.engine.repo).await;
    let events = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/events?kind=quota.&tenant=acme",
            None,
        )
        .await;
    let items = events["items"].as_array().unwrap();
    let of = |kind: &str| items.iter().find(|e| e["kind"] == kind).unwrap();
    assert_eq!(items.len(), 2, "{events}");
    assert_eq!(of("quota.warning")["data"]["used"], 85);
    assert_eq!(of("quota.rejected")["data"]["count"], 1);
}

/// An org whose tenants lease through many gateways: 1,500 requests a day for the org, 25
/// tenants with plenty of their own room, 295 really used.
async fn siblings_leasing_never_starve_their_org(api: Api, org: &str) {
    tier(
        &api,
        "org",
        json!([{"resource": "requests", "period": "day", "quota": 1_500}]),
    )
    .await;
    tier(
        &api,
        "roomy",
        json!([{"resource": "requests", "period": "day", "quota": 10_000}]),
    )
    .await;
    tenant(&api, json!({"id": org, "tier": "org", "overcommit": 1000})).await;
    let tenants: Vec<String> = (0..26).map(|t| format!("{org}/t{t}")).collect();
    for t in &tenants {
        tenant(&api, json!({"id": t, "parent_id": org, "tier": "roomy"})).await;
    }
    api.check(&tenants[0], json!({"requests": 295})).await;
    // Each tenant's gateway asks for far more than the org has left: each gets a share
    // of the org's headroom split between every budget held under the org.
    let mut total = 0;
    for (n, t) in tenants[..25].iter().enumerate() {
        let body = lease_of(&format!("l{n}"), &format!("g{n}"), t, "requests", 50_000);
        let reply = leased(&api, body).await;
        assert_ne!(reply["decision"], "reject", "{reply}");
        let granted = reply["granted"].as_u64().unwrap();
        assert!(
            granted <= (1_205 - total) / (2 * (n as u64 + 1)),
            "lease {n}: {reply}"
        );
        total += granted;
    }
    assert_eq!(total, 1_061, "well within the org's 1,205 left");
    // The 26th tenant is still served, not refused for a limit its org is far from (the
    // budgets take the org past its 80 % warning: a WARN).
    let last = leased(
        &api,
        lease_of("l25", "g25", &tenants[25], "requests", 50_000),
    )
    .await;
    assert_eq!(
        (
            last["decision"].clone(),
            last["granted"].clone(),
            last["policy"]["tenant"].clone(),
            last["policy"]["used"].clone()
        ),
        (json!("warn"), json!(2), json!(org), json!(295 + 1_061))
    );
    assert_eq!((leases(&api, "granted"), leases(&api, "rejected")), (26, 0));
    let check = api.check(&tenants[25], json!({"requests": 1})).await;
    assert_eq!(check["decision"], "warn");
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn siblings_leasing_never_starve_their_org_in_memory(pool: PgPool) {
    siblings_leasing_never_starve_their_org(Api::new(pool), "org-b").await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn siblings_leasing_never_starve_their_org_in_redis(pool: PgPool) {
    siblings_leasing_never_starve_their_org(Api::on_redis(pool), "org-b-redis").await;
}

/// A take-back that cannot look in PostgreSQL for a check counted there during a Redis
/// outage answers an error, so that the filter sends it again, not "refunded 0", which
/// the filter takes as done: what that check counted would stay counted.
#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_take_back_that_cannot_read_postgres_is_an_error_the_filter_retries(pool: PgPool) {
    let api = Api::new(pool.clone());
    tier(
        &api,
        "metered",
        json!([{"resource": "requests", "period": "month", "quota": 10}]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "metered"})).await;
    // The tenant's definitions are cached; the check went to Redis (here: memory).
    assert_eq!(
        api.check("acme", json!({"requests": 1})).await["decision"],
        "allow"
    );
    let take_back = json!({"tenant": "acme", "request_id": "counted-in-postgres", "refund": true});
    assert_eq!(
        api.filter_post("/v1/release", take_back.clone())
            .await
            .status,
        StatusCode::OK
    );

    pool.close().await;
    let refused = api.filter_post("/v1/release", take_back).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.body["refunded"], Value::Null, "{:?}", refused.body);
}
