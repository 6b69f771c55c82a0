//! The quota model as the control plane holds it in memory (SPEC §1): tiers and their
//! limits, tenants in a hierarchy, assignments of tiers to tenants, roles and everyone;
//! and the two cached shapes `/v1/check` decides from — the [`Catalog`] (every tier and
//! every assignment not tied to one tenant) and a tenant's [`Chain`] (it and its
//! ancestors).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use tollgate_protocol::Limit;

use crate::window::{Period, Series, WindowKind};

/// What a limit counts usage in: windows of a period, or a gauge of what is held now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Span {
    /// Usage per window (calendar or rolling).
    Window(Series),
    /// A gauge (`concurrent_requests`): acquired on check, given back on release.
    Gauge,
}

impl Span {
    /// The period, or `None` for a gauge.
    pub fn period(self) -> Option<Period> {
        match self {
            Span::Window(series) => Some(series.period),
            Span::Gauge => None,
        }
    }

    /// The window kind (`calendar` for gauges, which have none).
    pub fn window_kind(self) -> WindowKind {
        match self {
            Span::Window(series) => series.kind,
            Span::Gauge => WindowKind::Calendar,
        }
    }

    /// The period name as the API writes it: `month`, …, or `none` for a gauge.
    pub fn period_name(self) -> &'static str {
        self.period().map_or("none", Period::as_str)
    }

    /// The policy name clients see in headers (`monthly`, `rolling-hour`, `concurrent`).
    pub fn policy_name(self) -> String {
        match self {
            Span::Window(series) => series.policy_name(),
            Span::Gauge => "concurrent".to_string(),
        }
    }
}

/// One limit: what is limited, over which span, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitDef {
    /// The resource name (`requests`, `request_bytes`, or an operator-defined one).
    pub resource: String,
    /// The windows (or gauge) it counts in.
    pub span: Span,
    /// Quota, overage, warning threshold and the unlimited flag, as the decision needs.
    pub limit: Limit,
}

impl LimitDef {
    /// What a per-tenant override replaces: the tier limit on the same resource and span.
    pub fn slot(&self) -> (&str, Span) {
        (&self.resource, self.span)
    }
}

/// A stored limit with its id and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLimit {
    /// Its id in the admin API.
    pub id: i64,
    /// The tier it belongs to, or the tenant it overrides limits for.
    pub owner: LimitOwner,
    /// The limit.
    pub def: LimitDef,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Whose a limit is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitOwner {
    /// Part of a tier.
    Tier(String),
    /// A per-tenant override.
    Tenant(String),
}

/// A named bundle of limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// The tier name (`free`, `pro`, …).
    pub name: String,
    /// What it is for, for operators.
    pub description: String,
    /// Its limits, with their ids.
    pub limits: Vec<StoredLimit>,
    /// When the tier was created.
    pub created_at: DateTime<Utc>,
    /// When the tier last changed.
    pub updated_at: DateTime<Utc>,
}

/// How a tenant's own limits act (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Mode {
    /// Decide, count, reject past the hard limit.
    #[default]
    Enforce,
    /// Decide, count and warn, but never reject (log-only rollout).
    Shadow,
    /// Neither check nor count this tenant's own limits.
    Off,
}

