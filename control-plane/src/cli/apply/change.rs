//! One change `apply` makes: its diff line (`~ tier pro: …`) and the one admin API
//! request that makes it.

use std::fmt;

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::grants::GrantChange;
use super::request::{instant, Request};
use super::spec::{AssignmentSpec, TenantSpec, TierSpec};
use super::webhooks::WebhookChange;
use crate::cli::client::segment;
use crate::cli::error::CliError;
use crate::cli::limit::LimitSpec;
use crate::model::{Ppm, Subject};

/// What a change does to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `+`
    Create,
    /// `~`
    Change,
    /// `-`
    Delete,
}

/// One change, in the order `apply` makes them.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new tier with its limits.
    CreateTier(TierSpec),
    /// A tier's description and/or whole set of limits replaced.
    UpdateTier {
        /// The tier.
        name: String,
        /// The new description, when it changes.
        description: Option<String>,
        /// The complete new set of limits, when any of them changes.
        limits: Option<Vec<LimitSpec>>,
        /// What changes, for the diff line.
        details: Vec<String>,
    },
    /// A tier no longer in the file (`--prune`).
    DeleteTier {
        /// The tier.
        name: String,
    },
    /// A new tenant (without its overrides, which follow as their own changes).
    CreateTenant(TenantSpec),
    /// Changed fields of a tenant.
    UpdateTenant {
        /// The tenant.
        id: String,
        /// The PATCH body: only what changes.
        patch: Map<String, Value>,
        /// What changes, for the diff line.
        details: Vec<String>,
    },
    /// A tenant no longer in the file (`--prune`); the server deletes its overrides and
    /// direct assignments with it.
    DeleteTenant {
        /// The tenant.
        id: String,
    },
    /// A new per-tenant override.
    CreateOverride {
        /// Whose.
        tenant: String,
        /// The limit.
        limit: LimitSpec,
    },
    /// An override whose quota, overage, warning threshold or flag changes.
    UpdateOverride {
        /// Its id.
        id: i64,
        /// Whose.
        tenant: String,
        /// The limit as it becomes.
        limit: LimitSpec,
        /// What changes, for the diff line.
        details: Vec<String>,
    },
    /// An override no longer in its tenant's `limits`.
    DeleteOverride {
        /// Its id.
        id: i64,
        /// Whose.
        tenant: String,
        /// The limit as it was.
        limit: LimitSpec,
    },
    /// A new assignment.
    CreateAssignment(AssignmentSpec),
    /// An assignment whose enabled flag or expiry changes.
    UpdateAssignment {
        /// Its id.
        id: i64,
        /// The assignment as it becomes.
        assignment: AssignmentSpec,
        /// What changes, for the diff line.
        details: Vec<String>,
    },
    /// A grant created, or revoked (`--prune`).
    Grant(GrantChange),
    /// An assignment no longer in the file (`--prune`).
    DeleteAssignment {
        /// Its id.
        id: i64,
        /// To whom it gave its tier.
        subject: Subject,
        /// The tier.
        tier: String,
    },
    /// A webhook subscription created, changed or deleted.
    Webhook(WebhookChange),
}

/// `tenant acme`, `role beta`, `default`.
pub fn subject_text(subject: &Subject) -> String {
    match subject {
        Subject::Tenant(tenant) => format!("tenant {tenant}"),
        Subject::Role(role) => format!("role {role}"),
        Subject::Default => "default".to_string(),
    }
}

