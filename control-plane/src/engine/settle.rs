//! `POST /v1/settle`: apply what a counted request really cost, once it is over —
//! resolve the tenant, plan the moves ([`crate::plan::settlement`]), apply them once
//! per id (in PostgreSQL while Redis is down), record.

use tollgate_protocol::{SettleRequest, SettleResponse};

use super::count::reseeding;
use super::deadline::Deadline;
use super::fallback;
use super::lookup::resolve_cached;
use super::record::counted;
use super::state::Engine;
use super::validate::validate_settle;
use super::webhooks::detect::{Moved, Mover};
use crate::error::ApiError;
use crate::model::window::WindowKind;
use crate::plan::settlement::{self, SettleError};
use crate::store::{hold_record_key, Change, Release, SettleOutcome};

/// Settles what a counted request really cost (see [`settlement`]), counting the outcome.
pub async fn settle(
    engine: &Engine,
    request: &SettleRequest,
    deadline: Deadline,
) -> Result<SettleResponse, ApiError> {
    counted(
        &engine.metrics.settlements,
        settle_counted(engine, request, deadline),
    )
    .await
}

/// Counts one settlement under `outcome` (`tollgate_settlements_total`).
pub fn count_settlement(engine: &Engine, outcome: &str) {
    engine
        .metrics
        .settlements
        .with_label_values(&[outcome])
        .inc();
}

/// Settles one request; also answers the `outcome` label it is counted under.
async fn settle_counted(
    engine: &Engine,
    request: &SettleRequest,
    deadline: Deadline,
) -> Result<(SettleResponse, &'static str), ApiError> {
    let checked_at = validate_settle(request)?;
    let Some((resolved, now)) =
        resolve_cached(engine, &request.tenant, &request.roles, deadline).await?
    else {
        // Its check was refused: nothing was counted or held.
        return Ok((SettleResponse { released: 0 }, "unknown_tenant"));
    };
    let release = request.release_request_id.as_ref().map(|id| Release {
        record_key: hold_record_key(&resolved.root, id),
        request_id: id.clone(),
    });
    let plan = settlement::plan(
        &resolved,
        &request.id,
        &request.amounts,
        checked_at,
        release,
        now,
    )
    .map_err(|error| match &error {
        SettleError::Gauge(resource) => {
            ApiError::field(format!("amounts.{resource}"), error.to_string())
        }
        SettleError::NoWindow(_) => ApiError::internal(error.to_string()),
    })?;
    if plan.is_empty() {
        return Ok((SettleResponse { released: 0 }, "settled"));
    }
    let outcome = reseeding(
        engine,
        &resolved.root,
        &plan.marker_tenants,
        deadline,
        "settle",
        || engine.store.settle(&plan.settlement),
    )
    .await;
    let outcome = match outcome {
        Err(error) if fallback::redis_down(engine, &error) => {
            let applied = fallback::settle(engine, &request.id, &plan, deadline, error).await?;
            let outcome = if applied { "settled" } else { "duplicate" };
            return Ok((SettleResponse { released: 0 }, outcome));
        }
        outcome => outcome?,
    };
    let settled = match outcome {
        SettleOutcome::Applied(settled) => settled,
        SettleOutcome::Duplicate => {
            // A retry of a settlement applied before, whose answer was lost: nothing
            // changed, and what it released was counted the first time.
            tracing::debug!(
                tenant = %request.tenant,
                id = %request.id,
                "settlement already applied"
            );
            return Ok((SettleResponse { released: 0 }, "duplicate"));
        }
    };
    engine.flusher.touch_counters(&plan.counters);
    if let Some(snapshot) = engine.webhooks.snapshot() {
        // A top-up moves usage up like a check. Calendar windows only: a rolling
        // limit's usage is its buckets' sum, and a settlement sees one bucket.
        let mover = Mover {
            engine,
            snapshot: &snapshot,
            tenant: &request.tenant,
            resolved: &resolved,
            now,
            found_by: "settle",
        };
        let moves = (plan.settlement.moves.iter()).zip(plan.counters.iter().zip(&plan.limits));
        for ((step, (counter, limit)), &after) in moves.zip(&settled.used) {
            if let (Change::Add(amount), WindowKind::Calendar) = (step.change, counter.series.kind)
            {
                mover.moved(
                    &Moved::of_counter(counter, limit),
                    after.saturating_sub(amount),
                    after,
                );
            }
        }
    }
    engine.metrics.releases.inc_by(settled.released);
    Ok((
        SettleResponse {
            released: settled.released,
        },
        "settled",
    ))
}
