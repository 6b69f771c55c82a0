//! Webhooks against a real PostgreSQL: the subscriptions' admin API, a crossing
//! recorded once however many report it at once, deliveries queued only for the
//! subscriptions that ask, claims that skip what another holds, retries and giving up,
//! and the crossings that checks, leases, settlements and the history flusher find.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tollgate_control_plane::engine::webhooks::AllowList;
use tollgate_control_plane::model::webhook::Threshold;
use tollgate_control_plane::model::window::Window;
use tollgate_control_plane::repo::webhooks::{Attempt, CrossedLimit, Finished, NewCrossing};
use tollgate_control_plane::repo::QuotaRepo;
use tollgate_control_plane::store::bus::MemoryBus;
use tollgate_control_plane::store::MemoryStore;

use crate::decisions::{tenant, tier};
use crate::support::{assert_invalid, one_changed, one_removed, Api};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// A control plane whose webhooks may go to loopback.
fn api(pool: PgPool) -> Api {
    Api::configured(
        pool,
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryBus::default()),
        |c| {
            c.engine.webhooks.allow =
                Arc::new(AllowList::parse(&["127.0.0.1".to_string()], true).unwrap());
        },
    )
}

fn subscription(id: &str, extra: Value) -> Value {
    let mut body = json!({"id": id, "url": "http://127.0.0.1:9/hook", "secret": SECRET});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

async fn subscribe(api: &Api, id: &str, extra: Value) -> Value {
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/webhooks",
        Some(subscription(id, extra)),
    )
    .await
}

