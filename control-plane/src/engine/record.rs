//! The last step of a decision: what it did is remembered — the counters it moved (for
//! the usage history), its first warnings and rejections (for the event log), the
//! webhook thresholds it crossed (for the outbox), and its metrics. Nothing here waits
//! on I/O.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use prometheus::IntCounterVec;
use tollgate_protocol::Decision;

use super::state::Engine;
use super::webhooks::detect::{watch, Moved, Mover};
use crate::error::ApiError;
use crate::model::resolve::Resolved;
use crate::plan::{Decided, Plan, Planned};
use crate::repo::events::LimitRef;
use crate::store::Outcome;

/// Awaits `answer` (a settlement or a lease), counting it in `counter` under the
/// `outcome` label it names, or, when it fails, under `invalid`, `unavailable` or
/// `error`.
pub(super) async fn counted<T>(
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

/// Remembers what a decision for `tenant` (whose chain is `resolved`) did: dirty
/// counters, first warnings, rejections, webhook crossings, metrics.
pub(super) fn record(
    engine: &Engine,
    tenant: &str,
    resolved: &Resolved,
    plan: &Plan,
    outcome: &Outcome,
    decided: &Decided,
    now: DateTime<Utc>,
) {
    let watched = engine.webhooks.snapshot();
    let admitted = outcome.admitted;
    if admitted || watched.is_some() {
        // The current counters of the windowed limits that counted something, with
        // what the flusher checks them against when subscriptions watch them. After a
        // refusal only the watched ones: their usage did not move, but a crossing seen
        // before and lost (its control plane killed before writing it) is found at
        // their next flush — at a hard limit too, where no request moves usage again.
        engine.flusher.touch(
            (plan.planned.iter())
                .filter(|p| p.amount > 0)
                .filter_map(|p| {
                    let watched = watched.as_deref();
                    Some((p.keys.first()?, move || {
                        let watch = watched
                            .zip(Moved::of_planned(p))
                            .and_then(|(s, moved)| watch(s, tenant, resolved, &moved));
                        if !admitted && watch.is_none() {
                            return None;
                        }
                        Some((p.current_counter()?, watch))
                    }))
                }),
        );
    }
    if let Some(snapshot) = &watched {
        let mover = Mover {
            engine,
            snapshot,
            tenant,
            resolved,
            now,
            found_by: "check",
        };
        for (i, (p, &used)) in plan.planned.iter().zip(&outcome.used).enumerate() {
            let Some(moved) = Moved::of_planned(p) else {
                continue;
            };
            if outcome.admitted {
                mover.moved(&moved, used.saturating_sub(p.amount), used);
            } else if decided.rejected_by == Some(i) {
                mover.refused(&moved, used);
            }
        }
    }
    record_events(
        engine,
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
    engine.metrics.checks.with_label_values(&[decision]).inc();
    let resources: BTreeMap<&str, ()> = plan
        .planned
        .iter()
        .map(|p| (p.def.resource.as_str(), ()))
        .collect();
    for resource in resources.keys() {
        engine
            .metrics
            .decisions
            .with_label_values(&[resource, decision])
            .inc();
    }
    if let Some(per_tenant) = &engine.metrics.tenant_decisions {
        per_tenant.with_label_values(&[tenant, decision]).inc();
    }
}

/// Logs what a decision for `tenant` over `planned` (whose usage is now `used`) did: the
/// first warnings of the windows of the ops `crossed`, and the rejection by the op
/// `rejected_by`.
pub(super) fn record_events(
    engine: &Engine,
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
            engine.events.warning(&limit_ref(p), used, quota, now);
        }
    }
    if let Some((p, &used)) = rejected_by.and_then(|i| Some((planned.get(i)?, used.get(i)?))) {
        let hard = p.limit().hard();
        engine.events.rejection(&limit_ref(p), used, hard, now);
    }
}
