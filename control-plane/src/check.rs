//! The decision of `/v1/check`, apart from I/O: which counters a request touches, what
//! the store is asked, and how its answer becomes a [`CheckResponse`].
//!
//! Per limit the decision is [`Limit::decide`] on the usage *before* the request; the
//! store's script admits by the same rule (`used + amount <= hard`), so a request is
//! counted exactly when no limit rejects it.
//!
//! [`Limit::decide`]: tollgate_protocol::Limit::decide

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tollgate_protocol::{CheckResponse, Decision, PolicyStatus, RejectReason};

use crate::error::ApiError;
use crate::model::{LimitDef, TenantQuota};
use crate::store::{CounterOp, ScriptOutcome, COUNTER_MAX};
use crate::window::{Period, Window};

/// How long a counter outlives its window, so recent usage stays readable.
pub const COUNTER_GRACE_S: i64 = 86_400;

/// One counter a request touches: a limit in its current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned<'q> {
    /// The limit.
    pub def: &'q LimitDef,
    /// Its window at the time of the request.
    pub window: Window,
    /// What the request adds to it.
    pub amount: u64,
    /// The counter key.
    pub key: String,
}

/// The Redis key of a counter:
/// `tollgate:{<root>}:<tenant>:<resource>:<period>:<window start, unix seconds>`.
///
/// The `{root}` hash tag keeps one tenant tree on one Redis Cluster slot, which the
/// atomic script needs. Keys are unambiguous: tenant ids contain no braces, and
/// resource names, periods and timestamps contain no `:`.
pub fn counter_key(root: &str, tenant: &str, resource: &str, period: Period, start: i64) -> String {
    format!("tollgate:{{{root}}}:{tenant}:{resource}:{period}:{start}")
}

/// The counters a request touches: every limit of every requested resource. Resources
/// without limits are ignored.
pub fn plan<'q>(
    quota: &'q TenantQuota,
    amounts: &BTreeMap<String, u64>,
    now: DateTime<Utc>,
) -> Result<Vec<Planned<'q>>, ApiError> {
    let mut planned = Vec::new();
    for (resource, &amount) in amounts {
        for def in quota.limits.iter().filter(|d| &d.resource == resource) {
            let window = def
                .period
                .window_at(now)
                .ok_or_else(|| ApiError::internal(format!("no {} window at {now}", def.period)))?;
            let key = counter_key(
                &quota.root,
                &quota.tenant,
                resource,
                def.period,
                window.start.timestamp(),
            );
            planned.push(Planned {
                def,
                window,
                amount,
                key,
            });
        }
    }
    Ok(planned)
}

