//! From a resolved tenant chain and a settlement's signed amounts to one atomic store
//! call (`POST /v1/settle`) — without I/O.
//!
//! A check counts what is known at the request's headers; the settlement, once the
//! request is over, brings each resource to what the request really cost. It touches
//! the same counters the check counted in — every windowed limit of the resource at
//! every level of the chain, unlimited ones and levels in `shadow` mode included, `off`
//! levels not — but it never rejects:
//!
//! - a **positive** amount was already served by the upstream, so it is added to each
//!   current window (rolling: the current bucket) even past the hard limit, and the
//!   next checks reject;
//! - a **negative** amount gives back what the check reserved and the request did not
//!   use, never below zero, and only to the counter of the window the check counted it
//!   in, while that counter still counts: a refund of last month's request must not
//!   give this month headroom. For a calendar limit that is the current window when the
//!   check fell in it; for a rolling limit, the bucket of the check while it is one of
//!   the buckets counted now.
//!
//! Gauges (`concurrent_requests`) hold slots rather than count amounts: they are given
//! back by releasing the request id, never settled.
//!
//! A settlement is applied at most once per id ([`settlement_key`]): the filter retries
//! one whose answer it did not get, and the retry of one already applied changes nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tollgate_protocol::resource::CONCURRENT_REQUESTS;
use tollgate_protocol::Limit;

use super::check::counter_ttl_s;
use crate::model::resolve::Resolved;
use crate::model::window::{Series, Window};
use crate::model::{Mode, Span};
use crate::store::Counter;
use crate::store::{
    counter_key, marker_key, settlement_key, Change, Move, Release, Settlement, COUNTER_MAX,
};

/// A planned settlement and what each of its moves is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlePlan {
    /// The store call.
    pub settlement: Settlement,
    /// One entry per move of the call.
    pub counters: Vec<Counter>,
    /// The limit of each move (for the webhook thresholds a top-up crosses).
    pub limits: Vec<Limit>,
    /// The tenant of each seed marker of the call.
    pub marker_tenants: Vec<String>,
}

impl SettlePlan {
    /// Whether the store has nothing to do (the id is not remembered then: a retry
    /// changes nothing either).
    pub fn is_empty(&self) -> bool {
        self.settlement.moves.is_empty() && self.settlement.release.is_none()
    }
}

/// Why a settlement cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    /// A gauge resource has an amount: its slots are released, not settled.
    #[error(
        "resource {0} is a gauge: its slots are given back with release_request_id, not settled"
    )]
    Gauge(String),
    /// A window does not exist at this instant (the edge of the calendar's range).
    #[error("no window of {0} at this time")]
    NoWindow(String),
}

/// Whether `resource` is a gauge anywhere in `resolved`.
pub(crate) fn is_gauge(resolved: &Resolved, resource: &str) -> bool {
    resource == CONCURRENT_REQUESTS
        || resolved.levels.iter().any(|level| {
            level
                .limits
                .iter()
                .any(|def| def.resource == resource && def.span == Span::Gauge)
        })
}

/// The window a refund of a check made at `checked_at` is taken from: the counter the
/// check counted in, if it is one of `current` (the windows counted now).
fn refund_window(series: Series, current: &[Window], checked_at: DateTime<Utc>) -> Option<Window> {
    let counted_in = series.windows_at(checked_at)?.into_iter().next()?;
    current.contains(&counted_in).then_some(counted_in)
}

