//! From a store's outcome to a decision — without I/O.
//!
//! Per limit the decision is [`Limit::decide`] on the usage before the request; the
//! answer names the binding policy (the one with the least headroom, at whichever
//! level), and says which limits crossed their warning threshold with this request (the
//! first warning of their window) or rejected it.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use tollgate_protocol::quota::UsageStatus;
use tollgate_protocol::{CheckResponse, Decision, Limit, PolicyStatus, RejectReason};

use super::check::Planned;
use crate::model::window::{seconds_until, WindowKind};
use crate::model::Span;
use crate::store::Outcome;

/// A limit's status with `used` counted, as clients see it in headers: `limit` is the
/// hard limit with the grants in force ([`Planned::limit`]), and `remaining` counts down
/// to it.
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
        planned.limit().hard()
    };
    // A gauge frees up when a holder finishes: no time can be promised.
    let reset_after_s = frees_at(planned, oldest).map_or(1, |at| seconds_until(at, now));
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

/// When usage of a windowed limit starts to free up: its calendar window's end, or when
/// the oldest bucket of its rolling window that holds usage (`oldest`, as the store
/// found it) slides out. `None` for a gauge.
pub fn frees_at(planned: &Planned, oldest: Option<usize>) -> Option<DateTime<Utc>> {
    let series = planned.series()?;
    let current = planned.windows.first()?;
    let window = match series.kind {
        WindowKind::Calendar => current,
        WindowKind::Rolling => oldest
            .and_then(|i| planned.windows.get(i))
            .unwrap_or(current),
    };
    Some(series.frees_at(window))
}

/// A limit's status at `used`: `ok`, `warning` past its warning threshold, `exceeded`
/// at or past its hard limit (never for an unlimited limit).
pub fn usage_status(limit: &Limit, used: u64) -> UsageStatus {
    if limit.unlimited {
        return UsageStatus::Ok;
    }
    match limit.decide(used, 0) {
        Decision::Allow => UsageStatus::Ok,
        Decision::Warn if used >= limit.hard() => UsageStatus::Exceeded,
        Decision::Warn => UsageStatus::Warning,
        Decision::Reject => UsageStatus::Exceeded,
    }
}

/// The position of the binding status among `statuses` (each with whether its limit
/// is unlimited): the least headroom, as a check's answer names it; the first of equals.
pub fn tightest<'a>(statuses: impl Iterator<Item = (&'a PolicyStatus, bool)>) -> Option<usize> {
    let mut best: Option<(usize, &PolicyStatus, bool)> = None;
    for (i, (status, unlimited)) in statuses.enumerate() {
        let tighter =
            best.is_none_or(|(_, b, bu)| headroom((status, unlimited), (b, bu)) == Ordering::Less);
        if tighter {
            best = Some((i, status, unlimited));
        }
    }
    best.map(|(i, ..)| i)
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
        let limit = p.limit();
        let mut own = limit.decide(before, p.amount);
        if own == Decision::Reject {
            // Only a shadow level can be past its hard limit after admission.
            shadow_reject = true;
            own = Decision::Warn;
        }
        if crosses_warning(&limit, before, p.amount) {
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
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::resolve::Resolved;
    use crate::model::window::Period;
    use crate::model::Mode;
    use crate::plan::check::{plan, Plan, Select};
    use crate::plan::fixtures::{amounts, def, level, now, resolved};
    use crate::store::{CallMode, COUNTER_MAX};

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
