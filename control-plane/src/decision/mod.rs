//! The decision path of `/v1/check`, `/v1/leases`, `/v1/settle` and `/v1/release`:
//! resolve the tenant from cached definitions within the caller's deadline, run one
//! atomic store call, re-seed counters the store lost from the usage history, decide,
//! and record what happened.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use prometheus::IntCounterVec;
use tollgate_protocol::{CheckRequest, CheckResponse, Decision, ReleaseRequest, ReleaseResponse};

use crate::audit::LimitRef;
use crate::breaker::State as BreakerState;
use crate::definitions::Freshness;
use crate::error::ApiError;
use crate::fallback;
use crate::model::resolve::{resolve, Resolved};
use crate::model::window::{Series, Window};
use crate::model::{Catalog, Chain};
use crate::plan::{
    self as accounting, counter_ttl_s, decide, plan, Plan, PlanError, Planned, Select,
};
use crate::state::AppState;
use crate::store::{
    check_record_key, counter_key, hold_record_key, marker_key, CallMode, Outcome, Seed, Seeded,
    StoreError,
};

mod deadline;
mod lease;
mod settle;
mod validate;

pub use deadline::Deadline;
pub use lease::{count_lease, lease};
pub use settle::{count_settlement, settle};
use validate::{validate, validate_release};

/// How far back usage history can still count (the longest rolling period and a bucket).
const HISTORY_LOOKBACK_DAYS: i64 = 32;

/// Awaits `answer` (a settlement or a lease), counting it in `counter` under the
/// `outcome` label it names, or, when it fails, under `invalid`, `unavailable` or
/// `error`.
async fn counted<T>(
    counter: &IntCounterVec,
    answer: impl Future<Output = Result<(T, &'static str), ApiError>>,
) -> Result<T, ApiError> {
    let result = answer.await;
    let outcome = match &result {
        Ok((_, outcome)) => outcome,
        Err(ApiError::Validation { .. } | ApiError::BadRequest(_) | ApiError::TooLarge(_)) => {
            "invalid"
        }
        Err(ApiError::Unavailable { .. }) => "unavailable",
        Err(_) => "error",
    };
    counter.with_label_values(&[outcome]).inc();
    result.map(|(answer, _)| answer)
}

fn count_lookup(state: &AppState, freshness: Freshness) {
    let result = match freshness {
        Freshness::Hit => "hit",
        Freshness::Miss => "miss",
        Freshness::Stale => "stale",
        Freshness::Fallback => "fallback",
    };
    state
        .metrics
        .definition_cache
        .with_label_values(&[result])
        .inc();
}

/// The cached definitions of `tenant`, within `deadline`: no check waits on PostgreSQL
/// longer than the filter waits for the check.
async fn cached_definitions(
    state: &AppState,
    tenant: &str,
    deadline: Deadline,
) -> Result<(std::sync::Arc<Catalog>, Option<std::sync::Arc<Chain>>), ApiError> {
    let lookup = async {
        let (mut catalog, catalog_freshness) = state.definitions.catalog(&state.repo).await?;
        let (chain, chain_freshness) = state.definitions.chain(&state.repo, tenant).await?;
        count_lookup(state, catalog_freshness);
        count_lookup(state, chain_freshness);
        // A chain naming a tier the catalog does not know proves the catalog older than
        // the chain (the tier was created since): reload it rather than decide without
        // the tier's limits.
        if chain
            .as_deref()
            .is_some_and(|c| names_unknown_tier(c, &catalog))
        {
            state.definitions.invalidate_catalog();
            let (reloaded, freshness) = state.definitions.catalog(&state.repo).await?;
            count_lookup(state, freshness);
            catalog = reloaded;
        }
        Ok::<_, crate::definitions::LoadError>((catalog, chain))
    };
    match deadline.bound(lookup).await {
        Some(Ok(found)) => Ok(found),
        Some(Err(error)) => {
            state
                .metrics
                .store_errors
                .with_label_values(&["postgres"])
                .inc();
            Err(ApiError::Unavailable {
                store: "postgres",
                source: Box::new(error),
            })
        }
        None => Err(ApiError::unavailable(
            "postgres",
            "no quota definitions within the deadline",
        )),
    }
}

/// Whether a level of `chain` names a tier `catalog` does not have.
fn names_unknown_tier(chain: &Chain, catalog: &Catalog) -> bool {
    chain.levels.iter().any(|level| {
        level
            .tier
            .iter()
            .chain(level.assignments.iter().map(|a| &a.tier))
            .any(|tier| !catalog.tiers.contains_key(tier))
    })
}

/// What applies to `tenant` with `roles`, from the cached definitions (within
/// `deadline`), and the instant it was resolved at, which the store call is planned at;
/// `None` when no tier applies to the tenant.
async fn resolve_cached(
    state: &AppState,
    tenant: &str,
    roles: &[String],
    deadline: Deadline,
) -> Result<Option<(Resolved, DateTime<Utc>)>, ApiError> {
    let (catalog, chain) = cached_definitions(state, tenant, deadline).await?;
    let now = state.now();
    Ok(resolve(&catalog, chain.as_deref(), tenant, roles, now).map(|resolved| (resolved, now)))
}

/// Runs a planned call; counters the store lost are re-seeded from the usage history
/// (never from zero) and the call is run once more.
pub async fn run(
    state: &AppState,
    plan: &Plan,
    root: &str,
    deadline: Deadline,
) -> Result<Outcome, ApiError> {
    reseeding(state, root, &plan.marker_tenants, deadline, "call", || {
        state.store.call(&plan.call)
    })
    .await
}

/// Runs one Redis call within `deadline`, through the breaker: while it is open the
/// call is not made at all ([`StoreError::CircuitOpen`]), and the outcome (answered, or
/// unreachable and late) moves it.
pub(crate) async fn redis_call<T>(
    state: &AppState,
    deadline: Deadline,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let breaker = &state.redis_breaker;
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
                state.metrics.redis_circuit_open.set(1);
                tracing::warn!(%error, "Redis failed calls in a row: decisions skip it for now");
            }
        }
        _ => {
            if breaker.succeeded() == BreakerState::Open {
                state.metrics.redis_circuit_open.set(0);
                tracing::info!("Redis answers again");
            }
        }
    }
    result
}

