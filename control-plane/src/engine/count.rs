//! The counting step: one store call within the caller's deadline, through the Redis
//! breaker; counters the store lost are re-seeded from the usage history (never from
//! zero) and the call is run once more.

use std::future::Future;

use super::breaker::State as BreakerState;
use super::deadline::Deadline;
use super::state::Engine;
use crate::error::ApiError;
use crate::model::window::{Series, Window};
use crate::plan::{counter_ttl_s, Plan};
use crate::store::{counter_key, marker_key, Outcome, Seed, Seeded, StoreError};

/// How far back usage history can still count (the longest rolling period and a bucket).
const HISTORY_LOOKBACK_DAYS: i64 = 32;

/// Runs a planned call; counters the store lost are re-seeded from the usage history
/// (never from zero) and the call is run once more.
pub async fn run(
    engine: &Engine,
    plan: &Plan,
    root: &str,
    deadline: Deadline,
) -> Result<Outcome, ApiError> {
    reseeding(engine, root, &plan.marker_tenants, deadline, "call", || {
        engine.store.call(&plan.call)
    })
    .await
}

/// Runs one Redis call within `deadline`, through the breaker: while it is open the
/// call is not made at all ([`StoreError::CircuitOpen`]), and the outcome (answered, or
/// unreachable and late) moves it.
pub(super) async fn redis_call<T>(
    engine: &Engine,
    deadline: Deadline,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let breaker = &engine.redis_breaker;
    if !breaker.allow() {
        return Err(StoreError::CircuitOpen);
    }
    let result = deadline
        .bound(call)
        .await
        .unwrap_or(Err(StoreError::PastDeadline));
    match &result {
        Err(error) if error.is_transient() => {
            let before = breaker.state();
            if breaker.failed() == BreakerState::Open && before == BreakerState::Closed {
                engine.metrics.redis_circuit_open.set(1);
                tracing::warn!(%error, "Redis failed calls in a row: decisions skip it for now");
            }
        }
        _ => {
            if breaker.succeeded() == BreakerState::Open {
                engine.metrics.redis_circuit_open.set(0);
                tracing::info!("Redis answers again");
            }
        }
    }
    result
}

/// Runs a store call (`attempt`, timed as `op`) whose seed markers belong to
/// `marker_tenants`, until `deadline`; when the store lost some of them, re-seeds those
/// tenants and runs it once more.
pub(super) async fn reseeding<T, F, Fut>(
    engine: &Engine,
    root: &str,
    marker_tenants: &[String],
    deadline: Deadline,
    op: &str,
    mut attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Seeded<T>, StoreError>>,
{
    for _ in 0..2 {
        let timer = engine
            .metrics
            .store_duration
            .with_label_values(&["redis", op])
            .start_timer();
        let reply = redis_call(engine, deadline, attempt()).await;
        timer.observe_duration();
        match reply.map_err(|e| engine.redis_error(e))? {
            Seeded::Done(done) => return Ok(done),
            Seeded::NeedsSeed(missing) => {
                let tenants: Vec<String> = missing
                    .iter()
                    .filter_map(|&i| marker_tenants.get(i).cloned())
                    .collect();
                seed(engine, root, &tenants, deadline).await?;
            }
        }
    }
    Err(ApiError::unavailable(
        "redis",
        "counters were lost again while being re-seeded",
    ))
}

/// Re-creates the counters of `tenants` from their persisted usage, then marks them
/// seeded.
async fn seed(
    engine: &Engine,
    root: &str,
    tenants: &[String],
    deadline: Deadline,
) -> Result<(), ApiError> {
    let now = engine.now();
    let since = now - chrono::Duration::days(HISTORY_LOOKBACK_DAYS);
    let timer = engine
        .metrics
        .store_duration
        .with_label_values(&["postgres", "history"])
        .start_timer();
    let rows = deadline
        .bound(engine.repo.open_history(tenants, since))
        .await
        .ok_or_else(|| {
            ApiError::unavailable("postgres", "usage history not read within the deadline")
        })?
        .map_err(|e| engine.postgres_error(e))?;
    timer.observe_duration();
    let seeds: Vec<Seed> = rows
        .iter()
        .filter_map(|row| {
            let series = Series::parse(&row.series)?;
            let window = Window {
                start: row.window_start,
                end: row.window_end,
            };
            series.still_counts(&window, now).then(|| Seed {
                key: counter_key(
                    root,
                    &row.tenant_id,
                    &row.resource,
                    &row.series,
                    row.window_start.timestamp(),
                ),
                used: row.used,
                epoch: row.epoch,
                ttl_s: counter_ttl_s(series, &window, now),
            })
        })
        .collect();
    let markers: Vec<String> = tenants.iter().map(|t| marker_key(root, t)).collect();
    let created = redis_call(engine, deadline, engine.store.seed(&markers, &seeds))
        .await
        .map_err(|e| engine.redis_error(e))?;
    engine.metrics.seeds.inc_by(tenants.len() as u64);
    tracing::info!(
        root,
        ?tenants,
        counters = created,
        "re-seeded counters from the usage history"
    );
    Ok(())
}
