//! Deciding while Redis is unreachable (`--redis-outage postgres`, the default): checks
//! and settlements are counted in PostgreSQL instead ([`crate::repo`]'s fallback
//! counters: the persisted usage of each window plus what was counted there since), and
//! once Redis answers again, [`reconcile`] adds what was counted there to the Redis
//! counters — each step once, by an idempotent settlement — so no admitted unit is lost
//! and none is counted twice.
//!
//! The persisted usage a fallback decision starts from is at most one history flush old
//! (`--history-flush-ms`): usage counted in Redis in that last interval before the
//! outage is not seen by the fallback, so it may admit up to that much past a hard
//! limit. Gauges (`concurrent_requests`) are not kept in PostgreSQL: a check that takes
//! a slot answers 503 during an outage (the filter's failure mode).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::decision::{self, Deadline};
use crate::error::ApiError;
use crate::plan::settlement::SettlePlan;
use crate::plan::{counter_ttl_s, Plan};
use crate::repo::{FallbackOp, Pending};
use crate::state::AppState;
use crate::store::Counter;
use crate::store::{
    lease_key, marker_key, settlement_key, Change, LeaseCall, LeaseOutcome, Move, OpKind, Outcome,
    ReturnedLease, Seeded, SettleOutcome, Settlement, StoreError,
};

/// How many pending counters one reconcile round carries to Redis.
const RECONCILE_BATCH: i64 = 500;

