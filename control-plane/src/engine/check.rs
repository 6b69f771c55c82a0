//! `POST /v1/check`: decide and count one request — resolve the tenant, plan one store
//! call over every limit of every level, count it (in PostgreSQL while Redis is down),
//! decide from what the store found, and record it.

use tollgate_protocol::{CheckRequest, CheckResponse, Decision};

use super::count::run;
use super::deadline::Deadline;
use super::fallback;
use super::lookup::resolve_cached;
use super::record::record;
use super::state::Engine;
use super::validate::validate;
use crate::error::ApiError;
use crate::plan::{decide, plan, unknown_tenant, PlanError, Select};
use crate::store::CallMode;

/// Decides and counts one request, before `deadline`: a check the store gets to only
/// later counts nothing, since the filter has applied its failure mode by then.
pub async fn check(
    engine: &Engine,
    request: &CheckRequest,
    deadline: Deadline,
) -> Result<CheckResponse, ApiError> {
    validate(request)?;
    let Some((resolved, now)) =
        resolve_cached(engine, &request.tenant, &request.roles, deadline).await?
    else {
        return Ok(unknown_tenant(&request.tenant));
    };
    let resolved = if request.shadow {
        resolved.in_shadow()
    } else {
        resolved
    };
    let mut plan = plan(
        &resolved,
        Select::Amounts(&request.amounts),
        CallMode::Check,
        request.request_id.as_deref(),
        i64::try_from(engine.settings.gauge_hold.as_secs()).unwrap_or(i64::MAX),
        now,
    )
    .map_err(|error| match error {
        PlanError::GaugeNeedsRequestId(_) => ApiError::field("request_id", error.to_string()),
        PlanError::NoWindow(_) => ApiError::internal(error.to_string()),
    })?;
    if plan.call.ops.is_empty() {
        return Ok(CheckResponse {
            decision: Decision::Allow,
            reason: None,
            tenant: request.tenant.clone(),
            policy: None,
            cache_reject_for_s: 0,
            shadow_reject: false,
        });
    }
    plan.call.deadline_ms = Some(deadline.unix_ms());
    let outcome = match run(engine, &plan, &resolved.root, deadline).await {
        Err(error) if fallback::redis_down(engine, &error) => {
            fallback::check(engine, &plan, deadline, error).await?
        }
        counted => counted?,
    };
    let decided =
        decide(&request.tenant, &plan.planned, &outcome, now).map_err(ApiError::internal)?;
    record(
        engine,
        &request.tenant,
        &resolved,
        &plan,
        &outcome,
        &decided,
        now,
    );
    Ok(decided.response)
}
