//! Limits: what is limited (a resource), over which span (windows of a period, or a
//! gauge of what is held now), and how much; and the tiers that bundle them.

use chrono::{DateTime, Utc};
use tollgate_protocol::Limit;

use super::window::{Period, Series, WindowKind};

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
