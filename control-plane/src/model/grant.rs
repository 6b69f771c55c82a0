//! Grants: an amount added to one tenant's hard limit on a resource, period and window,
//! from `effective_at` until it ends — its `expires_at`, or the instant it was revoked.
//!
//! A grant matches a limit of its own tenant with the same resource and span (as an
//! override does) and raises that limit's hard limit only: `warn_at` stays a fraction of
//! the quota. Several grants add up. A grant counts at `t` when
//! `effective_at <= t < ends_at`, so it stops counting exactly at its instant; what was
//! admitted under it stays counted (a grant changes the cap, never the usage).

use chrono::{DateTime, Utc};

use super::limit::{LimitDef, Span};

/// A grant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id in the admin API.
    pub id: i64,
    /// The tenant whose hard limit it raises.
    pub tenant: String,
    /// A stable name of the operator's choosing, unique per tenant (`tollgate apply`
    /// finds the grant by it).
    pub key: Option<String>,
    /// The resource of the limit it raises.
    pub resource: String,
    /// The span (period and window kind) of the limit it raises.
    pub span: Span,
    /// What it adds to the hard limit, more than 0.
    pub amount: u64,
    /// From when it counts.
    pub effective_at: DateTime<Utc>,
    /// Until when it was granted (it counts before this instant).
    pub expires_at: DateTime<Utc>,
    /// When it was ended early, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was granted (for billing and the audit log).
    pub reason: String,
    /// Why it was revoked, if it was and a reason was given.
    pub revoke_reason: Option<String>,
    /// Who granted it.
    pub created_by: Option<String>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Where a grant stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// Not counting yet: its `effective_at` is ahead.
    Scheduled,
    /// Counting.
    InForce,
    /// Ended at its `expires_at`.
    Expired,
    /// Ended early by a revocation.
    Revoked,
}

impl GrantState {
    /// The name in the API: `scheduled`, `in_force`, `expired` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Scheduled => "scheduled",
            GrantState::InForce => "in_force",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
        }
    }
}

impl Grant {
    /// The first instant it no longer counts: its expiry, or its revocation if earlier.
    pub fn ends_at(&self) -> DateTime<Utc> {
        self.revoked_at
            .map_or(self.expires_at, |revoked| revoked.min(self.expires_at))
    }

    /// Whether it counts at `now`: `effective_at <= now < ends_at`.
    pub fn in_force_at(&self, now: DateTime<Utc>) -> bool {
        self.effective_at <= now && now < self.ends_at()
    }

    /// Where it stands at `now`.
    pub fn state_at(&self, now: DateTime<Utc>) -> GrantState {
        if now >= self.ends_at() {
            if self.revoked_at.is_some_and(|at| at < self.expires_at) {
                GrantState::Revoked
            } else {
                GrantState::Expired
            }
        } else if now < self.effective_at {
            GrantState::Scheduled
        } else {
            GrantState::InForce
        }
    }

    /// Whether it raises `def`: the same resource and span.
    pub fn matches(&self, def: &LimitDef) -> bool {
        self.resource == def.resource && self.span == def.span
    }
}

/// What the grants in force add to one limit at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Granted {
    /// Their amounts summed (saturating: the cap is bounded by the counters anyway).
    pub amount: u64,
    /// The earliest end among them: the headroom they give lasts until then at most.
    /// `None` when no grant adds anything.
    pub until: Option<DateTime<Utc>>,
}

impl Granted {
    /// What `grants` add to `def` at `now`: the sum of those in force that match it.
    pub fn to(def: &LimitDef, grants: &[Grant], now: DateTime<Utc>) -> Granted {
        Granted::sum(
            grants
                .iter()
                .filter(|grant| grant.matches(def) && grant.in_force_at(now)),
        )
    }