/// Runs a store call (`attempt`, timed as `op`) whose seed markers belong to
/// `marker_tenants`, until `deadline`; when the store lost some of them, re-seeds those
/// tenants and runs it once more.
pub(crate) async fn reseeding<T, F, Fut>(
    state: &AppState,
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
        let timer = state
            .metrics
            .store_duration
            .with_label_values(&["redis", op])
            .start_timer();
        let reply = redis_call(state, deadline, attempt()).await;
        timer.observe_duration();
        match reply.map_err(|e| state.redis_error(e))? {
            Seeded::Done(done) => return Ok(done),
            Seeded::NeedsSeed(missing) => {
                let tenants: Vec<String> = missing
                    .iter()
                    .filter_map(|&i| marker_tenants.get(i).cloned())
                    .collect();
                seed(state, root, &tenants, deadline).await?;
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
    state: &AppState,
    root: &str,
    tenants: &[String],
    deadline: Deadline,
) -> Result<(), ApiError> {
    let now = state.now();
    let since = now - chrono::Duration::days(HISTORY_LOOKBACK_DAYS);
    let timer = state
        .metrics
        .store_duration
        .with_label_values(&["postgres", "history"])
        .start_timer();
    let rows = deadline
        .bound(state.repo.open_history(tenants, since))
        .await
        .ok_or_else(|| {
            ApiError::unavailable("postgres", "usage history not read within the deadline")
        })?
        .map_err(|e| state.postgres_error(e))?;
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
    let created = redis_call(state, deadline, state.store.seed(&markers, &seeds))
        .await
        .map_err(|e| state.redis_error(e))?;
    state.metrics.seeds.inc_by(tenants.len() as u64);
    tracing::info!(
        root,
        ?tenants,
        counters = created,
        "re-seeded counters from the usage history"
    );
    Ok(())
}

/// Decides and counts one request, before `deadline`: a check the store gets to only
/// later counts nothing, since the filter has applied its failure mode by then.
pub async fn check(
    state: &AppState,
    request: &CheckRequest,
    deadline: Deadline,
) -> Result<CheckResponse, ApiError> {
    validate(request)?;
    let Some((resolved, now)) =
        resolve_cached(state, &request.tenant, &request.roles, deadline).await?
    else {
        return Ok(accounting::unknown_tenant(&request.tenant));
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
        i64::try_from(state.config.gauge_lease.as_secs()).unwrap_or(i64::MAX),
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
    let outcome = match run(state, &plan, &resolved.root, deadline).await {
        Err(error) if fallback::redis_down(state, &error) => {
            fallback::check(state, &plan, deadline, error).await?
        }
        counted => counted?,
    };
    let decided =
        decide(&request.tenant, &plan.planned, &outcome, now).map_err(ApiError::internal)?;
    record(state, &request.tenant, &plan, &outcome, &decided, now);
    Ok(decided.response)
}

/// Remembers what a decision did: dirty counters, first warnings, rejections, metrics.
fn record(
    state: &AppState,
    tenant: &str,
    plan: &Plan,
    outcome: &Outcome,
    decided: &accounting::Decided,
    now: DateTime<Utc>,
) {
    if outcome.admitted {
        state.flusher.touch(&plan.planned);
    }
    record_events(
        state,
        tenant,
        &plan.planned,
        &outcome.used,
        &decided.crossed_warning,
        decided.rejected_by,
        now,
    );
    let decision = match decided.response.decision {
        Decision::Allow => "allow",
        Decision::Warn => "warn",
        Decision::Reject => "reject",
    };
    state.metrics.checks.with_label_values(&[decision]).inc();
    let resources: BTreeMap<&str, ()> = plan
        .planned
        .iter()
        .map(|p| (p.def.resource.as_str(), ()))
        .collect();
    for resource in resources.keys() {
        state
            .metrics
            .decisions
            .with_label_values(&[resource, decision])
            .inc();
    }
    if let Some(per_tenant) = &state.metrics.tenant_decisions {
        per_tenant.with_label_values(&[tenant, decision]).inc();
    }
}

/// Logs what a decision for `tenant` over `planned` (whose usage is now `used`) did: the
/// first warnings of the windows of the ops `crossed`, and the rejection by the op
/// `rejected_by`.
fn record_events(
    state: &AppState,
    tenant: &str,
    planned: &[Planned],
    used: &[u64],
    crossed: &[usize],
    rejected_by: Option<usize>,
    now: DateTime<Utc>,
) {
    let limit_ref = |p: &Planned| LimitRef {
        tenant: tenant.to_string(),
        level: p.tenant.clone(),
        resource: p.def.resource.clone(),
        policy: p.def.span.policy_name(),
        counter: p.keys.first().cloned().unwrap_or_default(),
    };
    for &i in crossed {
        if let (Some(p), Some(&used)) = (planned.get(i), used.get(i)) {
            let quota = p.def.limit.quota;
            state.events.warning(&limit_ref(p), used, quota, now);
        }
    }
    if let Some((p, &used)) = rejected_by.and_then(|i| Some((planned.get(i)?, used.get(i)?))) {
        let hard = p.def.limit.hard();
        state.events.rejection(&limit_ref(p), used, hard, now);
    }
}

/// Gives back every gauge slot a request holds, and with `refund` what its check
/// counted too (the filter refused the request after all). Idempotent.
pub async fn release(
    state: &AppState,
    request: &ReleaseRequest,
    deadline: Deadline,
) -> Result<ReleaseResponse, ApiError> {
    validate_release(request)?;
    let (_, chain) = cached_definitions(state, &request.tenant, deadline).await?;
    let root = chain
        .as_deref()
        .and_then(Chain::root)
        .unwrap_or(&request.tenant);
    let id = &request.request_id;
    let (released, refunded) = if request.refund {
        cancel_check(state, root, id, deadline).await?
    } else {
        let record = hold_record_key(root, id);
        let released = redis_call(state, deadline, state.store.release(&record, id))
            .await
            .map_err(|e| state.redis_error(e))?;
        (released, 0)
    };
    state.metrics.releases.inc_by(released);
    Ok(ReleaseResponse { released, refunded })
}

/// Takes back the check of request `id` in tenant tree `root`: its gauge slots and what
/// it counted, in Redis, or in PostgreSQL when the check was counted there during an
/// outage. Answers the slots released and the units taken back.
async fn cancel_check(
    state: &AppState,
    root: &str,
    id: &str,
    deadline: Deadline,
) -> Result<(u64, u64), ApiError> {
    let check = check_record_key(root, id);
    let record = hold_record_key(root, id);
    let (released, refunded) =
        match redis_call(state, deadline, state.store.cancel(&record, &check, id)).await {
            Ok(cancelled) => {
                let counters: Vec<_> = (cancelled.keys.iter())
                    .filter_map(|key| crate::store::Counter::from_key(key))
                    .collect();
                state.flusher.touch_counters(&counters);
                let refunded =
                    if cancelled.refunded > 0 || !state.fallback_checks.load(Ordering::Relaxed) {
                        cancelled.refunded
                    } else {
                        // Not counted in Redis: perhaps in PostgreSQL, during an outage that
                        // has ended. Redis answered, so that lookup failing loses nothing new.
                        fallback::cancel(state, &check, deadline)
                            .await
                            .unwrap_or_default()
                            .unwrap_or(0)
                    };
                (cancelled.released, refunded)
            }
            Err(e) => {
                let error = state.redis_error(e);
                if !fallback::redis_down(state, &error) {
                    return Err(error);
                }
                // A check counted in PostgreSQL took no gauge slot; one counted in Redis
                // before the outage is taken back there once it is back (the filter
                // retries).
                match fallback::cancel(state, &check, deadline).await? {
                    Some(refunded) => (0, refunded),
                    None => return Err(error),
                }
            }
        };
    state.metrics.check_refunds.inc_by(refunded);
    Ok((released, refunded))
}

/// The resolved definitions of a known tenant, read from PostgreSQL now (not from the
/// cache): the admin API shows what was just written.
pub async fn resolve_fresh(
    state: &AppState,
    tenant: &str,
    roles: &[String],
) -> Result<(Resolved, std::sync::Arc<Chain>), ApiError> {
    let catalog = state
        .repo
        .load_catalog()
        .await
        .map_err(|e| state.postgres_error(e))?;
    let chain = state
        .repo
        .load_chain(tenant)
        .await
        .map_err(|e| state.postgres_error(e))?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant}")))?;
    let resolved = resolve(&catalog, Some(&chain), tenant, roles, state.now())
        .ok_or_else(|| ApiError::internal("a known tenant always resolves"))?;
    Ok((resolved, std::sync::Arc::new(chain)))
}
