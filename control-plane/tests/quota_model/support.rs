//! What the API tests share: a control plane over a test database, its router, a clock
//! the test sets, and requests with or without the admin token.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tollgate_control_plane::http::token::TokenDigest;
use tollgate_control_plane::store::bus::{Bus, MemoryBus};
use tollgate_control_plane::store::{CounterStore, MemoryStore, RedisStore};
use tollgate_control_plane::{app, AppConfig, AppState};
use tollgate_e2e::shared;
use tower::ServiceExt;

/// The admin token of the test control planes.
pub const TOKEN: &str = "test-admin-token";

/// The read-only admin token of the test control planes.
pub const READ_TOKEN: &str = "test-read-token";

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
        Api::with_store(pool, Arc::new(MemoryStore::new()))
    }

    /// A control plane over `pool` with counters in `store` (kept by the test to clear
    /// it, or one that is down) and a bus of its own.
    pub fn with_store(pool: PgPool, store: Arc<dyn CounterStore>) -> Api {
        Api::over(pool, store, Arc::new(MemoryBus::default()))
    }

    /// A control plane over `pool` with counters in the Redis the harness shares between
    /// the tests (each test keeps to its own tenant tree there).
    pub fn on_redis(pool: PgPool) -> Api {
        let store = RedisStore::new(&shared::redis_url().unwrap()).unwrap();
        Api::with_store(pool, Arc::new(store))
    }

    /// A control plane over `pool`, `store` and `bus` (share them to make instances).
    pub fn over(pool: PgPool, store: Arc<dyn CounterStore>, bus: Arc<dyn Bus>) -> Api {
        Api::configured(pool, store, bus, |_| {})
    }

    /// [`Api::over`] with its configuration changed by `change`.
    pub fn configured(
        pool: PgPool,
        store: Arc<dyn CounterStore>,
        bus: Arc<dyn Bus>,
        change: impl FnOnce(&mut AppConfig),
    ) -> Api {
        let clock = TestClock::new();
        let mut config = AppConfig::with_token(TOKEN);
        config.default_deadline = std::time::Duration::from_secs(5);
        config.admin_read_token = Some(TokenDigest::of(READ_TOKEN));
        change(&mut config);
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

    /// `GET path` with `token`, for answers that are not JSON: status, headers and the
    /// body as text.
    pub async fn get_text(&self, token: &str, path: &str) -> (StatusCode, HeaderMap, String) {
        let request = Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
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

    /// A request as the Envoy filter sends it: `POST path` with `body`, no token.
    pub async fn filter_post(&self, path: &str, body: Value) -> Reply {
        self.send_as(None, Method::POST, path, Some(body)).await
    }

    /// `POST /v1/check` for `tenant` with `amounts`; returns the decision body.
    pub async fn check(&self, tenant: &str, amounts: Value) -> Value {
        let body = serde_json::json!({"tenant": tenant, "amounts": amounts});
        let reply = self.filter_post("/v1/check", body).await;
        assert_eq!(reply.status, StatusCode::OK, "check: {}", reply.body);
        reply.body
    }

    /// Persists the live counters to the usage history now, as the flusher does in the
    /// background.
    pub async fn flush_usage(&self) {
        self.state
            .engine
            .flusher
            .flush(
                self.state.engine.store.as_ref(),
                &self.state.engine.repo,
                self.clock.now(),
            )
            .await;
    }
}

/// Asserts that `reply` is a problem+json error with `status`.
pub fn assert_problem(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
}

/// Asserts that `sent` was refused as invalid (422), naming `field` first (`""`: a
/// problem that names no field, such as an unknown one).
pub fn assert_invalid(reply: &Reply, field: &str, sent: &Value) {
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    assert_eq!(reply.status, invalid, "{sent}: {}", reply.body);
    assert_problem(reply, invalid);
    if !field.is_empty() {
        assert_eq!(reply.body["invalid-params"][0]["name"], field, "{sent}");
    }
}

/// A tenant id as one path segment (`/` as `%2F`).
pub fn enc(id: &str) -> String {
    id.replace('/', "%2F")
}

/// `valid` with one field set to another value, for tests of what is refused.
pub fn one_changed(valid: &Value) -> impl Fn(&str, Value) -> Value + '_ {
    move |field, value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    }
}

/// `valid` without one field, for tests of what is refused.
pub fn one_removed(valid: &Value) -> impl Fn(&str) -> Value + '_ {
    move |field| {
        let mut body = valid.clone();
        if let Some(object) = body.as_object_mut() {
            object.remove(field);
        }
        body
    }
}
