//! The plan of `apply`: desired state and current state in, the list of changes out, in
//! an order that keeps every intermediate state valid. Pure: no I/O.
//!
//! Order: tiers created and updated; tenants created parents first, then updated;
//! override limits created and updated; assignments created and updated; grants
//! created; then the deletions in reverse — assignments, grants revoked, override limits,
//! tenants children first, tiers last. Whole objects the file does not name (tiers, tenants, assignments) are deleted
//! only with `prune`; a tier's limits and a tenant's overrides always follow the file.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Map};

use super::change::Change;
use super::file::{Desired, DesiredTenant};
use super::grants::{self, GrantSpec};
use super::request::instant;
use super::spec::{AssignmentSpec, TenantSpec, TierSpec};
use super::state::{Current, CurrentAssignment, CurrentOverride};
use crate::cli::limit::{LimitKey, LimitSpec};
use crate::model::Subject;

/// The changes that make `current` what `desired` says, or the problems that forbid
/// them (a reference to a tier or tenant that is nowhere, or that `prune` would delete).
pub fn plan(desired: &Desired, current: &Current, prune: bool) -> Result<Vec<Change>, Vec<String>> {
    check_references(desired, current, prune)?;
    let mut changes = Vec::new();
    changes.extend(tier_changes(&desired.tiers, &current.tiers));

    let ordered = parents_first(&desired.tenants);
    let on_server: HashMap<&str, &TenantSpec> =
        current.tenants.iter().map(|t| (t.id.as_str(), t)).collect();
    for tenant in &ordered {
        if !on_server.contains_key(tenant.spec.id.as_str()) {
            changes.push(Change::CreateTenant(tenant.spec.clone()));
        }
    }
    for tenant in &ordered {
        if let Some(now) = on_server.get(tenant.spec.id.as_str()) {
            changes.extend(tenant_update(&tenant.spec, now));
        }
    }

    let mut override_deletions = Vec::new();
    for tenant in &ordered {
        let (upserts, deletions) = override_changes(tenant, &current.overrides);
        changes.extend(upserts);
        override_deletions.extend(deletions);
    }

    let (upserts, unmatched) = assignment_changes(&desired.assignments, &current.assignments);
    changes.extend(upserts);
    let declared: Vec<(&str, &[GrantSpec])> = ordered
        .iter()
        .map(|t| (t.spec.id.as_str(), t.grants.as_slice()))
        .collect();
    let (grants_created, grants_revoked) = grants::changes(&declared, &current.grants, prune)?;
    changes.extend(grants_created.into_iter().map(Change::Grant));

    let pruned_tenants: Vec<&TenantSpec> = if prune {
        let named: HashSet<&str> = desired.tenants.iter().map(|t| t.spec.id.as_str()).collect();
        children_first(&current.tenants)
            .into_iter()
            .filter(|t| !named.contains(t.id.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    let pruned_ids: HashSet<&str> = pruned_tenants.iter().map(|t| t.id.as_str()).collect();
    if prune {
        // A pruned tenant's direct assignments go with it.
        changes.extend(
            unmatched
                .into_iter()
                .filter(|a| !matches!(&a.spec.subject, Subject::Tenant(t) if pruned_ids.contains(t.as_str())))
                .map(|a| Change::DeleteAssignment {
                    id: a.id,
                    subject: a.spec.subject.clone(),
                    tier: a.spec.tier.clone(),
                }),
        );
    }
    changes.extend(grants_revoked.into_iter().map(Change::Grant));
    changes.extend(override_deletions);
    changes.extend(
        pruned_tenants
            .iter()
            .map(|t| Change::DeleteTenant { id: t.id.clone() }),
    );
    if prune {
        let named: HashSet<&str> = desired.tiers.iter().map(|t| t.name.as_str()).collect();
        changes.extend(
            current
                .tiers
                .iter()
                .filter(|t| !named.contains(t.name.as_str()))
                .map(|t| Change::DeleteTier {
                    name: t.name.clone(),
                }),
        );
    }
    Ok(changes)
}

/// Every tier and tenant the file refers to must be in the file or on the server — and
/// in the file when `prune` would delete what is only on the server.
fn check_references(desired: &Desired, current: &Current, prune: bool) -> Result<(), Vec<String>> {
    let file_tiers: HashSet<&str> = desired.tiers.iter().map(|t| t.name.as_str()).collect();
    let server_tiers: HashSet<&str> = current.tiers.iter().map(|t| t.name.as_str()).collect();
    let file_tenants: HashSet<&str> = desired.tenants.iter().map(|t| t.spec.id.as_str()).collect();
    let server_tenants: HashSet<&str> = current.tenants.iter().map(|t| t.id.as_str()).collect();
    let problem = |what: &str, name: &str, in_file: bool, on_server: bool| -> Option<String> {
        if in_file {
            None
        } else if !on_server {
            Some(format!(
                "{what} {name} is neither in the file nor on the server"
            ))
        } else if prune {
            Some(format!(
                "{what} {name} is not in the file, so --prune would delete it from the server"
            ))
        } else {
            None
        }
    };
    let tier = |name: &str| {
        problem(
            "tier",
            name,
            file_tiers.contains(name),
            server_tiers.contains(name),
        )
    };
    let tenant = |id: &str| {
        problem(
            "tenant",
            id,
            file_tenants.contains(id),
            server_tenants.contains(id),
        )
    };
    let mut errors = Vec::new();
    for (i, t) in desired.tenants.iter().map(|t| &t.spec).enumerate() {
        if let Some(error) = t.parent.as_deref().and_then(tenant) {
            errors.push(format!("tenants[{i}].parent: {error}"));
        }
        if let Some(error) = t.tier.as_deref().and_then(tier) {
            errors.push(format!("tenants[{i}].tier: {error}"));
        }
    }
    for (i, a) in desired.assignments.iter().enumerate() {
        if let Some(error) = tier(&a.tier) {
            errors.push(format!("assignments[{i}].tier: {error}"));
        }
        if let Subject::Tenant(id) = &a.subject {
            if let Some(error) = tenant(id) {
                errors.push(format!("assignments[{i}].tenant: {error}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn by_key(limits: &[LimitSpec]) -> HashMap<LimitKey, &LimitSpec> {
    limits.iter().map(|l| (l.key(), l)).collect()
}

/// What changes in a set of limits, one entry per limit: `requests/minute/calendar
/// quota 500 -> 600`, `+ requests/hour/rolling quota 20000`, `- requests/day/calendar`.
fn limit_set_changes(old: &[LimitSpec], new: &[LimitSpec]) -> Vec<String> {
    let old_by_key = by_key(old);
    let new_by_key = by_key(new);
    let mut changes = Vec::new();
    for limit in new {
        match old_by_key.get(&limit.key()) {
            None => changes.push(format!("+ {} {}", limit.key_text(), limit.summary())),
            Some(before) => {
                let differences = before.changes_to(limit);
                if !differences.is_empty() {
                    changes.push(format!("{} {}", limit.key_text(), differences.join(", ")));
                }
            }
        }
    }
    for limit in old {
        if !new_by_key.contains_key(&limit.key()) {
            changes.push(format!("- {}", limit.key_text()));
        }
    }
    changes
}

fn tier_changes(desired: &[TierSpec], current: &[TierSpec]) -> Vec<Change> {
    let on_server: HashMap<&str, &TierSpec> =
        current.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut changes = Vec::new();
    for tier in desired {
        let Some(now) = on_server.get(tier.name.as_str()) else {
            changes.push(Change::CreateTier(tier.clone()));
            continue;
        };
        let mut details = Vec::new();
        let description = (now.description != tier.description).then(|| {
            details.push(format!(
                "description {:?} -> {:?}",
                now.description, tier.description
            ));
            tier.description.clone()
        });
        let limit_changes = limit_set_changes(&now.limits, &tier.limits);
        details.extend(limit_changes.iter().map(|c| format!("limits: {c}")));
        let limits = (!limit_changes.is_empty()).then(|| tier.limits.clone());
        if !details.is_empty() {
            changes.push(Change::UpdateTier {
                name: tier.name.clone(),
                description,
                limits,
                details,
            });
        }
    }
    changes
}

/// Each tenant's parent, by id.
fn parent_map<'a>(tenants: impl IntoIterator<Item = &'a TenantSpec>) -> HashMap<&'a str, &'a str> {
    tenants
        .into_iter()
        .filter_map(|t| t.parent.as_deref().map(|p| (t.id.as_str(), p)))
        .collect()
}

/// The file's tenants, each after its parent when the parent is in the file too.
fn parents_first(tenants: &[DesiredTenant]) -> Vec<&DesiredTenant> {
    let parent_of = parent_map(tenants.iter().map(|t| &t.spec));
    let mut ordered: Vec<&DesiredTenant> = tenants.iter().collect();
    ordered.sort_by_key(|t| depth(&parent_of, &t.spec.id));
    ordered
}

/// The server's tenants, each before its parent.
fn children_first(tenants: &[TenantSpec]) -> Vec<&TenantSpec> {
    let parent_of = parent_map(tenants);
    let mut ordered: Vec<&TenantSpec> = tenants.iter().collect();
    ordered.sort_by_key(|t| std::cmp::Reverse(depth(&parent_of, &t.id)));
    ordered
}

/// How many ancestors of `id` `parent_of` knows (bounded: cycles are refused earlier).
fn depth(parent_of: &HashMap<&str, &str>, id: &str) -> usize {
    let mut depth = 0;
    let mut at = id;
    while let Some(parent) = parent_of.get(at) {
        depth += 1;
        at = parent;
        if depth > parent_of.len() {
            break;
        }
    }
    depth
}

fn or_none(value: Option<&str>) -> &str {
    value.unwrap_or("none")
}

fn tenant_update(desired: &TenantSpec, now: &TenantSpec) -> Option<Change> {
    let mut patch = Map::new();
    let mut details = Vec::new();
    if desired.parent != now.parent {
        patch.insert("parent_id".into(), json!(desired.parent));
        details.push(format!(
            "parent {} -> {}",
            or_none(now.parent.as_deref()),
            or_none(desired.parent.as_deref())
        ));
    }
    if desired.tier != now.tier {
        patch.insert("tier".into(), json!(desired.tier));
        details.push(format!(
            "tier {} -> {}",
            or_none(now.tier.as_deref()),
            or_none(desired.tier.as_deref())
        ));
    }
    if desired.mode != now.mode {
        patch.insert("mode".into(), json!(desired.mode.as_str()));
        details.push(format!("mode {} -> {}", now.mode, desired.mode));
    }
    if desired.overcommit != now.overcommit {
        patch.insert("overcommit".into(), json!(desired.overcommit.ratio()));
        details.push(format!(
            "overcommit {} -> {}",
            now.overcommit.ratio(),
            desired.overcommit.ratio()
        ));
    }
    if desired.labels != now.labels {
        patch.insert("labels".into(), desired.labels.clone());
        details.push(format!("labels {} -> {}", now.labels, desired.labels));
    }
    (!details.is_empty()).then(|| Change::UpdateTenant {
        id: desired.id.clone(),
        patch,
        details,
    })
}

/// The creations and updates of `tenant`'s overrides, and separately their deletions.
fn override_changes(
    tenant: &DesiredTenant,
    current: &[CurrentOverride],
) -> (Vec<Change>, Vec<Change>) {
    let id = &tenant.spec.id;
    let now: HashMap<LimitKey, &CurrentOverride> = current
        .iter()
        .filter(|o| &o.tenant == id)
        .map(|o| (o.limit.key(), o))
        .collect();
    let wanted = by_key(&tenant.overrides);
    let mut upserts = Vec::new();
    for limit in &tenant.overrides {
        match now.get(&limit.key()) {
            None => upserts.push(Change::CreateOverride {
                tenant: id.clone(),
                limit: limit.clone(),
            }),
            Some(existing) => {
                let details = existing.limit.changes_to(limit);
                if !details.is_empty() {
                    upserts.push(Change::UpdateOverride {
                        id: existing.id,
                        tenant: id.clone(),
                        limit: limit.clone(),
                        details,
                    });
                }
            }
        }
    }
    let deletions = current
        .iter()
        .filter(|o| &o.tenant == id && !wanted.contains_key(&o.limit.key()))
        .map(|o| Change::DeleteOverride {
            id: o.id,
            tenant: o.tenant.clone(),
            limit: o.limit.clone(),
        })
        .collect();
    (upserts, deletions)
}

/// PostgreSQL keeps microseconds: compare at that precision.
fn same_instant(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
    a.map(|t| t.timestamp_micros()) == b.map(|t| t.timestamp_micros())
}

/// The creations and updates of assignments, matched by kind, subject and tier, and the
/// server's assignments the file does not match.
fn assignment_changes<'a>(
    desired: &[AssignmentSpec],
    current: &'a [CurrentAssignment],
) -> (Vec<Change>, Vec<&'a CurrentAssignment>) {
    let mut used = vec![false; current.len()];
    let mut changes = Vec::new();
    for assignment in desired {
        let found = current.iter().enumerate().find(|(i, a)| {
            !used[*i] && a.spec.subject == assignment.subject && a.spec.tier == assignment.tier
        });
        let Some((i, existing)) = found else {
            changes.push(Change::CreateAssignment(assignment.clone()));
            continue;
        };
        used[i] = true;
        let mut details = Vec::new();
        let now = &existing.spec;
        if now.enabled != assignment.enabled {
            details.push(format!("enabled {} -> {}", now.enabled, assignment.enabled));
        }
        if !same_instant(now.expires_at, assignment.expires_at) {
            details.push(format!(
                "expires_at {} -> {}",
                instant(now.expires_at),
                instant(assignment.expires_at)
            ));
        }
        if !details.is_empty() {
            changes.push(Change::UpdateAssignment {
                id: existing.id,
                assignment: assignment.clone(),
                details,
            });
        }
    }
    let unmatched = current
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|(a, _)| a)
        .collect();
    (changes, unmatched)
}

#[cfg(test)]
mod tests {
    use super::super::change::summary;
    use super::super::file::parse;
    use super::*;
    use crate::model::{Mode, Ppm};
    use serde_json::Value;

    fn desired(yaml: &str) -> Desired {
        parse(yaml).unwrap()
    }

    fn limit(spec: &str) -> LimitSpec {
        spec.parse().unwrap()
    }

    fn tenant(id: &str, parent: Option<&str>, tier: Option<&str>) -> TenantSpec {
        TenantSpec {
            id: id.into(),
            parent: parent.map(Into::into),
            tier: tier.map(Into::into),
            mode: Mode::Enforce,
            overcommit: Ppm::ONE,
            labels: json!({}),
        }
    }

    fn tier(name: &str, limits: &[&str]) -> TierSpec {
        TierSpec {
            name: name.into(),
            description: String::new(),
            limits: limits.iter().map(|s| limit(s)).collect(),
        }
    }

    fn lines(changes: &[Change]) -> Vec<String> {
        changes.iter().map(ToString::to_string).collect()
    }

    const EXAMPLE: &str = include_str!("../../../quotas.example.yaml");

    #[test]
    fn an_empty_server_gets_everything_in_a_valid_order() {
        let changes = plan(&desired(EXAMPLE), &Current::default(), false).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "+ tier free (limits: requests/minute/calendar quota 60; \
                 request_bytes/month/calendar quota 1073741824)",
                "+ tier pro (limits: requests/minute/calendar quota 600; \
                 requests/hour/rolling quota 20000)",
                "+ tenant acme (tier pro, overcommit 1.5, labels {\"plan\":\"pro\"})",
                "+ tenant acme/research (parent acme, tier free, mode shadow)",
                "+ override acme/research requests/minute/calendar quota 120",
                "+ assignment role beta -> pro",
                "+ assignment default -> free",
                "+ assignment tenant acme -> pro (until 2027-12-31T00:00:00Z)",
                "+ grant acme/research incident-4711: request_bytes/month/calendar +536870912 \
                 until the window's end (\"Incident 4711: a day of outage, credited\")",
            ]
        );
        assert_eq!(summary(&changes), "9 to create, 0 to change, 0 to delete");
    }

    #[test]
    fn children_listed_first_in_the_file_are_still_created_after_their_parents() {
        let file = desired(
            "tenants:\n  - {id: a/b/c, parent: a/b}\n  - {id: a/b, parent: a}\n  - {id: a}\n",
        );
        let ids: Vec<String> = plan(&file, &Current::default(), false)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            ids,
            [
                "+ tenant a",
                "+ tenant a/b (parent a)",
                "+ tenant a/b/c (parent a/b)"
            ]
        );
    }

    #[test]
    fn what_already_matches_is_no_change() {
        let file = desired(
            "tiers:\n  - {name: pro, limits: [{resource: requests, period: minute, quota: 600}]}\n\
             tenants:\n  - {id: acme, tier: pro, limits: [{resource: requests, period: hour, quota: 9}]}\n\
             assignments:\n  - {role: beta, tier: pro, expires_at: 2030-01-01T00:00:00.000000001Z}\n",
        );
        let current = Current {
            webhooks: Vec::new(),
            grants: Vec::new(),
            tiers: vec![tier("pro", &["requests:minute:600"])],
            tenants: vec![tenant("acme", None, Some("pro"))],
            overrides: vec![CurrentOverride {
                id: 7,
                tenant: "acme".into(),
                limit: limit("requests:hour:9"),
            }],
            assignments: vec![CurrentAssignment {
                id: 3,
                spec: AssignmentSpec {
                    subject: Subject::Role("beta".into()),
                    tier: "pro".into(),
                    enabled: true,
                    expires_at: "2030-01-01T00:00:00Z".parse().ok(),
                },
            }],
        };
        let changes = plan(&file, &current, true).unwrap();
        assert!(changes.is_empty(), "{:?}", lines(&changes));
        assert_eq!(summary(&changes), "no changes");
    }

    #[test]
    fn changed_fields_are_described_old_to_new() {
        let file = desired(
            "tiers:\n  - name: pro\n    description: Pro\n    limits:\n\
             \x20     - {resource: requests, period: minute, quota: 600}\n\
             \x20     - {resource: requests, period: hour, window: rolling, quota: 20000}\n\
             tenants:\n  - {id: acme, tier: pro, overcommit: 1.5, mode: shadow, labels: {plan: pro}}\n\
             \x20 - {id: acme/x, limits: [{resource: requests, period: minute, quota: 120, overage: 5}]}\n\
             assignments:\n  - {tenant: acme, tier: pro, enabled: false}\n",
        );
        let current = Current {
            webhooks: Vec::new(),
            grants: Vec::new(),
            tiers: vec![tier("pro", &["requests:minute:500", "requests:day:5"])],
            tenants: vec![
                tenant("acme", None, None),
                tenant("acme/x", Some("acme"), Some("pro")),
            ],
            overrides: vec![
                CurrentOverride {
                    id: 1,
                    tenant: "acme/x".into(),
                    limit: limit("requests:minute:100"),
                },
                CurrentOverride {
                    id: 2,
                    tenant: "acme/x".into(),
                    limit: limit("requests:day:1"),
                },
            ],
            assignments: vec![CurrentAssignment {
                id: 4,
                spec: AssignmentSpec {
                    subject: Subject::Tenant("acme".into()),
                    tier: "pro".into(),
                    enabled: true,
                    expires_at: None,
                },
            }],
        };
        let changes = plan(&file, &current, false).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "~ tier pro: description \"\" -> \"Pro\"; \
                 limits: requests/minute/calendar quota 500 -> 600; \
                 limits: + requests/hour/rolling quota 20000; limits: - requests/day/calendar",
                "~ tenant acme: tier none -> pro, mode enforce -> shadow, overcommit 1 -> 1.5, \
                 labels {} -> {\"plan\":\"pro\"}",
                "~ tenant acme/x: parent acme -> none, tier pro -> none",
                "~ override acme/x requests/minute/calendar: quota 100 -> 120, overage 0 -> 5",
                "~ assignment tenant acme -> pro: enabled true -> false",
                "- override acme/x requests/day/calendar",
            ]
        );
        let Change::UpdateTier {
            limits: Some(limits),
            description: Some(_),
            ..
        } = &changes[0]
        else {
            panic!("expected a tier update with both fields: {:?}", changes[0]);
        };
        assert_eq!(limits.len(), 2);
        let Change::UpdateTenant { patch, .. } = &changes[2] else {
            panic!("expected a tenant update");
        };
        assert_eq!(
            Value::Object(patch.clone()),
            json!({"parent_id": null, "tier": null})
        );
        assert_eq!(summary(&changes), "0 to create, 5 to change, 1 to delete");
    }

    #[test]
    fn prune_deletes_the_rest_in_reverse_order_and_only_when_asked() {
        let file = desired("tiers:\n  - {name: free}\ntenants:\n  - {id: keep, tier: free}\n");
        let current = Current {
            webhooks: Vec::new(),
            grants: Vec::new(),
            tiers: vec![tier("free", &[]), tier("old", &["requests:minute:1"])],
            tenants: vec![
                tenant("keep", None, Some("free")),
                tenant("gone", None, Some("old")),
                tenant("gone/child", Some("gone"), None),
            ],
            overrides: vec![CurrentOverride {
                id: 9,
                tenant: "gone".into(),
                limit: limit("requests:minute:5"),
            }],
            assignments: vec![
                CurrentAssignment {
                    id: 1,
                    spec: AssignmentSpec {
                        subject: Subject::Tenant("gone".into()),
                        tier: "old".into(),
                        enabled: true,
                        expires_at: None,
                    },
                },
                CurrentAssignment {
                    id: 2,
                    spec: AssignmentSpec {
                        subject: Subject::Default,
                        tier: "old".into(),
                        enabled: true,
                        expires_at: None,
                    },
                },
            ],
        };
        assert!(plan(&file, &current, false).unwrap().is_empty());
        let changes = plan(&file, &current, true).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "- assignment default -> old",
                "- tenant gone/child",
                "- tenant gone",
                "- tier old",
            ]
        );
        let requests: Vec<String> = changes
            .iter()
            .map(|c| {
                let r = c.request().unwrap();
                format!("{} {}", r.method, r.path)
            })
            .collect();
        assert_eq!(
            requests,
            [
                "DELETE /assignments/2",
                "DELETE /tenants/gone%2Fchild",
                "DELETE /tenants/gone",
                "DELETE /tiers/old",
            ]
        );
    }

    #[test]
    fn references_to_nowhere_are_refused_and_prune_needs_them_in_the_file() {
        let file = desired(
            "tenants:\n  - {id: a, parent: p, tier: t}\nassignments:\n  - {tenant: b, tier: t}\n",
        );
        let errors = plan(&file, &Current::default(), false).unwrap_err();
        assert_eq!(
            errors,
            [
                "tenants[0].parent: tenant p is neither in the file nor on the server",
                "tenants[0].tier: tier t is neither in the file nor on the server",
                "assignments[0].tier: tier t is neither in the file nor on the server",
                "assignments[0].tenant: tenant b is neither in the file nor on the server",
            ]
        );
        let current = Current {
            webhooks: Vec::new(),
            tiers: vec![tier("t", &[])],
            tenants: vec![tenant("p", None, None), tenant("b", None, None)],
            ..Current::default()
        };
        assert_eq!(plan(&file, &current, false).unwrap().len(), 2);
        let errors = plan(&file, &current, true).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].ends_with("--prune would delete it from the server"));
    }

    #[test]
    fn assignments_match_by_kind_subject_and_tier() {
        let file = desired(
            "tiers:\n  - {name: pro}\n  - {name: free}\n\
             assignments:\n  - {role: beta, tier: pro}\n  - {role: beta, tier: free}\n",
        );
        let current = Current {
            webhooks: Vec::new(),
            tiers: vec![tier("pro", &[]), tier("free", &[]), tier("max", &[])],
            assignments: vec![CurrentAssignment {
                id: 5,
                spec: AssignmentSpec {
                    subject: Subject::Role("beta".into()),
                    tier: "max".into(),
                    enabled: true,
                    expires_at: None,
                },
            }],
            ..Current::default()
        };
        let changes = plan(&file, &current, true).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "+ assignment role beta -> pro",
                "+ assignment role beta -> free",
                "- assignment role beta -> max",
                "- tier max",
            ]
        );
    }
}
