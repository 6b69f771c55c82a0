//! The admin API's JSON shapes of the model's objects: what every endpoint answers, and
//! what the audit log records as a change's before and after, so both always agree.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_protocol::WarnAt;
use utoipa::ToSchema;

use super::grant::Grant;
use super::limit::{LimitDef, LimitOwner, StoredLimit, Tier};
use super::tenant::{Assignment, Subject, Tenant};

/// A limit, on a tier or as a per-tenant override.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LimitView {
    /// Its id.
    pub id: i64,
    /// The tier it belongs to (absent for overrides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The tenant it overrides limits for (absent for tier limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The limit itself.
    #[serde(flatten)]
    pub spec: LimitSpec,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a limit says, as operators write it and as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// The resource (`requests`, `request_bytes`, `response_bytes`,
    /// `concurrent_requests`, or 1–64 characters of `a-z 0-9 _ . -`).
    pub resource: String,
    /// `second`, `minute`, `hour`, `day`, `week`, `month`, or `none` for a gauge.
    pub period: String,
    /// `calendar` (UTC-aligned windows, the default) or `rolling` (the trailing period,
    /// a minute or longer).
    #[serde(default = "calendar")]
    pub window: String,
    /// The included amount per window.
    pub quota: u64,
    /// How far past the quota usage may go, with a warning (default 0).
    #[serde(default)]
    pub overage: u64,
    /// The fraction of the quota from which the status is a warning (default 0.8).
    #[serde(default = "default_warn_at")]
    pub warn_at: f64,
    /// Always allow; still count (default false).
    #[serde(default)]
    pub unlimited: bool,
}

fn calendar() -> String {
    "calendar".into()
}

fn default_warn_at() -> f64 {
    WarnAt::DEFAULT.fraction()
}

impl From<&LimitDef> for LimitSpec {
    fn from(def: &LimitDef) -> LimitSpec {
        LimitSpec {
            resource: def.resource.clone(),
            period: def.span.period_name().to_string(),
            window: def.span.window_kind().to_string(),
            quota: def.limit.quota,
            overage: def.limit.overage,
            warn_at: def.limit.warn_at.fraction(),
            unlimited: def.limit.unlimited,
        }
    }
}

impl From<&StoredLimit> for LimitView {
    fn from(limit: &StoredLimit) -> LimitView {
        let (tier, tenant) = match &limit.owner {
            LimitOwner::Tier(tier) => (Some(tier.clone()), None),
            LimitOwner::Tenant(tenant) => (None, Some(tenant.clone())),
        };
        LimitView {
            id: limit.id,
            tier,
            tenant,
            spec: LimitSpec::from(&limit.def),
            created_at: limit.created_at,
            updated_at: limit.updated_at,
        }
    }
}

/// A tier with its limits.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TierView {
    /// The tier name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its limits.
    pub limits: Vec<LimitView>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Tier> for TierView {
    fn from(tier: &Tier) -> TierView {
        TierView {
            name: tier.name.clone(),
            description: tier.description.clone(),
            limits: tier.limits.iter().map(LimitView::from).collect(),
            created_at: tier.created_at,
            updated_at: tier.updated_at,
        }
    }
}

/// A tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantView {
    /// The id the gateway sees.
    pub id: String,
    /// Its parent in the hierarchy.
    pub parent_id: Option<String>,
    /// Its own tier (a direct assignment overrides it).
    pub tier: Option<String>,
    /// `enforce`, `shadow` or `off`.
    pub mode: String,
    /// How far its children's quotas may sum past its own (1 = not at all).
    pub overcommit: f64,
    /// Free-form labels.
    #[schema(value_type = Object)]
    pub labels: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> TenantView {
        TenantView {
            id: t.id.clone(),
            parent_id: t.parent_id.clone(),
            tier: t.tier.clone(),
            mode: t.mode.to_string(),
            overcommit: t.overcommit.ratio(),
            labels: t.labels.clone(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A tier given to a tenant, to a role, or to everyone.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssignmentView {
    /// Its id.
    pub id: i64,
    /// The tier it gives.
    pub tier: String,
    /// `tenant`, `role` or `default`.
    pub kind: String,
    /// The tenant, for direct assignments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The role, for role assignments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// 300 direct, 200 role, 100 default.
    pub priority: u16,
    /// Disabled assignments are kept but ignored.
    pub enabled: bool,
    /// After this instant it is ignored.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Assignment> for AssignmentView {
    fn from(a: &Assignment) -> AssignmentView {
        let (tenant, role) = match &a.subject {
            Subject::Tenant(t) => (Some(t.clone()), None),
            Subject::Role(r) => (None, Some(r.clone())),
            Subject::Default => (None, None),
        };
        AssignmentView {
            id: a.id,
            tier: a.tier.clone(),
            kind: a.subject.kind().to_string(),
            tenant,
            role,
            priority: a.subject.priority(),
            enabled: a.enabled,
            expires_at: a.expires_at,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A grant: an amount added to one tenant's hard limit for a while, and where it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GrantView {
    /// Its id.
    pub id: i64,
    /// The tenant whose hard limit it raises.
    pub tenant: String,
    /// Its stable name, if it was given one (unique per tenant).
    pub key: Option<String>,
    /// The resource of the limit it raises.
    pub resource: String,
    /// The period of the limit it raises (`none`: a gauge).
    pub period: String,
    /// `calendar` or `rolling`: the window of the limit it raises.
    pub window: String,
    /// What it adds to that limit's hard limit (quota + overage).
    pub amount: u64,
    /// From when it counts.
    pub effective_at: DateTime<Utc>,
    /// Until when it was granted: it counts before this instant.
    pub expires_at: DateTime<Utc>,
    /// When it was ended early (revoked), if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it stops (or stopped) counting: `expires_at`, or `revoked_at` if earlier.
    pub ends_at: DateTime<Utc>,
    /// `scheduled`, `in_force`, `expired` or `revoked`, at the time of the answer.
    pub state: String,
    /// Why it was granted.
    pub reason: String,
    /// Why it was revoked, if a reason was given.
    pub revoke_reason: Option<String>,
    /// Who granted it (the actor of the audit log).
    pub created_by: Option<String>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl GrantView {
    /// `grant` as it stands at `now`.
    pub fn at(grant: &Grant, now: DateTime<Utc>) -> GrantView {
        GrantView {
            id: grant.id,
            tenant: grant.tenant.clone(),
            key: grant.key.clone(),
            resource: grant.resource.clone(),
            period: grant.span.period_name().to_string(),
            window: grant.span.window_kind().to_string(),
            amount: grant.amount,
            effective_at: grant.effective_at,
            expires_at: grant.expires_at,
            revoked_at: grant.revoked_at,
            ends_at: grant.ends_at(),
            state: grant.state_at(now).as_str().to_string(),
            reason: grant.reason.clone(),
            revoke_reason: grant.revoke_reason.clone(),
            created_by: grant.created_by.clone(),
            revoked_by: grant.revoked_by.clone(),
            created_at: grant.created_at,
        }
    }
}

/// An object as JSON for the audit log.
pub fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
