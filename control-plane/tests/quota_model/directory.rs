//! The tenant directory: while PostgreSQL is down (closed pool) or silent (a peer that
//! never answers), a registered tenant this control plane never looked up is decided
//! from it — its chain, overrides and assignments — and an unregistered one is answered
//! as before; changes reach it through invalidations; and while PostgreSQL answers it
//! decides nothing.
//!
//! Each tenant is counted once through another instance first, as the rest of the fleet
//! would have: counters Redis does not hold are re-seeded from the usage history in
//! PostgreSQL (`engine/count.rs`), which no definitions can stand in for.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tollgate_control_plane::engine::definitions::{keep_directory, listen, sync_directory};
use tollgate_control_plane::store::bus::{Bus, MemoryBus};
use tollgate_control_plane::store::{CounterStore, MemoryStore};
use tollgate_e2e::eventually;
use tollgate_e2e::hanging::Hanging;

use crate::decisions::{tenant, tier, used};
use crate::support::{assert_problem, Api};

/// A pool of its own on the test's database, for the instance whose PostgreSQL goes
/// down: closing it leaves the test's pool (and the other instance) working.
pub(crate) async fn own_pool(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap()
}

/// Loads the directory of `api` through `through` (its own, or another instance's
/// repository when its own PostgreSQL never answers).
pub(crate) async fn load_directory(api: &Api, through: &Api) -> usize {
    let engine = &api.state.engine;
    sync_directory(
        &engine.definitions,
        &through.state.engine.repo,
        &engine.metrics,
        engine.now(),
    )
    .await
    .unwrap()
    .tenants
}

fn directory_lookups(api: &Api) -> u64 {
    let metrics = &api.state.engine.metrics;
    metrics
        .definition_cache
        .with_label_values(&["directory"])
        .get()
}

async fn check_status(api: &Api, tenant: &str, amounts: Value) -> StatusCode {
    let body = json!({"tenant": tenant, "amounts": amounts});
    api.filter_post("/v1/check", body).await.status
}

fn sorted(mut rows: Vec<(String, u64)>) -> Vec<(String, u64)> {
    rows.sort();
    rows
}

