//! The decision path of `/v1/check`, `/v1/settle` and `/v1/release`: resolve the tenant
//! from cached definitions within the caller's deadline, run one atomic store call,
//! re-seed counters the store lost from the usage history, decide, and record what
//! happened.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tollgate_protocol::resource::CONCURRENT_REQUESTS;
use tollgate_protocol::{
    is_valid_tenant_id, CheckRequest, CheckResponse, Decision, ReleaseRequest, ReleaseResponse,
    SettleRequest, SettleResponse,
};

use crate::accounting::{self, counter_ttl_s, decide, plan, Plan, PlanError, Select};
use crate::audit::LimitRef;
use crate::definitions::Freshness;
use crate::error::ApiError;
use crate::model::{Catalog, Chain};
use crate::resolve::{resolve, Resolved};
use crate::settlement::{self, SettleError};
use crate::state::AppState;
use crate::store::{
    counter_key, lease_record_key, marker_key, CallMode, Outcome, Release, Seed, Seeded,
    SettleOutcome, StoreError, COUNTER_MAX,
};
use crate::window::{Series, Window};

/// At most this many resources in one check.
const MAX_RESOURCES: usize = 32;
/// At most this many roles in one check.
const MAX_ROLES: usize = 32;
/// How far back usage history can still count (the longest rolling period and a bucket).
const HISTORY_LOOKBACK_DAYS: i64 = 32;

/// Whether `name` may name a resource: 1–64 characters of `a-z 0-9 _ . -`. No `:`, so
/// counter keys stay unambiguous.
pub fn is_valid_resource(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-'
        })
}

