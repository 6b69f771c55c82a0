//! Which limits apply to a request: pure resolution over the cached [`Catalog`] and a
//! tenant's [`Chain`], at an instant and for the request's roles.
//!
//! For the requesting tenant the tier comes from, best first:
//! 1. an active assignment made directly to it (priority 300),
//! 2. its own tier (the base, also priority 300, which a direct assignment overrides),
//! 3. an active assignment to one of the request's roles (200),
//! 4. an active default assignment (100).
//!
//! Within one step a temporary assignment (with `expires_at`) beats a permanent one, and
//! a newer one an older one: a temporary override wins while it lasts, then what was
//! there before is back without anyone touching it.
//!
//! Ancestors (team, organization) are limited only by what is theirs — steps 1 and 2.
//! Roles and the default tier describe the caller: a default "free" tier must not cap a
//! whole organization.
//!
//! A level's limits are its tier's, with its per-tenant overrides replacing the tier's
//! limit on the same resource and span, and adding the others. Its grants in force at the
//! instant of the decision raise the hard limits they match ([`ResolvedLevel::granted`]);
//! a grant that ended, or has not begun, is left out here, so expiry is exact to the
//! instant whatever the cache holds.

use chrono::{DateTime, Utc};

use super::chain::{Catalog, Chain, ChainLevel};
use super::grant::{Grant, Granted};
use super::limit::LimitDef;
use super::tenant::{Assignment, Mode, Subject};

/// Where a level's tier came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An assignment (direct, role or default).
    Assignment {
        /// Its id.
        id: i64,
        /// `tenant`, `role` or `default`.
        kind: &'static str,
        /// The role it matched, for role assignments.
        role: Option<String>,
        /// Until when it applies.
        expires_at: Option<DateTime<Utc>>,
    },
    /// The tenant's own tier.
    OwnTier,
}

/// The tier that won for one level, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Winner {
    /// The tier.
    pub tier: String,
    /// The priority it won with.
    pub priority: u16,
    /// Where it came from.
    pub source: Source,
}

impl Winner {
    /// A sentence for operators: why this tier applies.
    pub fn reason(&self) -> String {
        match &self.source {
            Source::OwnTier => format!(
                "the tenant's own tier {} (priority 300; no active direct assignment overrides it)",
                self.tier
            ),
            Source::Assignment {
                id,
                kind,
                role,
                expires_at,
            } => {
                let whom = match (kind, role) {
                    (&"role", Some(role)) => format!("role {role:?} assignment"),
                    (&"tenant", _) => "direct assignment".to_string(),
                    _ => "default assignment".to_string(),
                };
                let until = expires_at.map_or_else(
                    || "permanent".to_string(),
                    |end| format!("temporary, until {}", end.to_rfc3339()),
                );
                format!(
                    "{whom} #{id} of tier {} (priority {}, {until})",
                    self.tier, self.priority
                )
            }
        }
    }
}

/// One level of a request's tenant chain, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLevel {
    /// The tenant at this level.
    pub tenant: String,
    /// How its limits act.
    pub mode: Mode,
    /// The tier that applies, if any.
    pub winner: Option<Winner>,
    /// The limits that apply: the tier's, with overrides.
    pub limits: Vec<LimitDef>,
    /// The level's grants in force at the instant it was resolved (most levels have
    /// none).
    pub grants: Vec<Grant>,
}

impl ResolvedLevel {
    /// What the level's grants in force add to `def`'s hard limit.
    pub fn granted(&self, def: &LimitDef) -> Granted {
        if self.grants.is_empty() {
            return Granted::default();
        }
        Granted::sum(self.grants.iter().filter(|grant| grant.matches(def)))
    }
}

/// Everything a request is decided against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The hash tag of every counter key: the root of the tenant's tree.
    pub root: String,
    /// The requesting tenant first, its root last.
    pub levels: Vec<ResolvedLevel>,
}