/// The store operations for planned counters.
pub fn counter_ops(planned: &[Planned<'_>]) -> Vec<CounterOp> {
    planned
        .iter()
        .map(|p| CounterOp {
            key: p.key.clone(),
            amount: p.amount,
            cap: if p.def.limit.unlimited {
                COUNTER_MAX
            } else {
                p.def.limit.hard().min(COUNTER_MAX)
            },
            expire_at: p.window.end.timestamp().saturating_add(COUNTER_GRACE_S),
        })
        .collect()
}

/// A limit's status with `used` counted.
///
/// For an `unlimited` limit, `limit` is the quota and `remaining` counts down to it
/// (never negative): usage stays visible against the included amount, and nothing
/// rejects at zero. Unlimited limits only bind a response when no other limit applies.
pub fn policy_status(
    def: &LimitDef,
    window: &Window,
    used: u64,
    now: DateTime<Utc>,
) -> PolicyStatus {
    let limit = if def.limit.unlimited {
        def.limit.quota
    } else {
        def.limit.hard()
    };
    PolicyStatus {
        name: def.period.policy_name().to_string(),
        resource: def.resource.clone(),
        quota: def.limit.quota,
        limit,
        used,
        remaining: limit.saturating_sub(used),
        reset_after_s: window.reset_after_s(now),
        window_s: def.period.fixed_len_s(),
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

/// The answer to a check whose counters were `planned` and whose store call returned
/// `outcome`.
pub fn respond(
    tenant: &str,
    planned: &[Planned<'_>],
    outcome: &ScriptOutcome,
    now: DateTime<Utc>,
) -> Result<CheckResponse, ApiError> {
    if outcome.used.len() != planned.len() {
        return Err(ApiError::internal(
            "store answered for the wrong number of counters",
        ));
    }
    if !outcome.admitted {
        let index = outcome
            .violated
            .filter(|&i| i < planned.len())
            .ok_or_else(|| ApiError::internal("rejected check names no counter"))?;
        let p = &planned[index];
        let policy = policy_status(p.def, &p.window, outcome.used[index], now);
        return Ok(CheckResponse {
            decision: Decision::Reject,
            reason: Some(RejectReason::QuotaExceeded),
            tenant: tenant.to_string(),
            cache_reject_for_s: policy.reset_after_s,
            policy: Some(policy),
        });
    }
    let mut decision = Decision::Allow;
    let mut policy: Option<(PolicyStatus, bool)> = None;
    for (p, &used) in planned.iter().zip(&outcome.used) {
        let before = used.saturating_sub(p.amount);
        decision = decision.worst(p.def.limit.decide(before, p.amount));
        let status = policy_status(p.def, &p.window, used, now);
        let candidate = (status, p.def.limit.unlimited);
        let tighter = match &policy {
            None => true,
            Some((best, unlimited)) => {
                headroom((&candidate.0, candidate.1), (best, *unlimited)) == Ordering::Less
            }
        };
        if tighter {
            policy = Some(candidate);
        }
    }
    Ok(CheckResponse {
        decision,
        reason: None,
        tenant: tenant.to_string(),
        policy: policy.map(|(status, _)| status),
        cache_reject_for_s: 0,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use tollgate_protocol::{Limit, WarnAt};

    use super::*;

    fn def(resource: &str, period: Period, quota: u64, overage: u64) -> LimitDef {
        LimitDef {
            resource: resource.into(),
            period,
            limit: Limit {
                quota,
                overage,
                warn_at: WarnAt::DEFAULT,
                unlimited: false,
            },
        }
    }

    fn tenant(limits: Vec<LimitDef>) -> TenantQuota {
        TenantQuota {
            tenant: "acme".into(),
            root: "acme".into(),
            tier: "pro".into(),
            limits,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 17, 13, 5, 9).unwrap()
    }

    #[test]
    fn counter_key_carries_the_root_as_hash_tag_and_the_window_start() {
        let key = counter_key("acme", "acme/research", "requests", Period::Minute, 60);
        assert_eq!(key, "tollgate:{acme}:acme/research:requests:minute:60");
    }

    #[test]
    fn plan_ignores_resources_without_limits() {
        let q = tenant(vec![def("requests", Period::Minute, 10, 0)]);
        let amounts = BTreeMap::from([("requests".into(), 1), ("tokens".into(), 5)]);
        let planned = plan(&q, &amounts, now()).unwrap();
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].def.resource, "requests");
    }

    #[test]
    fn unlimited_and_huge_limits_are_capped_at_the_counter_maximum() {
        let mut unlimited = def("requests", Period::Day, 0, 0);
        unlimited.limit.unlimited = true;
        let q = tenant(vec![unlimited, def("requests", Period::Month, u64::MAX, 0)]);
        let amounts = BTreeMap::from([("requests".into(), 1)]);
        let ops = counter_ops(&plan(&q, &amounts, now()).unwrap());
        assert!(ops.iter().all(|op| op.cap == COUNTER_MAX));
    }

    #[test]
    fn admitted_check_reports_the_limit_with_least_headroom() {
        let q = tenant(vec![
            def("requests", Period::Minute, 100, 0),
            def("requests", Period::Month, 10, 0),
        ]);
        let amounts = BTreeMap::from([("requests".into(), 1)]);
        let planned = plan(&q, &amounts, now()).unwrap();
        let outcome = ScriptOutcome {
            admitted: true,
            used: vec![50, 9],
            violated: None,
        };
        let response = respond("acme", &planned, &outcome, now()).unwrap();
        assert_eq!(response.decision, Decision::Warn);
        let policy = response.policy.unwrap();
        assert_eq!(policy.name, "monthly");
        assert_eq!((policy.used, policy.remaining, policy.limit), (9, 1, 10));
        assert_eq!(policy.window_s, None);
    }

    #[test]
    fn rejected_check_reports_the_violating_limit_unchanged() {
        let q = tenant(vec![def("requests", Period::Minute, 10, 2)]);
        let amounts = BTreeMap::from([("requests".into(), 5)]);
        let planned = plan(&q, &amounts, now()).unwrap();
        let outcome = ScriptOutcome {
            admitted: false,
            used: vec![9],
            violated: Some(0),
        };
        let response = respond("acme", &planned, &outcome, now()).unwrap();
        assert_eq!(response.decision, Decision::Reject);
        assert_eq!(response.reason, Some(RejectReason::QuotaExceeded));
        let policy = response.policy.unwrap();
        assert_eq!((policy.used, policy.limit, policy.remaining), (9, 12, 3));
        assert_eq!(policy.reset_after_s, 51);
        assert_eq!(response.cache_reject_for_s, 51);
        assert_eq!(policy.window_s, Some(60));
    }

    #[test]
    fn unlimited_limit_binds_only_when_nothing_else_applies() {
        let mut unlimited = def("requests", Period::Day, 0, 0);
        unlimited.limit.unlimited = true;
        let q = tenant(vec![unlimited, def("requests", Period::Month, 1000, 0)]);
        let amounts = BTreeMap::from([("requests".into(), 1)]);
        let planned = plan(&q, &amounts, now()).unwrap();
        let outcome = ScriptOutcome {
            admitted: true,
            used: vec![500, 1],
            violated: None,
        };
        let response = respond("acme", &planned, &outcome, now()).unwrap();
        assert_eq!(response.decision, Decision::Allow);
        assert_eq!(response.policy.unwrap().name, "monthly");
    }
}
