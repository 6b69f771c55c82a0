//! What the server has now: every tier, tenant, override limit, assignment and webhook
//! subscription, read through the admin API's listings.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::grants::CurrentGrant;
use super::spec::{AssignmentSpec, TenantSpec, TierSpec};
use super::webhooks::{self, WebhookSpec};
use crate::cli::client::Client;
use crate::cli::error::CliError;
use crate::cli::limit::LimitSpec;
use crate::model::{Ppm, Subject};

/// The server's quota definitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Current {
    /// Every tier.
    pub tiers: Vec<TierSpec>,
    /// Every tenant.
    pub tenants: Vec<TenantSpec>,
    /// Every per-tenant override.
    pub overrides: Vec<CurrentOverride>,
    /// Every assignment.
    pub assignments: Vec<CurrentAssignment>,
    /// Every webhook subscription.
    pub webhooks: Vec<WebhookSpec>,
    /// The grants of the file's tenants that can change (read apart: see
    /// [`super::grants::fetch`]).
    pub grants: Vec<CurrentGrant>,
}

/// A per-tenant override on the server.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentOverride {
    /// Its id, which its update and deletion name.
    pub id: i64,
    /// Whose.
    pub tenant: String,
    /// The limit.
    pub limit: LimitSpec,
}

/// An assignment on the server.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentAssignment {
    /// Its id, which its update and deletion name.
    pub id: i64,
    /// What it says.
    pub spec: AssignmentSpec,
}

#[derive(Debug, Deserialize)]
struct TierView {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    limits: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct TenantView {
    id: String,
    parent_id: Option<String>,
    tier: Option<String>,
    mode: String,
    overcommit: f64,
    #[serde(default)]
    labels: Value,
}

#[derive(Debug, Deserialize)]
struct AssignmentView {
    id: i64,
    tier: String,
    kind: String,
    tenant: Option<String>,
    role: Option<String>,
    enabled: bool,
    expires_at: Option<DateTime<Utc>>,
}

fn decode<T: DeserializeOwned>(what: &str, item: &Value) -> Result<T, String> {
    T::deserialize(item)
        .map_err(|e| format!("the server answered a {what} the CLI cannot read: {e}"))
}

/// The state the four listings describe (`limits` holds tier limits too; only
/// overrides are kept from it).
pub fn from_listings(
    tiers: &[Value],
    tenants: &[Value],
    limits: &[Value],
    assignments: &[Value],
) -> Result<Current, String> {
    let mut current = Current::default();
    for item in tiers {
        let view: TierView = decode("tier", item)?;
        current.tiers.push(TierSpec {
            name: view.name,
            description: view.description,
            limits: view
                .limits
                .iter()
                .map(LimitSpec::from_view)
                .collect::<Result<_, _>>()?,
        });
    }
    for item in tenants {
        let view: TenantView = decode("tenant", item)?;
        current.tenants.push(TenantSpec {
            mode: view.mode.parse()?,
            overcommit: Ppm::from_ratio(view.overcommit)
                .ok_or_else(|| format!("tenant {}: overcommit {}", view.id, view.overcommit))?,
            id: view.id,
            parent: view.parent_id,
            tier: view.tier,
            labels: view.labels,
        });
    }
    for item in limits {
        let Some(tenant) = item.get("tenant").and_then(Value::as_str) else {
            continue;
        };
        let id = item
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("a limit without an id: {item}"))?;
        current.overrides.push(CurrentOverride {
            id,
            tenant: tenant.to_string(),
            limit: LimitSpec::from_view(item)?,
        });
    }
    for item in assignments {
        let view: AssignmentView = decode("assignment", item)?;
        let subject = match (view.kind.as_str(), view.tenant, view.role) {
            ("tenant", Some(tenant), _) => Subject::Tenant(tenant),
            ("role", _, Some(role)) => Subject::Role(role),
            ("default", _, _) => Subject::Default,
            (kind, _, _) => return Err(format!("assignment {}: kind {kind:?}", view.id)),
        };
        current.assignments.push(CurrentAssignment {
            id: view.id,
            spec: AssignmentSpec {
                subject,
                tier: view.tier,
                enabled: view.enabled,
                expires_at: view.expires_at,
            },
        });
    }
    Ok(current)
}

/// Reads the server's whole state.
pub async fn fetch(client: &Client) -> Result<Current, CliError> {
    let (tiers, tenants, limits, assignments, hooks) = tokio::try_join!(
        client.list("/tiers", &[], None),
        client.list("/tenants", &[], None),
        client.list("/limits", &[], None),
        client.list("/assignments", &[], None),
        client.list("/webhooks", &[], None),
    )?;
    let mut current = from_listings(
        &tiers.items,
        &tenants.items,
        &limits.items,
        &assignments.items,
    )
    .map_err(CliError::Transport)?;
    current.webhooks = (hooks.items.iter())
        .map(webhooks::from_view)
        .collect::<Result<_, _>>()
        .map_err(CliError::Transport)?;
    Ok(current)
}
