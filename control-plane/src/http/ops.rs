//! Operational endpoints: `/health` (alive), `/ready` (Redis and PostgreSQL answer),
//! `/metrics` (Prometheus text).

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// How long `/ready` waits for each store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The operational routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (redis, postgres) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, state.store.ping()),
        tokio::time::timeout(PROBE_TIMEOUT, state.repo.ping()),
    );
    let redis_up = matches!(redis, Ok(Ok(())));
    let postgres_up = matches!(postgres, Ok(Ok(())));
    let word = |up: bool| if up { "ok" } else { "down" };
    let body = json!({
        "status": if redis_up && postgres_up { "ok" } else { "unavailable" },
        "redis": word(redis_up),
        "postgres": word(postgres_up),
    });
    let status = if redis_up && postgres_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
