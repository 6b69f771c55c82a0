//! `POST /v1/leases`: give back a gateway's lease and reserve its next budget —
//! resolve the tenant, plan the lease call ([`crate::plan::lease`] sizes it), run it
//! (no budgets while Redis is down: the gateway checks each request), answer, record.

use chrono::{DateTime, Utc};
use tollgate_protocol::{LeaseRequest, LeaseResponse};

use super::count::reseeding;
use super::deadline::Deadline;
use super::fallback;
use super::lookup::resolve_cached;
use super::record::{counted, record_events};
use super::state::Engine;
use super::validate::validate_lease;
use super::webhooks::detect::{watch, Moved, Mover};
use crate::error::ApiError;
use crate::model::resolve::Resolved;
use crate::plan::lease::{self as lease_plan, LeaseError};
use crate::plan::{crosses_warning, Planned};
use crate::store::{Counter, Grant, LeaseOutcome, Leased};

/// Gives back `request.previous` and reserves a budget, counting the outcome.
pub async fn lease(
    engine: &Engine,
    request: &LeaseRequest,
    deadline: Deadline,
) -> Result<LeaseResponse, ApiError> {
    counted(
        &engine.metrics.leases,
        lease_counted(engine, request, deadline),
    )
    .await
}

/// Counts one lease request under `outcome` (`tollgate_leases_total`).
pub fn count_lease(engine: &Engine, outcome: &str) {
    engine.metrics.leases.with_label_values(&[outcome]).inc();
}

/// Answers one lease request; also answers the `outcome` label it is counted under.
async fn lease_counted(
    engine: &Engine,
    request: &LeaseRequest,
    deadline: Deadline,
) -> Result<(LeaseResponse, &'static str), ApiError> {
    validate_lease(request)?;
    let Some((resolved, now)) =
        resolve_cached(engine, &request.tenant, &request.roles, deadline).await?
    else {
        // Nothing was ever leased to it: nothing to give back either.
        return Ok((lease_plan::unknown_tenant(&request.tenant), "rejected"));
    };
    let plan = lease_plan::plan(&resolved, request, &engine.settings.leases, now);
    let mut plan = plan.map_err(|error| match &error {
        LeaseError::Gauge(_) => ApiError::field("resource", error.to_string()),
        LeaseError::NoWindow(_) => ApiError::internal(error.to_string()),
    })?;
    plan.call.deadline_ms = Some(deadline.unix_ms());
    let outcome = reseeding(
        engine,
        &resolved.root,
        &plan.marker_tenants,
        deadline,
        "lease",
        || engine.store.lease(&plan.call),
    )
    .await;
    let outcome = match outcome {
        // No budgets while Redis is down: the gateway checks each request, and the
        // fallback counts them; the returned lease is refunded once Redis is back.
        Err(error) if fallback::redis_down(engine, &error) => {
            if let Some(previous) = &plan.call.previous {
                fallback::remember_return(engine, previous, deadline, error).await?;
            }
            return Ok((lease_plan::per_request(&request.tenant), "per_request"));
        }
        outcome => outcome?,
    };
    let budgeted = match outcome {
        LeaseOutcome::Done(budgeted) => budgeted,
        LeaseOutcome::Overspent { granted } => {
            return Err(ApiError::field(
                "previous.spent",
                format!("more than the lease granted ({granted}); nothing changed"),
            ))
        }
    };
    record(
        engine,
        &request.tenant,
        &resolved,
        &plan.planned,
        &budgeted,
        now,
    );
    let response = lease_plan::answer(&request.tenant, &plan.planned, &budgeted, now)
        .map_err(ApiError::internal)?;
    let outcome = match budgeted.grant {
        Grant::Duplicate { .. } => "duplicate",
        _ if request.want == 0 && request.previous.is_some() => "returned",
        Grant::Exhausted { .. } => "rejected",
        Grant::Reserved { granted: 0, .. } => "per_request",
        Grant::Reserved { .. } => "granted",
    };
    Ok((response, outcome))
}

/// Remembers what a budget call did: the counters it moved for the usage history, the
/// events of the check its budget stands for (a first warning crossed by the
/// reservation, a rejection), the webhook thresholds the reservation crossed, the units
/// granted and refunded.
fn record(
    engine: &Engine,
    tenant: &str,
    resolved: &Resolved,
    planned: &[Planned],
    budgeted: &Leased,
    now: DateTime<Utc>,
) {
    let moved: Vec<Counter> = (budgeted.refunded_keys.iter())
        .filter_map(|key| Counter::from_key(key))
        .collect();
    let used = &budgeted.used;
    let mut granted = 0;
    let watched = engine.webhooks.snapshot();
    let mover = watched.as_deref().map(|snapshot| Mover {
        engine,
        snapshot,
        tenant,
        resolved,
        now,
        found_by: "lease",
    });
    match budgeted.grant {
        Grant::Exhausted { violated } => {
            record_events(engine, tenant, planned, used, &[], Some(violated), now);
            let refused = planned.get(violated).and_then(Moved::of_planned);
            if let (Some(mover), Some(refused), Some(&used)) = (&mover, refused, used.get(violated))
            {
                mover.refused(&refused, used);
            }
        }
        Grant::Reserved { granted: g, .. } if g > 0 => {
            granted = g;
            engine.flusher.touch(planned.iter().filter_map(|p| {
                let watched = watched.as_deref();
                Some((p.keys.first()?, move || {
                    let watch = watched
                        .zip(Moved::of_planned(p))
                        .and_then(|(s, moved)| watch(s, tenant, resolved, &moved));
                    Some((p.current_counter()?, watch))
                }))
            }));
            if let Some(mover) = &mover {
                for (p, &before) in planned.iter().zip(used) {
                    if let Some(moved) = Moved::of_planned(p) {
                        mover.moved(&moved, before, before.saturating_add(g));
                    }
                }
            }
            let crossed: Vec<usize> = (planned.iter().zip(used).enumerate())
                .filter(|(_, (p, &used))| crosses_warning(&p.limit(), used, granted))
                .map(|(i, _)| i)
                .collect();
            let after: Vec<u64> = used.iter().map(|u| u.saturating_add(granted)).collect();
            record_events(engine, tenant, planned, &after, &crossed, None, now);
        }
        Grant::Reserved { .. } | Grant::Duplicate { .. } => {}
    }
    engine.flusher.touch_counters(&moved);
    let units = &engine.metrics.lease_units;
    units.with_label_values(&["granted"]).inc_by(granted);
    units
        .with_label_values(&["refunded"])
        .inc_by(budgeted.refunded);
}
