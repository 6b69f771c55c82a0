//! `POST /v1/quota`: a tenant's own view of its quota, which the gateway answers at the
//! filter's `quota_path` — every limit of every level with its live usage, the binding
//! one, burn rates and forecasts (`plan/view.rs`).
//!
//! The way of a check without its counting: the definitions come from the cache (no
//! PostgreSQL while they are cached), the counters are read in read mode (nothing is
//! counted, nothing recorded), and the usage samples beside them in a second read of
//! the same tree; all within the filter's deadline. While Redis is down the view is
//! unavailable (503): there is nothing to read in PostgreSQL that is live.

use tollgate_protocol::{QuotaRequest, QuotaView};

use super::count::{redis_call, run};
use super::deadline::Deadline;
use super::lookup::resolve_cached;
use super::state::Engine;
use super::validate::validate_quota;
use crate::error::ApiError;
use crate::plan::view::{rate_reads, unknown_tenant_view, view};
use crate::plan::{plan, Select};
use crate::store::CallMode;

/// The view of `request`'s tenant as the caller with its roles sees it, before
/// `deadline`.
pub async fn quota_view(
    engine: &Engine,
    request: &QuotaRequest,
    deadline: Deadline,
) -> Result<QuotaView, ApiError> {
    validate_quota(request)?;
    let Some((resolved, now)) =
        resolve_cached(engine, &request.tenant, &request.roles, deadline).await?
    else {
        return Ok(unknown_tenant_view(&request.tenant, engine.now()));
    };
    let plan = plan(&resolved, Select::Everything, CallMode::Read, None, 1, now)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let outcome = run(engine, &plan, &resolved.root, deadline).await?;
    let reads = rate_reads(&plan.planned, &resolved.root, now);
    let sampled = if reads.keys.is_empty() {
        Vec::new()
    } else {
        redis_call(engine, deadline, engine.store.samples(&reads.keys))
            .await
            .map_err(|e| engine.redis_error(e))?
    };
    view(
        &request.tenant,
        &plan.planned,
        &outcome,
        &reads,
        &sampled,
        now,
    )
    .map_err(ApiError::internal)
}
