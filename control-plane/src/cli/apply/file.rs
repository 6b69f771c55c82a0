//! The declarative file of `tollgate apply` (see `quotas.example.yaml`): parsed with
//! unknown fields refused, then checked on its own — names, limits, duplicates, the
//! tenant tree — before anything is sent. Every error names its path
//! (`tiers[1].limits[0].period`).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tollgate_protocol::WarnAt;

use super::grants::{self, GrantEntry, GrantSpec};
use super::spec::{AssignmentSpec, TenantSpec, TierSpec};
use super::webhooks::{self, DesiredWebhook, WebhookEntry};
use crate::cli::limit::{LimitKey, LimitSpec, RawLimit};
use crate::model::names::{
    is_valid_role, is_valid_tenant_id, is_valid_tier_name, TENANT_RULE, TIER_RULE,
};
use crate::model::{Mode, Ppm, Subject};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaFile {
    #[serde(default)]
    tiers: Vec<TierEntry>,
    #[serde(default)]
    tenants: Vec<TenantEntry>,
    #[serde(default)]
    assignments: Vec<AssignmentEntry>,
    #[serde(default)]
    webhooks: Vec<WebhookEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierEntry {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    limits: Vec<LimitEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitEntry {
    resource: String,
    period: String,
    #[serde(default = "calendar")]
    window: String,
    quota: u64,
    #[serde(default)]
    overage: u64,
    #[serde(default = "default_warn_at")]
    warn_at: f64,
    #[serde(default)]
    unlimited: bool,
}

fn calendar() -> String {
    "calendar".into()
}

fn default_warn_at() -> f64 {
    WarnAt::DEFAULT.fraction()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    id: String,
    parent: Option<String>,
    tier: Option<String>,
    mode: Option<String>,
    overcommit: Option<f64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    limits: Vec<LimitEntry>,
    #[serde(default)]
    grants: Vec<GrantEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentEntry {
    tier: String,
    tenant: Option<String>,
    role: Option<String>,
    #[serde(default)]
    default: bool,
    #[serde(default = "enabled")]
    enabled: bool,
    expires_at: Option<DateTime<Utc>>,
}

fn enabled() -> bool {
    true
}

/// What the file asks for, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// The tiers, in file order.
    pub tiers: Vec<TierSpec>,
    /// The tenants, in file order.
    pub tenants: Vec<DesiredTenant>,
    /// The assignments, in file order.
    pub assignments: Vec<AssignmentSpec>,
    /// The webhook subscriptions, in file order.
    pub webhooks: Vec<DesiredWebhook>,
}

/// A tenant as the file declares it: its own fields and its override limits, which
/// `apply` creates, updates and deletes as objects of their own.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredTenant {
    /// The tenant's own fields.
    pub spec: TenantSpec,
    /// Every per-tenant override it has (the entry's `limits`).
    pub overrides: Vec<LimitSpec>,
    /// The grants it declares, by key (the entry's `grants`).
    pub grants: Vec<GrantSpec>,
}

/// Parses and checks the YAML `text`; on failure, every problem found as `path: what`.
pub fn parse(text: &str) -> Result<Desired, Vec<String>> {
    let deserializer = serde_norway::Deserializer::from_str(text);
    let file: QuotaFile = serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        // serde_norway names the enclosing mapping itself (`tiers[0]: unknown field …`);
        // the path found here is more precise, so say it once.
        let message = message
            .split_once(": ")
            .filter(|(prefix, _)| path.starts_with(prefix))
            .map_or(message.as_str(), |(_, rest)| rest);
        if path == "." {
            vec![message.to_string()]
        } else {
            vec![format!("{path}: {message}")]
        }
    })?;
    let mut errors = Vec::new();
    let desired = check(file, &mut errors);
    if errors.is_empty() {
        Ok(desired)
    } else {
        Err(errors)
    }
}

fn limits(entries: &[LimitEntry], path: &str, errors: &mut Vec<String>) -> Vec<LimitSpec> {
    let mut seen: HashMap<LimitKey, usize> = HashMap::new();
    let mut specs = Vec::new();
    for (k, entry) in entries.iter().enumerate() {
        let raw = RawLimit {
            resource: &entry.resource,
            period: &entry.period,
            window: &entry.window,
            quota: entry.quota,
            overage: entry.overage,
            warn_at: entry.warn_at,
            unlimited: entry.unlimited,
        };
        match LimitSpec::from_raw(&raw) {
            Ok(spec) => {
                if let Some(first) = seen.insert(spec.key(), k) {
                    errors.push(format!(
                        "{path}.limits[{k}]: a second {} limit (the first is limits[{first}])",
                        spec.key_text()
                    ));
                }
                specs.push(spec);
            }
            Err(e) => errors.push(format!("{path}.limits[{k}].{}: {}", e.part, e.message)),
        }
    }
    specs
}