    /// The sum of `grants`, taken as in force.
    pub fn sum<'a>(grants: impl IntoIterator<Item = &'a Grant>) -> Granted {
        grants
            .into_iter()
            .fold(Granted::default(), |sum, grant| Granted {
                amount: sum.amount.saturating_add(grant.amount),
                until: Some(
                    sum.until
                        .map_or(grant.ends_at(), |u| u.min(grant.ends_at())),
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use tollgate_protocol::{Limit, WarnAt};

    use super::*;
    use crate::model::window::{Period, Series, WindowKind};

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap() + Duration::seconds(seconds)
    }

    fn monthly(resource: &str) -> LimitDef {
        LimitDef {
            resource: resource.into(),
            span: Span::Window(Series::calendar(Period::Month)),
            limit: Limit {
                quota: 100,
                overage: 0,
                warn_at: WarnAt::DEFAULT,
                unlimited: false,
            },
        }
    }

    fn grant(id: i64, amount: u64, from: i64, until: i64) -> Grant {
        Grant {
            id,
            tenant: "acme".into(),
            key: None,
            resource: "requests".into(),
            span: Span::Window(Series::calendar(Period::Month)),
            amount,
            effective_at: at(from),
            expires_at: at(until),
            revoked_at: None,
            reason: "credit".into(),
            revoke_reason: None,
            created_by: None,
            revoked_by: None,
            created_at: at(from),
        }
    }

    #[test]
    fn a_grant_counts_from_its_start_until_just_before_its_end() {
        let g = grant(1, 50, 0, 60);
        let def = monthly("requests");
        let amount = |t| Granted::to(&def, std::slice::from_ref(&g), at(t)).amount;
        assert_eq!(amount(-1), 0, "before it starts");
        assert_eq!(amount(0), 50, "from its first instant");
        assert_eq!(amount(59), 50);
        let just_before = Granted::to(
            &def,
            std::slice::from_ref(&g),
            at(60) - Duration::nanoseconds(1),
        );
        assert_eq!(just_before.amount, 50, "a nanosecond before its end");
        assert_eq!(amount(60), 0, "not at its end");
        assert_eq!(amount(61), 0);
        assert_eq!(g.state_at(at(-1)), GrantState::Scheduled);
        assert_eq!(g.state_at(at(0)), GrantState::InForce);
        assert_eq!(g.state_at(at(60)), GrantState::Expired);
    }

    #[test]
    fn several_grants_add_up_and_last_until_the_first_of_them_ends() {
        let grants = [
            grant(1, 50, 0, 60),
            grant(2, 25, 10, 30),
            grant(3, 7, 0, 90),
        ];
        let def = monthly("requests");
        assert_eq!(
            Granted::to(&def, &grants, at(20)),
            Granted {
                amount: 82,
                until: Some(at(30))
            }
        );
        assert_eq!(
            Granted::to(&def, &grants, at(30)),
            Granted {
                amount: 57,
                until: Some(at(60))
            }
        );
        assert_eq!(Granted::to(&def, &grants, at(90)), Granted::default());
        let huge = [grant(1, u64::MAX, 0, 60), grant(2, u64::MAX, 0, 60)];
        assert_eq!(Granted::to(&def, &huge, at(1)).amount, u64::MAX);
    }

    #[test]
    fn a_grant_on_another_resource_period_or_window_adds_nothing() {
        let mut other_period = grant(1, 50, 0, 60);
        other_period.span = Span::Window(Series::calendar(Period::Day));
        let mut rolling = grant(2, 50, 0, 60);
        rolling.span = Span::Window(Series {
            period: Period::Month,
            kind: WindowKind::Rolling,
        });
        let mut bytes = grant(3, 50, 0, 60);
        bytes.resource = "request_bytes".into();
        let mut gauge = grant(4, 50, 0, 60);
        gauge.span = Span::Gauge;
        let grants = [other_period, rolling, bytes, gauge];
        assert_eq!(
            Granted::to(&monthly("requests"), &grants, at(1)),
            Granted::default()
        );
        assert_eq!(
            Granted::to(&monthly("request_bytes"), &grants, at(1)).amount,
            50
        );
    }

    #[test]
    fn a_revoked_grant_stops_counting_at_its_revocation() {
        let mut g = grant(1, 50, 0, 60);
        g.revoked_at = Some(at(20));
        assert_eq!(g.ends_at(), at(20));
        assert!(g.in_force_at(at(19)) && !g.in_force_at(at(20)));
        assert_eq!(g.state_at(at(20)), GrantState::Revoked);
        // Revoked after it had expired anyway: it expired.
        g.revoked_at = Some(at(70));
        assert_eq!(
            (g.ends_at(), g.state_at(at(80))),
            (at(60), GrantState::Expired)
        );
        // Revoked before it started: it never counts.
        g.revoked_at = Some(at(-5));
        assert!(!g.in_force_at(at(0)));
        assert_eq!(g.state_at(at(-5)), GrantState::Revoked);
    }
}
