//! Once Redis answers again: what was counted in PostgreSQL is carried to the Redis
//! counters — each step once, by an idempotent settlement — and the lease returns
//! remembered during the outage are refunded.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::counters::Pending;
use crate::engine::breaker::State as BreakerState;
use crate::engine::count::{redis_call, reseeding};
use crate::engine::deadline::Deadline;
use crate::engine::state::Engine;
use crate::error::ApiError;
use crate::plan::counter_ttl_s;
use crate::store::{
    lease_key, marker_key, settlement_key, Change, Counter, LeaseCall, LeaseOutcome, Move,
    ReturnedLease, Seeded, SettleOutcome, Settlement,
};

/// How many pending counters one reconcile round carries to Redis.
const RECONCILE_BATCH: i64 = 500;

/// Gives one remembered budget back to Redis (a refund of its unspent part, once: a
/// lease record is refunded only while it exists), then forgets it.
async fn give_back(engine: &Engine, record_key: &str, spent: u64) -> Result<(), ApiError> {
    let root = root_of(record_key)
        .ok_or_else(|| ApiError::internal(format!("not a lease record: {record_key}")))?;
    let budget = LeaseCall {
        now_ms: engine.now().timestamp_millis(),
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
    let answer = redis_call(engine, deadline, engine.store.lease(&budget))
        .await
        .map_err(|e| engine.redis_error(e))?;
    if let Seeded::Done(LeaseOutcome::Done(done)) = &answer {
        engine
            .metrics
            .lease_units
            .with_label_values(&["refunded"])
            .inc_by(done.refunded);
    }
    engine
        .fallback
        .returned(record_key)
        .await
        .map_err(|e| engine.postgres_error(e))
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
async fn carry(engine: &Engine, pending: &Pending) -> Result<(), ApiError> {
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
            ttl_s: counter_ttl_s(counter.series, &counter.window, engine.now()).max(1),
            marker: Some(0),
        }],
        release: None,
    };
    // An operator's pace, not a filter's: no caller waits on this.
    let deadline = Deadline::after(Duration::from_secs(5));
    let tenants = [counter.tenant.clone()];
    reseeding(engine, root, &tenants, deadline, "reconcile", || {
        engine.store.settle(&settlement)
    })
    .await
    .map(|_: SettleOutcome| ())?;
    // Persist what Redis holds now before the pending part is forgotten here, so a
    // fallback decision never starts from less than was counted.
    let persisted = engine
        .flusher
        .persist_counters(
            engine.store.as_ref(),
            &engine.repo,
            std::slice::from_ref(&counter),
        )
        .await;
    if let Err(error) = persisted {
        return Err(ApiError::unavailable("postgres", error.to_string()));
    }
    let done = engine
        .fallback
        .reconciled(&pending.counter_key, pending.version, pending.pending)
        .await
        .map_err(|e| engine.postgres_error(e))?;
    if done {
        engine.metrics.fallback_reconciled.inc_by(amount);
    }
    Ok(())
}

/// One reconcile round: carries up to a batch of pending counters to Redis. Answers
/// how many are still pending (at least what was found, when the round stopped early).
pub async fn reconcile_once(engine: &Engine) -> Result<usize, ApiError> {
    let pending = engine
        .fallback
        .pending(RECONCILE_BATCH)
        .await
        .map_err(|e| engine.postgres_error(e))?;
    engine
        .metrics
        .fallback_pending
        .set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
    for (i, counter) in pending.iter().enumerate() {
        if let Err(error) = carry(engine, counter).await {
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
    let returns = engine
        .fallback
        .returns(RECONCILE_BATCH)
        .await
        .map_err(|e| engine.postgres_error(e))?;
    for (i, (record_key, spent)) in returns.iter().enumerate() {
        if let Err(error) = give_back(engine, record_key, *spent).await {
            tracing::debug!(%error, "reconcile stopped; retrying later");
            return Ok(returns.len() - i);
        }
    }
    Ok(0)
}

/// Runs forever: every `every`, while Redis is usable, carries usage counted in
/// PostgreSQL during an outage to Redis, and now and then forgets settled rows.
pub async fn reconcile(engine: Engine, every: Duration) {
    let mut rounds: u64 = 0;
    loop {
        tokio::time::sleep(every).await;
        rounds = rounds.wrapping_add(1);
        if engine.redis_breaker.state() == BreakerState::Open {
            continue;
        }
        match reconcile_once(&engine).await {
            Ok(0) => engine.metrics.fallback_pending.set(0),
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "reconcile: PostgreSQL unavailable"),
        }
        match engine.fallback.checks_left().await {
            Ok(left) => engine.fallback_checks.store(left, Ordering::Relaxed),
            Err(error) => tracing::debug!(%error, "reconcile: PostgreSQL unavailable"),
        }
        if rounds.is_multiple_of(600) {
            if let Err(error) = engine.fallback.forget().await {
                tracing::debug!(%error, "reconcile: could not forget settled rows");
            }
        }
    }
}
