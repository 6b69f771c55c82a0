//! Deciding in PostgreSQL while Redis is unreachable: whether to, and the check, the
//! settlement, the take-back and the lease return counted there instead.

use std::sync::atomic::Ordering;

use super::counters::FallbackOp;
use crate::engine::deadline::Deadline;
use crate::engine::state::{Engine, RedisOutage};
use crate::error::ApiError;
use crate::plan::settlement::SettlePlan;
use crate::plan::Plan;
use crate::store::{Change, Counter, OpKind, Outcome, ReturnedLease, StoreError};

/// Whether the fallback should decide after `error`: Redis was not used, and certainly
/// counted nothing of this call. A call that timed out may still have been counted by
/// Redis (just before its deadline): deciding it again here could count it twice, so it
/// is answered 503 (the filter's failure mode) instead. Once Redis fails calls in a row
/// the breaker opens, and from then on calls skip it and come here.
pub fn redis_down(engine: &Engine, error: &ApiError) -> bool {
    let ApiError::Unavailable {
        store: "redis",
        source,
    } = error
    else {
        return false;
    };
    let down = engine.settings.redis_outage == RedisOutage::Postgres
        && source
            .downcast_ref::<StoreError>()
            .is_some_and(StoreError::never_reached_the_store);
    if down {
        // This instance, or another one behind the same gateways, may count checks in
        // PostgreSQL from now on.
        engine.fallback_checks.store(true, Ordering::Relaxed);
    }
    down
}

fn unavailable(error: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable("postgres", format!("fallback counters: {error}"))
}

/// The counters of each op of `plan`, for the fallback; `None` when an op takes a gauge
/// slot (not kept in PostgreSQL).
fn fallback_ops(plan: &Plan) -> Option<Vec<FallbackOp>> {
    let mut ops = Vec::with_capacity(plan.call.ops.len());
    for (op, planned) in plan.call.ops.iter().zip(&plan.planned) {
        let counters = match &op.kind {
            OpKind::Window { keys, .. } => {
                let series = planned.series()?;
                (keys.iter().zip(&planned.windows))
                    .map(|(key, window)| Counter {
                        key: key.clone(),
                        tenant: planned.tenant.clone(),
                        resource: planned.def.resource.clone(),
                        series,
                        window: *window,
                    })
                    .collect()
            }
            // Nothing held is nothing to count; a slot taken cannot be kept here.
            OpKind::Gauge { .. } if op.amount == 0 => Vec::new(),
            OpKind::Gauge { .. } => return None,
        };
        ops.push(FallbackOp {
            counters,
            amount: op.amount,
            cap: op.cap,
        });
    }
    Some(ops)
}

/// Decides and counts a planned check in PostgreSQL, within `deadline`.
pub async fn check(
    engine: &Engine,
    plan: &Plan,
    deadline: Deadline,
    redis_error: ApiError,
) -> Result<Outcome, ApiError> {
    let calls = &engine.metrics.fallback_calls;
    let Some(ops) = fallback_ops(plan) else {
        calls.with_label_values(&["check", "unavailable"]).inc();
        return Err(redis_error);
    };
    let outcome = deadline
        .bound(
            engine
                .fallback
                .check(&ops, plan.call.check_record.as_deref()),
        )
        .await
        .ok_or_else(|| unavailable("no answer within the deadline"))?
        .map_err(|e| {
            calls.with_label_values(&["check", "unavailable"]).inc();
            engine.postgres_error(e)
        })?;
    let label = if outcome.admitted {
        "admitted"
    } else {
        "rejected"
    };
    calls.with_label_values(&["check", label]).inc();
    Ok(Outcome {
        admitted: outcome.admitted,
        violated: outcome.violated,
        used: outcome.used,
        oldest: outcome.oldest,
    })
}

/// Applies a planned settlement's counter moves in PostgreSQL, once per settlement id;
/// `false` when it was applied before. Gauge slots it would release lapse on their own.
pub async fn settle(
    engine: &Engine,
    id: &str,
    plan: &SettlePlan,
    deadline: Deadline,
    redis_error: ApiError,
) -> Result<bool, ApiError> {
    let calls = &engine.metrics.fallback_calls;
    if plan.settlement.moves.is_empty() {
        // Only slots to release: let the filter retry once Redis is back.
        calls.with_label_values(&["settle", "unavailable"]).inc();
        return Err(redis_error);
    }
    let moves: Vec<(Counter, i64)> = (plan.counters.iter().zip(&plan.settlement.moves))
        .map(|(counter, m)| {
            let change = match m.change {
                Change::Add(amount) => i64::try_from(amount).unwrap_or(i64::MAX),
                Change::Refund(amount) => -i64::try_from(amount).unwrap_or(i64::MAX),
            };
            (counter.clone(), change)
        })
        .collect();
    let applied = deadline
        .bound(engine.fallback.settle(id, &moves))
        .await
        .ok_or_else(|| unavailable("no answer within the deadline"))?
        .map_err(|e| {
            calls.with_label_values(&["settle", "unavailable"]).inc();
            engine.postgres_error(e)
        })?
        .is_some();
    let label = if applied { "admitted" } else { "duplicate" };
    calls.with_label_values(&["settle", label]).inc();
    Ok(applied)
}

/// Takes back what a check counted in PostgreSQL (the filter refused that request after
/// all: its answer came too late), once, within `deadline`. Answers the units taken
/// back, or `None` when no check of `check_record` was counted here.
pub async fn cancel(
    engine: &Engine,
    check_record: &str,
    deadline: Deadline,
) -> Result<Option<u64>, ApiError> {
    let refunded = deadline
        .bound(engine.fallback.cancel(check_record))
        .await
        .ok_or_else(|| unavailable("no answer within the deadline"))?
        .map_err(|e| engine.postgres_error(e))?;
    let label = if refunded.is_some() {
        "refunded"
    } else {
        "none"
    };
    engine
        .metrics
        .fallback_calls
        .with_label_values(&["cancel", label])
        .inc();
    Ok(refunded)
}

/// Remembers a budget given back while Redis is down, to be refunded once it is back.
pub async fn remember_return(
    engine: &Engine,
    previous: &ReturnedLease,
    deadline: Deadline,
    redis_error: ApiError,
) -> Result<(), ApiError> {
    match deadline
        .bound(
            engine
                .fallback
                .remember_return(&previous.record_key, previous.spent),
        )
        .await
    {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => {
            engine.postgres_error(e);
            Err(redis_error)
        }
        None => Err(redis_error),
    }
}