impl Mode {
    /// The name in the API and in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
            Mode::Off => "off",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "enforce" => Ok(Mode::Enforce),
            "shadow" => Ok(Mode::Shadow),
            "off" => Ok(Mode::Off),
            other => Err(format!(
                "unknown mode {other:?}: expected enforce, shadow or off"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A ratio in parts per million, exact (`1_500_000` = 1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ppm(pub u64);

impl Ppm {
    /// One whole: no overcommit.
    pub const ONE: Ppm = Ppm(1_000_000);

    /// The ratio written as a decimal (`1.5`), rounded to a part per million once at the
    /// API boundary; `None` unless positive, finite and at most 1000.
    pub fn from_ratio(ratio: f64) -> Option<Ppm> {
        if !(ratio.is_finite() && ratio > 0.0 && ratio <= 1000.0) {
            return None;
        }
        let ppm = (ratio * 1_000_000.0).round() as u64;
        (ppm > 0).then_some(Ppm(ppm))
    }

    /// The ratio, for display only.
    pub fn ratio(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// The id the gateway sees.
    pub id: String,
    /// The parent in the tenant hierarchy.
    pub parent_id: Option<String>,
    /// The tenant's own tier: its base, which a direct assignment overrides.
    pub tier: Option<String>,
    /// How its own limits act.
    pub mode: Mode,
    /// How far its children's quotas may sum past its own.
    pub overcommit: Ppm,
    /// Free-form labels (a JSON object).
    pub labels: serde_json::Value,
    /// When the tenant was created.
    pub created_at: DateTime<Utc>,
    /// When the tenant last changed.
    pub updated_at: DateTime<Utc>,
}

/// Whom an assignment gives a tier to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// One tenant (priority 300).
    Tenant(String),
    /// Callers with a role (priority 200); roles come with the request.
    Role(String),
    /// Everyone without a better assignment (priority 100).
    Default,
}

impl Subject {
    /// The priority of assignments to this kind of subject.
    pub fn priority(&self) -> u16 {
        match self {
            Subject::Tenant(_) => 300,
            Subject::Role(_) => 200,
            Subject::Default => 100,
        }
    }

    /// The kind's name in the API and in PostgreSQL.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Tenant(_) => "tenant",
            Subject::Role(_) => "role",
            Subject::Default => "default",
        }
    }
}

/// A tier given to a subject, possibly only for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Its id.
    pub id: i64,
    /// The tier it gives.
    pub tier: String,
    /// To whom.
    pub subject: Subject,
    /// A disabled assignment is kept but ignored.
    pub enabled: bool,
    /// After this instant it is ignored (temporary overrides).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Assignment {
    /// Whether it applies at `now`: enabled and not expired.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.enabled && self.expires_at.is_none_or(|end| now < end)
    }
}

/// Every tier's limits and every assignment not tied to one tenant: small, loaded and
/// cached as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Tier name → its limits.
    pub tiers: HashMap<String, Vec<LimitDef>>,
    /// Role and default assignments.
    pub assignments: Vec<Assignment>,
}

/// One tenant of a chain, with what is tied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLevel {
    /// The tenant id.
    pub id: String,
    /// How its limits act.
    pub mode: Mode,
    /// Its own tier.
    pub tier: Option<String>,
    /// Assignments made directly to it.
    pub assignments: Vec<Assignment>,
    /// Its per-tenant limit overrides.
    pub overrides: Vec<LimitDef>,
}

/// A known tenant and its ancestors, the tenant first and the root last: every level a
/// request is counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The levels, at least one, at most [`MAX_DEPTH`].
    pub levels: Vec<ChainLevel>,
}

impl Chain {
    /// The root of the tree: the hash tag of every counter key of the chain, so that one
    /// tree lives on one Redis Cluster slot.
    pub fn root(&self) -> Option<&str> {
        self.levels.last().map(|level| level.id.as_str())
    }

    /// Whether `tenant` is one of the levels.
    pub fn contains(&self, tenant: &str) -> bool {
        self.levels.iter().any(|level| level.id == tenant)
    }
}

/// The deepest a tenant tree may be: organization → team → user → one more.
pub const MAX_DEPTH: usize = 4;

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn assignment_is_active_while_enabled_and_before_its_expiry() {
        let end = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let mut assignment = Assignment {
            id: 1,
            tier: "pro".into(),
            subject: Subject::Default,
            enabled: true,
            expires_at: Some(end),
            created_at: end,
            updated_at: end,
        };
        assert!(assignment.active_at(end - chrono::Duration::seconds(1)));
        assert!(!assignment.active_at(end));
        assignment.expires_at = None;
        assert!(assignment.active_at(end));
        assignment.enabled = false;
        assert!(!assignment.active_at(end));
    }

    #[test]
    fn overcommit_ratio_is_exact_parts_per_million_within_bounds() {
        assert_eq!(Ppm::from_ratio(1.5), Some(Ppm(1_500_000)));
        assert_eq!(Ppm::from_ratio(1.0), Some(Ppm::ONE));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1000.5, 1e-9] {
            assert_eq!(Ppm::from_ratio(bad), None, "{bad}");
        }
    }
}
