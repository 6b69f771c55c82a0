//! What the unit tests of the pure planners share: resolved tenant chains built by hand, one
//! fixed instant, amounts by resource.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::model::resolve::{Resolved, ResolvedLevel};
use crate::model::window::{Period, Series};
use crate::model::{Grant, LimitDef, Mode, Span};
use tollgate_protocol::{Limit, WarnAt};

/// One level of a chain: `tenant`'s `limits`, acting in `mode`, from no particular tier.
pub fn level(tenant: &str, mode: Mode, limits: Vec<LimitDef>) -> ResolvedLevel {
    ResolvedLevel {
        tenant: tenant.into(),
        mode,
        winner: None,
        limits,
        grants: Vec::new(),
    }
}

/// A grant of `amount` on `tenant`'s calendar `period` limit of `resource`, in force
/// from `from` until `until` seconds after [`now`].
pub fn grant(
    tenant: &str,
    resource: &str,
    period: Period,
    amount: u64,
    (from, until): (i64, i64),
) -> Grant {
    Grant {
        id: 1,
        tenant: tenant.into(),
        key: None,
        resource: resource.into(),
        span: Span::Window(Series::calendar(period)),
        amount,
        effective_at: now() + Duration::seconds(from),
        expires_at: now() + Duration::seconds(until),
        revoked_at: None,
        reason: "credit".into(),
        revoke_reason: None,
        created_by: None,
        revoked_by: None,
        created_at: now(),
    }
}

/// A chain of `levels`, the requesting tenant first; the last level is the root, whose
/// hash tag every key shares.
pub fn resolved(levels: Vec<ResolvedLevel>) -> Resolved {
    Resolved {
        root: levels.last().unwrap().tenant.clone(),
        levels,
    }
}

/// The one instant the tests plan at, whose windows they name: 2026-11-17 13:05:09 UTC.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 17, 13, 5, 9).unwrap()
}

/// Amounts by resource (unsigned for checks, signed for settlements).
pub fn amounts<T: Copy>(items: &[(&str, T)]) -> BTreeMap<String, T> {
    items.iter().map(|(r, a)| (r.to_string(), *a)).collect()
}

/// A calendar limit of `quota` and `overage` per `period` on `resource`, warning at
/// the default threshold.
pub fn def(resource: &str, period: Period, quota: u64, overage: u64) -> LimitDef {
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
