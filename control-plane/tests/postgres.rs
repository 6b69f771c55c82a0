//! The admin API and the definitions cache against a real PostgreSQL (started here on
//! a free loopback port, one throwaway cluster per test), with counters in memory.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tempfile::TempDir;
use tollgate_control_plane::config::Secret;
use tollgate_control_plane::model::LimitDef;
use tollgate_control_plane::repo::{NewTier, RepoError};
use tollgate_control_plane::store::MemoryStore;
use tollgate_control_plane::window::Period;
use tollgate_control_plane::{app, AppConfig, AppState, MIGRATOR};
use tollgate_e2e::postgres::Postgres;
use tollgate_protocol::{Limit, WarnAt};
use tower::ServiceExt;

const TOKEN: &str = "pg-test-token";

/// A throwaway PostgreSQL cluster from the end-to-end harness, stopped and deleted
/// when dropped.
struct TestPostgres {
    postgres: Postgres,
    _dir: TempDir,
}

impl TestPostgres {
    async fn start() -> TestPostgres {
        let dir = tempfile::tempdir().unwrap();
        let postgres = Postgres::start(dir.path()).await.unwrap();
        TestPostgres {
            postgres,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        self.postgres.url()
    }

    async fn pool(&self) -> PgPool {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match PgPoolOptions::new()
                .max_connections(4)
                .connect(&self.url())
                .await
            {
                Ok(pool) => {
                    MIGRATOR.run(&pool).await.unwrap();
                    return pool;
                }
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "PostgreSQL did not start: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

fn state(pool: PgPool) -> AppState {
    let config = AppConfig {
        admin_token: Secret::new(TOKEN),
        definitions_ttl: Duration::from_secs(60),
    };
    AppState::new(config, pool, Arc::new(MemoryStore::new())).unwrap()
}

async fn send(
    state: &AppState,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json");
    let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
    let response = app(state.clone())
        .oneshot(builder.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn pro_tier() -> Value {
    json!({"name": "pro", "limits": [
        {"resource": "requests", "period": "day", "quota": 10, "overage": 2},
        {"resource": "request_bytes", "period": "month", "quota": 1000, "warn_at": 0.5},
    ]})
}

#[tokio::test]
async fn admin_api_creates_tiers_and_tenants_and_checks_count_against_them() {
    let pg = TestPostgres::start().await;
    let state = state(pg.pool().await);

    let (status, tier) = send(&state, "POST", "/admin/v1/tiers", Some(pro_tier())).await;
    assert_eq!(status, StatusCode::CREATED, "{tier}");
    assert_eq!(tier["limits"][1]["warn_at"], 0.5);
    let (status, _) = send(&state, "POST", "/admin/v1/tiers", Some(pro_tier())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, tier) = send(&state, "GET", "/admin/v1/tiers/pro", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tier["limits"].as_array().unwrap().len(), 2);
    let (status, _) = send(&state, "GET", "/admin/v1/tiers/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let tenant = json!({"id": "acme/research", "tier": "pro", "labels": {"team": "r"}});
    let (status, created) = send(&state, "POST", "/admin/v1/tenants", Some(tenant.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["labels"]["team"], "r");
    let (status, _) = send(&state, "POST", "/admin/v1/tenants", Some(tenant)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let unknown_tier = json!({"id": "other", "tier": "gold"});
    let (status, error) = send(&state, "POST", "/admin/v1/tenants", Some(unknown_tier)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"]["field"], "tier");

    let (status, fetched) = send(&state, "GET", "/admin/v1/tenants/acme/research", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["tier"], "pro");
    let (status, _) = send(&state, "GET", "/admin/v1/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let check =
        json!({"tenant": "acme/research", "amounts": {"requests": 1, "request_bytes": 600}});
    let (status, decision) = send(&state, "POST", "/v1/check", Some(check)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(decision["decision"], "warn", "{decision}");
    assert_eq!(decision["policy"]["name"], "monthly");

    let (status, usage) = send(&state, "GET", "/admin/v1/tenants/acme/research/usage", None).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["tier"], "pro");
    let bytes = usage["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["resource"] == "request_bytes")
        .unwrap();
    assert_eq!(bytes["used"], 600);
    assert_eq!(bytes["remaining"], 400);
    assert!(bytes["window_start"]
        .as_str()
        .unwrap()
        .ends_with("-01T00:00:00Z"));
}

#[tokio::test]
async fn check_uses_cached_definitions_until_an_admin_write_clears_them() {
    let pg = TestPostgres::start().await;
    let state = state(pg.pool().await);
    let check = json!({"tenant": "acme", "amounts": {"requests": 1}});

    let (_, unknown) = send(&state, "POST", "/v1/check", Some(check.clone())).await;
    assert_eq!(unknown["reason"], "unknown_tenant");
    // Written behind the API's back: the negative entry is still served.
    sqlx::query("INSERT INTO tiers (name) VALUES ('free')")
        .execute(state.repo.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO tenants (id, tier) VALUES ('acme', 'free')")
        .execute(state.repo.pool())
        .await
        .unwrap();
    let (_, cached) = send(&state, "POST", "/v1/check", Some(check.clone())).await;
    assert_eq!(cached["reason"], "unknown_tenant");

    // Any admin write clears the cache.
    let (status, _) = send(&state, "POST", "/admin/v1/tiers", Some(pro_tier())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, known) = send(&state, "POST", "/v1/check", Some(check)).await;
    assert_eq!(known["decision"], "allow", "{known}");
    assert!(known.get("policy").is_none());
}

#[tokio::test]
async fn tier_whose_limits_fail_to_insert_is_not_written_at_all() {
    let pg = TestPostgres::start().await;
    let state = state(pg.pool().await);
    let limit = LimitDef {
        resource: "requests".into(),
        period: Period::Day,
        limit: Limit {
            quota: 1,
            overage: 0,
            warn_at: WarnAt::DEFAULT,
            unlimited: false,
        },
    };
    // Validation would refuse this; the database must too, and roll the tier back.
    let tier = NewTier {
        name: "broken".into(),
        limits: vec![limit.clone(), limit],
    };
    assert!(matches!(
        state.repo.create_tier(&tier).await,
        Err(RepoError::Conflict(_))
    ));
    assert_eq!(state.repo.get_tier("broken").await.unwrap(), None);
}
