//! From a resolved tenant chain and a request's amounts to one atomic store call —
//! without I/O.
//!
//! Every limit of every requested resource at every level (user → team → organization)
//! becomes one op of a single store call, so the request is counted everywhere or
//! nowhere: a team at its hard limit rejects a user with headroom, and nobody is charged.
//!
//! - A level in `off` mode is neither checked nor counted.
//! - A level in `shadow` mode is counted but never rejects: its ops have no cap, and
//!   passing its hard limit only marks the answer `shadow_reject` (status warning).
//! - Each op's cap is the hard limit — quota + overage + the level's grants in force
//!   at the instant planned, saturating, at most [`COUNTER_MAX`] — which the store admits
//!   by [`fits`](tollgate_protocol::decision::fits): a request is counted exactly when
//!   no enforced limit rejects it ([`answer`](super::answer) decides from what it
//!   found, with the same limit: [`Planned::limit`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tollgate_protocol::Limit;

use crate::model::resolve::Resolved;
use crate::model::window::{Series, Window};
use crate::model::{Granted, LimitDef, Mode, Span};
use crate::store::keys::{
    check_record_key, counter_key, gauge_key, hold_record_key, marker_key, Counter,
};
use crate::store::{Call, CallMode, Hold, Op, OpKind, COUNTER_MAX};

/// The least a counter outlives the moment its usage stops counting: the history
/// flusher reads its final value at the next flush (at most a minute later), or once
/// PostgreSQL is back from an outage this short; late settlements, lease returns and
/// take-backs arrive within two minutes.
pub const MIN_COUNTER_GRACE_S: i64 = 300;

/// The most a counter outlives it (the grace of day and longer windows).
pub const MAX_COUNTER_GRACE_S: i64 = 86_400;

/// One limit of one level that a call touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The tenant whose limit it is.
    pub tenant: String,
    /// How that tenant's limits act.
    pub mode: Mode,
    /// The limit as defined.
    pub def: LimitDef,
    /// What the tenant's grants in force add to its hard limit (nothing for most).
    pub granted: Granted,
    /// What the request adds.
    pub amount: u64,
    /// The counter windows, current first (empty for gauges).
    pub windows: Vec<Window>,
    /// The counter keys, in the order of `windows` (the gauge key for gauges).
    pub keys: Vec<String>,
}

impl Planned {
    /// The limit decisions hold usage to: the definition with the grants in force added
    /// to its hard limit (as overage, saturating), so `warn_at` stays a fraction of the
    /// quota and the hard limit is quota + overage + grants. Without grants, the
    /// definition's own.
    pub fn limit(&self) -> Limit {
        let mut limit = self.def.limit;
        limit.overage = limit.overage.saturating_add(self.granted.amount);
        limit
    }

    /// The series of a windowed limit.
    pub fn series(&self) -> Option<Series> {
        match self.def.span {
            Span::Window(series) => Some(series),
            Span::Gauge => None,
        }
    }
}

/// A planned call and what each of its ops is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The store call.
    pub call: Call,
    /// One entry per op of the call.
    pub planned: Vec<Planned>,
    /// The tenant of each seed marker of the call.
    pub marker_tenants: Vec<String>,
}

/// Which limits a call covers.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// The limits of the requested resources, with their amounts.
    Amounts(&'a BTreeMap<String, u64>),
    /// Every limit, with nothing added (usage views, resets).
    Everything,
}

/// Why a request cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A gauge resource has an amount but the request carries no id to hold it under.
    #[error("resource {0} is a gauge: the check needs a request_id")]
    GaugeNeedsRequestId(String),
    /// A window does not exist at this instant (the edge of the calendar's range).
    #[error("no window of {0} at this time")]
    NoWindow(String),
}