/// The store call settling `amounts` (signed; zeros are ignored) for `resolved`, whose
/// check counted at `checked_at`, once per settlement `id`; `release` gives back gauge
/// slots in the same step.
pub fn plan(
    resolved: &Resolved,
    id: &str,
    amounts: &BTreeMap<String, i64>,
    checked_at: DateTime<Utc>,
    release: Option<Release>,
    now: DateTime<Utc>,
) -> Result<SettlePlan, SettleError> {
    let amounts: BTreeMap<&str, i64> = amounts
        .iter()
        .filter(|(_, &amount)| amount != 0)
        .map(|(resource, &amount)| (resource.as_str(), amount))
        .collect();
    if let Some(gauge) = amounts.keys().find(|r| is_gauge(resolved, r)) {
        return Err(SettleError::Gauge((*gauge).to_string()));
    }
    let mut moves = Vec::new();
    let mut counters = Vec::new();
    let mut limits = Vec::new();
    let mut marker_tenants: Vec<String> = Vec::new();
    for level in resolved.levels.iter().filter(|l| l.mode != Mode::Off) {
        for def in &level.limits {
            let (Some(&amount), Span::Window(series)) =
                (amounts.get(def.resource.as_str()), def.span)
            else {
                continue;
            };
            let current = series
                .windows_at(now)
                .ok_or_else(|| SettleError::NoWindow(series.name()))?;
            let (window, change) = if amount > 0 {
                let Some(&window) = current.first() else {
                    continue;
                };
                (window, Change::Add(amount.unsigned_abs()))
            } else {
                let Some(window) = refund_window(series, &current, checked_at) else {
                    continue;
                };
                let amount = amount.unsigned_abs().min(COUNTER_MAX);
                (window, Change::Refund(amount))
            };
            let marker = match marker_tenants.iter().position(|t| t == &level.tenant) {
                Some(i) => i,
                None => {
                    marker_tenants.push(level.tenant.clone());
                    marker_tenants.len() - 1
                }
            };
            let key = counter_key(
                &resolved.root,
                &level.tenant,
                &def.resource,
                &series.name(),
                window.start.timestamp(),
            );
            moves.push(Move {
                key: key.clone(),
                change,
                ttl_s: counter_ttl_s(series, &window, now),
                marker: Some(marker),
            });
            counters.push(Counter {
                key,
                tenant: level.tenant.clone(),
                resource: def.resource.clone(),
                series,
                window,
            });
            limits.push(def.limit);
        }
    }
    let settlement = Settlement {
        id_key: settlement_key(&resolved.root, id),
        markers: marker_tenants
            .iter()
            .map(|t| marker_key(&resolved.root, t))
            .collect(),
        moves,
        release,
    };
    Ok(SettlePlan {
        settlement,
        counters,
        limits,
        marker_tenants,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use tollgate_protocol::{Limit, WarnAt};

    use super::*;
    use crate::model::window::{Period, WindowKind};
    use crate::model::LimitDef;
    use crate::plan::fixtures::{amounts, level, now, resolved};

    fn def(resource: &str, span: Span) -> LimitDef {
        LimitDef {
            resource: resource.into(),
            span,
            limit: Limit {
                quota: 10,
                overage: 0,
                warn_at: WarnAt::DEFAULT,
                unlimited: false,
            },
        }
    }

    fn month() -> Span {
        Span::Window(Series::calendar(Period::Month))
    }

    fn rolling_hour() -> Span {
        Span::Window(Series {
            period: Period::Hour,
            kind: WindowKind::Rolling,
        })
    }

    #[test]
    fn a_top_up_moves_every_current_window_of_every_counted_level() {
        let r = resolved(vec![
            level("org/off", Mode::Off, vec![def("tokens", month())]),
            level(
                "org",
                Mode::Shadow,
                vec![
                    def("tokens", month()),
                    def("tokens", rolling_hour()),
                    def("requests", month()),
                ],
            ),
        ]);
        let p = plan(&r, "s1", &amounts(&[("tokens", 7)]), now(), None, now()).unwrap();
        assert_eq!(p.marker_tenants, vec!["org"]);
        let changes: Vec<Change> = p.settlement.moves.iter().map(|m| m.change).collect();
        assert_eq!(changes, vec![Change::Add(7), Change::Add(7)]);
        let bucket = Utc.with_ymd_and_hms(2026, 11, 17, 13, 5, 0).unwrap();
        assert_eq!(p.counters[1].window.start, bucket);
        assert!(p.settlement.moves[1]
            .key
            .ends_with(&format!(":rolling-hour:{}", bucket.timestamp())));
        assert_eq!(p.settlement.markers, vec!["tollgate:{org}:s:org"]);
        assert_eq!(
            p.settlement.id_key, "tollgate:{org}:d:s1",
            "remembered in the tree's hash slot"
        );
    }

    #[test]
    fn a_refund_goes_only_to_the_window_the_check_counted_in() {
        let r = resolved(vec![level(
            "acme",
            Mode::Enforce,
            vec![def("tokens", month()), def("tokens", rolling_hour())],
        )]);
        let refund = amounts(&[("tokens", -3)]);
        let same = plan(
            &r,
            "s1",
            &refund,
            now() - Duration::minutes(20),
            None,
            now(),
        )
        .unwrap();
        let starts: Vec<_> = same.counters.iter().map(|c| c.window.start).collect();
        assert_eq!(
            starts,
            vec![
                Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 11, 17, 12, 45, 0).unwrap(),
            ],
            "this month, and the bucket of the check"
        );
        assert!(same
            .settlement
            .moves
            .iter()
            .all(|m| m.change == Change::Refund(3)));
        // Checked last month: the month is over, and its bucket no longer counts.
        let old = plan(&r, "s1", &refund, now() - Duration::days(20), None, now()).unwrap();
        assert!(old.is_empty());
        assert!(old.settlement.markers.is_empty());
        // A check two hours ago: the month still counts, its rolling bucket is gone.
        let earlier = plan(&r, "s1", &refund, now() - Duration::hours(2), None, now()).unwrap();
        assert_eq!(earlier.counters.len(), 1);
        assert_eq!(earlier.counters[0].series, Series::calendar(Period::Month));
    }

    #[test]
    fn gauges_are_refused_and_zero_amounts_ignored() {
        let r = resolved(vec![level(
            "acme",
            Mode::Enforce,
            vec![def("slots", Span::Gauge), def("tokens", month())],
        )]);
        assert_eq!(
            plan(&r, "s1", &amounts(&[("slots", 1)]), now(), None, now()),
            Err(SettleError::Gauge("slots".into()))
        );
        assert_eq!(
            plan(
                &r,
                "s1",
                &amounts(&[("concurrent_requests", -1)]),
                now(),
                None,
                now()
            ),
            Err(SettleError::Gauge("concurrent_requests".into()))
        );
        let zero = plan(
            &r,
            "s1",
            &amounts(&[("slots", 0), ("tokens", 0)]),
            now(),
            None,
            now(),
        )
        .unwrap();
        assert!(zero.is_empty());
        let release = Release {
            record_key: "tollgate:{acme}:l:r1".into(),
            request_id: "r1".into(),
        };
        let only_release = plan(
            &r,
            "s1",
            &amounts(&[("tokens", 0)]),
            now(),
            Some(release),
            now(),
        );
        assert!(!only_release.unwrap().is_empty());
    }

    #[test]
    fn a_counter_key_names_its_counter_back() {
        let r = resolved(vec![level(
            "acme:eu/team",
            Mode::Enforce,
            vec![def("tokens", month()), def("tokens", rolling_hour())],
        )]);
        let p = plan(&r, "s1", &amounts(&[("tokens", 7)]), now(), None, now()).unwrap();
        for counter in &p.counters {
            assert_eq!(Counter::from_key(&counter.key).as_ref(), Some(counter));
        }
        for not_a_counter in [
            "tollgate:{acme}:d:s1",
            "tollgate:{acme}:c:acme:tokens:month:17",
            "tollgate:{acme}:c:acme:tokens:fortnight:0",
            "other:{acme}:c:acme:tokens:month:0",
        ] {
            assert_eq!(Counter::from_key(not_a_counter), None, "{not_a_counter}");
        }
    }

    #[test]
    fn the_largest_refund_is_capped_at_the_counter_maximum() {
        let r = resolved(vec![level("acme", Mode::Enforce, vec![def("t", month())])]);
        let p = plan(&r, "s1", &amounts(&[("t", i64::MIN)]), now(), None, now()).unwrap();
        assert_eq!(p.settlement.moves[0].change, Change::Refund(COUNTER_MAX));
    }
}
