//! From a resolved tenant chain and a request's amounts to one atomic store call, and
//! from the store's outcome to a decision — without I/O.
//!
//! Every limit of every requested resource at every level (user → team → organization)
//! becomes one op of a single store call, so the request is counted everywhere or
//! nowhere: a team at its hard limit rejects a user with headroom, and nobody is charged.
//!
//! - A level in `off` mode is neither checked nor counted.
//! - A level in `shadow` mode is counted but never rejects: its ops have no cap, and
//!   passing its hard limit only marks the answer `shadow_reject` (status warning).
//! - Per op the decision is [`Limit::decide`] on the usage before the request; the store
//!   admits by the same rule (`used + amount <= hard`), so a request is counted exactly
//!   when no enforced limit rejects it.
//!
//! [`Limit::decide`]: tollgate_protocol::Limit::decide

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tollgate_protocol::{CheckResponse, Decision, Limit, PolicyStatus, RejectReason};

use crate::model::resolve::Resolved;
use crate::model::window::{Series, Window};
use crate::model::{LimitDef, Mode, Span};
use crate::store::{
    check_record_key, counter_key, gauge_key, lease_record_key, marker_key, Call, CallMode, Lease,
    Op, OpKind, Outcome, COUNTER_MAX,
};

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
    /// The limit.
    pub def: LimitDef,
    /// What the request adds.
    pub amount: u64,
    /// The counter windows, current first (empty for gauges).
    pub windows: Vec<Window>,
    /// The counter keys, in the order of `windows` (the gauge key for gauges).
    pub keys: Vec<String>,
}