/// The store call for `resolved` in `mode`.
pub fn plan(
    resolved: &Resolved,
    select: Select<'_>,
    mode: CallMode,
    request_id: Option<&str>,
    hold_ttl_s: i64,
    now: DateTime<Utc>,
) -> Result<Plan, PlanError> {
    let mut planned = Vec::new();
    let mut marker_tenants = Vec::new();
    let mut holds_gauge = false;
    for level in &resolved.levels {
        if level.mode == Mode::Off && matches!(select, Select::Amounts(_)) {
            continue;
        }
        let mut has_windows = false;
        for def in &level.limits {
            let amount = match select {
                Select::Amounts(amounts) => match amounts.get(&def.resource) {
                    Some(&amount) => amount,
                    None => continue,
                },
                Select::Everything => 0,
            };
            let (windows, keys) = match def.span {
                Span::Window(series) => {
                    let windows = series
                        .windows_at(now)
                        .ok_or_else(|| PlanError::NoWindow(series.name()))?;
                    let keys = windows
                        .iter()
                        .map(|w| {
                            counter_key(
                                &resolved.root,
                                &level.tenant,
                                &def.resource,
                                &series.name(),
                                w.start.timestamp(),
                            )
                        })
                        .collect();
                    has_windows = true;
                    (windows, keys)
                }
                Span::Gauge => {
                    if amount > 0 {
                        if request_id.is_none() {
                            return Err(PlanError::GaugeNeedsRequestId(def.resource.clone()));
                        }
                        holds_gauge = true;
                    }
                    let key = gauge_key(&resolved.root, &level.tenant, &def.resource);
                    (Vec::new(), vec![key])
                }
            };
            planned.push(Planned {
                tenant: level.tenant.clone(),
                mode: level.mode,
                def: def.clone(),
                granted: level.granted(def),
                amount,
                windows,
                keys,
            });
        }
        if has_windows {
            marker_tenants.push(level.tenant.clone());
        }
    }
    let ops = planned
        .iter()
        .map(|p| {
            let marker = marker_tenants.iter().position(|t| t == &p.tenant);
            op_for(p, marker, now)
        })
        .collect();
    let hold = match request_id {
        Some(id) if holds_gauge => Some(Hold {
            request_id: id.to_string(),
            record_key: hold_record_key(&resolved.root, id),
            ttl_s: hold_ttl_s,
        }),
        _ => None,
    };
    let call = Call {
        mode,
        now: now.timestamp(),
        markers: marker_tenants
            .iter()
            .map(|t| marker_key(&resolved.root, t))
            .collect(),
        ops,
        hold,
        check_record: match (mode, request_id) {
            (CallMode::Check, Some(id)) => Some(check_record_key(&resolved.root, id)),
            _ => None,
        },
        // The caller sets its own: planning knows no deadline.
        deadline_ms: None,
    };
    Ok(Plan {
        call,
        planned,
        marker_tenants,
    })
}

/// The cap an op may reach: the hard limit with its grants when enforced, no cap in
/// shadow mode or for unlimited limits.
fn cap_of(planned: &Planned) -> u64 {
    if planned.mode == Mode::Shadow || planned.def.limit.unlimited {
        COUNTER_MAX
    } else {
        planned.limit().hard().min(COUNTER_MAX)
    }
}

fn op_for(planned: &Planned, marker: Option<usize>, now: DateTime<Utc>) -> Op {
    let kind = match (planned.series(), planned.windows.first()) {
        (Some(series), Some(current)) => OpKind::Window {
            keys: planned.keys.clone(),
            ttl_s: counter_ttl_s(series, current, now),
            marker,
        },
        _ => OpKind::Gauge {
            key: planned.keys.first().cloned().unwrap_or_default(),
        },
    };
    Op {
        kind,
        amount: planned.amount,
        cap: cap_of(planned),
    }
}

/// Seconds a counter of `window` must live from `now`: until its usage stops counting,
/// plus a grace as long as the period, between [`MIN_COUNTER_GRACE_S`] and
/// [`MAX_COUNTER_GRACE_S`]. A grace of a day for every period kept 1,440 ended counters
/// per tenant of a per-minute limit, and 86,400 of a per-second one.
pub fn counter_ttl_s(series: Series, window: &Window, now: DateTime<Utc>) -> i64 {
    let counts_until = i64::try_from(series.frees_after_s(window, now)).unwrap_or(i64::MAX);
    let grace = series
        .period
        .rolling_len_s()
        .clamp(MIN_COUNTER_GRACE_S, MAX_COUNTER_GRACE_S);
    counts_until.saturating_add(grace)
}

impl Planned {
    /// Every counter of a windowed limit, current first; none for gauges.
    pub fn counters(&self) -> Vec<Counter> {
        let Some(series) = self.series() else {
            return Vec::new();
        };
        (self.keys.iter().zip(&self.windows))
            .map(|(key, window)| Counter {
                key: key.clone(),
                tenant: self.tenant.clone(),
                resource: self.def.resource.clone(),
                series,
                window: *window,
            })
            .collect()
    }

