//! Threshold crossings, seen where usage moves: a check (usage before and after each
//! op), a lease (the budget reserved at once), a settlement (a top-up after the
//! response). Each crossing some enabled subscription asks for is handed to the
//! [`CrossingSink`](crate::repo::webhooks::CrossingSink), which writes it in the
//! background; nothing here waits on I/O.
//!
//! The cost on the decision path: one atomic load with no subscription; with some, a
//! few comparisons per windowed limit against the thresholds held in memory. Only a
//! crossing (once per counter window and threshold) or a refusal by a hard limit that
//! subscriptions watch does more, and a refusal already reported costs one lookup.
//!
//! Beside it, [`watch`] gives the history flusher what to check each counter against
//! when it persists it: the safety net for crossings whose report was lost.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tollgate_protocol::Limit;

use super::subscriptions::Snapshot;
use crate::engine::state::Engine;
use crate::model::resolve::Resolved;
use crate::model::webhook::{Scope, Threshold};
use crate::model::window::{Series, Window, WindowKind};
use crate::plan::Planned;
use crate::repo::webhooks::{CrossedLimit, NewCrossing, Watch};
use crate::store::Counter;

/// One counter whose usage moved, and its limit.
#[derive(Debug, Clone, Copy)]
pub struct Moved<'a> {
    /// Whose limit it is.
    pub level: &'a str,
    /// The resource.
    pub resource: &'a str,
    /// The limit.
    pub limit: &'a Limit,
    /// Its series.
    pub series: Series,
    /// The counter's window (a rolling limit's current bucket).
    pub window: Window,
    /// The counter.
    pub key: &'a str,
}

impl<'a> Moved<'a> {
    /// The current counter of a windowed op; `None` for a gauge.
    pub fn of_planned(planned: &'a Planned) -> Option<Moved<'a>> {
        Some(Moved {
            level: &planned.tenant,
            resource: &planned.def.resource,
            limit: &planned.def.limit,
            series: planned.series()?,
            window: *planned.windows.first()?,
            key: planned.keys.first()?,
        })
    }

    /// The counter a settlement moved, with its limit.
    pub fn of_counter(counter: &'a Counter, limit: &'a Limit) -> Moved<'a> {
        Moved {
            level: &counter.tenant,
            resource: &counter.resource,
            limit,
            series: counter.series,
            window: counter.window,
            key: &counter.key,
        }
    }
}

/// Who moved usage, when, and how crossings are told apart.
#[derive(Clone, Copy)]
pub struct Mover<'a> {
    /// The engine (its sink).
    pub engine: &'a Engine,
    /// The enabled subscriptions.
    pub snapshot: &'a Snapshot,
    /// Whose request it was.
    pub tenant: &'a str,
    /// Its chain (ancestors and tiers of each level).
    pub resolved: &'a Resolved,
    /// When.
    pub now: DateTime<Utc>,
    /// `check`, `lease` or `settle`.
    pub found_by: &'static str,
}

/// The ancestors of `level` in `resolved`, parent first, and the tier that applies to it.
fn level_of<'r>(
    resolved: &'r Resolved,
    level: &str,
) -> (&'r [crate::model::resolve::ResolvedLevel], Option<&'r str>) {
    match resolved.levels.iter().position(|l| l.tenant == level) {
        Some(at) => (
            &resolved.levels[at + 1..],
            resolved.levels[at].winner.as_ref().map(|w| w.tier.as_str()),
        ),
        None => (&[], None),
    }
}

fn crossed_limit(
    tenant: &str,
    moved: &Moved<'_>,
    ancestors: Vec<String>,
    tier: Option<&str>,
) -> CrossedLimit {
    CrossedLimit {
        counter_key: moved.key.to_string(),
        tenant: tenant.to_string(),
        level: moved.level.to_string(),
        ancestors,
        tier: tier.map(String::from),
        resource: moved.resource.to_string(),
        policy: moved.series.policy_name(),
        period: moved.series.period.to_string(),
        window_kind: moved.series.kind.to_string(),
        window: moved.window,
        resets_at: moved.series.frees_at(&moved.window),
        quota: moved.limit.quota,
        hard_limit: moved.limit.hard(),
    }
}

impl Mover<'_> {
    /// Reports each threshold usage of `moved` crossed going from `before` to `after`.
    pub fn moved(&self, moved: &Moved<'_>, before: u64, after: u64) {
        for threshold in self.snapshot.thresholds.crossed(moved.limit, before, after) {
            self.report(moved, threshold, after);
        }
    }

    /// Reports a request refused by the hard limit of `moved` (usage `used`): it has
    /// reached the limit in the sense that counts for subscribers.
    pub fn refused(&self, moved: &Moved<'_>, used: u64) {
        if self.snapshot.thresholds.wants_hard() {
            self.report(moved, Threshold::Hard, used);
        }
    }

    fn report(&self, moved: &Moved<'_>, threshold: Threshold, used: u64) {
        let sink = &self.engine.crossings;
        if sink.knows(moved.key, threshold) {
            return;
        }
        let Some(units) = threshold.units(moved.limit) else {
            return;
        };
        let (levels, tier) = level_of(self.resolved, moved.level);
        let ancestors: Vec<String> = levels.iter().map(|l| l.tenant.clone()).collect();
        let scope = Scope {
            level: moved.level,
            ancestors: &ancestors,
            resource: moved.resource,
            tier,
        };
        if !self.snapshot.wants(&scope, threshold) {
            return;
        }
        sink.offer(NewCrossing {
            limit: Arc::new(crossed_limit(self.tenant, moved, ancestors, tier)),
            threshold,
            units,
            used,
            at: self.now,
            found_by: self.found_by,
        });
    }
}

/// What the history flusher checks the counter of `moved` against when it persists it,
/// if subscriptions watch its limit. Calendar windows only: a rolling limit's usage is
/// the sum of several counters, which the flusher reads one by one.
pub fn watch(
    snapshot: &Snapshot,
    tenant: &str,
    resolved: &Resolved,
    moved: &Moved<'_>,
) -> Option<Arc<Watch>> {
    if moved.series.kind != WindowKind::Calendar {
        return None;
    }
    let (levels, tier) = level_of(resolved, moved.level);
    let ancestors: Vec<String> = levels.iter().map(|l| l.tenant.clone()).collect();
    let scope = Scope {
        level: moved.level,
        ancestors: &ancestors,
        resource: moved.resource,
        tier,
    };
    let thresholds: Vec<(Threshold, u64)> = (snapshot.wanted(&scope).into_iter())
        .filter_map(|t| Some((t, t.units(moved.limit)?)))
        .collect();
    if thresholds.is_empty() {
        return None;
    }
    Some(Arc::new(Watch {
        limit: Arc::new(crossed_limit(tenant, moved, ancestors, tier)),
        thresholds,
    }))
}