impl Planned {
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
    lease_ttl_s: i64,
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
    let lease = match request_id {
        Some(id) if holds_gauge => Some(Lease {
            request_id: id.to_string(),
            record_key: lease_record_key(&resolved.root, id),
            ttl_s: lease_ttl_s,
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
        lease,
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

/// The cap an op may reach: the hard limit when enforced, no cap in shadow mode or for
/// unlimited limits.
fn cap_of(planned: &Planned) -> u64 {
    if planned.mode == Mode::Shadow || planned.def.limit.unlimited {
        COUNTER_MAX
    } else {
        planned.def.limit.hard().min(COUNTER_MAX)
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

/// A limit's status with `used` counted, as clients see it in headers.
///
/// For an `unlimited` limit, `limit` is the quota and `remaining` counts down to it
/// (never negative): usage stays visible against the included amount, and nothing
/// rejects at zero. Unlimited limits only bind a response when no other limit applies.
pub fn policy_status(
    planned: &Planned,
    used: u64,
    oldest: Option<usize>,
    now: DateTime<Utc>,
) -> PolicyStatus {
    let def = &planned.def;
    let limit = if def.limit.unlimited {
        def.limit.quota
    } else {
        def.limit.hard()
    };
    let reset_after_s = match (planned.series(), planned.windows.as_slice()) {
        (Some(series), [current, ..]) => {
            // A rolling window frees up when its oldest used bucket slides out.
            let window = oldest
                .and_then(|i| planned.windows.get(i))
                .unwrap_or(current);
            match series.kind {
                crate::model::window::WindowKind::Calendar => current.reset_after_s(now),
                crate::model::window::WindowKind::Rolling => series.frees_after_s(window, now),
            }
        }
        // A gauge frees up when a holder finishes: no time can be promised.
        _ => 1,
    };
    PolicyStatus {
        name: def.span.policy_name(),
        tenant: Some(planned.tenant.clone()),
        resource: def.resource.clone(),
        quota: def.limit.quota,
        limit,
        used,
        remaining: limit.saturating_sub(used),
        reset_after_s,
        window_s: match def.span {
            Span::Window(series) => series.window_len_s(),
            Span::Gauge => None,
        },
    }
}

/// Orders statuses by headroom, least first: bounded limits before unlimited ones, then
/// by `remaining / limit` compared exactly (a zero limit has no headroom).
fn headroom(a: (&PolicyStatus, bool), b: (&PolicyStatus, bool)) -> Ordering {
    let ratio = |s: &PolicyStatus| {
        if s.limit == 0 {
            (0u128, 1u128)
        } else {
            (u128::from(s.remaining), u128::from(s.limit))
        }
    };
    let ((an, ad), (bn, bd)) = (ratio(a.0), ratio(b.0));
    a.1.cmp(&b.1).then((an * bd).cmp(&(bn * ad)))
}

/// Whether counting `amount` onto `before` takes `limit` past its warning threshold just
/// now: the first warning of its window.
pub fn crosses_warning(limit: &Limit, before: u64, amount: u64) -> bool {
    amount > 0
        && limit.decide(before, 0) == Decision::Allow
        && limit.decide(before, amount) != Decision::Allow
}

/// A decision and what the control plane records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The answer to the filter.
    pub response: CheckResponse,
    /// Ops whose usage crossed their warning threshold with this request: the first
    /// warning of their window.
    pub crossed_warning: Vec<usize>,
    /// The op that rejected the request.
    pub rejected_by: Option<usize>,
    /// The op whose status the response names.
    pub binding: Option<usize>,
}

/// The answer to a check of `tenant` whose ops were `planned` and whose store call
/// returned `outcome`.
pub fn decide(
    tenant: &str,
    planned: &[Planned],
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<Decided, String> {
    if outcome.used.len() != planned.len() || outcome.oldest.len() != planned.len() {
        return Err("store answered for the wrong number of limits".into());
    }
    if !outcome.admitted {
        let index = outcome
            .violated
            .filter(|&i| i < planned.len())
            .ok_or("rejected check names no limit")?;
        let policy = policy_status(
            &planned[index],
            outcome.used[index],
            outcome.oldest[index],
            now,
        );
        return Ok(Decided {
            response: CheckResponse {
                decision: Decision::Reject,
                reason: Some(RejectReason::QuotaExceeded),
                tenant: tenant.to_string(),
                cache_reject_for_s: policy.reset_after_s,
                policy: Some(policy),
                shadow_reject: false,
            },
            crossed_warning: Vec::new(),
            rejected_by: Some(index),
            binding: Some(index),
        });
    }
    let mut decision = Decision::Allow;
    let mut shadow_reject = false;
    let mut crossed_warning = Vec::new();
    let mut binding: Option<(PolicyStatus, bool, usize)> = None;
    for (i, (p, &used)) in planned.iter().zip(&outcome.used).enumerate() {
        let before = used.saturating_sub(p.amount);
        let mut own = p.def.limit.decide(before, p.amount);
        if own == Decision::Reject {
            // Only a shadow level can be past its hard limit after admission.
            shadow_reject = true;
            own = Decision::Warn;
        }
        if crosses_warning(&p.def.limit, before, p.amount) {
            crossed_warning.push(i);
        }
        decision = decision.worst(own);
        let status = policy_status(p, used, outcome.oldest[i], now);
        let candidate = (status, p.def.limit.unlimited, i);
        let tighter = match &binding {
            None => true,
            Some((best, unlimited, _)) => {
                headroom((&candidate.0, candidate.1), (best, *unlimited)) == Ordering::Less
            }
        };
        if tighter {
            binding = Some(candidate);
        }
    }
    let (policy, binding) = binding.map_or((None, None), |(status, _, i)| (Some(status), Some(i)));
    Ok(Decided {
        response: CheckResponse {
            decision,
            reason: None,
            tenant: tenant.to_string(),
            policy,
            cache_reject_for_s: 0,
            shadow_reject,
        },
        crossed_warning,
        rejected_by: None,
        binding,
    })
}

/// The answer for a tenant nobody assigned a tier to.
pub fn unknown_tenant(tenant: &str) -> CheckResponse {
    CheckResponse {
        decision: Decision::Reject,
        reason: Some(RejectReason::UnknownTenant),
        tenant: tenant.to_string(),
        policy: None,
        cache_reject_for_s: 0,
        shadow_reject: false,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use tollgate_protocol::{Limit, WarnAt};

    use chrono::Duration;

    use super::*;
    use crate::model::window::{Period, WindowKind};
    use crate::test_fixtures::{amounts, level, now, resolved};

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

    fn def(resource: &str, period: Period, quota: u64, overage: u64) -> LimitDef {
        LimitDef {
            resource: resource.into(),
            span: Span::Window(Series::calendar(period)),
            limit: Limit {
                quota,
                overage,
                warn_at: WarnAt::DEFAULT,
                unlimited: false,
            },
        }
    }

    fn outcome(admitted: bool, violated: Option<usize>, used: Vec<u64>) -> Outcome {
        Outcome {
            admitted,
            violated,
            oldest: used.iter().map(|&u| (u > 0).then_some(0)).collect(),
            used,
        }
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
    fn gauge_needs_a_request_id_and_records_its_lease() {
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
            p.call.lease.as_ref().unwrap().record_key,
            "tollgate:{acme}:l:req-1"
        );
        assert!(p.call.markers.is_empty(), "gauges are not re-seeded");
    }

    #[test]
    fn admitted_check_reports_the_limit_with_least_headroom_at_any_level() {
        let r = resolved(vec![
            level(
                "acme/alice",
                Mode::Enforce,
                vec![def("requests", Period::Minute, 100, 0)],
            ),
            level(
                "acme",
                Mode::Enforce,
                vec![def("requests", Period::Month, 10, 0)],
            ),
        ]);
        let p = check_plan(&r, &amounts(&[("requests", 1)]));
        let decided = decide(
            "acme/alice",
            &p.planned,
            &outcome(true, None, vec![50, 9]),
            now(),
        )
        .unwrap();
        assert_eq!(decided.response.decision, Decision::Warn);
        let policy = decided.response.policy.unwrap();
        assert_eq!(policy.name, "monthly");
        assert_eq!(policy.tenant.as_deref(), Some("acme"));
        assert_eq!((policy.used, policy.remaining, policy.limit), (9, 1, 10));
        assert_eq!(
            decided.crossed_warning,
            vec![1],
            "9 of 10 passes 80 % just now"
        );
    }

    #[test]
    fn rejected_check_reports_the_violating_limit_unchanged() {
        let r = resolved(vec![level(
            "acme",
            Mode::Enforce,
            vec![def("requests", Period::Minute, 10, 2)],
        )]);
        let p = check_plan(&r, &amounts(&[("requests", 5)]));
        let decided = decide("acme", &p.planned, &outcome(false, Some(0), vec![9]), now()).unwrap();
        assert_eq!(decided.response.decision, Decision::Reject);
        assert_eq!(decided.rejected_by, Some(0));
        let policy = decided.response.policy.unwrap();
        assert_eq!((policy.used, policy.limit, policy.remaining), (9, 12, 3));
        assert_eq!(policy.reset_after_s, 51);
        assert_eq!(decided.response.cache_reject_for_s, 51);
        assert_eq!(policy.window_s, Some(60));
    }

    #[test]
    fn shadow_level_past_its_limit_admits_with_a_warning_and_says_so() {
        let r = resolved(vec![level(
            "acme",
            Mode::Shadow,
            vec![def("requests", Period::Minute, 10, 0)],
        )]);
        let p = check_plan(&r, &amounts(&[("requests", 1)]));
        let decided = decide("acme", &p.planned, &outcome(true, None, vec![11]), now()).unwrap();
        assert_eq!(decided.response.decision, Decision::Warn);
        assert!(decided.response.shadow_reject);
    }

    #[test]
    fn unlimited_limit_binds_only_when_nothing_else_applies() {
        let mut unlimited = def("requests", Period::Day, 0, 0);
        unlimited.limit.unlimited = true;
        let r = resolved(vec![level(
            "acme",
            Mode::Enforce,
            vec![unlimited, def("requests", Period::Month, 1000, 0)],
        )]);
        let p = check_plan(&r, &amounts(&[("requests", 1)]));
        assert_eq!(p.call.ops[0].cap, COUNTER_MAX);
        let decided = decide(
            "acme",
            &p.planned,
            &outcome(true, None, vec![500, 1]),
            now(),
        )
        .unwrap();
        assert_eq!(decided.response.decision, Decision::Allow);
        assert_eq!(decided.response.policy.unwrap().name, "monthly");
    }
}