fn limits_text(limits: &[LimitSpec]) -> String {
    limits
        .iter()
        .map(|l| format!("{} {}", l.key_text(), l.summary()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Change {
    /// Whether it creates, changes or deletes.
    pub fn op(&self) -> Op {
        match self {
            Change::CreateTier(_)
            | Change::CreateTenant(_)
            | Change::CreateOverride { .. }
            | Change::CreateAssignment(_)
            | Change::Grant(GrantChange::Create(_)) => Op::Create,
            Change::UpdateTier { .. }
            | Change::UpdateTenant { .. }
            | Change::UpdateOverride { .. }
            | Change::UpdateAssignment { .. } => Op::Change,
            Change::DeleteTier { .. }
            | Change::DeleteTenant { .. }
            | Change::DeleteOverride { .. }
            | Change::DeleteAssignment { .. }
            | Change::Grant(GrantChange::Revoke { .. }) => Op::Delete,
            Change::Webhook(WebhookChange::Create(_)) => Op::Create,
            Change::Webhook(WebhookChange::Update { .. }) => Op::Change,
            Change::Webhook(WebhookChange::Delete { .. }) => Op::Delete,
        }
    }

    /// `tier`, `tenant`, `override` or `assignment`.
    pub fn object(&self) -> &'static str {
        match self {
            Change::CreateTier(_) | Change::UpdateTier { .. } | Change::DeleteTier { .. } => "tier",
            Change::CreateTenant(_) | Change::UpdateTenant { .. } | Change::DeleteTenant { .. } => {
                "tenant"
            }
            Change::CreateOverride { .. }
            | Change::UpdateOverride { .. }
            | Change::DeleteOverride { .. } => "override",
            Change::CreateAssignment(_)
            | Change::UpdateAssignment { .. }
            | Change::DeleteAssignment { .. } => "assignment",
            Change::Webhook(_) => "webhook",
            Change::Grant(_) => "grant",
        }
    }

    /// The request that makes this change.
    pub fn request(&self) -> Result<Request, CliError> {
        let request = |method, path: String, body| Request { method, path, body };
        Ok(match self {
            Change::CreateTier(tier) => request(
                Method::POST,
                "/tiers".into(),
                Some(json!({
                    "name": tier.name,
                    "description": tier.description,
                    "limits": tier.limits.iter().map(LimitSpec::to_input).collect::<Vec<_>>(),
                })),
            ),
            Change::UpdateTier {
                name,
                description,
                limits,
                ..
            } => {
                let mut body = Map::new();
                if let Some(description) = description {
                    body.insert("description".into(), json!(description));
                }
                if let Some(limits) = limits {
                    let inputs: Vec<Value> = limits.iter().map(LimitSpec::to_input).collect();
                    body.insert("limits".into(), Value::Array(inputs));
                }
                request(
                    Method::PATCH,
                    format!("/tiers/{}", segment(name)?),
                    Some(Value::Object(body)),
                )
            }
            Change::DeleteTier { name } => {
                request(Method::DELETE, format!("/tiers/{}", segment(name)?), None)
            }
            Change::CreateTenant(tenant) => request(
                Method::POST,
                "/tenants".into(),
                Some(json!({
                    "id": tenant.id,
                    "parent_id": tenant.parent,
                    "tier": tenant.tier,
                    "mode": tenant.mode.as_str(),
                    "overcommit": tenant.overcommit.ratio(),
                    "labels": tenant.labels,
                })),
            ),
            Change::UpdateTenant { id, patch, .. } => request(
                Method::PATCH,
                format!("/tenants/{}", segment(id)?),
                Some(Value::Object(patch.clone())),
            ),
            Change::DeleteTenant { id } => {
                request(Method::DELETE, format!("/tenants/{}", segment(id)?), None)
            }
            Change::CreateOverride { tenant, limit } => {
                let mut body = limit.to_input();
                if let Some(object) = body.as_object_mut() {
                    object.insert("tenant".into(), json!(tenant));
                }
                request(Method::POST, "/limits".into(), Some(body))
            }
            Change::UpdateOverride { id, limit, .. } => request(
                Method::PATCH,
                format!("/limits/{id}"),
                Some(json!({
                    "quota": limit.quota,
                    "overage": limit.overage,
                    "warn_at": limit.warn_at.fraction(),
                    "unlimited": limit.unlimited,
                })),
            ),
            Change::DeleteOverride { id, .. } => {
                request(Method::DELETE, format!("/limits/{id}"), None)
            }
            Change::CreateAssignment(assignment) => {
                let mut body = Map::new();
                body.insert("tier".into(), json!(assignment.tier));
                match &assignment.subject {
                    Subject::Tenant(tenant) => body.insert("tenant".into(), json!(tenant)),
                    Subject::Role(role) => body.insert("role".into(), json!(role)),
                    Subject::Default => body.insert("default".into(), json!(true)),
                };
                body.insert("enabled".into(), json!(assignment.enabled));
                body.insert("expires_at".into(), json!(assignment.expires_at));
                request(
                    Method::POST,
                    "/assignments".into(),
                    Some(Value::Object(body)),
                )
            }
            Change::UpdateAssignment { id, assignment, .. } => request(
                Method::PATCH,
                format!("/assignments/{id}"),
                Some(json!({
                    "enabled": assignment.enabled,
                    "expires_at": assignment.expires_at,
                })),
            ),
            Change::DeleteAssignment { id, .. } => {
                request(Method::DELETE, format!("/assignments/{id}"), None)
            }
            Change::Webhook(change) => change.request()?,
            Change::Grant(grant) => grant.request()?,
        })
    }

    /// The change as JSON, for `apply --json`.
    pub fn to_json(&self) -> Value {
        let op = match self.op() {
            Op::Create => "create",
            Op::Change => "change",
            Op::Delete => "delete",
        };
        json!({"op": op, "object": self.object(), "line": self.to_string()})
    }
}

fn tenant_extras(tenant: &TenantSpec) -> Vec<String> {
    let mut extras = Vec::new();
    if let Some(parent) = &tenant.parent {
        extras.push(format!("parent {parent}"));
    }
    if let Some(tier) = &tenant.tier {
        extras.push(format!("tier {tier}"));
    }
    if tenant.mode != Default::default() {
        extras.push(format!("mode {}", tenant.mode));
    }
    if tenant.overcommit != Ppm::ONE {
        extras.push(format!("overcommit {}", tenant.overcommit.ratio()));
    }
    if tenant.labels.as_object().is_some_and(|l| !l.is_empty()) {
        extras.push(format!("labels {}", tenant.labels));
    }
    extras
}

fn assignment_extras(assignment: &AssignmentSpec) -> Vec<String> {
    let mut extras = Vec::new();
    if !assignment.enabled {
        extras.push("disabled".to_string());
    }
    if assignment.expires_at.is_some() {
        extras.push(format!("until {}", instant(assignment.expires_at)));
    }
    extras
}

fn with_extras(f: &mut fmt::Formatter<'_>, extras: &[String]) -> fmt::Result {
    if extras.is_empty() {
        Ok(())
    } else {
        write!(f, " ({})", extras.join(", "))
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateTier(tier) => {
                write!(f, "+ tier {}", tier.name)?;
                if !tier.limits.is_empty() {
                    write!(f, " (limits: {})", limits_text(&tier.limits))?;
                }
                Ok(())
            }
            Change::UpdateTier { name, details, .. } => {
                write!(f, "~ tier {name}: {}", details.join("; "))
            }
            Change::DeleteTier { name } => write!(f, "- tier {name}"),
            Change::CreateTenant(tenant) => {
                write!(f, "+ tenant {}", tenant.id)?;
                with_extras(f, &tenant_extras(tenant))
            }
            Change::UpdateTenant { id, details, .. } => {
                write!(f, "~ tenant {id}: {}", details.join(", "))
            }
            Change::DeleteTenant { id } => write!(f, "- tenant {id}"),
            Change::CreateOverride { tenant, limit } => write!(
                f,
                "+ override {tenant} {} {}",
                limit.key_text(),
                limit.summary()
            ),
            Change::UpdateOverride {
                tenant,
                limit,
                details,
                ..
            } => write!(
                f,
                "~ override {tenant} {}: {}",
                limit.key_text(),
                details.join(", ")
            ),
            Change::DeleteOverride { tenant, limit, .. } => {
                write!(f, "- override {tenant} {}", limit.key_text())
            }
            Change::CreateAssignment(assignment) => {
                write!(
                    f,
                    "+ assignment {} -> {}",
                    subject_text(&assignment.subject),
                    assignment.tier
                )?;
                with_extras(f, &assignment_extras(assignment))
            }
            Change::UpdateAssignment {
                assignment,
                details,
                ..
            } => write!(
                f,
                "~ assignment {} -> {}: {}",
                subject_text(&assignment.subject),
                assignment.tier,
                details.join(", ")
            ),
            Change::DeleteAssignment { subject, tier, .. } => {
                write!(f, "- assignment {} -> {tier}", subject_text(subject))
            }
            Change::Webhook(change) => f.write_str(&change.line()),
            Change::Grant(grant) => grant.fmt(f),
        }
    }
}

/// `N to create, M to change, K to delete`, or `no changes`.
pub fn summary(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes".to_string();
    }
    let count = |op| changes.iter().filter(|c| c.op() == op).count();
    format!(
        "{} to create, {} to change, {} to delete",
        count(Op::Create),
        count(Op::Change),
        count(Op::Delete)
    )
}
