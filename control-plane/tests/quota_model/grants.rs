//! Grants through the router: decisions admitted past a hard limit while a grant is in
//! force and refused from the instant it ends (usage admitted under it staying counted),
//! grants adding up, budgets capped by them and ending with them, the quota explanation
//! listing them, the admin API's validation, revocation and events, other instances and
//! the tenant directory seeing them. The clock is the test's: expiries are crossed by
//! setting it.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tollgate_control_plane::engine::definitions::listen;
use tollgate_control_plane::store::bus::{Bus, MemoryBus};
use tollgate_control_plane::store::{CounterStore, MemoryStore};

use crate::decisions::{tenant, tier, used};
use crate::directory::{load_directory, own_pool};
use crate::support::{assert_invalid, assert_problem, enc, one_changed, one_removed, Api};

fn grants_path(tenant: &str) -> String {
    format!("/admin/v1/tenants/{}/grants", enc(tenant))
}

/// `POST` a grant for `tenant`, which must be created; returns it.
async fn grant(api: &Api, tenant: &str, body: Value) -> Value {
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        &grants_path(tenant),
        Some(body),
    )
    .await
}

/// `seconds` after `api`'s clock now, as RFC 3339.
fn after(api: &Api, seconds: i64) -> String {
    instant(api.clock.now() + chrono::Duration::seconds(seconds))
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `amount` more requests a month, for an hour, as a grant's body.
fn monthly_grant(api: &Api, amount: u64) -> Value {
    json!({"resource": "requests", "period": "month", "amount": amount,
           "expires_at": after(api, 3_600), "reason": "incident 7: outage credit"})
}

/// Tenant `acme` on a tier of `limits`.
async fn acme_on(api: &Api, limits: Value) {
    tier(api, "metered", limits).await;
    tenant(api, json!({"id": "acme", "tier": "metered"})).await;
}

fn decided(check: &Value) -> (Value, Value, Value) {
    (
        check["decision"].clone(),
        check["policy"]["used"].clone(),
        check["policy"]["limit"].clone(),
    )
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_grant_admits_past_the_hard_limit_until_its_instant_and_what_it_admitted_stays(
    pool: PgPool,
) {
    let api = Api::new(pool);
    acme_on(
        &api,
        json!([{"resource": "requests", "period": "month", "quota": 3, "overage": 1}]),
    )
    .await;
    for _ in 0..4 {
        api.check("acme", json!({"requests": 1})).await;
    }
    let refused = api.check("acme", json!({"requests": 1})).await;
    assert_eq!(decided(&refused), (json!("reject"), json!(4), json!(4)));

    let created = grant(&api, "acme", monthly_grant(&api, 3)).await;
    let ends = created["expires_at"].as_str().unwrap().to_string();
    assert_eq!(created["state"], "in_force");
    let admitted = api.check("acme", json!({"requests": 1})).await;
    assert_eq!(
        decided(&admitted),
        (json!("warn"), json!(5), json!(7)),
        "the hard limit is quota + overage + the grant: {admitted}"
    );
    assert_eq!(
        (
            admitted["policy"]["quota"].clone(),
            admitted["policy"]["remaining"].clone()
        ),
        (json!(3), json!(2)),
        "the quota is the limit's own"
    );
    api.check("acme", json!({"requests": 1})).await;
    // The last millisecond of the grant: still in force.
    let end: DateTime<Utc> = ends.parse().unwrap();
    api.clock.set(end - chrono::Duration::milliseconds(1));
    let last = api.check("acme", json!({"requests": 1})).await;
    assert_eq!(decided(&last), (json!("warn"), json!(7), json!(7)));
    let full = api.check("acme", json!({"requests": 1})).await;
    assert_eq!(decided(&full), (json!("reject"), json!(7), json!(7)));
    // At its instant it stops counting: refused against the old hard limit, and the
    // usage it admitted is still counted.
    api.clock.set(end);
    let expired = api.check("acme", json!({"requests": 1})).await;
    assert_eq!(decided(&expired), (json!("reject"), json!(7), json!(4)));
    assert_eq!(
        used(&api, "acme", "requests").await,
        vec![("acme".into(), 7)]
    );
    let shown = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{}/{}", grants_path("acme"), created["id"]),
            None,
        )
        .await;
    assert_eq!(shown["state"], "expired");
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn grants_add_up_on_their_limit_only_and_the_quota_explanation_lists_them(pool: PgPool) {
    let api = Api::new(pool);
    acme_on(
        &api,
        json!([
            {"resource": "requests", "period": "minute", "quota": 2},
            {"resource": "requests", "period": "month", "quota": 100},
        ]),
    )
    .await;
    let minute = |amount: u64| {
        json!({"resource": "requests", "period": "minute", "amount": amount,
               "expires_at": after(&api, 3_600), "reason": "launch"})
    };
    let three = grant(&api, "acme", minute(3)).await;
    let mut keyed = minute(4);
    keyed["key"] = json!("launch-week");
    let four = grant(&api, "acme", keyed).await;
    assert_eq!(four["key"], "launch-week");
    let mut daily = minute(50);
    daily["period"] = json!("day");
    grant(&api, "acme", daily).await;
    let mut rolling = minute(50);
    rolling["window"] = json!("rolling");
    grant(&api, "acme", rolling).await;
    let mut later = minute(1_000);
    later["effective_at"] = json!(after(&api, 600));
    let scheduled = grant(&api, "acme", later).await;
    assert_eq!(scheduled["state"], "scheduled");

    let quota = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/tenants/acme/quota",
            None,
        )
        .await;
    let level = &quota["levels"][0];
    let limits = level["limits"].as_array().unwrap();
    let per_minute = limits.iter().find(|l| l["period"] == "minute").unwrap();
    assert_eq!(
        (
            per_minute["granted"].clone(),
            per_minute["hard_limit"].clone(),
            per_minute["quota"].clone()
        ),
        (json!(7), json!(9), json!(2))
    );
    let ids: Vec<&Value> = per_minute["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["id"])
        .collect();
    assert_eq!(ids, vec![&three["id"], &four["id"]], "in force only");
    assert_eq!(per_minute["grants"][0]["reason"], "launch");
    let per_month = limits.iter().find(|l| l["period"] == "month").unwrap();
    assert_eq!(
        (
            per_month["granted"].clone(),
            per_month["hard_limit"].clone()
        ),
        (json!(0), json!(100))
    );
    let unmatched: Vec<(Value, Value)> = level["unmatched_grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["period"].clone(), g["window"].clone()))
        .collect();
    assert_eq!(
        unmatched,
        vec![
            (json!("day"), json!("calendar")),
            (json!("minute"), json!("rolling"))
        ],
        "another period or window adds nothing"
    );

    for n in 1..=9 {
        let check = api.check("acme", json!({"requests": 1})).await;
        assert_ne!(check["decision"], "reject", "request {n}: {check}");
    }
    let tenth = api.check("acme", json!({"requests": 1})).await;
    assert_eq!(
        (
            tenth["decision"].clone(),
            tenth["policy"]["name"].clone(),
            tenth["policy"]["limit"].clone()
        ),
        (json!("reject"), json!("per-minute"), json!(9))
    );
    let usage = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/tenants/acme/usage",
            None,
        )
        .await;
    let row = usage["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["period"] == "minute")
        .unwrap();
    assert_eq!(
        (
            row["used"].clone(),
            row["limit"].clone(),
            row["granted"].clone()
        ),
        (json!(9), json!(9), json!(7))
    );
}

/// `POST /v1/leases` for `acme`'s requests by `gateway`, returning `previous` when given.
async fn lease(api: &Api, id: &str, gateway: &str, previous: Option<(&str, u64)>) -> Value {
    let mut body = json!({"id": id, "gateway": gateway, "tenant": "acme",
                          "resource": "requests", "want": 1_000});
    if let Some((id, spent)) = previous {
        body["previous"] = json!({"id": id, "spent": spent});
    }
    let reply = api.filter_post("/v1/leases", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_budget_is_capped_by_the_grants_in_force_and_ends_when_they_do(pool: PgPool) {
    let api = Api::new(pool);
    acme_on(
        &api,
        json!([{"resource": "requests", "period": "day", "quota": 10}]),
    )
    .await;
    let start = api.clock.now();
    let mut body = monthly_grant(&api, 100);
    body["period"] = json!("day");
    body["expires_at"] = json!(after(&api, 4));
    grant(&api, "acme", body).await;

    let first = lease(&api, "l1", "g1", None).await;
    assert_eq!(
        (
            first["granted"].clone(),
            first["ttl_ms"].clone(),
            first["policy"]["limit"].clone()
        ),
        (json!(55), json!(4_000), json!(110)),
        "half of hard + grant, until the grant ends: {first}"
    );
    // Under a second before the grant ends: no budget, each request is checked.
    api.clock.set(start + chrono::Duration::milliseconds(3_500));
    let near = lease(&api, "l2", "g2", None).await;
    assert_eq!(
        (
            near["decision"].clone(),
            near["granted"].clone(),
            near["ttl_ms"].clone()
        ),
        (json!("warn"), json!(0), json!(500)),
        "warn: 55 reserved is past 80 % of the quota of 10"
    );
    // At its end the budget comes back with 20 of it spent: those stay counted, past
    // the hard limit without the grant, and nothing more is leased or admitted.
    api.clock.set(start + chrono::Duration::seconds(4));
    let back = lease(&api, "l3", "g1", Some(("l1", 20))).await;
    assert_eq!(
        (
            back["decision"].clone(),
            back["granted"].clone(),
            back["refunded"].clone(),
            back["policy"]["limit"].clone()
        ),
        (json!("reject"), json!(0), json!(35), json!(10))
    );
    assert_eq!(
        used(&api, "acme", "requests").await,
        vec![("acme".into(), 20)]
    );
    let check = api.check("acme", json!({"requests": 1})).await;
    assert_eq!(decided(&check), (json!("reject"), json!(20), json!(10)));
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_grant_to_an_organization_raises_its_level_for_every_tenant_below_it(pool: PgPool) {
    let api = Api::new(pool);
    let month = |quota: u64| json!([{"resource": "requests", "period": "month", "quota": quota}]);
    tier(&api, "org", month(2)).await;
    tier(&api, "team", month(100)).await;
    tenant(
        &api,
        json!({"id": "acme", "tier": "org", "overcommit": 1000}),
    )
    .await;
    tenant(
        &api,
        json!({"id": "acme/web", "parent_id": "acme", "tier": "team"}),
    )
    .await;
    api.check("acme/web", json!({"requests": 2})).await;
    let refused = api.check("acme/web", json!({"requests": 1})).await;
    assert_eq!(
        (
            refused["decision"].clone(),
            refused["policy"]["tenant"].clone()
        ),
        (json!("reject"), json!("acme"))
    );
    // The child's cached chain holds acme: the grant's invalidation reaches it.
    grant(&api, "acme", monthly_grant(&api, 1)).await;
    let admitted = api.check("acme/web", json!({"requests": 1})).await;
    assert_eq!(
        (
            admitted["decision"].clone(),
            admitted["policy"]["limit"].clone()
        ),
        (json!("warn"), json!(3))
    );
    // A grant to the child raises only the child's own limits.
    grant(&api, "acme/web", monthly_grant(&api, 50)).await;
    let again = api.check("acme/web", json!({"requests": 1})).await;
    assert_eq!(
        (again["decision"].clone(), again["policy"]["tenant"].clone()),
        (json!("reject"), json!("acme"))
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn grants_are_validated_listed_revoked_once_and_logged_with_before_and_after(pool: PgPool) {
    let api = Api::new(pool.clone());
    acme_on(
        &api,
        json!([{"resource": "requests", "period": "month", "quota": 1}]),
    )
    .await;
    let valid = monthly_grant(&api, 10);
    let path = grants_path("acme");
    let changed = one_changed(&valid);
    let removed = one_removed(&valid);
    let refused = [
        (changed("amount", json!(0)), "amount"),
        (changed("amount", json!(-1)), "amount"),
        (
            changed("amount", json!(9_223_372_036_854_775_808_u64)),
            "amount",
        ),
        (changed("resource", json!("Requests")), "resource"),
        (changed("period", json!("fortnight")), "period"),
        (changed("window", json!("sliding")), "window"),
        (changed("reason", json!("")), "reason"),
        (changed("key", json!("not a key")), "key"),
        (changed("until", json!("window_end")), "until"),
        (changed("expires_at", json!(after(&api, -1))), "expires_at"),
        (changed("expires_at", json!("yesterday")), "expires_at"),
        (
            changed("effective_at", json!(after(&api, 7_200))),
            "expires_at",
        ),
        (changed("surprise", json!(1)), ""),
        (removed("reason"), "reason"),
        (removed("resource"), "resource"),
        (removed("expires_at"), "expires_at"),
    ];
    for (body, field) in refused {
        let reply = api.admin(Method::POST, &path, Some(body.clone())).await;
        assert_invalid(&reply, field, &body);
    }
    let mut window_end = removed("expires_at");
    window_end["until"] = json!("window_end");
    window_end["window"] = json!("rolling");
    let reply = api
        .admin(Method::POST, &path, Some(window_end.clone()))
        .await;
    assert_invalid(&reply, "until", &window_end);
    let unknown = api
        .admin(Method::POST, &grants_path("nobody"), Some(valid.clone()))
        .await;
    assert_problem(&unknown, StatusCode::NOT_FOUND);

    // Until the end of this month's window.
    window_end["window"] = json!("calendar");
    window_end["key"] = json!("november");
    let november = grant(&api, "acme", window_end.clone()).await;
    assert_eq!(november["expires_at"], "2026-12-01T00:00:00Z");
    assert_eq!(november["created_by"], "admin");
    let twice = api.admin(Method::POST, &path, Some(window_end)).await;
    assert_problem(&twice, StatusCode::CONFLICT);
    let other = grant(&api, "acme", valid.clone()).await;
    assert_eq!(
        api.check("acme", json!({"requests": 0})).await["policy"]["limit"],
        21
    );

    // Listing: pages, and the state filter.
    let first = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{path}?limit=1"),
            None,
        )
        .await;
    assert_eq!(first["items"][0]["id"], november["id"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{path}?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(second["items"][0]["id"], other["id"]);
    assert!(second.get("next_cursor").is_none());
    let bad_state = api
        .admin(Method::GET, &format!("{path}?state=gone"), None)
        .await;
    assert_invalid(&bad_state, "state", &json!("?state=gone"));

    // Revoked: it ends now, keeps its record, and decisions drop it at once.
    let revoke = format!("{path}/{}/revoke", other["id"]);
    let revoked = api
        .expect(
            StatusCode::OK,
            Method::POST,
            &revoke,
            Some(json!({"reason": "granted by mistake"})),
        )
        .await;
    assert_eq!(
        (
            revoked["state"].clone(),
            revoked["revoked_by"].clone(),
            revoked["revoke_reason"].clone(),
            revoked["ends_at"].clone()
        ),
        (
            json!("revoked"),
            json!("admin"),
            json!("granted by mistake"),
            json!(instant(api.clock.now()))
        )
    );
    assert_eq!(
        api.check("acme", json!({"requests": 0})).await["policy"]["limit"],
        11
    );
    let again = api.admin(Method::POST, &revoke, Some(json!({}))).await;
    assert_problem(&again, StatusCode::CONFLICT);
    let missing = api
        .admin(
            Method::POST,
            &format!("{path}/99999/revoke"),
            Some(json!({})),
        )
        .await;
    assert_problem(&missing, StatusCode::NOT_FOUND);
    let elsewhere = api
        .admin(
            Method::GET,
            &format!("{}/{}", grants_path("nobody"), other["id"]),
            None,
        )
        .await;
    assert_problem(&elsewhere, StatusCode::NOT_FOUND);
    for (state, expected) in [("in_force", &november), ("ended", &other)] {
        let listed = api
            .expect(
                StatusCode::OK,
                Method::GET,
                &format!("{path}?state={state}"),
                None,
            )
            .await;
        let ids: Vec<&Value> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| &g["id"])
            .collect();
        assert_eq!(ids, vec![&expected["id"]], "{state}");
    }

    let events = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/events?kind=grant.&tenant=acme",
            None,
        )
        .await;
    let logged: Vec<(Value, Value)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].clone(), e["actor"].clone()))
        .collect();
    assert_eq!(
        logged,
        vec![
            (json!("grant.revoked"), json!("admin")),
            (json!("grant.created"), json!("admin")),
            (json!("grant.created"), json!("admin")),
        ]
    );
    let revocation = &events["items"][0];
    assert_eq!(
        (
            revocation["before"]["state"].clone(),
            revocation["after"]["state"].clone(),
            revocation["after"]["amount"].clone()
        ),
        (json!("in_force"), json!("revoked"), json!(10))
    );
    assert!(events["items"][2]["before"].is_null());

    // A tenant's grants go with it; their events stay.
    tenant(&api, json!({"id": "gone", "tier": "metered"})).await;
    grant(&api, "gone", monthly_grant(&api, 1)).await;
    api.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        "/admin/v1/tenants/gone",
        None,
    )
    .await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM grants WHERE tenant_id = 'gone'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let listed = api.admin(Method::GET, &grants_path("gone"), None).await;
    assert_problem(&listed, StatusCode::NOT_FOUND);
    let kept = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/events?kind=grant.created&tenant=gone",
            None,
        )
        .await;
    assert_eq!(kept["items"].as_array().unwrap().len(), 1);
}

/// Waits until `two` decides `acme` with a hard limit of `limit`, for at most a second.
async fn within_a_second(two: &Api, limit: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let decision = two.check("acme", json!({"requests": 0})).await;
        if decision["policy"]["limit"] == limit {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a hard limit of {limit} not seen within 1 s: {decision}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_grant_and_its_revocation_reach_every_instance_within_a_second(pool: PgPool) {
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
    acme_on(
        &one,
        json!([{"resource": "requests", "period": "month", "quota": 5}]),
    )
    .await;
    // Instance two caches acme's chain without the grant.
    within_a_second(&two, 5).await;
    let created = grant(&one, "acme", monthly_grant(&one, 20)).await;
    within_a_second(&two, 25).await;
    one.expect(
        StatusCode::OK,
        Method::POST,
        &format!("{}/{}/revoke", grants_path("acme"), created["id"]),
        Some(json!({})),
    )
    .await;
    within_a_second(&two, 5).await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn with_postgres_down_the_directory_decides_with_the_grants_until_they_end(pool: PgPool) {
    let store: Arc<dyn CounterStore> = Arc::new(MemoryStore::new());
    let live = Api::with_store(pool.clone(), store.clone());
    let own = own_pool(&pool).await;
    let api = Api::with_store(own.clone(), store);
    acme_on(
        &live,
        json!([{"resource": "requests", "period": "month", "quota": 2}]),
    )
    .await;
    let created = grant(&live, "acme", monthly_grant(&live, 3)).await;
    assert_eq!(load_directory(&api, &api).await, 1);
    // Counted once through the other instance, so that the counters need no seeding
    // from PostgreSQL (see the README's Known limits).
    live.check("acme", json!({"requests": 1})).await;
    own.close().await;
    // Never looked up by this instance: decided from the directory, grant and all.
    for _ in 0..4 {
        let check = api.check("acme", json!({"requests": 1})).await;
        assert_ne!(check["decision"], "reject", "{check}");
        assert_eq!(check["policy"]["limit"], 5);
    }
    assert_eq!(
        api.check("acme", json!({"requests": 1})).await["decision"],
        "reject"
    );
    let end: DateTime<Utc> = created["expires_at"].as_str().unwrap().parse().unwrap();
    api.clock.set(end);
    let expired = api.check("acme", json!({"requests": 0})).await;
    assert_eq!(decided(&expired), (json!("reject"), json!(5), json!(2)));
    let directory = api
        .state
        .engine
        .metrics
        .definition_cache
        .with_label_values(&["directory"])
        .get();
    assert!(directory > 0, "decided from the directory");
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn the_table_refuses_a_grant_of_nothing_one_ending_before_it_starts_and_a_key_twice(
    pool: PgPool,
) {
    let api = Api::new(pool.clone());
    acme_on(
        &api,
        json!([{"resource": "requests", "period": "month", "quota": 1}]),
    )
    .await;
    let insert = |amount: i64, expires: &str, key: Option<&str>| {
        sqlx::query(
            "INSERT INTO grants (tenant_id, key, resource, period, amount, effective_at, \
             expires_at, reason) VALUES ('acme', $1, 'requests', 'month', $2, \
             '2026-11-17T12:00:00Z', $3::timestamptz, 'r')",
        )
        .bind(key.map(str::to_string))
        .bind(amount)
        .bind(expires.to_string())
        .execute(&pool)
    };
    let later = "2026-12-01T00:00:00Z";
    for (amount, expires) in [(0, later), (-5, later), (1, "2026-11-17T12:00:00Z")] {
        let refused = insert(amount, expires, None).await.unwrap_err();
        assert!(
            refused.to_string().contains("check constraint"),
            "{amount} until {expires}: {refused}"
        );
    }
    insert(1, later, Some("k")).await.unwrap();
    let twice = insert(1, later, Some("k")).await.unwrap_err();
    assert!(
        twice.to_string().contains("grants_tenant_key_unique"),
        "{twice}"
    );
    // A gauge's grant has no rolling window, as a gauge limit has none.
    let rolling_gauge = sqlx::query(
        "INSERT INTO grants (tenant_id, resource, period, window_kind, amount, effective_at, \
         expires_at, reason) VALUES ('acme', 'slots', NULL, 'rolling', 1, now(), \
         now() + interval '1 hour', 'r')",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(rolling_gauge.to_string().contains("check constraint"));
}
