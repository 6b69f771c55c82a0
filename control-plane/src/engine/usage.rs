//! A tenant's usage for operators: live usage of every limit at every level, the
//! effective quota with why each tier applies, and hand-made resets and adjustments.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::count::run;
use super::deadline::Deadline;
use super::lookup::resolve_fresh;
use super::state::Engine;
use crate::error::ApiError;
use crate::model::resolve::Resolved;
use crate::model::views::LimitSpec;
use crate::model::window::{Period, WindowKind};
use crate::model::Span;
use crate::plan::{plan, policy_status, usage_status, Planned, Select};
use crate::repo::NewEvent;
use crate::store::{Adjustment, CallMode};

/// How long an operator's read or change may wait on the stores: no filter waits on it,
/// so it may take longer than a check.
const OPERATOR_DEADLINE: Duration = Duration::from_secs(2);

/// Live usage of a tenant and its ancestors.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// The tenant asked about.
    pub tenant: String,
    /// The roles its limits were resolved for.
    pub roles: Vec<String>,
    /// One row per limit per level, the tenant's own first.
    pub usage: Vec<UsageRow>,
}

/// One limit's live usage in its current window.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRow {
    /// Whose limit: the tenant or an ancestor.
    pub tenant: String,
    /// The limit.
    #[serde(flatten)]
    pub spec: LimitSpec,
    /// The current window (rolling: the oldest bucket still counting); absent for gauges.
    pub window_start: Option<DateTime<Utc>>,
    /// When the current window ends (rolling: the current bucket); absent for gauges.
    pub window_end: Option<DateTime<Utc>>,
    /// Usage counted now.
    pub used: u64,
    /// The hard limit (`quota + overage + granted`; the quota for unlimited limits).
    pub limit: u64,
    /// What the tenant's grants in force add to the hard limit now.
    pub granted: u64,
    /// What may still be admitted.
    pub remaining: u64,
    /// `ok`, `warning` or `exceeded` (at the hard limit).
    pub status: String,
    /// Seconds until usage starts to free up.
    pub reset_after_s: u64,
}

/// Which of a tenant's own limits a reset or adjustment applies to.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only limits on this resource.
    pub resource: Option<String>,
    /// Only limits of this period (gauges have none: they are never reset).
    pub period: Option<Period>,
    /// Only calendar or rolling limits.
    pub window: Option<WindowKind>,
}

/// What a reset or adjustment changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageChange {
    /// The limit.
    #[serde(flatten)]
    pub spec: LimitSpec,
    /// Usage before.
    pub before: u64,
    /// Usage after.
    pub after: u64,
}

/// The answer to a reset or adjustment.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageChanges {
    /// The tenant.
    pub tenant: String,
    /// One entry per limit changed.
    pub changes: Vec<UsageChange>,
}

async fn read_all(
    engine: &Engine,
    resolved: &Resolved,
) -> Result<(Vec<Planned>, Vec<u64>, Vec<Option<usize>>), ApiError> {
    let now = engine.now();
    let plan = plan(resolved, Select::Everything, CallMode::Read, None, 1, now)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let outcome = run(
        engine,
        &plan,
        &resolved.root,
        Deadline::after(OPERATOR_DEADLINE),
    )
    .await?;
    Ok((plan.planned, outcome.used, outcome.oldest))
}

/// Live usage of every limit of `tenant` and its ancestors.
pub async fn report(
    engine: &Engine,
    tenant: &str,
    roles: &[String],
) -> Result<UsageReport, ApiError> {
    let (resolved, _) = resolve_fresh(engine, tenant, roles).await?;
    let (planned, used, oldest) = read_all(engine, &resolved).await?;
    let now = engine.now();
    let usage = planned
        .iter()
        .zip(used)
        .zip(oldest)
        .map(|((p, used), oldest)| {
            let policy = policy_status(p, used, oldest, now);
            let status = usage_status(&p.limit(), used);
            UsageRow {
                tenant: p.tenant.clone(),
                spec: LimitSpec::from(&p.def),
                window_start: p.windows.last().map(|w| w.start),
                window_end: p.windows.first().map(|w| w.end),
                used,
                limit: policy.limit,
                granted: p.granted.amount,
                remaining: policy.remaining,
                status: status.as_str().to_string(),
                reset_after_s: policy.reset_after_s,
            }
        })
        .collect();
    Ok(UsageReport {
        tenant: tenant.to_string(),
        roles: roles.to_vec(),
        usage,
    })
}

fn selected(p: &Planned, tenant: &str, selection: &Selection) -> bool {
    let Span::Window(series) = p.def.span else {
        return false;
    };
    p.tenant == tenant
        && selection
            .resource
            .as_ref()
            .is_none_or(|r| r == &p.def.resource)
        && selection
            .period
            .is_none_or(|period| period == series.period)
        && selection.window.is_none_or(|w| w == series.kind)
}

/// Applies `adjustment` to the selected limits of `tenant`'s own level (not its
/// ancestors'), persists the result and records it in the event log.
pub async fn change(
    engine: &Engine,
    actor: &str,
    tenant: &str,
    selection: &Selection,
    adjustment: Adjustment,
) -> Result<UsageChanges, ApiError> {
    let (resolved, _) = resolve_fresh(engine, tenant, &[]).await?;
    let (planned, _, _) = read_all(engine, &resolved).await?;
    let chosen: Vec<&Planned> = planned
        .iter()
        .filter(|p| selected(p, tenant, selection))
        .collect();
    if chosen.is_empty() {
        return Err(ApiError::NotFound(format!(
            "a windowed limit of tenant {tenant} matching the selection"
        )));
    }
    let now = engine.now();
    let mut changes = Vec::with_capacity(chosen.len());
    for p in &chosen {
        let (Some(series), Some(current)) = (p.series(), p.windows.first()) else {
            continue;
        };
        let ttl = crate::plan::counter_ttl_s(series, current, now);
        let (before, after) = engine
            .store
            .adjust(&p.keys, adjustment, ttl)
            .await
            .map_err(|e| engine.redis_error(e))?;
        changes.push(UsageChange {
            spec: LimitSpec::from(&p.def),
            before,
            after,
        });
    }
    engine
        .flusher
        .persist_counters(
            engine.store.as_ref(),
            &engine.repo,
            &chosen.iter().flat_map(|p| p.counters()).collect::<Vec<_>>(),
        )
        .await
        .map_err(|e| ApiError::unavailable("postgres", e.to_string()))?;
    let (kind, delta) = match adjustment {
        Adjustment::To(_) => ("usage.reset", None),
        Adjustment::By(delta) => ("usage.adjusted", Some(delta)),
    };
    let event = NewEvent {
        kind: kind.into(),
        tenant_id: Some(tenant.to_string()),
        subject: Some(format!("tenant/{tenant}")),
        data: json!({ "delta": delta, "changes": changes }),
        ..NewEvent::default()
    };
    engine
        .repo
        .record(actor, event)
        .await
        .map_err(|e| engine.postgres_error(e))?;
    Ok(UsageChanges {
        tenant: tenant.to_string(),
        changes,
    })
}
