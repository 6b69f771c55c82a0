//! From a resolved tenant chain and a lease request to one atomic budget call
//! (`POST /v1/leases`), and from its outcome to the answer — without I/O.
//!
//! A budget is usage counted ahead. It is charged to the same counters a check of that
//! amount would count in — every windowed limit of the resource at every level of the
//! chain, unlimited ones and levels in `shadow` mode included, `off` levels not — so
//! budgets outstanding can never let usage pass a hard limit. Only enforced limits bound
//! it (their caps), as they bound checks.
//!
//! Its size is the store's to decide, from the headroom it reads in the same step
//! ([`Budget`]): each level of the chain with an enforced limit of the resource shares
//! its own headroom between the budgets held at or below it — every gateway and tenant
//! holding one ([`LeaseLevel`]) — so that the many tenants of one parent split the
//! parent's headroom instead of each taking half of it. What is planned here are those
//! levels, the most a budget may be and how long it lasts: at most the configured lease
//! TTL, never past the end of a charged counter's window (for a rolling limit, its
//! current bucket), so that nothing spent under a budget is counted in a window it does
//! not belong to, and never past the end of a grant that raises an enforced limit it is
//! sized under (the caps include the grants in force), so that no budget is spent on a
//! grant's headroom after the grant ended. With less than [`MIN_LEASE_TTL_MS`] left
//! nothing is leased: the gateway checks each request until the window turns (or the
//! grant ends).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tollgate_protocol::{Decision, LeaseRequest, LeaseResponse, Limit, RejectReason};

use super::answer::decide;
use super::check::{plan as plan_check, Plan, PlanError, Planned, Select};
use super::settlement::is_gauge;
use crate::model::resolve::Resolved;
use crate::model::Mode;
use crate::store::{
    lease_holders_key, lease_key, CallMode, Grant, LeaseCall, LeaseLevel, Leased, Outcome,
    ReturnedLease,
};

/// A lease shorter than this is not worth granting: the gateway checks each request.
pub const MIN_LEASE_TTL_MS: i64 = 1_000;

/// How long a budget's record outlives its lease, so that a gateway returning it late
/// still gets the unspent part refunded. After that the budget stays counted.
pub const RECORD_GRACE_MS: i64 = 60_000;

/// Parts per million in one whole (warning thresholds).
const PPM: u128 = 1_000_000;

/// How budgets are sized (`tollgate serve --lease-…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// The largest budget granted, whatever the headroom.
    pub max_budget: u64,
    /// A smaller budget is not granted: the gateway checks each request.
    pub min_grant: u64,
    /// How long a budget may be spent, at most.
    pub ttl: Duration,
}

impl Default for LeaseSettings {
    fn default() -> LeaseSettings {
        LeaseSettings {
            max_budget: 10_000,
            min_grant: 2,
            ttl: Duration::from_secs(10),
        }
    }
}

/// A planned lease call and what each of its ops is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasePlan {
    /// The store call.
    pub call: LeaseCall,
    /// One entry per op of the call (their amounts are 0: the store decides the grant).
    pub planned: Vec<Planned>,
    /// The tenant of each seed marker of the call.
    pub marker_tenants: Vec<String>,
}

/// Why a lease cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The resource is a gauge: it holds slots per request, it cannot be leased.
    #[error("resource {0} is a gauge (no period): it cannot be leased; check each request")]
    Gauge(String),
    /// A window does not exist at this instant (the edge of the calendar's range).
    #[error("no window of {0} at this time")]
    NoWindow(String),
}

