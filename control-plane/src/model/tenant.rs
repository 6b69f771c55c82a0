//! Tenants in a hierarchy, how their limits act (mode), and the assignments that give
//! them, their roles or everyone a tier.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// How a tenant's own limits act.
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
