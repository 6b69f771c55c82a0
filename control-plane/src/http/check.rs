//! `POST /v1/check`: decide and count one request (SPEC §2, §3).
//!
//! The tenant's quota comes from the definitions cache, so a cached tenant costs one
//! Redis round trip and no PostgreSQL query.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use tollgate_protocol::check::CHECK_PATH;
use tollgate_protocol::{is_valid_tenant_id, CheckRequest, CheckResponse, Decision, RejectReason};

use super::json::ApiJson;
use crate::check::{counter_ops, plan, respond};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{ScriptOutcome, COUNTER_MAX};

/// The check route.
pub fn router() -> Router<AppState> {
    Router::new().route(CHECK_PATH, post(check))
}

async fn check(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CheckRequest>,
) -> Result<Json<CheckResponse>, ApiError> {
    let timer = state.metrics.check_duration.start_timer();
    let result = decide(&state, &request).await;
    timer.observe_duration();
    let response = result?;
    let decision = match response.decision {
        Decision::Allow => "allow",
        Decision::Warn => "warn",
        Decision::Reject => "reject",
    };
    state.metrics.checks.with_label_values(&[decision]).inc();
    Ok(Json(response))
}

fn validate(request: &CheckRequest) -> Result<(), ApiError> {
    if !is_valid_tenant_id(&request.tenant) {
        return Err(ApiError::field(
            "tenant",
            "tenant ids are 1-128 characters of letters, digits and ._:@/-",
        ));
    }
    if let Some((resource, _)) = request.amounts.iter().find(|(_, &a)| a > COUNTER_MAX) {
        return Err(ApiError::field(
            format!("amounts.{resource}"),
            format!("amounts are at most {COUNTER_MAX}"),
        ));
    }
    Ok(())
}

async fn decide(state: &AppState, request: &CheckRequest) -> Result<CheckResponse, ApiError> {
    validate(request)?;
    let Some(quota) = state.tenant_quota(&request.tenant).await? else {
        return Ok(CheckResponse {
            decision: Decision::Reject,
            reason: Some(RejectReason::UnknownTenant),
            tenant: request.tenant.clone(),
            policy: None,
            cache_reject_for_s: 0,
        });
    };
    let now = Utc::now();
    let planned = plan(&quota, &request.amounts, now)?;
    let ops = counter_ops(&planned);
    let outcome = if ops.is_empty() {
        ScriptOutcome {
            admitted: true,
            used: Vec::new(),
            violated: None,
        }
    } else {
        state
            .store
            .check_and_count(&ops)
            .await
            .map_err(|e| state.redis_error(e))?
    };
    respond(&request.tenant, &planned, &outcome, now)
}