fn check(file: QuotaFile, errors: &mut Vec<String>) -> Desired {
    let mut desired = Desired::default();
    let mut tier_at: HashMap<String, usize> = HashMap::new();
    for (i, entry) in file.tiers.into_iter().enumerate() {
        let path = format!("tiers[{i}]");
        if !is_valid_tier_name(&entry.name) {
            errors.push(format!("{path}.name: {:?}: {TIER_RULE}", entry.name));
        }
        if let Some(first) = tier_at.insert(entry.name.clone(), i) {
            errors.push(format!(
                "{path}.name: tier {} is already defined at tiers[{first}]",
                entry.name
            ));
        }
        if entry.description.len() > 1024 {
            errors.push(format!("{path}.description: at most 1024 bytes"));
        }
        desired.tiers.push(TierSpec {
            limits: limits(&entry.limits, &path, errors),
            name: entry.name,
            description: entry.description,
        });
    }

    let mut tenant_at: HashMap<String, usize> = HashMap::new();
    for (i, entry) in file.tenants.into_iter().enumerate() {
        let path = format!("tenants[{i}]");
        if !is_valid_tenant_id(&entry.id) {
            errors.push(format!("{path}.id: {:?}: {TENANT_RULE}", entry.id));
        }
        if let Some(first) = tenant_at.insert(entry.id.clone(), i) {
            errors.push(format!(
                "{path}.id: tenant {} is already defined at tenants[{first}]",
                entry.id
            ));
        }
        if let Some(parent) = &entry.parent {
            if !is_valid_tenant_id(parent) {
                errors.push(format!("{path}.parent: {parent:?}: {TENANT_RULE}"));
            } else if parent == &entry.id {
                errors.push(format!("{path}.parent: a tenant cannot be its own parent"));
            }
        }
        if let Some(tier) = &entry.tier {
            if !is_valid_tier_name(tier) {
                errors.push(format!("{path}.tier: {tier:?}: {TIER_RULE}"));
            }
        }
        let mode = match entry.mode.as_deref().map(str::parse::<Mode>).transpose() {
            Ok(mode) => mode.unwrap_or_default(),
            Err(message) => {
                errors.push(format!("{path}.mode: {message}"));
                Mode::default()
            }
        };
        let overcommit = match entry.overcommit {
            None => Ppm::ONE,
            Some(ratio) => Ppm::from_ratio(ratio).unwrap_or_else(|| {
                errors.push(format!(
                    "{path}.overcommit: a ratio above 0 and at most 1000 (1 = no overcommit)"
                ));
                Ppm::ONE
            }),
        };
        if entry.labels.len() > 64 {
            errors.push(format!("{path}.labels: at most 64 labels"));
        }
        let labels = Value::Object(
            entry
                .labels
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
        desired.tenants.push(DesiredTenant {
            overrides: limits(&entry.limits, &path, errors),
            grants: grants::check(entry.grants, &entry.id, &path, errors),
            spec: TenantSpec {
                id: entry.id,
                parent: entry.parent,
                tier: entry.tier,
                mode,
                overcommit,
                labels,
            },
        });
    }
    check_tree(&desired.tenants, errors);

    let mut assignment_at: HashMap<(Subject, String), usize> = HashMap::new();
    for (i, entry) in file.assignments.into_iter().enumerate() {
        let path = format!("assignments[{i}]");
        let subject = match (entry.tenant, entry.role, entry.default) {
            (Some(tenant), None, false) => {
                if !is_valid_tenant_id(&tenant) {
                    errors.push(format!("{path}.tenant: {tenant:?}: {TENANT_RULE}"));
                }
                Subject::Tenant(tenant)
            }
            (None, Some(role), false) => {
                if !is_valid_role(&role) {
                    errors.push(format!(
                        "{path}.role: {role:?}: 1-128 printable characters without spaces"
                    ));
                }
                Subject::Role(role)
            }
            (None, None, true) => Subject::Default,
            _ => {
                errors.push(format!(
                    "{path}: give exactly one of tenant, role and default: true"
                ));
                continue;
            }
        };
        if !is_valid_tier_name(&entry.tier) {
            errors.push(format!("{path}.tier: {:?}: {TIER_RULE}", entry.tier));
        }
        if let Some(first) = assignment_at.insert((subject.clone(), entry.tier.clone()), i) {
            errors.push(format!(
                "{path}: the same assignment as assignments[{first}] (one per subject and tier)"
            ));
        }
        desired.assignments.push(AssignmentSpec {
            subject,
            tier: entry.tier,
            enabled: entry.enabled,
            expires_at: entry.expires_at,
        });
    }
    desired.webhooks = webhooks::check(file.webhooks, errors);
    desired
}

/// Refuses parent cycles among the file's tenants.
fn check_tree(tenants: &[DesiredTenant], errors: &mut Vec<String>) {
    let parent_of: HashMap<&str, &str> = tenants
        .iter()
        .map(|t| &t.spec)
        .filter_map(|t| t.parent.as_deref().map(|p| (t.id.as_str(), p)))
        .filter(|(id, parent)| id != parent) // reported on its own
        .collect();
    let mut reported: HashSet<&str> = HashSet::new();
    for (i, tenant) in tenants.iter().map(|t| &t.spec).enumerate() {
        let mut chain = vec![tenant.id.as_str()];
        let mut at = tenant.id.as_str();
        while let Some(&parent) = parent_of.get(at) {
            if parent == tenant.id {
                if chain.iter().all(|id| reported.insert(id)) {
                    chain.push(parent);
                    errors.push(format!(
                        "tenants[{i}].parent: a cycle: {}",
                        chain.join(" -> ")
                    ));
                }
                break;
            }
            if chain.contains(&parent) {
                break; // a cycle further up, reported from one of its members
            }
            chain.push(parent);
            at = parent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(text: &str) -> Vec<String> {
        parse(text).unwrap_err()
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../../quotas.example.yaml");
        let desired = parse(text).unwrap();
        assert_eq!(desired.tiers.len(), 2);
        assert_eq!(desired.tenants[1].spec.id, "acme/research");
        assert_eq!(desired.tenants[1].spec.mode, Mode::Shadow);
        assert_eq!(desired.tenants[0].spec.overcommit, Ppm(1_500_000));
        assert_eq!(desired.assignments[1].subject, Subject::Default);
        assert!(desired.assignments[2].expires_at.is_some());
        let webhook = &desired.webhooks[0];
        assert_eq!(webhook.spec.id, "ops-pager");
        assert_eq!(webhook.spec.percents, [80, 100]);
        assert_eq!(
            webhook.secret_env.as_deref(),
            Some("TOLLGATE_WEBHOOK_SECRET_OPS")
        );
        let grant = &desired.tenants[1].grants[0];
        assert_eq!(
            (grant.tenant.as_str(), grant.key.as_str(), grant.amount),
            ("acme/research", "incident-4711", 536_870_912)
        );
        assert_eq!(grant.end, super::grants::GrantEnd::WindowEnd);
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_path() {
        let errors = errors_of("tiers:\n  - name: free\n    limits:\n      - {resource: requests, period: minute, quota: 1, quotaa: 2}\n");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("tiers[0].limits[0].quotaa"),
            "{errors:?}"
        );
        assert!(
            errors[0].starts_with("tiers[0].limits[0].quotaa: unknown field `quotaa`"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_with_its_path() {
        let errors = errors_of("tenants:\n  - id: a\n    overcommit: lots\n");
        assert!(errors[0].starts_with("tenants[0].overcommit"), "{errors:?}");
    }

    #[test]
    fn bad_values_and_duplicates_are_all_reported_with_their_paths() {
        let errors = errors_of(
            "tiers:\n\
             \x20 - {name: free, limits: [{resource: requests, period: fortnight, quota: 1}]}\n\
             \x20 - {name: free, limits: [{resource: r, period: day, quota: 1}, {resource: r, period: day, quota: 2}]}\n\
             \x20 - {name: Bad}\n\
             tenants:\n\
             \x20 - {id: a, mode: loud, overcommit: 0}\n\
             \x20 - {id: a}\n\
             assignments:\n\
             \x20 - {tier: free, role: x, default: true}\n\
             \x20 - {tier: free, default: true}\n\
             \x20 - {tier: free, default: true}\n",
        );
        let expected = [
            "tiers[0].limits[0].period:",
            "tiers[1].name: tier free is already defined at tiers[0]",
            "tiers[1].limits[1]: a second r/day/calendar limit",
            "tiers[2].name:",
            "tenants[0].mode:",
            "tenants[0].overcommit:",
            "tenants[1].id: tenant a is already defined",
            "assignments[0]: give exactly one",
            "assignments[2]: the same assignment as assignments[1]",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, start) in errors.iter().zip(expected) {
            assert!(
                error.starts_with(start),
                "{error} should start with {start}"
            );
        }
    }

    #[test]
    fn a_parent_cycle_is_refused_once() {
        let errors = errors_of(
            "tenants:\n  - {id: a, parent: b}\n  - {id: b, parent: a}\n  - {id: c, parent: c}\n",
        );
        assert_eq!(
            errors,
            [
                "tenants[2].parent: a tenant cannot be its own parent",
                "tenants[0].parent: a cycle: a -> b -> a",
            ]
        );
    }

    #[test]
    fn defaults_are_the_apis() {
        let desired = parse("tenants:\n  - id: x\n").unwrap();
        let tenant = &desired.tenants[0].spec;
        assert_eq!((tenant.mode, tenant.overcommit), (Mode::Enforce, Ppm::ONE));
        assert_eq!(tenant.labels, serde_json::json!({}));
        assert!(parse("").is_ok() || parse("{}").is_ok());
    }
}
