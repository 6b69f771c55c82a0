//! Operational endpoints: `/health` (alive), `/ready` (can decide), `/metrics`
//! (Prometheus text), and the OpenAPI document.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;
use crate::engine::RedisOutage;
use crate::error::{ApiError, Problem};

/// How long `/ready` waits for each store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn routes() -> OpenApiRouter<AppState> {
    probes()
        .routes(routes!(metrics))
        .routes(routes!(openapi_document))
}

/// `/health` and `/ready` alone, for the decision listener (Envoy health-checks it).
pub(super) fn probes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// Readiness and what it depends on.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` when checks can be decided, else `unavailable`.
    pub status: String,
    /// `ok` or `down`.
    pub redis: String,
    /// `ok` or `down`.
    pub postgres: String,
    /// Whether quota definitions are at hand (loaded now or cached), in a database with
    /// every migration applied.
    pub definitions: String,
    /// Where checks are counted now: `redis`, `postgres` (the fallback while Redis is
    /// down), or `none`.
    pub counting: String,
}

/// The process is alive.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Whether checks can be decided: Redis answers and quota definitions are at hand —
/// from PostgreSQL, once its migrations are applied, or cached while PostgreSQL is down.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; the body names what is down", body = Readiness),
    ))]
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (redis, postgres) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, state.engine.store.ping()),
        tokio::time::timeout(PROBE_TIMEOUT, state.engine.repo.ping()),
    );
    let redis_up = matches!(redis, Ok(Ok(())));
    let postgres_up = matches!(postgres, Ok(Ok(())));
    let migrated = state.migrated.load(Ordering::Relaxed);
    let definitions = migrated
        && tokio::time::timeout(
            PROBE_TIMEOUT,
            state.engine.definitions.catalog(&state.engine.repo),
        )
        .await
        .is_ok_and(|loaded| loaded.is_ok());
    let word = |up: bool| if up { "ok" } else { "down" }.to_string();
    let fallback = state.engine.settings.redis_outage == RedisOutage::Postgres && postgres_up;
    let counting = match (redis_up, fallback) {
        (true, _) => "redis",
        (false, true) => "postgres",
        (false, false) => "none",
    };
    let can_decide = definitions && counting != "none";
    let body = Readiness {
        status: if can_decide { "ok" } else { "unavailable" }.into(),
        redis: word(redis_up),
        postgres: word(postgres_up),
        definitions: word(definitions),
        counting: counting.into(),
    };
    let status = if can_decide {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    if let Some(age) = state.engine.definitions.catalog_age().await {
        state.engine.metrics.definitions_age.set(age.as_secs_f64());
    }
    state
        .engine
        .metrics
        .history_lag
        .set(state.engine.flusher.lag().as_secs_f64());
    let text = state
        .engine
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

/// The OpenAPI document as JSON, rendered once by the route table, which knows every
/// route (see [`super::routes::app_for`]).
pub(super) static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();

/// This document: the OpenAPI 3.1 description of every route, generated from the code.
#[utoipa::path(get, path = "/admin/v1/openapi.json", tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object),
        (status = 500, description = "It could not be rendered", body = Problem, content_type = "application/problem+json"),
    ))]
async fn openapi_document() -> Result<impl IntoResponse, ApiError> {
    match DOCUMENT.get() {
        Some(Ok(json)) => Ok(([(CONTENT_TYPE, "application/json")], json.clone())),
        Some(Err(error)) => Err(ApiError::internal(error.clone())),
        None => Err(ApiError::internal("the OpenAPI document was not rendered")),
    }
}
