//! Deciding while Redis is unreachable: checks and settlements are counted in
//! PostgreSQL from the persisted usage, exactly and all or nothing, and what was counted
//! there reaches Redis once it is back — once, even when Redis lost everything. Against
//! a Redis of the test's own, which the test stops and starts again.

use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::{json, Value};
use sqlx::PgPool;
use tempfile::TempDir;
use tollgate_control_plane::engine::fallback;
use tollgate_control_plane::store::RedisStore;
use tollgate_e2e::redis::Redis;

use crate::decisions::{tenant, tier, used};
use crate::support::Api;

/// A control plane on a Redis of its own, with `org` (1000 requests a month) and its
/// user `org/u` (40 a month).
async fn org_and_user(pool: PgPool) -> (Api, Redis, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await.unwrap();
    let api = Api::with_store(pool, Arc::new(RedisStore::new(&redis.url()).unwrap()));
    let per_month =
        |quota: u64| json!([{"resource": "requests", "period": "month", "quota": quota}]);
    tier(&api, "org", per_month(1000)).await;
    tier(&api, "user", per_month(40)).await;
    tenant(&api, json!({"id": "org", "tier": "org", "overcommit": 10})).await;
    tenant(
        &api,
        json!({"id": "org/u", "parent_id": "org", "tier": "user"}),
    )
    .await;
    (api, redis, dir)
}

/// Checks of one request each by `org/u`, `n` at once; their decisions.
async fn concurrent_checks(api: &Api, n: usize) -> Vec<String> {
    let check = || {
        api.filter_post(
            "/v1/check",
            json!({"tenant": "org/u", "amounts": {"requests": 1}}),
        )
    };
    let replies = join_all((0..n).map(|_| check())).await;
    replies
        .iter()
        .map(|reply| {
            assert_eq!(reply.status, 200, "decided, not failed: {}", reply.body);
            reply.body["decision"].as_str().unwrap().to_string()
        })
        .collect()
}

/// After Redis went away: checks of `org/u` one by one until one is decided. The first
/// calls fail (503, nothing counted) until the breaker opens: a call Redis may have run
/// before it died is not decided again. Returns how many were admitted.
async fn until_the_fallback_decides(api: &Api) -> usize {
    for _ in 0..10 {
        let reply = api
            .filter_post(
                "/v1/check",
                json!({"tenant": "org/u", "amounts": {"requests": 1}}),
            )
            .await;
        match reply.status.as_u16() {
            503 => continue,
            200 => return usize::from(reply.body["decision"] != "reject"),
            _ => panic!("{}", reply.body),
        }
    }
    panic!("the fallback never decided");
}

fn admitted(decisions: &[String]) -> usize {
    decisions.iter().filter(|d| *d != "reject").count()
}

/// Runs reconcile rounds until nothing is pending.
async fn reconcile(api: &Api) {
    for _ in 0..50 {
        if fallback::reconcile_once(&api.state.engine).await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("usage counted during the outage did not reach Redis");
}

fn metric(api: &Api, line: &str) -> bool {
    api.state
        .engine
        .metrics
        .render()
        .unwrap()
        .lines()
        .any(|l| l == line)
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn while_redis_is_down_checks_are_counted_exactly_in_postgres_and_reach_redis_once(
    pool: PgPool,
) {
    let (api, mut redis, dir) = org_and_user(pool).await;
    assert_eq!(admitted(&concurrent_checks(&api, 10).await), 10);
    api.flush_usage().await;

    redis.stop();
    let first = until_the_fallback_decides(&api).await;
    // 64 at once against what is left of 30: exactly that is admitted, at both levels.
    let during = concurrent_checks(&api, 64).await;
    assert_eq!(first + admitted(&during), 30, "{during:?}");
    assert!(metric(&api, "tollgate_redis_circuit_open 1"));
    assert!(metric(
        &api,
        "tollgate_fallback_calls_total{op=\"check\",outcome=\"admitted\"} 30"
    ));

    // Redis comes back empty: its counters are re-seeded from the history (10) and get
    // the 30 counted meanwhile.
    let _redis = Redis::start_on(dir.path(), redis.port).await.unwrap();
    reconcile(&api).await;
    let expected = vec![("org/u".to_string(), 40), ("org".to_string(), 40)];
    assert_eq!(used(&api, "org/u", "requests").await, expected);
    // A second round finds nothing to carry: nothing is counted twice.
    reconcile(&api).await;
    assert_eq!(used(&api, "org/u", "requests").await, expected);
    assert!(metric(&api, "tollgate_fallback_reconciled_units_total 60"));
    // Back on Redis, the limit holds.
    assert_eq!(concurrent_checks(&api, 3).await, vec!["reject"; 3]);
    assert!(metric(&api, "tollgate_redis_circuit_open 0"));
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_settlement_while_redis_is_down_is_counted_once_and_reaches_redis(pool: PgPool) {
    let (api, mut redis, dir) = org_and_user(pool).await;
    assert_eq!(admitted(&concurrent_checks(&api, 1).await), 1);
    api.flush_usage().await;
    let checked_at = api.clock.now().timestamp_millis();
    redis.stop();
    let first = until_the_fallback_decides(&api).await as u64;
    let settlement = json!({"id": "s1", "tenant": "org/u", "amounts": {"requests": 4},
                            "checked_at_ms": checked_at});
    for _ in 0..2 {
        // The second is a retry whose answer was lost: counted once.
        let reply = api.filter_post("/v1/settle", settlement.clone()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let _redis = Redis::start_on(dir.path(), redis.port).await.unwrap();
    reconcile(&api).await;
    let total = 5 + first;
    let expected = vec![("org/u".to_string(), total), ("org".to_string(), total)];
    assert_eq!(used(&api, "org/u", "requests").await, expected);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_lease_while_redis_is_down_grants_nothing_and_its_return_waits_for_redis(pool: PgPool) {
    let (api, mut redis, dir) = org_and_user(pool.clone()).await;
    let lease = |id: &str, previous: Option<Value>| {
        let mut body = json!({"id": id, "gateway": "g1", "tenant": "org/u",
                              "resource": "requests", "want": 10});
        if let Some(previous) = previous {
            body["previous"] = previous;
        }
        api.filter_post("/v1/leases", body)
    };
    let granted = lease("l1", None).await;
    assert!(
        granted.body["granted"].as_u64().unwrap() > 0,
        "{}",
        granted.body
    );
    redis.stop();
    until_the_fallback_decides(&api).await;
    // The refill: no budget (each request is checked, and counted in PostgreSQL), and
    // the returned lease is remembered for when Redis is back.
    let refill = lease("l2", Some(json!({"id": "l1", "spent": 2}))).await;
    assert_eq!(refill.status, 200, "{}", refill.body);
    assert_eq!(refill.body["granted"], 0, "{}", refill.body);
    let waiting = || sqlx::query_scalar::<_, i64>("SELECT count(*) FROM fallback_returns");
    assert_eq!(waiting().fetch_one(&pool).await.unwrap(), 1);

    let _redis = Redis::start_on(dir.path(), redis.port).await.unwrap();
    reconcile(&api).await;
    assert_eq!(
        waiting().fetch_one(&pool).await.unwrap(),
        0,
        "given back to Redis"
    );
}