/// The lease call for `request` by a tenant resolved as `resolved`, at `now`.
pub fn plan(
    resolved: &Resolved,
    request: &LeaseRequest,
    settings: &LeaseSettings,
    now: DateTime<Utc>,
) -> Result<LeasePlan, LeaseError> {
    if is_gauge(resolved, &request.resource) {
        return Err(LeaseError::Gauge(request.resource.clone()));
    }
    // The counters a check of the resource counts in, with nothing added.
    let amounts = BTreeMap::from([(request.resource.clone(), 0)]);
    let Plan {
        call: check,
        planned,
        marker_tenants,
    } = plan_check(
        resolved,
        Select::Amounts(&amounts),
        CallMode::Check,
        None,
        0,
        now,
    )
    .map_err(|error| match error {
        PlanError::GaugeNeedsRequestId(resource) => LeaseError::Gauge(resource),
        PlanError::NoWindow(series) => LeaseError::NoWindow(series),
    })?;
    let lease_ttl_ms = i64::try_from(settings.ttl.as_millis()).unwrap_or(i64::MAX);
    let window_ends = planned
        .iter()
        .filter_map(|p| p.windows.first())
        .map(|window| window.end);
    let grant_ends = planned
        .iter()
        .filter(|p| bounds(p))
        .filter_map(|p| p.granted.until);
    let ttl_ms = window_ends
        .chain(grant_ends)
        .map(|end| (end - now).num_milliseconds())
        .fold(lease_ttl_ms, i64::min)
        .max(0);
    let want = if ttl_ms < MIN_LEASE_TTL_MS {
        0
    } else {
        request.want.min(settings.max_budget)
    };
    let root = &resolved.root;
    let lease = LeaseCall {
        now_ms: now.timestamp_millis(),
        markers: check.markers,
        ops: check.ops,
        record_key: lease_key(root, &request.id),
        levels: levels(root, &request.resource, &planned),
        gateway: request.gateway.clone(),
        tenant: request.tenant.clone(),
        want,
        min_grant: settings.min_grant,
        ttl_ms,
        record_ttl_ms: ttl_ms.saturating_add(RECORD_GRACE_MS),
        previous: request.previous.as_ref().map(|previous| ReturnedLease {
            record_key: lease_key(root, &previous.id),
            spent: previous.spent,
        }),
        // The caller sets its own: planning knows no deadline.
        deadline_ms: None,
    };
    Ok(LeasePlan {
        call: lease,
        planned,
        marker_tenants,
    })
}

/// Whether `planned`'s cap bounds a budget: an enforced limit that is not unlimited (a
/// level in shadow mode, and an unlimited limit, bound nothing).
fn bounds(planned: &Planned) -> bool {
    planned.mode == Mode::Enforce && !planned.def.limit.unlimited
}

/// The levels whose enforced limits bound a budget of `resource` whose ops were
/// `planned` (in chain order, one op per planned limit): a level in shadow mode, and an
/// unlimited limit, bound nothing.
fn levels(root: &str, resource: &str, planned: &[Planned]) -> Vec<LeaseLevel> {
    let mut levels: Vec<(&str, LeaseLevel)> = Vec::new();
    let enforced = planned.iter().enumerate().filter(|(_, p)| bounds(p));
    for (i, p) in enforced {
        match levels.iter_mut().find(|(tenant, _)| *tenant == p.tenant) {
            Some((_, level)) => level.ops.push(i),
            None => levels.push((
                &p.tenant,
                LeaseLevel {
                    holders_key: lease_holders_key(root, &p.tenant, resource),
                    ops: vec![i],
                },
            )),
        }
    }
    levels.into_iter().map(|(_, level)| level).collect()
}

/// The usage of a limit past which its status is `warning`: `warn_at × quota`, rounded
/// down, exactly as [`Limit::decide`] compares it. `None` for an unlimited limit, which
/// never warns.
pub fn warn_after(limit: &Limit) -> Option<u64> {
    if limit.unlimited {
        return None;
    }
    let threshold = u128::from(limit.warn_at.ppm()) * u128::from(limit.quota) / PPM;
    u64::try_from(threshold).ok()
}

/// The answer to a lease of `tenant` whose ops were `planned` and whose budget call did
/// `budgeted`: the decision a check of nothing would get from the usage before this
/// budget, or a check's REJECT where a limit has no headroom.
pub fn answer(
    tenant: &str,
    planned: &[Planned],
    budgeted: &Leased,
    now: DateTime<Utc>,
) -> Result<LeaseResponse, String> {
    let (granted, ttl_ms, violated) = match budgeted.grant {
        Grant::Reserved { granted, ttl_ms } | Grant::Duplicate { granted, ttl_ms } => {
            (granted, ttl_ms, None)
        }
        Grant::Exhausted { violated } => (0, 0, Some(violated)),
    };
    let outcome = Outcome {
        admitted: violated.is_none(),
        violated,
        used: budgeted.used.clone(),
        oldest: budgeted.oldest.clone(),
    };
    let decided = decide(tenant, planned, &outcome, now)?;
    Ok(LeaseResponse {
        decision: decided.response.decision,
        reason: decided.response.reason,
        tenant: tenant.to_string(),
        granted,
        ttl_ms: u64::try_from(ttl_ms).unwrap_or(0),
        policy: decided.response.policy,
        warn_after: decided
            .binding
            .and_then(|i| planned.get(i))
            .and_then(|p| warn_after(&p.limit())),
        cache_reject_for_s: decided.response.cache_reject_for_s,
        refunded: budgeted.refunded,
    })
}

