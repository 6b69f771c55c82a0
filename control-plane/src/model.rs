//! The quota model as the control plane holds it in memory: tiers with their limits,
//! tenants, and the resolved quota of one tenant that `/v1/check` decides against.

use chrono::{DateTime, Utc};
use tollgate_protocol::Limit;

use crate::window::Period;

/// One limit of a tier: what is limited, per which window, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitDef {
    /// The resource name (`requests`, `request_bytes`, or an operator-defined one).
    pub resource: String,
    /// The window the quota applies to.
    pub period: Period,
    /// Quota, overage, warning threshold and the unlimited flag, as the decision needs.
    pub limit: Limit,
}

/// A named bundle of limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// The tier name (`free`, `pro`, …).
    pub name: String,
    /// Its limits, at most one per (resource, period).
    pub limits: Vec<LimitDef>,
    /// When the tier was created.
    pub created_at: DateTime<Utc>,
    /// When the tier last changed.
    pub updated_at: DateTime<Utc>,
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// The id the gateway sees.
    pub id: String,
    /// The parent in the tenant hierarchy; stored, not yet enforced.
    pub parent_id: Option<String>,
    /// The tier whose limits apply.
    pub tier: String,
    /// Free-form labels (a JSON object).
    pub labels: serde_json::Value,
    /// When the tenant was created.
    pub created_at: DateTime<Utc>,
    /// When the tenant last changed.
    pub updated_at: DateTime<Utc>,
}

/// Everything `/v1/check` needs about one tenant, resolved once and cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantQuota {
    /// The tenant the amounts are counted against.
    pub tenant: String,
    /// The root of the tenant's tree: the hash tag of its counter keys, so one tree
    /// lives on one Redis Cluster slot. The tenant itself until hierarchy is enforced.
    pub root: String,
    /// The tier the limits come from.
    pub tier: String,
    /// The limits that apply.
    pub limits: Vec<LimitDef>,
}
