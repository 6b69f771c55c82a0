//! `POST /v1/quota` through the router — a tenant's own view of its quota — with
//! definitions in a real PostgreSQL, counters and usage samples in memory, and the
//! test's clock: usage sampled by the history flusher becomes a burn rate, and the
//! rate a forecast, to the millisecond.

use axum::http::StatusCode;
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::decisions::{tenant, tier, used};
use crate::support::{assert_invalid, Api};

/// `POST /v1/quota` for `tenant` with `roles`: the view.
async fn view(api: &Api, tenant: &str, roles: &[&str]) -> Value {
    let reply = api
        .filter_post("/v1/quota", json!({"tenant": tenant, "roles": roles}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

/// The view's entry of `tenant`'s limit on `resource` per `period`.
fn limit<'v>(view: &'v Value, tenant: &str, resource: &str, period: &str) -> &'v Value {
    view["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["tenant"] == tenant && l["resource"] == resource && l["period"] == period)
        .unwrap_or_else(|| panic!("no {period} {resource} of {tenant} in {view}"))
}

async fn checks(api: &Api, tenant: &str, n: u64) {
    for _ in 0..n {
        api.check(tenant, json!({"requests": 1})).await;
    }
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn samples_make_a_burn_rate_and_the_rate_a_forecast(pool: PgPool) {
    let api = Api::new(pool);
    tier(
        &api,
        "daily",
        json!([{"resource": "requests", "period": "day", "quota": 1000}]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "daily"})).await;
    let noon = Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap();
    api.clock.set(noon);

    checks(&api, "acme", 100).await;
    // Before any flush: a day's window began long ago and nothing was sampled.
    let unsampled = view(&api, "acme", &[]).await;
    let day = limit(&unsampled, "acme", "requests", "day");
    assert_eq!(day["used"], 100);
    assert_eq!(day["burn_rate"]["basis"], "no_samples");
    assert!(day["burn_rate"]["per_second"].is_null());
    assert_eq!(day["forecast"]["outcome"], "no_rate");
    assert!(day["forecast"]["runs_out_at"].is_null());

    api.flush_usage().await; // sampled at 12:00:00: 100
    api.clock.set(noon + Duration::minutes(6));
    checks(&api, "acme", 60).await;
    let view = view(&api, "acme", &[]).await;
    assert_eq!(view["tenant"], "acme");
    assert_eq!(view["at"], "2026-11-17T12:06:00.000Z");
    let day = limit(&view, "acme", "requests", "day");
    assert_eq!(
        (&day["used"], &day["limit"], &day["remaining"]),
        (&json!(160), &json!(1000), &json!(840))
    );
    assert_eq!(
        (&day["policy"], &day["status"]),
        (&json!("daily"), &json!("ok"))
    );
    assert_eq!(day["resets_at"], "2026-11-18T00:00:00.000Z");
    assert_eq!(day["reset_after_s"], 12 * 3_600 - 360);
    // 60 more in the 6 minutes since the sample: 1/6 a second.
    let rate = &day["burn_rate"];
    assert_eq!(rate["basis"], "sample");
    assert_eq!(rate["units"], 60);
    assert_eq!(rate["span_ms"], 360_000);
    assert_eq!(rate["since"], "2026-11-17T12:00:00.000Z");
    assert!((rate["per_second"].as_f64().unwrap() - 1.0 / 6.0).abs() < 1e-12);
    // 840 left at 60 per 6 minutes: 84 minutes, well before midnight.
    let forecast = &day["forecast"];
    assert_eq!(forecast["outcome"], "runs_out");
    assert_eq!(forecast["runs_out_in_s"], 84 * 60);
    assert_eq!(forecast["runs_out_at"], "2026-11-17T13:30:00.000Z");
    assert_eq!(day["binding"], true);
    assert_eq!(view["binding"]["name"], "daily");
    assert_eq!(view["binding"]["remaining"], 840);

    // Viewing counts nothing.
    assert_eq!(
        used(&api, "acme", "requests").await,
        vec![("acme".into(), 160)]
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn window_starts_are_points_of_zero_usage_and_a_window_may_reset_first(pool: PgPool) {
    let api = Api::new(pool);
    tier(
        &api,
        "hourly",
        json!([
            {"resource": "requests", "period": "hour", "quota": 100},
            {"resource": "request_bytes", "period": "hour", "quota": 100000},
            {"resource": "requests", "period": "minute", "quota": 1000},
            {"resource": "tokens", "period": "hour", "quota": 30},
        ]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "hourly"})).await;
    let at = Utc.with_ymd_and_hms(2026, 11, 17, 12, 2, 30).unwrap();
    api.clock.set(at);
    let request = json!({"requests": 1, "request_bytes": 100, "tokens": 1});
    for _ in 0..29 {
        api.check("acme", request.clone()).await;
    }
    let view = view(&api, "acme", &[]).await;
    // The hour began 150 s ago with nothing: 29 since, 71 left in 367 s.
    let hour = limit(&view, "acme", "requests", "hour");
    let rate = &hour["burn_rate"];
    assert_eq!(
        (&rate["basis"], &rate["units"], &rate["span_ms"]),
        (&json!("window_start"), &json!(29), &json!(150_000))
    );
    assert_eq!(rate["since"], "2026-11-17T12:00:00.000Z");
    assert_eq!(hour["forecast"]["outcome"], "runs_out");
    assert_eq!(hour["forecast"]["runs_out_in_s"], 367);
    assert_eq!(hour["forecast"]["runs_out_at"], "2026-11-17T12:08:37.241Z");
    // Per minute: the newest minute that began five minutes back or more, 11:57:00,
    // and the windows since (unused but the current one) tell the rate.
    let minute = limit(&view, "acme", "requests", "minute");
    let rate = &minute["burn_rate"];
    assert_eq!(
        (&rate["units"], &rate["span_ms"], &rate["since"]),
        (
            &json!(29),
            &json!(330_000),
            &json!("2026-11-17T11:57:00.000Z")
        )
    );
    // 2900 bytes in 150 s: 97100 left would take 5022 s, the hour resets in 3450.
    let bytes = limit(&view, "acme", "request_bytes", "hour");
    assert_eq!(bytes["burn_rate"]["units"], 2900);
    assert_eq!(bytes["forecast"]["outcome"], "resets_first");
    assert!(bytes["forecast"]["runs_out_in_s"].is_null());
    assert!(bytes["forecast"]["runs_out_at"].is_null());
    // One token left of 30: it binds, and runs out in 5 s.
    assert_eq!(view["binding"]["resource"], "tokens");
    let tokens = limit(&view, "acme", "tokens", "hour");
    assert_eq!(
        (&tokens["binding"], &tokens["status"]),
        (&json!(true), &json!("warning"))
    );
    assert_eq!(tokens["forecast"]["runs_out_in_s"], 5);

    api.check("acme", request).await;
    let view = crate::quota_view::view(&api, "acme", &[]).await;
    let tokens = limit(&view, "acme", "tokens", "hour");
    assert_eq!(tokens["status"], "exceeded");
    assert_eq!(tokens["forecast"]["outcome"], "exhausted");
    assert_eq!(tokens["forecast"]["runs_out_in_s"], 0);
    assert_eq!(tokens["forecast"]["runs_out_at"], view["at"]);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn every_level_is_shown_and_a_parent_can_bind(pool: PgPool) {
    let api = Api::new(pool);
    tier(
        &api,
        "org",
        json!([{"resource": "requests", "period": "month", "quota": 50}]),
    )
    .await;
    tier(
        &api,
        "team",
        json!([
            {"resource": "requests", "period": "month", "quota": 1000},
            {"resource": "concurrent_requests", "period": "none", "quota": 4},
        ]),
    )
    .await;
    // The organization gives its teams more than it has: overcommitted on purpose.
    tenant(
        &api,
        json!({"id": "acme", "tier": "org", "overcommit": 100}),
    )
    .await;
    tenant(
        &api,
        json!({"id": "acme/eu", "parent_id": "acme", "tier": "team", "mode": "off"}),
    )
    .await;
    tenant(
        &api,
        json!({"id": "acme/eu/web", "parent_id": "acme/eu", "tier": "team"}),
    )
    .await;
    checks(&api, "acme/eu/web", 45).await;

    let view = view(&api, "acme/eu/web", &[]).await;
    let whose: Vec<(String, String)> = view["limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let whose = l["tenant"].as_str().unwrap().to_string();
            (whose, l["resource"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        whose,
        [
            ("acme/eu/web", "requests"),
            ("acme/eu/web", "concurrent_requests"),
            ("acme", "requests"),
        ]
        .map(|(t, r)| (t.to_string(), r.to_string())),
        "the level that is off counts nothing and is not shown"
    );
    // The organization has 5 of 50 left, the tenant 955 of 1000.
    assert_eq!(view["binding"]["tenant"], "acme");
    assert_eq!(view["binding"]["remaining"], 5);
    let org = limit(&view, "acme", "requests", "month");
    assert_eq!(
        (&org["binding"], &org["status"]),
        (&json!(true), &json!("warning"))
    );
    let gauge = limit(&view, "acme/eu/web", "concurrent_requests", "none");
    assert_eq!(gauge["burn_rate"]["basis"], "gauge");
    assert_eq!(gauge["forecast"]["outcome"], "no_rate");
    assert!(gauge["resets_at"].is_null());
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_tenant_nobody_assigned_a_tier_has_no_view_and_bad_asks_are_refused(pool: PgPool) {
    let api = Api::new(pool);
    let ghost = view(&api, "ghost", &[]).await;
    assert_eq!(ghost["reason"], "unknown_tenant");
    assert_eq!(ghost["limits"], json!([]));
    assert!(ghost["binding"].is_null());

    for (body, field) in [
        (json!({"tenant": "a b"}), "tenant"),
        (json!({"tenant": "acme", "roles": ["a b"]}), "roles[0]"),
        (json!({"tenant": "acme", "amounts": {}}), ""),
    ] {
        let reply = api.filter_post("/v1/quota", body.clone()).await;
        assert_invalid(&reply, field, &body);
    }
}