    /// The current counter of a windowed limit; `None` for gauges.
    pub fn current_counter(&self) -> Option<Counter> {
        Some(Counter {
            key: self.keys.first()?.clone(),
            tenant: self.tenant.clone(),
            resource: self.def.resource.clone(),
            series: self.series()?,
            window: *self.windows.first()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use tollgate_protocol::{Limit, WarnAt};

    use chrono::Duration;

    use super::*;
    use crate::model::window::{Period, WindowKind};
    use crate::plan::answer::decide;
    use crate::plan::fixtures::{amounts, def, level, now, resolved};
    use crate::store::Outcome;

    #[test]
    fn an_ended_counter_lives_as_long_as_its_period_within_bounds() {
        let now = Utc.with_ymd_and_hms(2026, 3, 14, 15, 9, 26).unwrap();
        let ttl = |period, kind| {
            let series = Series { period, kind };
            let window = series.windows_at(now).unwrap()[0];
            counter_ttl_s(series, &window, now)
        };
        let calendar = WindowKind::Calendar;
        assert_eq!(ttl(Period::Second, calendar), 1 + MIN_COUNTER_GRACE_S);
        assert_eq!(ttl(Period::Minute, calendar), 34 + MIN_COUNTER_GRACE_S);
        assert_eq!(ttl(Period::Hour, calendar), 3_034 + 3_600);
        assert_eq!(ttl(Period::Day, calendar), 31_834 + MAX_COUNTER_GRACE_S);
        assert_eq!(
            ttl(Period::Month, calendar),
            17 * 86_400 + 31_834 + MAX_COUNTER_GRACE_S
        );
        // A rolling bucket counts until it slides out of the trailing period.
        assert_eq!(
            ttl(Period::Minute, WindowKind::Rolling),
            61 + MIN_COUNTER_GRACE_S
        );
    }

    fn check_plan(r: &Resolved, a: &BTreeMap<String, u64>) -> Plan {
        plan(r, Select::Amounts(a), CallMode::Check, None, 300, now()).unwrap()
    }

    #[test]
    fn every_level_limit_of_every_requested_resource_is_one_op_of_one_call() {
        let r = resolved(vec![
            level(
                "acme/alice",
                Mode::Enforce,
                vec![def("requests", Period::Minute, 10, 0)],
            ),
            level(
                "acme",
                Mode::Enforce,
                vec![
                    def("requests", Period::Month, 1000, 0),
                    def("request_bytes", Period::Month, 1 << 20, 0),
                    def("tokens", Period::Day, 5, 0),
                ],
            ),
        ]);
        let p = check_plan(&r, &amounts(&[("requests", 1), ("request_bytes", 512)]));
        assert_eq!(p.planned.len(), 3, "tokens was not requested");
        assert_eq!(p.marker_tenants, vec!["acme/alice", "acme"]);
        let minute = Utc
            .with_ymd_and_hms(2026, 11, 17, 13, 5, 0)
            .unwrap()
            .timestamp();
        assert_eq!(
            p.planned[0].keys,
            vec![format!(
                "tollgate:{{acme}}:c:acme/alice:requests:minute:{minute}"
            )]
        );
        assert!(
            p.call.ops.iter().all(|op| matches!(&op.kind,
            OpKind::Window { keys, .. } if keys.iter().all(|k| k.starts_with("tollgate:{acme}:"))))
        );
        assert_eq!(p.call.markers[1], "tollgate:{acme}:s:acme");
    }

    #[test]
    fn off_levels_are_skipped_and_shadow_levels_have_no_cap() {
        let r = resolved(vec![
            level("u", Mode::Off, vec![def("requests", Period::Minute, 1, 0)]),
            level(
                "team",
                Mode::Shadow,
                vec![def("requests", Period::Minute, 2, 0)],
            ),
            level(
                "org",
                Mode::Enforce,
                vec![def("requests", Period::Minute, 3, 1)],
            ),
        ]);
        let p = check_plan(&r, &amounts(&[("requests", 1)]));
        let caps: Vec<u64> = p.call.ops.iter().map(|op| op.cap).collect();
        assert_eq!(caps, vec![COUNTER_MAX, 4]);
        assert_eq!(p.marker_tenants, vec!["team", "org"]);
    }

    #[test]
    fn rolling_limit_sums_sixty_one_buckets_and_frees_as_the_oldest_slides_out() {
        let mut rolling = def("requests", Period::Hour, 100, 0);
        rolling.span = Span::Window(Series {
            period: Period::Hour,
            kind: WindowKind::Rolling,
        });
        let r = resolved(vec![level("acme", Mode::Enforce, vec![rolling])]);
        let p = check_plan(&r, &amounts(&[("requests", 1)]));
        let OpKind::Window { keys, .. } = &p.call.ops[0].kind else {
            panic!("window op expected");
        };
        assert_eq!(keys.len(), 61);
        let minute = Utc
            .with_ymd_and_hms(2026, 11, 17, 13, 5, 0)
            .unwrap()
            .timestamp();
        assert!(
            keys[0].ends_with(&format!(":rolling-hour:{minute}")),
            "{}",
            keys[0]
        );
        let out = Outcome {
            admitted: true,
            violated: None,
            used: vec![50],
            oldest: vec![Some(30)],
        };
        let decided = decide("acme", &p.planned, &out, now()).unwrap();
        let policy = decided.response.policy.unwrap();
        assert_eq!(policy.name, "rolling-hour");
        assert_eq!(policy.window_s, Some(3600));
        // Bucket 30 began 30 minutes before the current one; it stops counting 61
        // bucket lengths after it began.
        let bucket_30_start = Utc.with_ymd_and_hms(2026, 11, 17, 12, 35, 0).unwrap();
        let frees = (bucket_30_start + Duration::minutes(61) - now()).num_seconds() as u64;
        assert_eq!(policy.reset_after_s, frees);
    }

    #[test]
    fn gauge_needs_a_request_id_and_records_its_hold() {
        let gauge = LimitDef {
            resource: "concurrent_requests".into(),
            span: Span::Gauge,
            limit: Limit {
                quota: 2,
                overage: 0,
                warn_at: WarnAt::DEFAULT,
                unlimited: false,
            },
        };
        let r = resolved(vec![level("acme", Mode::Enforce, vec![gauge])]);
        let a = amounts(&[("concurrent_requests", 1)]);
        assert_eq!(
            plan(&r, Select::Amounts(&a), CallMode::Check, None, 300, now()),
            Err(PlanError::GaugeNeedsRequestId("concurrent_requests".into()))
        );
        let p = plan(
            &r,
            Select::Amounts(&a),
            CallMode::Check,
            Some("req-1"),
            300,
            now(),
        )
        .unwrap();
        assert_eq!(
            p.call.hold.as_ref().unwrap().record_key,
            "tollgate:{acme}:l:req-1"
        );
        assert!(p.call.markers.is_empty(), "gauges are not re-seeded");
    }

    #[test]
    fn grants_in_force_raise_the_cap_of_the_limit_they_match_only() {
        use crate::plan::fixtures::grant;
        let mut r = resolved(vec![
            level(
                "acme/app",
                Mode::Shadow,
                vec![def("requests", Period::Minute, 5, 0)],
            ),
            level(
                "acme",
                Mode::Enforce,
                vec![
                    def("requests", Period::Minute, 10, 2),
                    def("requests", Period::Day, 100, 0),
                ],
            ),
        ]);
        let a = amounts(&[("requests", 1)]);
        let caps = |r: &Resolved| -> Vec<u64> {
            check_plan(r, &a).call.ops.iter().map(|op| op.cap).collect()
        };
        assert_eq!(
            caps(&r),
            vec![COUNTER_MAX, 12, 100],
            "no grants: as defined"
        );
        r.levels[1].grants = vec![
            grant("acme", "requests", Period::Minute, 30, (-10, 50)),
            grant("acme", "requests", Period::Minute, 8, (-10, 20)),
        ];
        r.levels[0].grants = vec![grant("acme/app", "requests", Period::Minute, 9, (-10, 20))];
        let p = check_plan(&r, &a);
        assert_eq!(
            p.call.ops.iter().map(|op| op.cap).collect::<Vec<_>>(),
            vec![COUNTER_MAX, 50, 100],
            "quota + overage + both grants, on the minute only; a shadow level has no cap"
        );
        let minute = &p.planned[1];
        assert_eq!(
            (minute.granted.amount, minute.granted.until),
            (38, Some(now() + Duration::seconds(20)))
        );
        assert_eq!(
            (
                minute.limit().quota,
                minute.limit().hard(),
                minute.def.limit.hard()
            ),
            (10, 50, 12),
            "the quota (and with it warn_at) is the definition's"
        );
        r.levels[1].grants = vec![grant(
            "acme",
            "requests",
            Period::Minute,
            u64::MAX,
            (-10, 50),
        )];
        assert_eq!(
            caps(&r)[1],
            COUNTER_MAX,
            "saturating, within what a counter holds"
        );
    }
}