impl Resolved {
    /// The same chain with every level that counts in shadow mode: for a check that asks
    /// to be counted even past hard limits (the filter's log-only rollout), so a breach
    /// admits with `shadow_reject` instead of rejecting. `off` levels stay off: they are
    /// not counted either way.
    pub fn in_shadow(mut self) -> Resolved {
        for level in &mut self.levels {
            if level.mode == Mode::Enforce {
                level.mode = Mode::Shadow;
            }
        }
        self
    }
}

/// Resolves `tenant` (with its chain, `None` when it is not a known tenant) for a request
/// carrying `roles`, at `now`. `None` when the tenant is unknown and neither a role nor a
/// default assignment applies: nobody said what this tenant may use.
pub fn resolve(
    catalog: &Catalog,
    chain: Option<&Chain>,
    tenant: &str,
    roles: &[String],
    now: DateTime<Utc>,
) -> Option<Resolved> {
    let Some(chain) = chain.filter(|c| !c.levels.is_empty()) else {
        let winner = fallback_winner(catalog, roles, now)?;
        return Some(Resolved {
            root: tenant.to_string(),
            levels: vec![ResolvedLevel {
                tenant: tenant.to_string(),
                mode: Mode::Enforce,
                limits: tier_limits(catalog, &winner.tier).to_vec(),
                winner: Some(winner),
                grants: Vec::new(),
            }],
        });
    };
    let levels = chain
        .levels
        .iter()
        .enumerate()
        .map(|(depth, level)| {
            let roles = if depth == 0 { Some(roles) } else { None };
            resolve_level(catalog, level, roles, now)
        })
        .collect();
    Some(Resolved {
        root: chain.root().unwrap_or(tenant).to_string(),
        levels,
    })
}

/// Resolves one level. With `roles` (the requesting tenant), role and default
/// assignments apply after its own; without (an ancestor, or the overcommit check), only
/// what is the level's own.
pub fn resolve_level(
    catalog: &Catalog,
    level: &ChainLevel,
    roles: Option<&[String]>,
    now: DateTime<Utc>,
) -> ResolvedLevel {
    let winner = best(level.assignments.iter(), now)
        .or_else(|| {
            level.tier.as_ref().map(|tier| Winner {
                tier: tier.clone(),
                priority: 300,
                source: Source::OwnTier,
            })
        })
        .or_else(|| roles.and_then(|roles| fallback_winner(catalog, roles, now)));
    let base = winner
        .as_ref()
        .map_or(&[][..], |w| tier_limits(catalog, &w.tier));
    ResolvedLevel {
        tenant: level.id.clone(),
        mode: level.mode,
        limits: with_overrides(base, &level.overrides),
        winner,
        grants: level
            .grants
            .iter()
            .filter(|grant| grant.in_force_at(now))
            .cloned()
            .collect(),
    }
}

/// A tier's limits; none when the catalog does not (yet) know the tier.
fn tier_limits<'c>(catalog: &'c Catalog, tier: &str) -> &'c [LimitDef] {
    catalog.tiers.get(tier).map_or(&[], Vec::as_slice)
}

/// The best role assignment for `roles`, else the best default assignment.
fn fallback_winner(catalog: &Catalog, roles: &[String], now: DateTime<Utc>) -> Option<Winner> {
    let for_roles = catalog
        .assignments
        .iter()
        .filter(|a| matches!(&a.subject, Subject::Role(role) if roles.contains(role)));
    let defaults = catalog
        .assignments
        .iter()
        .filter(|a| a.subject == Subject::Default);
    best(for_roles, now).or_else(|| best(defaults, now))
}

/// The winning active assignment among candidates of one priority: temporary before
/// permanent, then newest.
fn best<'a>(
    candidates: impl Iterator<Item = &'a Assignment>,
    now: DateTime<Utc>,
) -> Option<Winner> {
    candidates
        .filter(|a| a.active_at(now))
        .max_by_key(|a| (a.expires_at.is_some(), a.id))
        .map(|a| Winner {
            tier: a.tier.clone(),
            priority: a.subject.priority(),
            source: Source::Assignment {
                id: a.id,
                kind: a.subject.kind(),
                role: match &a.subject {
                    Subject::Role(role) => Some(role.clone()),
                    _ => None,
                },
                expires_at: a.expires_at,
            },
        })
}