/// The answer to a lease while budgets cannot be reserved (Redis is down): none, check
/// each request.
pub fn per_request(tenant: &str) -> LeaseResponse {
    LeaseResponse {
        decision: Decision::Allow,
        reason: None,
        tenant: tenant.to_string(),
        granted: 0,
        ttl_ms: 0,
        policy: None,
        warn_after: None,
        cache_reject_for_s: 0,
        refunded: 0,
    }
}

/// The answer for a tenant nobody assigned a tier to: nothing leased.
pub fn unknown_tenant(tenant: &str) -> LeaseResponse {
    LeaseResponse {
        decision: Decision::Reject,
        reason: Some(RejectReason::UnknownTenant),
        ..per_request(tenant)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration as Span, TimeZone};
    use tollgate_protocol::{LeaseReturn, WarnAt};

    use super::*;
    use crate::model::window::{Period, Series, WindowKind};
    use crate::model::{LimitDef, Mode, Span as LimitSpan};
    use crate::plan::fixtures::{level, now, resolved};
    use crate::store::{OpKind, COUNTER_MAX};

    fn def(resource: &str, series: Series, quota: u64) -> LimitDef {
        LimitDef {
            resource: resource.into(),
            span: LimitSpan::Window(series),
            limit: Limit {
                quota,
                overage: 0,
                warn_at: WarnAt::DEFAULT,
                unlimited: false,
            },
        }
    }

    fn minute() -> Series {
        Series::calendar(Period::Minute)
    }

    fn request(want: u64) -> LeaseRequest {
        LeaseRequest {
            id: "g1-2".into(),
            gateway: "g1".into(),
            tenant: "acme/app".into(),
            roles: vec![],
            resource: "requests".into(),
            want,
            previous: Some(LeaseReturn {
                id: "g1-1".into(),
                spent: 3,
            }),
        }
    }

    fn chain() -> Resolved {
        resolved(vec![
            level(
                "acme/app",
                Mode::Enforce,
                vec![
                    def("requests", minute(), 100),
                    def("request_bytes", minute(), 5),
                ],
            ),
            level("acme", Mode::Shadow, vec![def("requests", minute(), 10)]),
        ])
    }

    #[test]
    fn a_lease_charges_every_counted_level_of_its_resource_only() {
        let settings = LeaseSettings::default();
        let p = plan(&chain(), &request(50_000), &settings, now()).unwrap();
        assert_eq!(p.planned.len(), 2, "request_bytes is not leased");
        let caps: Vec<u64> = p.call.ops.iter().map(|op| op.cap).collect();
        assert_eq!(caps, vec![100, COUNTER_MAX], "a shadow level never bounds");
        assert!(p.call.ops.iter().all(|op| op.amount == 0));
        assert_eq!(p.call.want, 10_000, "at most the configured maximum");
        assert_eq!(p.call.record_key, "tollgate:{acme}:b:g1-2");
        assert_eq!(
            p.call.levels,
            vec![LeaseLevel {
                holders_key: "tollgate:{acme}:p:acme/app:requests".into(),
                ops: vec![0],
            }],
            "the shadow level shares nothing"
        );
        assert_eq!(
            (p.call.gateway.as_str(), p.call.tenant.as_str()),
            ("g1", "acme/app")
        );
        let previous = p.call.previous.unwrap();
        assert_eq!(
            (previous.record_key.as_str(), previous.spent),
            ("tollgate:{acme}:b:g1-1", 3)
        );
        assert_eq!(p.marker_tenants, vec!["acme/app", "acme"]);
        assert_eq!(p.call.now_ms, now().timestamp_millis());
    }

    #[test]
    fn every_level_with_an_enforced_limit_shares_its_headroom_between_its_own_holders() {
        let unlimited = LimitDef {
            limit: Limit {
                unlimited: true,
                ..def("requests", minute(), 0).limit
            },
            ..def("requests", Series::calendar(Period::Hour), 0)
        };
        let r = resolved(vec![
            level("acme/team/app", Mode::Enforce, vec![unlimited]),
            level(
                "acme/team",
                Mode::Shadow,
                vec![def("requests", minute(), 10)],
            ),
            level(
                "acme",
                Mode::Enforce,
                vec![
                    def("requests", minute(), 1_500),
                    def("request_bytes", minute(), 5),
                    def("requests", Series::calendar(Period::Day), 9_000),
                ],
            ),
        ]);
        let mut app = request(10);
        app.tenant = "acme/team/app".into();
        let p = plan(&r, &app, &LeaseSettings::default(), now()).unwrap();
        assert_eq!(p.planned.len(), 4);
        assert_eq!(
            p.call.levels,
            vec![LeaseLevel {
                holders_key: "tollgate:{acme}:p:acme:requests".into(),
                ops: vec![2, 3],
            }],
            "only the org's limits bound the grant: an unlimited limit and a shadow level \
             share nothing"
        );
        assert_eq!(p.call.tenant, "acme/team/app");
        // The app's own limit enforced too: a level of its own, first.
        let r = resolved(vec![
            level(
                "acme/app",
                Mode::Enforce,
                vec![def("requests", minute(), 100)],
            ),
            level(
                "acme",
                Mode::Enforce,
                vec![def("requests", minute(), 1_500)],
            ),
        ]);
        let p = plan(&r, &request(10), &LeaseSettings::default(), now()).unwrap();
        let keys: Vec<(&str, &[usize])> = (p.call.levels.iter())
            .map(|l| (l.holders_key.as_str(), l.ops.as_slice()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("tollgate:{acme}:p:acme/app:requests", &[0][..]),
                ("tollgate:{acme}:p:acme:requests", &[1][..]),
            ]
        );
    }

    #[test]
    fn a_lease_never_outlives_a_charged_window() {
        let settings = LeaseSettings::default();
        // 13:05:09: the minute resets in 51 s, past the 10 s lease.
        let p = plan(&chain(), &request(10), &settings, now()).unwrap();
        assert_eq!(p.call.ttl_ms, 10_000);
        assert_eq!(p.call.record_ttl_ms, 10_000 + RECORD_GRACE_MS);
        let near = Utc.with_ymd_and_hms(2026, 11, 17, 13, 5, 57).unwrap() + Span::milliseconds(250);
        let p = plan(&chain(), &request(10), &settings, near).unwrap();
        assert_eq!((p.call.ttl_ms, p.call.want), (2_750, 10));
        let too_near = near + Span::milliseconds(2_000);
        let p = plan(&chain(), &request(10), &settings, too_near).unwrap();
        assert_eq!((p.call.ttl_ms, p.call.want), (750, 0), "no lease");
        // A rolling hour's current bucket is one minute.
        let rolling = Series {
            period: Period::Hour,
            kind: WindowKind::Rolling,
        };
        let r = resolved(vec![level(
            "acme",
            Mode::Enforce,
            vec![def("requests", rolling, 100)],
        )]);
        let p = plan(&r, &request(10), &settings, near).unwrap();
        let OpKind::Window { keys, .. } = &p.call.ops[0].kind else {
            panic!("a window op");
        };
        assert_eq!((keys.len(), p.call.ttl_ms), (61, 2_750));
    }

    #[test]
    fn gauges_are_refused_and_a_resource_without_limits_charges_nothing() {
        let gauge = LimitDef {
            span: LimitSpan::Gauge,
            ..def("slots", minute(), 2)
        };
        let r = resolved(vec![level("acme", Mode::Enforce, vec![gauge])]);
        let mut slots = request(1);
        slots.resource = "slots".into();
        let settings = LeaseSettings::default();
        assert_eq!(
            plan(&r, &slots, &settings, now()),
            Err(LeaseError::Gauge("slots".into()))
        );
        slots.resource = "concurrent_requests".into();
        assert!(matches!(
            plan(&r, &slots, &settings, now()),
            Err(LeaseError::Gauge(_))
        ));
        let p = plan(&r, &request(5), &settings, now()).unwrap();
        assert!(p.call.ops.is_empty() && p.call.markers.is_empty());
        assert_eq!(p.call.want, 5);
    }

    #[test]
    fn the_warning_threshold_is_exact_and_unlimited_limits_have_none() {
        let mut limit = def("r", minute(), 1_000_003).limit;
        assert_eq!(warn_after(&limit), Some(800_002));
        assert_eq!(limit.decide(800_002, 0), Decision::Allow);
        assert_eq!(limit.decide(800_003, 0), Decision::Warn);
        limit.quota = u64::MAX;
        limit.warn_at = WarnAt::from_ppm(1_000_000).unwrap();
        assert_eq!(warn_after(&limit), Some(u64::MAX));
        limit.unlimited = true;
        assert_eq!(warn_after(&limit), None);
    }

    fn budgeted(grant: Grant, used: Vec<u64>) -> Leased {
        Leased {
            grant,
            refunded: 4,
            refunded_keys: vec![],
            oldest: used.iter().map(|&u| (u > 0).then_some(0)).collect(),
            used,
        }
    }

    #[test]
    fn a_grant_answers_the_binding_policy_before_the_budget() {
        let p = plan(&chain(), &request(50), &LeaseSettings::default(), now()).unwrap();
        let grant = Grant::Reserved {
            granted: 25,
            ttl_ms: 10_000,
        };
        let answer = answer("acme/app", &p.planned, &budgeted(grant, vec![50, 9]), now()).unwrap();
        assert_eq!(
            (
                answer.decision,
                answer.granted,
                answer.ttl_ms,
                answer.refunded
            ),
            (Decision::Warn, 25, 10_000, 4)
        );
        let policy = answer.policy.unwrap();
        assert_eq!(
            (policy.tenant.as_deref(), policy.used, policy.remaining),
            (Some("acme"), 9, 1),
            "the shadow level has the least headroom"
        );
        assert_eq!(answer.warn_after, Some(8));
        assert_eq!(answer.cache_reject_for_s, 0);
    }

    #[test]
    fn an_exhausted_limit_rejects_with_its_policy() {
        let p = plan(&chain(), &request(50), &LeaseSettings::default(), now()).unwrap();
        let exhausted = budgeted(Grant::Exhausted { violated: 0 }, vec![100, 100]);
        let answer = answer("acme/app", &p.planned, &exhausted, now()).unwrap();
        assert_eq!(
            (answer.decision, answer.reason, answer.granted),
            (Decision::Reject, Some(RejectReason::QuotaExceeded), 0)
        );
        let policy = answer.policy.unwrap();
        assert_eq!((policy.limit, policy.remaining), (100, 0));
        assert_eq!(answer.cache_reject_for_s, 51);
        assert_eq!(answer.warn_after, Some(80));
        let wrong = budgeted(Grant::Exhausted { violated: 0 }, vec![1]);
        assert!(super::answer("acme/app", &p.planned, &wrong, now()).is_err());
    }

    #[test]
    fn a_lease_never_outlives_a_grant_its_headroom_depends_on() {
        use crate::plan::fixtures::grant;
        let settings = LeaseSettings::default();
        let mut r = chain();
        // 13:05:09: the minute resets in 51 s; the app's grant ends in 4.
        r.levels[0].grants = vec![grant("acme/app", "requests", Period::Minute, 50, (-60, 4))];
        let p = plan(&r, &request(10), &settings, now()).unwrap();
        let caps: Vec<u64> = p.call.ops.iter().map(|op| op.cap).collect();
        assert_eq!(caps, vec![150, COUNTER_MAX], "the cap includes the grant");
        assert_eq!(
            (p.call.ttl_ms, p.call.want),
            (4_000, 10),
            "until the grant ends"
        );
        assert_eq!(p.call.record_ttl_ms, 4_000 + RECORD_GRACE_MS);
        // Under a second before it ends: no budget, each request is checked.
        let near = now() + Span::milliseconds(3_500);
        let p = plan(&r, &request(10), &settings, near).unwrap();
        assert_eq!((p.call.ttl_ms, p.call.want), (500, 0));
        // Once it ended it is no longer resolved: the lease is as without it.
        r.levels[0].grants.clear();
        let p = plan(&r, &request(10), &settings, now()).unwrap();
        assert_eq!((p.call.ttl_ms, p.call.ops[0].cap), (10_000, 100));
        // A grant of a level that bounds nothing (shadow) shortens nothing.
        r.levels[1].grants = vec![grant("acme", "requests", Period::Minute, 50, (-60, 4))];
        let p = plan(&r, &request(10), &settings, now()).unwrap();
        assert_eq!(p.call.ttl_ms, 10_000);
        // Nor does a grant of another resource than the one leased.
        r.levels[1].grants.clear();
        r.levels[0].grants = vec![grant(
            "acme/app",
            "request_bytes",
            Period::Minute,
            5,
            (-60, 4),
        )];
        let p = plan(&r, &request(10), &settings, now()).unwrap();
        assert_eq!(p.call.ttl_ms, 10_000);
    }
}