/// Whether `role` may name a role: 1–128 printable ASCII characters without spaces.
pub fn is_valid_role(role: &str) -> bool {
    (1..=128).contains(&role.len()) && role.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `id` may be a request id: 1–128 characters of letters, digits and `._:-`.
pub fn is_valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

const TENANT_RULE: &str = "tenant ids are 1-128 characters of letters, digits and ._:@/-";
const RESOURCE_RULE: &str = "resource names are 1-64 characters of a-z, 0-9, _, . and -";
const REQUEST_ID_RULE: &str = "request ids are 1-128 characters of letters, digits and ._:-";
const SETTLEMENT_ID_RULE: &str = "settlement ids are 1-128 characters of letters, digits and ._:-";

fn validate_roles(roles: &[String]) -> Result<(), ApiError> {
    if roles.len() > MAX_ROLES {
        return Err(ApiError::field(
            "roles",
            format!("at most {MAX_ROLES} roles"),
        ));
    }
    if let Some(i) = roles.iter().position(|r| !is_valid_role(r)) {
        return Err(ApiError::field(
            format!("roles[{i}]"),
            "roles are 1-128 printable characters without spaces",
        ));
    }
    Ok(())
}

fn validate(request: &CheckRequest) -> Result<(), ApiError> {
    if !is_valid_tenant_id(&request.tenant) {
        return Err(ApiError::field("tenant", TENANT_RULE));
    }
    if request.amounts.len() > MAX_RESOURCES {
        return Err(ApiError::field(
            "amounts",
            format!("at most {MAX_RESOURCES} resources"),
        ));
    }
    for (resource, &amount) in &request.amounts {
        if !is_valid_resource(resource) {
            return Err(ApiError::field(
                format!("amounts.{resource}"),
                RESOURCE_RULE,
            ));
        }
        if amount > COUNTER_MAX {
            return Err(ApiError::field(
                format!("amounts.{resource}"),
                format!("amounts are at most {COUNTER_MAX}"),
            ));
        }
    }
    validate_roles(&request.roles)?;
    if let Some(id) = &request.request_id {
        if !is_valid_request_id(id) {
            return Err(ApiError::field("request_id", REQUEST_ID_RULE));
        }
    }
    Ok(())
}

/// Checks a settlement; returns when its check counted.
fn validate_settle(request: &SettleRequest) -> Result<DateTime<Utc>, ApiError> {
    // The same alphabet as request ids: the id ends a Redis key, after the hash tag.
    if !is_valid_request_id(&request.id) {
        return Err(ApiError::field("id", SETTLEMENT_ID_RULE));
    }
    if !is_valid_tenant_id(&request.tenant) {
        return Err(ApiError::field("tenant", TENANT_RULE));
    }
    if request.amounts.is_empty() {
        return Err(ApiError::field("amounts", "name at least one resource"));
    }
    if request.amounts.len() > MAX_RESOURCES {
        return Err(ApiError::field(
            "amounts",
            format!("at most {MAX_RESOURCES} resources"),
        ));
    }
    for (resource, &amount) in &request.amounts {
        if !is_valid_resource(resource) {
            return Err(ApiError::field(
                format!("amounts.{resource}"),
                RESOURCE_RULE,
            ));
        }
        if resource == CONCURRENT_REQUESTS && amount != 0 {
            let error = SettleError::Gauge(resource.clone());
            return Err(ApiError::field(
                format!("amounts.{resource}"),
                error.to_string(),
            ));
        }
    }
    validate_roles(&request.roles)?;
    if let Some(id) = &request.release_request_id {
        if !is_valid_request_id(id) {
            return Err(ApiError::field("release_request_id", REQUEST_ID_RULE));
        }
    }
    i64::try_from(request.checked_at_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| {
            ApiError::field(
                "checked_at_ms",
                "must be a time in milliseconds since the Unix epoch",
            )
        })
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
    deadline: Duration,
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
    match tokio::time::timeout(deadline, lookup).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(error)) => {
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
        Err(_) => Err(ApiError::unavailable(
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

/// Runs a planned call; counters the store lost are re-seeded from the usage history
/// (never from zero) and the call is run once more.
pub async fn run(
    state: &AppState,
    plan: &Plan,
    root: &str,
    deadline: Duration,
) -> Result<Outcome, ApiError> {
    reseeding(state, root, &plan.marker_tenants, deadline, "call", || {
        state.store.call(&plan.call)
    })
    .await
}

/// Runs a store call (`attempt`, timed as `op`) whose seed markers belong to
/// `marker_tenants`; when the store lost some of them, re-seeds those tenants and runs
/// it once more.
async fn reseeding<T, F, Fut>(
    state: &AppState,
    root: &str,
    marker_tenants: &[String],
    deadline: Duration,
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
        let reply = attempt().await;
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
    deadline: Duration,
) -> Result<(), ApiError> {
    let now = state.now();
    let since = now - chrono::Duration::days(HISTORY_LOOKBACK_DAYS);
    let timer = state
        .metrics
        .store_duration
        .with_label_values(&["postgres", "history"])
        .start_timer();
    let rows = tokio::time::timeout(deadline, state.repo.open_history(tenants, since))
        .await
        .map_err(|_| {
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
    let created = state
        .store
        .seed(&markers, &seeds)
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

/// Decides and counts one request.
pub async fn check(
    state: &AppState,
    request: &CheckRequest,
    deadline: Duration,
) -> Result<CheckResponse, ApiError> {
    validate(request)?;
    let (catalog, chain) = cached_definitions(state, &request.tenant, deadline).await?;
    let now = state.now();
    let Some(resolved) = resolve(
        &catalog,
        chain.as_deref(),
        &request.tenant,
        &request.roles,
        now,
    ) else {
        return Ok(accounting::unknown_tenant(&request.tenant));
    };
    let resolved = if request.shadow {
        resolved.in_shadow()
    } else {
        resolved
    };
    let plan = plan(
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
    let outcome = run(state, &plan, &resolved.root, deadline).await?;
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
    let limit_ref = |i: usize| {
        let p = &plan.planned[i];
        LimitRef {
            tenant: tenant.to_string(),
            level: p.tenant.clone(),
            resource: p.def.resource.clone(),
            policy: p.def.span.policy_name(),
            counter: p.keys.first().cloned().unwrap_or_default(),
        }
    };
    if outcome.admitted {
        state.flusher.touch(&plan.planned);
    }
    for &i in &decided.crossed_warning {
        let p = &plan.planned[i];
        state
            .events
            .warning(&limit_ref(i), outcome.used[i], p.def.limit.quota, now);
    }
    if let Some(i) = decided.rejected_by {
        let hard = plan.planned[i].def.limit.hard();
        state
            .events
            .rejection(&limit_ref(i), outcome.used[i], hard, now);
    }
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

/// Settles what a counted request really cost (see [`settlement`]), counting the outcome.
pub async fn settle(
    state: &AppState,
    request: &SettleRequest,
    deadline: Duration,
) -> Result<SettleResponse, ApiError> {
    let result = settle_counted(state, request, deadline).await;
    let outcome = match &result {
        Ok((_, outcome)) => *outcome,
        Err(ApiError::Validation { .. } | ApiError::BadRequest(_)) => "invalid",
        Err(ApiError::Unavailable { .. }) => "unavailable",
        Err(_) => "error",
    };
    count_settlement(state, outcome);
    result.map(|(response, _)| response)
}

/// Counts one settlement under `outcome` (`tollgate_settlements_total`).
pub fn count_settlement(state: &AppState, outcome: &str) {
    state
        .metrics
        .settlements
        .with_label_values(&[outcome])
        .inc();
}

/// Settles one request; also answers the `outcome` label it is counted under.
async fn settle_counted(
    state: &AppState,
    request: &SettleRequest,
    deadline: Duration,
) -> Result<(SettleResponse, &'static str), ApiError> {
    let checked_at = validate_settle(request)?;
    let (catalog, chain) = cached_definitions(state, &request.tenant, deadline).await?;
    let now = state.now();
    let Some(resolved) = resolve(
        &catalog,
        chain.as_deref(),
        &request.tenant,
        &request.roles,
        now,
    ) else {
        // Its check was refused: nothing was counted or held.
        return Ok((SettleResponse { released: 0 }, "unknown_tenant"));
    };
    let release = request.release_request_id.as_ref().map(|id| Release {
        record_key: lease_record_key(&resolved.root, id),
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
        state,
        &resolved.root,
        &plan.marker_tenants,
        deadline,
        "settle",
        || state.store.settle(&plan.settlement),
    )
    .await?;
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
    state.flusher.touch_counters(&plan.counters);
    state.metrics.releases.inc_by(settled.released);
    Ok((
        SettleResponse {
            released: settled.released,
        },
        "settled",
    ))
}

/// Gives back every gauge slot a request holds. Idempotent.
pub async fn release(
    state: &AppState,
    request: &ReleaseRequest,
    deadline: Duration,
) -> Result<ReleaseResponse, ApiError> {
    if !is_valid_tenant_id(&request.tenant) {
        return Err(ApiError::field("tenant", TENANT_RULE));
    }
    if !is_valid_request_id(&request.request_id) {
        return Err(ApiError::field("request_id", REQUEST_ID_RULE));
    }
    let (_, chain) = cached_definitions(state, &request.tenant, deadline).await?;
    let root = chain
        .as_deref()
        .and_then(Chain::root)
        .unwrap_or(&request.tenant);
    let record = lease_record_key(root, &request.request_id);
    let released = state
        .store
        .release(&record, &request.request_id)
        .await
        .map_err(|e| state.redis_error(e))?;
    state.metrics.releases.inc_by(released);
    Ok(ReleaseResponse { released })
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