/// Whether the fallback should decide after `error`: Redis was not used, and certainly
/// counted nothing of this call. A call that timed out may still have been counted by
/// Redis (just before its deadline): deciding it again here could count it twice, so it
/// is answered 503 (the filter's failure mode) instead. Once Redis fails calls in a row
/// the breaker opens, and from then on calls skip it and come here.
pub fn redis_down(state: &AppState, error: &ApiError) -> bool {
    let ApiError::Unavailable {
        store: "redis",
        source,
    } = error
    else {
        return false;
    };
    let down = state.config.redis_outage == crate::config::RedisOutage::Postgres
        && source
            .downcast_ref::<StoreError>()
            .is_some_and(StoreError::never_reached_the_store);
    if down {
        // This instance, or another one behind the same gateways, may count checks in
        // PostgreSQL from now on.
        state.fallback_checks.store(true, Ordering::Relaxed);
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
    state: &AppState,
    plan: &Plan,
    deadline: Deadline,
    redis_error: ApiError,
) -> Result<Outcome, ApiError> {
    let calls = &state.metrics.fallback_calls;
    let Some(ops) = fallback_ops(plan) else {
        calls.with_label_values(&["check", "unavailable"]).inc();
        return Err(redis_error);
    };
    let outcome = deadline
        .bound(
            state
                .repo
                .fallback_check(&ops, plan.call.check_record.as_deref()),
        )
        .await
        .ok_or_else(|| unavailable("no answer within the deadline"))?
        .map_err(|e| {
            calls.with_label_values(&["check", "unavailable"]).inc();
            state.postgres_error(e)
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
    state: &AppState,
    id: &str,
    plan: &SettlePlan,
    deadline: Deadline,
    redis_error: ApiError,
) -> Result<bool, ApiError> {
    let calls = &state.metrics.fallback_calls;
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
        .bound(state.repo.fallback_settle(id, &moves))
        .await
        .ok_or_else(|| unavailable("no answer within the deadline"))?
        .map_err(|e| {
            calls.with_label_values(&["settle", "unavailable"]).inc();
            state.postgres_error(e)
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
    state: &AppState,
    check_record: &str,
    deadline: Deadline,
) -> Result<Option<u64>, ApiError> {
    let refunded = deadline
        .bound(state.repo.fallback_cancel(check_record))
        .await
        .ok_or_else(|| unavailable("no answer within the deadline"))?
        .map_err(|e| state.postgres_error(e))?;
    let label = if refunded.is_some() {
        "refunded"
    } else {
        "none"
    };
    state
        .metrics
        .fallback_calls
        .with_label_values(&["cancel", label])
        .inc();
    Ok(refunded)
}

/// Remembers a budget given back while Redis is down, to be refunded once it is back.
pub async fn remember_return(
    state: &AppState,
    previous: &ReturnedLease,
    deadline: Deadline,
    redis_error: ApiError,
) -> Result<(), ApiError> {
    match deadline
        .bound(
            state
                .repo
                .fallback_return(&previous.record_key, previous.spent),
        )
        .await
    {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => {
            state.postgres_error(e);
            Err(redis_error)
        }
        None => Err(redis_error),
    }
}

/// Gives one remembered budget back to Redis (a refund of its unspent part, once: a
/// lease record is refunded only while it exists), then forgets it.
async fn give_back(state: &AppState, record_key: &str, spent: u64) -> Result<(), ApiError> {
    let root = root_of(record_key)
        .ok_or_else(|| ApiError::internal(format!("not a lease record: {record_key}")))?;
    let budget = LeaseCall {
        now_ms: state.now().timestamp_millis(),
        markers: Vec::new(),
        ops: Vec::new(),
        record_key: lease_key(root, &format!("fallback-return:{record_key}")),
        levels: Vec::new(),
        gateway: String::new(),
        tenant: String::new(),
        want: 0,
        min_grant: 1,
        ttl_ms: 0,
        record_ttl_ms: 1,
        previous: Some(ReturnedLease {
            record_key: record_key.to_string(),
            spent,
        }),
        deadline_ms: None,
    };
    let deadline = Deadline::after(Duration::from_secs(5));
    let answer = decision::redis_call(state, deadline, state.store.lease(&budget))
        .await
        .map_err(|e| state.redis_error(e))?;
    if let Seeded::Done(LeaseOutcome::Done(done)) = &answer {
        state
            .metrics
            .lease_units
            .with_label_values(&["refunded"])
            .inc_by(done.refunded);
    }
    state
        .repo
        .fallback_returned(record_key)
        .await
        .map_err(|e| state.postgres_error(e))
}

/// The root (hash tag) of a counter key.
fn root_of(key: &str) -> Option<&str> {
    key.strip_prefix("tollgate:{")?
        .split_once('}')
        .map(|(root, _)| root)
}

/// Carries one pending counter to Redis: an idempotent settlement named after its step
/// (re-seeding the tenant's counters first when Redis lost them), then the usage
/// history, then the pending amount taken off here. A crash between the steps repeats
/// a step whose settlement Redis already has: it changes nothing there.
async fn carry(state: &AppState, pending: &Pending) -> Result<(), ApiError> {
    let bad = || ApiError::internal(format!("not a counter key: {}", pending.counter_key));
    let counter = Counter::from_key(&pending.counter_key).ok_or_else(bad)?;
    let root = root_of(&pending.counter_key).ok_or_else(bad)?;
    let id = format!("fallback:{}:{}", pending.counter_key, pending.version);
    let amount = pending.pending.unsigned_abs();
    let change = if pending.pending > 0 {
        Change::Add(amount)
    } else {
        Change::Refund(amount)
    };
    let settlement = Settlement {
        id_key: settlement_key(root, &id),
        markers: vec![marker_key(root, &counter.tenant)],
        moves: vec![Move {
            key: counter.key.clone(),
            change,
            ttl_s: counter_ttl_s(counter.series, &counter.window, state.now()).max(1),
            marker: Some(0),
        }],
        release: None,
    };
    // An operator's pace, not a filter's: no caller waits on this.
    let deadline = Deadline::after(Duration::from_secs(5));
    let tenants = [counter.tenant.clone()];
    decision::reseeding(state, root, &tenants, deadline, "reconcile", || {
        state.store.settle(&settlement)
    })
    .await
    .map(|_: SettleOutcome| ())?;
    // Persist what Redis holds now before the pending part is forgotten here, so a
    // fallback decision never starts from less than was counted.
    let persisted = state
        .flusher
        .persist_counters(
            state.store.as_ref(),
            &state.repo,
            std::slice::from_ref(&counter),
        )
        .await;
    if let Err(error) = persisted {
        return Err(ApiError::unavailable("postgres", error.to_string()));
    }
    let done = state
        .repo
        .fallback_reconciled(&pending.counter_key, pending.version, pending.pending)
        .await
        .map_err(|e| state.postgres_error(e))?;
    if done {
        state.metrics.fallback_reconciled.inc_by(amount);
    }
    Ok(())
}

/// One reconcile round: carries up to a batch of pending counters to Redis. Answers
/// how many are still pending (at least what was found, when the round stopped early).
pub async fn reconcile_once(state: &AppState) -> Result<usize, ApiError> {
    let pending = state
        .repo
        .fallback_pending(RECONCILE_BATCH)
        .await
        .map_err(|e| state.postgres_error(e))?;
    state
        .metrics
        .fallback_pending
        .set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
    for (i, counter) in pending.iter().enumerate() {
        if let Err(error) = carry(state, counter).await {
            tracing::debug!(%error, "reconcile stopped; retrying later");
            return Ok(pending.len() - i);
        }
    }
    if !pending.is_empty() {
        tracing::info!(
            counters = pending.len(),
            "usage counted during a Redis outage reached Redis"
        );
    }
    let returns = state
        .repo
        .fallback_returns(RECONCILE_BATCH)
        .await
        .map_err(|e| state.postgres_error(e))?;
    for (i, (record_key, spent)) in returns.iter().enumerate() {
        if let Err(error) = give_back(state, record_key, *spent).await {
            tracing::debug!(%error, "reconcile stopped; retrying later");
            return Ok(returns.len() - i);
        }
    }
    Ok(0)
}

/// Runs forever: every `every`, while Redis is usable, carries usage counted in
/// PostgreSQL during an outage to Redis, and now and then forgets settled rows.
pub async fn reconcile(state: AppState, every: Duration) {
    let mut rounds: u64 = 0;
    loop {
        tokio::time::sleep(every).await;
        rounds = rounds.wrapping_add(1);
        if state.redis_breaker.state() == crate::breaker::State::Open {
            continue;
        }
        match reconcile_once(&state).await {
            Ok(0) => state.metrics.fallback_pending.set(0),
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "reconcile: PostgreSQL unavailable"),
        }
        match state.repo.fallback_checks_left().await {
            Ok(left) => state.fallback_checks.store(left, Ordering::Relaxed),
            Err(error) => tracing::debug!(%error, "reconcile: PostgreSQL unavailable"),
        }
        if rounds.is_multiple_of(600) {
            if let Err(error) = state.repo.fallback_forget().await {
                tracing::debug!(%error, "reconcile: could not forget settled rows");
            }
        }
    }
}