/// `base` with each override replacing the limit on the same resource and span, and the
/// other overrides added.
pub fn with_overrides(base: &[LimitDef], overrides: &[LimitDef]) -> Vec<LimitDef> {
    let mut limits: Vec<LimitDef> = base
        .iter()
        .filter(|limit| !overrides.iter().any(|o| o.slot() == limit.slot()))
        .cloned()
        .collect();
    limits.extend(overrides.iter().cloned());
    limits
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use tollgate_protocol::{Limit, WarnAt};

    use super::*;
    use crate::model::window::{Period, Series};
    use crate::model::Span;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap()
    }

    fn limit(resource: &str, period: Period, quota: u64) -> LimitDef {
        LimitDef {
            resource: resource.into(),
            span: Span::Window(Series::calendar(period)),
            limit: Limit {
                quota,
                overage: 0,
                warn_at: WarnAt::DEFAULT,
                unlimited: false,
            },
        }
    }

    fn assignment(id: i64, tier: &str, subject: Subject) -> Assignment {
        Assignment {
            id,
            tier: tier.into(),
            subject,
            enabled: true,
            expires_at: None,
            created_at: now(),
            updated_at: now(),
        }
    }

    fn catalog(assignments: Vec<Assignment>) -> Catalog {
        Catalog {
            tiers: [
                ("free", vec![limit("requests", Period::Minute, 10)]),
                ("pro", vec![limit("requests", Period::Minute, 100)]),
                ("beta", vec![limit("requests", Period::Minute, 500)]),
                ("enterprise", vec![limit("requests", Period::Minute, 1000)]),
            ]
            .into_iter()
            .map(|(name, limits)| (name.to_string(), limits))
            .collect(),
            assignments,
        }
    }

    fn level(id: &str, tier: Option<&str>, assignments: Vec<Assignment>) -> ChainLevel {
        ChainLevel {
            id: id.into(),
            mode: Mode::Enforce,
            tier: tier.map(str::to_string),
            assignments,
            overrides: vec![],
            grants: vec![],
        }
    }

    fn tier_of(resolved: &Resolved, depth: usize) -> Option<&str> {
        resolved.levels[depth]
            .winner
            .as_ref()
            .map(|w| w.tier.as_str())
    }

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn in_shadow_puts_every_counted_level_in_shadow_and_leaves_off_levels_off() {
        let mut off = level("org/off", Some("free"), vec![]);
        off.mode = Mode::Off;
        let chain = Chain {
            levels: vec![off, level("org", Some("pro"), vec![])],
        };
        let resolved = resolve(&catalog(vec![]), Some(&chain), "org/off", &[], now())
            .unwrap()
            .in_shadow();
        let modes: Vec<Mode> = resolved.levels.iter().map(|l| l.mode).collect();
        assert_eq!(modes, vec![Mode::Off, Mode::Shadow]);
    }

    #[test]
    fn direct_assignment_beats_own_tier_beats_role_beats_default() {
        let catalog = catalog(vec![
            assignment(1, "free", Subject::Default),
            assignment(2, "beta", Subject::Role("tester".into())),
        ]);
        let with_direct = Chain {
            levels: vec![level(
                "acme",
                Some("pro"),
                vec![assignment(3, "enterprise", Subject::Tenant("acme".into()))],
            )],
        };
        let tester = roles(&["tester"]);
        let resolved = resolve(&catalog, Some(&with_direct), "acme", &tester, now()).unwrap();
        assert_eq!(tier_of(&resolved, 0), Some("enterprise"));

        let own_tier = Chain {
            levels: vec![level("acme", Some("pro"), vec![])],
        };
        let resolved = resolve(&catalog, Some(&own_tier), "acme", &tester, now()).unwrap();
        assert_eq!(tier_of(&resolved, 0), Some("pro"));

        let bare = Chain {
            levels: vec![level("acme", None, vec![])],
        };
        let resolved = resolve(&catalog, Some(&bare), "acme", &tester, now()).unwrap();
        assert_eq!(tier_of(&resolved, 0), Some("beta"));
        assert_eq!(resolved.levels[0].winner.as_ref().unwrap().priority, 200);
        let resolved = resolve(&catalog, Some(&bare), "acme", &[], now()).unwrap();
        assert_eq!(tier_of(&resolved, 0), Some("free"));
        assert!(resolved.levels[0]
            .winner
            .as_ref()
            .unwrap()
            .reason()
            .contains("default assignment #1"));
    }

    #[test]
    fn expired_and_disabled_assignments_are_ignored() {
        let mut expired = assignment(5, "enterprise", Subject::Tenant("acme".into()));
        expired.expires_at = Some(now());
        let mut disabled = assignment(6, "enterprise", Subject::Tenant("acme".into()));
        disabled.enabled = false;
        let chain = Chain {
            levels: vec![level("acme", Some("pro"), vec![expired, disabled])],
        };
        let resolved = resolve(&catalog(vec![]), Some(&chain), "acme", &[], now()).unwrap();
        assert_eq!(tier_of(&resolved, 0), Some("pro"));
        let earlier = now() - Duration::seconds(1);
        let chain_before = Chain {
            levels: vec![level(
                "acme",
                Some("pro"),
                vec![{
                    let mut a = assignment(5, "enterprise", Subject::Tenant("acme".into()));
                    a.expires_at = Some(now());
                    a
                }],
            )],
        };
        let resolved = resolve(&catalog(vec![]), Some(&chain_before), "acme", &[], earlier);
        assert_eq!(tier_of(&resolved.unwrap(), 0), Some("enterprise"));
    }

    #[test]
    fn temporary_assignment_beats_a_newer_permanent_one_then_newest_wins() {
        let mut temporary = assignment(1, "enterprise", Subject::Tenant("acme".into()));
        temporary.expires_at = Some(now() + Duration::days(3));
        let permanent = assignment(2, "pro", Subject::Tenant("acme".into()));
        let chain = Chain {
            levels: vec![level("acme", None, vec![temporary, permanent.clone()])],
        };
        let resolved = resolve(&catalog(vec![]), Some(&chain), "acme", &[], now()).unwrap();
        assert_eq!(tier_of(&resolved, 0), Some("enterprise"));

        let newer = assignment(3, "beta", Subject::Tenant("acme".into()));
        let chain = Chain {
            levels: vec![level("acme", None, vec![permanent, newer])],
        };
        let resolved = resolve(&catalog(vec![]), Some(&chain), "acme", &[], now()).unwrap();
        assert_eq!(tier_of(&resolved, 0), Some("beta"));
    }

    #[test]
    fn ancestors_get_neither_roles_nor_the_default_tier() {
        let catalog = catalog(vec![
            assignment(1, "free", Subject::Default),
            assignment(2, "beta", Subject::Role("tester".into())),
        ]);
        let chain = Chain {
            levels: vec![
                level("acme/research/alice", None, vec![]),
                level("acme/research", None, vec![]),
                level("acme", Some("enterprise"), vec![]),
            ],
        };
        let resolved = resolve(&catalog, Some(&chain), "x", &roles(&["tester"]), now()).unwrap();
        assert_eq!(resolved.root, "acme");
        assert_eq!(tier_of(&resolved, 0), Some("beta"));
        assert_eq!(tier_of(&resolved, 1), None);
        assert!(resolved.levels[1].limits.is_empty());
        assert_eq!(tier_of(&resolved, 2), Some("enterprise"));
    }

    #[test]
    fn unknown_tenant_is_decided_by_role_or_default_and_is_its_own_root() {
        let none = resolve(&catalog(vec![]), None, "stranger", &[], now());
        assert_eq!(none, None);
        let catalog = catalog(vec![assignment(1, "free", Subject::Default)]);
        let resolved = resolve(&catalog, None, "stranger", &[], now()).unwrap();
        assert_eq!(resolved.root, "stranger");
        assert_eq!(tier_of(&resolved, 0), Some("free"));
        assert_eq!(resolved.levels[0].limits[0].limit.quota, 10);
    }

    #[test]
    fn overrides_replace_the_same_slot_and_add_new_ones() {
        let mut chain_level = level("acme", Some("pro"), vec![]);
        chain_level.overrides = vec![
            limit("requests", Period::Minute, 7),
            limit("request_bytes", Period::Month, 99),
        ];
        let chain = Chain {
            levels: vec![chain_level],
        };
        let resolved = resolve(&catalog(vec![]), Some(&chain), "acme", &[], now()).unwrap();
        let limits = &resolved.levels[0].limits;
        assert_eq!(limits.len(), 2);
        assert!(limits
            .iter()
            .any(|l| l.resource == "requests" && l.limit.quota == 7));
        assert!(limits
            .iter()
            .any(|l| l.resource == "request_bytes" && l.limit.quota == 99));
    }

    fn grant(id: i64, period: Period, amount: u64, from: i64, until: i64) -> Grant {
        Grant {
            id,
            tenant: "acme".into(),
            key: None,
            resource: "requests".into(),
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

    #[test]
    fn each_limit_gets_the_grants_in_force_at_the_instant_of_resolution() {
        let mut org = level("acme", Some("pro"), vec![]);
        org.grants = vec![
            grant(1, Period::Minute, 40, -60, 30),
            grant(2, Period::Minute, 2, 0, 60),
            grant(3, Period::Minute, 1_000, 120, 180),
            grant(4, Period::Hour, 5, -60, 600),
        ];
        let alone = Chain {
            levels: vec![org.clone()],
        };
        let chain = Chain {
            levels: vec![level("acme/web", Some("pro"), vec![]), org],
        };
        let granted_at = |seconds: i64| {
            let at = now() + Duration::seconds(seconds);
            let resolved = resolve(&catalog(vec![]), Some(&chain), "acme/web", &[], at).unwrap();
            let def = &resolved.levels[1].limits[0];
            assert_eq!(
                resolved.levels[0].granted(&resolved.levels[0].limits[0]),
                Granted::default(),
                "a grant raises its own tenant's limits only"
            );
            resolved.levels[1].granted(def)
        };
        let plus = |amount, until: i64| Granted {
            amount,
            until: Some(now() + Duration::seconds(until)),
        };
        assert_eq!(granted_at(-1), plus(40, 30), "before grant 2 starts");
        assert_eq!(granted_at(0), plus(42, 30), "two in force add up");
        let just_before = resolve(
            &catalog(vec![]),
            Some(&alone),
            "acme",
            &[],
            now() + Duration::seconds(30) - Duration::milliseconds(1),
        )
        .unwrap();
        let def = &just_before.levels[0].limits[0];
        assert_eq!(just_before.levels[0].granted(def).amount, 42, "1 ms before");
        assert_eq!(granted_at(30), plus(2, 60), "grant 1 ends at its instant");
        assert_eq!(granted_at(31), plus(2, 60));
        assert_eq!(granted_at(60), Granted::default(), "and grant 2 at its own");
        assert_eq!(granted_at(150), plus(1_000, 180), "a later one in its time");
        // The hour grant (4) matches no limit of the pro tier: it adds to nothing.
        let resolved = resolve(&catalog(vec![]), Some(&alone), "acme", &[], now()).unwrap();
        assert_eq!(
            resolved.levels[0].grants.len(),
            3,
            "1, 2 and 4 are in force"
        );
        let pro_minute = &resolved.levels[0].limits[0];
        assert_eq!(resolved.levels[0].granted(pro_minute).amount, 42);
    }
}