/// `acme` (tier org) and its child `acme/bob` (tier user, a direct assignment of tier
/// bonus and an override of 2 requests a minute), written through `api`.
async fn acme_and_bob(api: &Api) {
    let minute = |resource: &str, quota: u64| json!({"resource": resource, "period": "minute", "quota": quota});
    tier(api, "org", json!([minute("requests", 100)])).await;
    tier(api, "user", json!([minute("requests", 5)])).await;
    tier(
        api,
        "bonus",
        json!([minute("requests", 50), minute("request_bytes", 1000)]),
    )
    .await;
    tenant(
        api,
        json!({"id": "acme", "tier": "org", "overcommit": 1000}),
    )
    .await;
    tenant(
        api,
        json!({"id": "acme/bob", "parent_id": "acme", "tier": "user"}),
    )
    .await;
    let mut bob_requests = minute("requests", 2);
    bob_requests["tenant"] = json!("acme/bob");
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/limits",
        Some(bob_requests),
    )
    .await;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/assignments",
        Some(json!({"tier": "bonus", "tenant": "acme/bob"})),
    )
    .await;
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn with_postgres_down_a_tenant_never_looked_up_is_decided_from_the_directory(pool: PgPool) {
    let store: Arc<dyn CounterStore> = Arc::new(MemoryStore::new());
    let live = Api::with_store(pool.clone(), store.clone());
    let own = own_pool(&pool).await;
    let api = Api::with_store(own.clone(), store);
    acme_and_bob(&live).await;
    // With a default tier, an unknown id has something to be decided by — if it were
    // known to be unknown.
    live.expect(
        StatusCode::CREATED,
        Method::POST,
        "/admin/v1/assignments",
        Some(json!({"tier": "user", "default": true})),
    )
    .await;
    assert_eq!(load_directory(&api, &api).await, 2);
    live.check("acme/bob", json!({"requests": 1})).await;

    own.close().await;
    let first = api.check("acme/bob", json!({"request_bytes": 600})).await;
    assert_eq!(first["decision"], "allow", "{first}");
    let bytes = api.check("acme/bob", json!({"request_bytes": 600})).await;
    assert_eq!(
        bytes["decision"], "reject",
        "the assignment's tier: {bytes}"
    );
    let second = api.check("acme/bob", json!({"requests": 1})).await;
    assert_eq!(
        second["decision"], "warn",
        "at the override's quota: {second}"
    );
    let third = api.check("acme/bob", json!({"requests": 1})).await;
    assert_eq!(third["decision"], "reject", "{third}");
    assert_eq!(third["policy"]["limit"], 2, "the override: {third}");
    assert_eq!(
        sorted(used(&live, "acme/bob", "requests").await),
        [("acme".to_string(), 2), ("acme/bob".to_string(), 2)],
        "counted against the tenant and its parent"
    );
    assert!(directory_lookups(&api) >= 4);

    // Not in the directory, never looked up: a 503, as without it.
    let unknown = json!({"tenant": "nobody", "amounts": {"requests": 1}});
    let reply = api.filter_post("/v1/check", unknown).await;
    assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_postgres_that_never_answers_leaves_time_to_decide_from_the_directory(pool: PgPool) {
    let silent = Hanging::start().await.unwrap();
    let store: Arc<dyn CounterStore> = Arc::new(MemoryStore::new());
    let live = Api::with_store(pool.clone(), store.clone());
    let url = format!("postgres://tollgate@127.0.0.1:{}/tollgate", silent.port);
    let silent_pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy(&url)
        .unwrap();
    let api = Api::configured(silent_pool, store, Arc::new(MemoryBus::default()), |c| {
        c.default_deadline = Duration::from_millis(400);
    });
    acme_and_bob(&live).await;
    // Loaded while PostgreSQL answered (here through the other instance's pool).
    assert_eq!(load_directory(&api, &live).await, 2);
    live.check("acme/bob", json!({"requests": 1})).await;

    let decided = api.check("acme/bob", json!({"requests": 1})).await;
    assert_eq!(
        decided["decision"], "warn",
        "at the override's quota: {decided}"
    );
    assert_eq!(
        sorted(used(&live, "acme/bob", "requests").await),
        [("acme".to_string(), 2), ("acme/bob".to_string(), 2)]
    );
    assert_eq!(
        check_status(&api, "nobody", json!({"requests": 1})).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "an id the directory does not hold waits out the deadline, as before"
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn changes_made_here_and_on_other_instances_reach_the_directory(pool: PgPool) {
    let store: Arc<dyn CounterStore> = Arc::new(MemoryStore::new());
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::default());
    let other = Api::over(pool.clone(), store.clone(), bus.clone());
    let own = own_pool(&pool).await;
    let api = Api::over(own.clone(), store, bus.clone());
    let engine = api.state.engine.clone();
    tokio::spawn(listen(
        bus,
        engine.definitions.clone(),
        engine.webhooks.clone(),
        engine.instance.clone(),
        Duration::from_millis(20),
    ));
    let minute = |quota: u64| json!([{"resource": "requests", "period": "minute", "quota": quota}]);
    tier(&other, "small", minute(1)).await;
    tier(&other, "large", minute(100)).await;
    tenant(
        &other,
        json!({"id": "acme", "tier": "small", "overcommit": 1000}),
    )
    .await;
    tenant(&other, json!({"id": "gone", "tier": "small"})).await;
    let directory = engine.definitions.directory().clone();
    let keeper = tokio::spawn(keep_directory(
        engine.definitions.clone(),
        engine.repo.clone(),
        engine.metrics.clone(),
        engine.clock.clone(),
        Duration::from_secs(3600),
    ));
    eventually(Duration::from_secs(10), "the first full sync", || async {
        directory.len() == 2
    })
    .await
    .unwrap();

    // Through the bus: a tier changed, a tenant created, one deleted.
    other
        .expect(
            StatusCode::OK,
            Method::PATCH,
            "/admin/v1/tenants/acme",
            Some(json!({"tier": "large"})),
        )
        .await;
    tenant(
        &other,
        json!({"id": "acme/new", "parent_id": "acme", "tier": "large"}),
    )
    .await;
    other
        .expect(
            StatusCode::NO_CONTENT,
            Method::DELETE,
            "/admin/v1/tenants/gone",
            None,
        )
        .await;
    // A tier created since the first sync (its catalog message comes through the bus),
    // and a tenant on it created on this instance (`Engine::invalidate_tenant`).
    tier(&other, "medium", minute(50)).await;
    tenant(&api, json!({"id": "local", "tier": "medium"})).await;
    let tier_of = |id: &str| {
        directory
            .chain(id)
            .and_then(|chain| chain.levels[0].tier.clone())
    };
    eventually(Duration::from_secs(10), "the changes", || async {
        let catalog = engine.definitions.held_catalog().await;
        tier_of("acme").as_deref() == Some("large")
            && directory.chain("acme/new").is_some()
            && directory.chain("gone").is_none()
            && directory.chain("local").is_some()
            && catalog.is_some_and(|c| c.tiers.contains_key("medium"))
    })
    .await
    .unwrap();
    keeper.abort();
    // acme's 1 request a minute of tier small is used up by this.
    other.check("acme/new", json!({"requests": 1})).await;
    other.check("local", json!({"requests": 1})).await;

    own.close().await;
    for _ in 0..2 {
        let acme = api.check("acme", json!({"requests": 1})).await;
        assert_eq!(acme["decision"], "allow", "the large tier: {acme}");
    }
    let child = api.check("acme/new", json!({"requests": 1})).await;
    assert_eq!(child["decision"], "allow", "{child}");
    assert_eq!(
        sorted(used(&other, "acme/new", "requests").await),
        [("acme".to_string(), 4), ("acme/new".to_string(), 2)]
    );
    let local = api.check("local", json!({"requests": 1})).await;
    assert_eq!(
        local["policy"]["limit"], 50,
        "the new tier's limits: {local}"
    );
    assert_eq!(
        check_status(&api, "gone", json!({"requests": 1})).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "deleted"
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_tier_newer_than_the_cached_catalog_is_not_decided_from_the_directory(pool: PgPool) {
    let store: Arc<dyn CounterStore> = Arc::new(MemoryStore::new());
    let live = Api::with_store(pool.clone(), store.clone());
    let own = own_pool(&pool).await;
    // The catalog stays fresh, so nothing reloads it behind the test's back.
    let bus = Arc::new(MemoryBus::default());
    let api = Api::configured(own.clone(), store, bus, |c| {
        c.engine.definitions_ttl = Duration::from_secs(3600);
    });
    let minute = |quota: u64| json!([{"resource": "requests", "period": "minute", "quota": quota}]);
    tier(&live, "small", minute(10)).await;
    assert_eq!(load_directory(&api, &api).await, 0);
    tier(&live, "new", minute(10)).await;
    tenant(&live, json!({"id": "fresh", "tier": "new"})).await;
    live.check("fresh", json!({"requests": 1})).await;
    // The tenant reaches the directory, the catalog change does not.
    let row = api
        .state
        .engine
        .repo
        .tenant_row("fresh", api.clock.now())
        .await
        .unwrap();
    assert!(api
        .state
        .engine
        .definitions
        .directory()
        .upsert(row.unwrap()));

    own.close().await;
    assert_eq!(
        check_status(&api, "fresh", json!({"requests": 1})).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "never decided without tier new's limits"
    );
    assert_eq!(directory_lookups(&api), 0);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn while_postgres_answers_the_directory_decides_nothing(pool: PgPool) {
    let api = Api::new(pool.clone());
    let minute = |quota: u64| json!([{"resource": "requests", "period": "minute", "quota": quota}]);
    tier(&api, "small", minute(1)).await;
    tier(&api, "large", minute(100)).await;
    tenant(&api, json!({"id": "acme", "tier": "small"})).await;
    assert_eq!(load_directory(&api, &api).await, 1);
    // Behind the directory's back (no invalidation): it still says small.
    sqlx::query("UPDATE tenants SET tier = 'large' WHERE id = 'acme'")
        .execute(&pool)
        .await
        .unwrap();
    for _ in 0..2 {
        let acme = api.check("acme", json!({"requests": 1})).await;
        assert_eq!(acme["decision"], "allow", "PostgreSQL's large tier: {acme}");
    }
    assert_eq!(directory_lookups(&api), 0);
}
