//! What the API tests share: a control plane over a test database, its router, a clock
//! the test sets, and requests with or without the admin token.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tollgate_control_plane::bus::{Bus, MemoryBus};
use tollgate_control_plane::config::Secret;
use tollgate_control_plane::store::{CounterStore, MemoryStore};
use tollgate_control_plane::{app, AppConfig, AppState};
use tower::ServiceExt;

/// The admin token of the test control planes.
pub const TOKEN: &str = "test-admin-token";

/// A clock the test moves.
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    /// A clock at 2026-11-17 12:00:00 UTC.
    pub fn new() -> TestClock {
        TestClock(Arc::new(Mutex::new(
            Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap(),
        )))
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }

    /// The time.
    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// One control plane and its router.
#[derive(Clone)]
pub struct Api {
    /// Its state (store, bus, caches).
    pub state: AppState,
    /// Its clock.
    pub clock: TestClock,
    router: Router,
}

/// A reply: status, headers, JSON body (or `Null`).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Api {
    /// A control plane over `pool` with counters in memory.
    pub fn new(pool: PgPool) -> Api {
        Api::over(
            pool,
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryBus::default()),
        )
    }

    /// A control plane over `pool`, `store` and `bus` (share them to make instances).
    pub fn over(pool: PgPool, store: Arc<dyn CounterStore>, bus: Arc<dyn Bus>) -> Api {
        let clock = TestClock::new();
        let mut config = AppConfig::with_token(Secret::new(TOKEN));
        config.default_deadline = std::time::Duration::from_secs(5);
        let ticking = clock.clone();
        let state = AppState::new(config, pool, store, bus)
            .unwrap()
            .with_clock(Arc::new(move || ticking.now()));
        Api {
            router: app(state.clone()),
            state,
            clock,
        }
    }

    /// Sends a request; `token` `None` sends none.
    pub async fn send_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(builder.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends an admin request with the token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send_as(Some(TOKEN), method, path, body).await
    }

    /// An admin request that must answer `expected`; returns the body.
    pub async fn expect(
        &self,
        expected: StatusCode,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let reply = self.admin(method.clone(), path, body).await;
        assert_eq!(reply.status, expected, "{method} {path}: {}", reply.body);
        reply.body
    }

    /// `POST /v1/check` for `tenant` with `amounts`; returns the decision body.
    pub async fn check(&self, tenant: &str, amounts: Value) -> Value {
        let body = serde_json::json!({"tenant": tenant, "amounts": amounts});
        let reply = self
            .send_as(None, Method::POST, "/v1/check", Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "check: {}", reply.body);
        reply.body
    }
}

/// A tenant id as one path segment (`/` as `%2F`).
pub fn enc(id: &str) -> String {
    id.replace('/', "%2F")
}