/// Outbox rows per subscription, by crossing threshold: `(subscription, threshold)`.
async fn queued(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT o.subscription_id, c.threshold FROM webhook_outbox o \
         JOIN threshold_crossings c ON c.id = o.crossing_id ORDER BY 1, c.id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn crossings(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT level_id, threshold, found_by FROM threshold_crossings ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn crossing(counter: &str, level: &str, ancestors: &[&str], threshold: Threshold) -> NewCrossing {
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    NewCrossing {
        limit: Arc::new(CrossedLimit {
            counter_key: counter.into(),
            tenant: level.into(),
            level: level.into(),
            ancestors: ancestors.iter().map(|a| a.to_string()).collect(),
            tier: Some("pro".into()),
            resource: "requests".into(),
            policy: "monthly".into(),
            period: "month".into(),
            window_kind: "calendar".into(),
            window: Window { start, end },
            resets_at: end,
            quota: 100,
            hard_limit: 110,
        }),
        threshold,
        units: 80,
        used: 80,
        at: start,
        found_by: "check",
    }
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn subscriptions_are_managed_with_events_and_never_show_their_secret(pool: PgPool) {
    let api = api(pool);
    let created = subscribe(
        &api,
        "ops",
        json!({"thresholds": [80, 50, 80], "hard": true, "tenant": "acme", "subtree": true,
               "resources": ["requests"], "tiers": ["pro"], "description": "pager"}),
    )
    .await;
    assert_eq!(created["thresholds"], json!([50, 80]), "sorted, once each");
    assert_eq!(created["tenant"], "acme");
    assert!(created.get("secret").is_none(), "{created}");
    api.expect(
        StatusCode::CONFLICT,
        Method::POST,
        "/admin/v1/webhooks",
        Some(subscription("ops", json!({"hard": true}))),
    )
    .await;
    let got = api
        .expect(StatusCode::OK, Method::GET, "/admin/v1/webhooks/ops", None)
        .await;
    assert_eq!(got, created);
    let rotated = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let changed = api
        .expect(
            StatusCode::OK,
            Method::PATCH,
            "/admin/v1/webhooks/ops",
            Some(json!({"secret": rotated, "tenant": null, "enabled": false})),
        )
        .await;
    assert_eq!(
        (changed["tenant"].clone(), changed["enabled"].clone()),
        (Value::Null, json!(false))
    );
    let listed = api
        .expect(StatusCode::OK, Method::GET, "/admin/v1/webhooks", None)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    api.expect(
        StatusCode::OK,
        Method::GET,
        "/admin/v1/webhooks/ops/deliveries?status=pending",
        None,
    )
    .await;
    api.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        "/admin/v1/webhooks/ops",
        None,
    )
    .await;
    for path in [
        "/admin/v1/webhooks/ops",
        "/admin/v1/webhooks/ops/deliveries",
    ] {
        api.expect(StatusCode::NOT_FOUND, Method::GET, path, None)
            .await;
    }
    let events = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/events?kind=webhook.",
            None,
        )
        .await;
    let kinds: Vec<&str> = (events["items"].as_array().unwrap().iter())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["webhook.deleted", "webhook.updated", "webhook.created"]
    );
    let text = events.to_string();
    assert!(
        !text.contains("C2FVsBQ") && !text.contains("MfKQ9r8"),
        "{text}"
    );
    assert_eq!(events["items"][1]["data"]["secret"], "rotated");
    assert!(events["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"].is_string()));
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn invalid_subscriptions_are_refused_naming_the_field(pool: PgPool) {
    let api = Api::new(pool.clone());
    let valid = json!({"id": "ops", "url": "https://hooks.example.com/t", "secret": SECRET,
                       "thresholds": [80]});
    let changed = one_changed(&valid);
    let removed = one_removed(&valid);
    for (body, field) in [
        (changed("id", json!("Ops!")), "id"),
        (changed("url", json!("http://127.0.0.1:8080/")), "url"),
        (
            changed("url", json!("http://169.254.169.254/latest")),
            "url",
        ),
        (changed("url", json!("ftp://hooks.example.com/")), "url"),
        (
            changed("url", json!("https://u:p@hooks.example.com/")),
            "url",
        ),
        (changed("secret", json!("hunter2")), "secret"),
        (changed("secret", json!("whsec_c2hvcnQ=")), "secret"),
        (changed("thresholds", json!([0])), "thresholds"),
        (changed("thresholds", json!([1001])), "thresholds"),
        (changed("thresholds", json!([])), "thresholds"),
        (changed("tenant", json!("")), "tenant"),
        (
            changed("resources", json!(["requests", "A:B"])),
            "resources[1]",
        ),
        (changed("tiers", json!(["Pro"])), "tiers[0]"),
        (
            changed("description", json!("x".repeat(1025))),
            "description",
        ),
        (removed("secret"), "secret"),
        (removed("url"), "url"),
    ] {
        let reply = api
            .admin(Method::POST, "/admin/v1/webhooks", Some(body.clone()))
            .await;
        assert_invalid(&reply, field, &body);
        assert!(
            !reply.body.to_string().contains("hunter2"),
            "{}",
            reply.body
        );
    }
    let created = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/admin/v1/webhooks",
            Some(valid.clone()),
        )
        .await;
    let reply = api
        .admin(
            Method::PATCH,
            "/admin/v1/webhooks/ops",
            Some(json!({"thresholds": []})),
        )
        .await;
    assert_invalid(&reply, "thresholds", &json!({}));
    // A patch with one bad field changes none of the others.
    let patch = json!({"url": "http://10.0.0.1/", "enabled": false, "thresholds": [50]});
    let reply = api
        .admin(Method::PATCH, "/admin/v1/webhooks/ops", Some(patch.clone()))
        .await;
    assert_invalid(&reply, "url", &patch);
    let after = api
        .expect(StatusCode::OK, Method::GET, "/admin/v1/webhooks/ops", None)
        .await;
    assert_eq!(after, created, "nothing of a refused patch is written");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind LIKE 'webhook.%'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 1, "only the creation is in the audit log");
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_crossing_reported_by_many_at_once_is_recorded_once(pool: PgPool) {
    let api = api(pool.clone());
    subscribe(&api, "a", json!({"thresholds": [80]})).await;
    subscribe(&api, "b", json!({"thresholds": [80], "tenant": "acme"})).await;
    let reports: Vec<_> = (0..16)
        .map(|_| {
            let repo = QuotaRepo::new(pool.clone());
            tokio::spawn(async move {
                let batch = [crossing("c1", "acme", &[], Threshold::Percent(80))];
                repo.record_crossings(&batch).await.unwrap()
            })
        })
        .collect();
    let mut recorded = Vec::new();
    for report in reports {
        recorded.push(report.await.unwrap());
    }
    let firsts: Vec<_> = recorded.iter().filter(|r| r.crossings == 1).collect();
    assert_eq!(firsts.len(), 1, "{recorded:?}");
    assert_eq!(firsts[0].deliveries, 2);
    assert_eq!(recorded.iter().map(|r| r.deliveries).sum::<u64>(), 2);
    assert_eq!(crossings(&pool).await.len(), 1);
    assert_eq!(
        queued(&pool).await,
        [
            ("a".to_string(), "80".to_string()),
            ("b".to_string(), "80".to_string())
        ]
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn deliveries_are_queued_only_for_the_enabled_subscriptions_that_ask(pool: PgPool) {
    let api = api(pool.clone());
    subscribe(
        &api,
        "everything",
        json!({"thresholds": [50, 80], "hard": true}),
    )
    .await;
    subscribe(
        &api,
        "acme-only",
        json!({"thresholds": [80], "tenant": "acme"}),
    )
    .await;
    subscribe(
        &api,
        "acme-tree",
        json!({"thresholds": [80], "tenant": "acme", "subtree": true}),
    )
    .await;
    subscribe(
        &api,
        "tokens",
        json!({"thresholds": [80], "resources": ["tokens"]}),
    )
    .await;
    subscribe(
        &api,
        "free-tier",
        json!({"thresholds": [80], "tiers": ["free"]}),
    )
    .await;
    subscribe(&api, "hard-only", json!({"hard": true})).await;
    subscribe(&api, "off", json!({"thresholds": [80], "enabled": false})).await;
    let repo = QuotaRepo::new(pool.clone());
    let batch = [
        crossing("org", "acme", &[], Threshold::Percent(80)),
        crossing("user", "acme/web", &["acme"], Threshold::Percent(80)),
        crossing("other", "globex", &[], Threshold::Hard),
    ];
    let recorded = repo.record_crossings(&batch).await.unwrap();
    assert_eq!(recorded.crossings, 3);
    let by = |threshold: &str, ids: &[&str]| -> Vec<(String, String)> {
        ids.iter()
            .map(|id| (id.to_string(), threshold.to_string()))
            .collect()
    };
    let mut expected = [
        by("80", &["acme-only", "acme-tree", "everything"]),
        by("80", &["acme-tree", "everything"]),
        by("hard", &["everything", "hard-only"]),
    ]
    .concat();
    expected.sort();
    let mut got = queued(&pool).await;
    got.sort();
    assert_eq!(got, expected);
    // Reported again: nothing more.
    assert_eq!(repo.record_crossings(&batch).await.unwrap().deliveries, 0);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn claims_skip_what_another_holds_and_only_the_latest_claim_finishes(pool: PgPool) {
    let api = api(pool.clone());
    subscribe(&api, "ops", json!({"thresholds": [80]})).await;
    let repo = QuotaRepo::new(pool.clone());
    let batch: Vec<NewCrossing> = (0..20)
        .map(|i| crossing(&format!("c{i}"), "acme", &[], Threshold::Percent(80)))
        .collect();
    assert_eq!(repo.record_crossings(&batch).await.unwrap().deliveries, 20);

    // A transaction holds the oldest row: claims skip it rather than wait.
    let mut holder = pool.begin().await.unwrap();
    let held: i64 =
        sqlx::query_scalar("SELECT id FROM webhook_outbox ORDER BY id LIMIT 1 FOR UPDATE")
            .fetch_one(&mut *holder)
            .await
            .unwrap();
    let lease = Duration::from_secs(60);
    let claims: Vec<_> = (0..4)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.claim_deliveries(6, lease).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for claim in claims {
        ids.extend(claim.await.unwrap().into_iter().map(|c| c.id));
    }
    holder.rollback().await.unwrap();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "no delivery claimed twice");
    assert_eq!(count, 19, "all but the held one");
    assert!(!ids.contains(&held));
    // Claimed rows are leased: only the held one is due.
    let again = repo
        .claim_deliveries(50, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(again.iter().map(|c| c.id).collect::<Vec<_>>(), [held]);
    assert_eq!((again[0].attempt, again[0].webhook.as_str()), (1, "ops"));
    assert_eq!(again[0].event.payload()["data"]["tenant"], "acme");

    // Its lease runs out: claimed again, and the first claim's late answer is ignored.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = repo.claim_deliveries(50, lease).await.unwrap();
    assert_eq!((second.len(), second[0].attempt), (1, 2));
    let answer = |attempt: i32, delivered: bool| Attempt {
        id: held,
        attempt,
        took: Duration::from_millis(5),
        status_code: Some(if delivered { 204 } else { 503 }),
        error: None,
        delivered,
    };
    let wait = Duration::from_secs(1);
    let span = Duration::from_secs(3600);
    assert_eq!(
        repo.finish_attempt(&answer(1, true), wait, span)
            .await
            .unwrap(),
        Finished::Superseded
    );
    assert_eq!(
        repo.finish_attempt(&answer(2, false), wait, span)
            .await
            .unwrap(),
        Finished::Retrying
    );
    let log = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/webhooks/ops/deliveries?status=pending&limit=500",
            None,
        )
        .await;
    let held_delivery = (log["items"].as_array().unwrap().iter())
        .find(|d| d["id"] == format!("msg_{held}"))
        .unwrap();
    let codes: Vec<&Value> = held_delivery["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(
        codes,
        [&json!(503), &json!(204)],
        "both attempts are logged, newest first"
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_failed_delivery_is_retried_until_its_span_runs_out_then_given_up(pool: PgPool) {
    let api = api(pool.clone());
    subscribe(&api, "ops", json!({"hard": true})).await;
    let repo = QuotaRepo::new(pool.clone());
    repo.record_crossings(&[crossing("c", "acme", &[], Threshold::Hard)])
        .await
        .unwrap();
    let claimed = repo
        .claim_deliveries(1, Duration::from_secs(60))
        .await
        .unwrap();
    let failed = Attempt {
        id: claimed[0].id,
        attempt: 1,
        took: Duration::from_millis(1),
        status_code: None,
        error: Some("connection refused".into()),
        delivered: false,
    };
    // The next attempt would fall past the span: given up now.
    let outcome = repo
        .finish_attempt(&failed, Duration::from_secs(120), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(outcome, Finished::Failed);
    assert!(repo
        .claim_deliveries(1, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    let log = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/webhooks/ops/deliveries",
            None,
        )
        .await;
    let delivery = &log["items"][0];
    assert_eq!(delivery["status"], "failed");
    assert_eq!(delivery["log"][0]["error"], "connection refused");
    assert!(delivery["finished_at"].is_string() && delivery["next_attempt_at"].is_null());
    let pending = repo.pending_deliveries().await.unwrap();
    assert_eq!(pending.count, 0);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_disabled_subscriptions_deliveries_wait_and_are_given_up_after_the_span(pool: PgPool) {
    let api = api(pool.clone());
    subscribe(&api, "ops", json!({"hard": true})).await;
    subscribe(&api, "on", json!({"hard": true})).await;
    let repo = QuotaRepo::new(pool.clone());
    repo.record_crossings(&[crossing("c", "acme", &[], Threshold::Hard)])
        .await
        .unwrap();
    api.expect(
        StatusCode::OK,
        Method::PATCH,
        "/admin/v1/webhooks/ops",
        Some(json!({"enabled": false})),
    )
    .await;
    // Both an hour old: the disabled one's is never claimed, so only the sweep ends it.
    sqlx::query("UPDATE webhook_outbox SET created_at = now() - interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    let claimed = repo
        .claim_deliveries(10, Duration::from_secs(60))
        .await
        .unwrap();
    let claimed: Vec<&str> = claimed.iter().map(|c| c.webhook.as_str()).collect();
    assert_eq!(claimed, ["on"], "a disabled subscription's delivery waits");

    // Within the span nothing is given up; past it, the disabled one's only.
    let span = Duration::from_secs(2 * 3600);
    assert_eq!(repo.give_up_overdue(span).await.unwrap(), 0);
    assert_eq!(
        repo.give_up_overdue(Duration::from_secs(60)).await.unwrap(),
        1
    );
    let statuses: Vec<(String, String)> = sqlx::query_as(
        "SELECT subscription_id, status FROM webhook_outbox ORDER BY subscription_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected =
        [("on", "pending"), ("ops", "failed")].map(|(s, t)| (s.to_string(), t.to_string()));
    assert_eq!(statuses, expected);
    let log = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/webhooks/ops/deliveries",
            None,
        )
        .await;
    let delivery = &log["items"][0];
    assert_eq!(delivery["status"], "failed");
    assert_eq!(delivery["attempts"], 0);
    assert!(delivery["finished_at"].is_string());
}

/// A tier `metered` of 10 requests a month with 2 of overage, and tenant `acme/web`
/// under `acme`, both on it.
async fn metered(api: &Api) {
    tier(
        api,
        "metered",
        json!([{"resource": "requests", "period": "month", "quota": 10, "overage": 2},
               {"resource": "tokens", "period": "month", "quota": 100}]),
    )
    .await;
    tenant(
        api,
        json!({"id": "acme", "tier": "metered", "overcommit": 10}),
    )
    .await;
    tenant(
        api,
        json!({"id": "acme/web", "parent_id": "acme", "tier": "metered"}),
    )
    .await;
}

async fn flush_crossings(api: &Api) {
    let engine = &api.state.engine;
    engine.crossings.flush(&engine.repo).await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn checks_report_each_threshold_once_and_a_refusal_reaches_hard(pool: PgPool) {
    let api = api(pool.clone());
    metered(&api).await;
    subscribe(&api, "ops", json!({"thresholds": [50, 100], "hard": true, "tenant": "acme", "subtree": true, "resources": ["requests"]})).await;
    for _ in 0..4 {
        api.check("acme/web", json!({"requests": 1})).await;
    }
    flush_crossings(&api).await;
    assert!(crossings(&pool).await.is_empty(), "4 of 10 crosses nothing");
    // 4 → 6 crosses 50 % at both levels in one check; 10 reaches 100 %.
    api.check("acme/web", json!({"requests": 2})).await;
    for _ in 0..4 {
        api.check("acme/web", json!({"requests": 1})).await;
    }
    // 3 more would pass the hard limit of 12: refused, which reaches `hard` for the
    // level that refused (the user's, the first of the chain), at 10.
    let refused = api.check("acme/web", json!({"requests": 3})).await;
    assert_eq!(refused["decision"], "reject");
    // 12 reaches the organization's hard limit by usage.
    for _ in 0..2 {
        api.check("acme/web", json!({"requests": 1})).await;
    }
    flush_crossings(&api).await;
    let seen = crossings(&pool).await;
    let expected: Vec<(String, String, String)> = [
        ("acme/web", "50"),
        ("acme", "50"),
        ("acme/web", "100"),
        ("acme", "100"),
        ("acme/web", "hard"),
        ("acme", "hard"),
    ]
    .iter()
    .map(|(l, t)| (l.to_string(), t.to_string(), "check".to_string()))
    .collect();
    let mut sorted = seen.clone();
    sorted.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(sorted, wanted);
    let hard_used: Vec<(String, i64)> = sqlx::query_as(
        "SELECT level_id, used FROM threshold_crossings WHERE threshold = 'hard' ORDER BY level_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        hard_used,
        [("acme".to_string(), 12), ("acme/web".to_string(), 10)]
    );
    // Rejections go on: nothing more is recorded.
    for _ in 0..5 {
        api.check("acme/web", json!({"requests": 1})).await;
    }
    flush_crossings(&api).await;
    assert_eq!(crossings(&pool).await.len(), 6);
    assert_eq!(queued(&pool).await.len(), 6);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn leases_and_settlement_top_ups_cross_thresholds_too(pool: PgPool) {
    let api = api(pool.clone());
    metered(&api).await;
    subscribe(
        &api,
        "ops",
        json!({"thresholds": [50], "tenant": "acme/web"}),
    )
    .await;
    let lease = json!({"id": "l1", "gateway": "g", "tenant": "acme/web", "resource": "requests", "want": 6});
    let reply = api.filter_post("/v1/leases", lease).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let checked_at = api.clock.now().timestamp_millis();
    api.check("acme/web", json!({"tokens": 10})).await;
    let settle = json!({"id": "s1", "tenant": "acme/web", "amounts": {"tokens": 60}, "checked_at_ms": checked_at});
    let reply = api.filter_post("/v1/settle", settle).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    flush_crossings(&api).await;
    let seen: Vec<(String, String)> = sqlx::query_as(
        "SELECT resource, found_by FROM threshold_crossings WHERE level_id = 'acme/web' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let budget = seen.iter().find(|(r, _)| r == "requests").unwrap();
    assert!(budget.1 == "lease", "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|(r, f)| r == "tokens" && f == "settle")
            .count(),
        1,
        "{seen:?}"
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn the_history_flush_records_a_crossing_no_decision_reported(pool: PgPool) {
    let api = api(pool.clone());
    metered(&api).await;
    for _ in 0..9 {
        api.check("acme", json!({"requests": 1})).await;
    }
    api.flush_usage().await;
    // Subscribed only now: no check crosses 80 % any more, but the next flush of the
    // counter finds it past.
    subscribe(&api, "late", json!({"thresholds": [80], "tenant": "acme"})).await;
    api.check("acme", json!({"requests": 1})).await;
    flush_crossings(&api).await;
    assert!(crossings(&pool).await.is_empty());
    api.flush_usage().await;
    flush_crossings(&api).await;
    assert_eq!(
        crossings(&pool).await,
        [("acme".to_string(), "80".to_string(), "flush".to_string())]
    );
    let log = api
        .expect(
            StatusCode::OK,
            Method::GET,
            "/admin/v1/webhooks/late/deliveries",
            None,
        )
        .await;
    let event = &log["items"][0]["event"];
    assert_eq!(event["data"]["used"], 10);
    assert_eq!(
        event["data"]["threshold"],
        json!({"kind": "percent", "percent": 80, "units": 8})
    );
    // Flushed again: known, nothing more.
    api.check("acme", json!({"requests": 1})).await;
    api.flush_usage().await;
    flush_crossings(&api).await;
    assert_eq!(crossings(&pool).await.len(), 1);
}
