//! The tenant tree of the exactness tests: two organizations of 25 tenants, their tiers
//! and the limits made to bind, the gateway options, and the checks against the limits.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::json;

use super::load::Tally;
use crate::{Gateway, GatewayOptions};

/// The resources limited, in the order of [`Units`].
pub(super) const RESOURCES: [&str; 2] = ["requests", "request_bytes"];

/// An amount of each of [`RESOURCES`]: requests, body bytes.
pub(super) type Units = [u64; 2];

/// The lease TTL of the exactness tests: short, so that budgets come back within them.
pub(super) const LEASE_TTL_MS: u64 = 2_000;

/// The tiers: name, then `[quota, overage]` of `requests` and of `request_bytes` a month.
pub(super) const TIERS: [(&str, [u64; 2], [u64; 2]); 5] = [
    ("org-bytes", [1_000_000, 0], [5_000_000, 1_000_000]),
    ("org-roomy", [1_000_000, 0], [1_000_000_000, 0]),
    ("tenant-requests", [80, 20], [10_000_000, 0]),
    ("tenant-bytes", [10_000, 0], [160_000, 40_000]),
    ("tenant-roomy", [10_000, 0], [10_000_000, 0]),
];

/// The limits made to bind: (tier, resource index).
const BINDING: [(&str, usize); 3] = [
    ("org-bytes", 1),
    ("tenant-requests", 0),
    ("tenant-bytes", 1),
];

/// The options of the exactness tests: two control planes, budgets on, short leases,
/// failure mode closed (a request no decision covered must not reach the upstream
/// uncounted) and a deadline a loaded two-core machine keeps.
pub(super) fn exactness_options() -> GatewayOptions {
    GatewayOptions {
        failure_mode: "closed",
        timeout_ms: 2_000,
        // One `want` for every resource: large enough for bytes (requests are bounded by
        // the headroom anyway).
        filter: json!({"budgets": {"enabled": true, "want": 50_000}}),
        // `--lease-ttl-ms` is LEASE_TTL_MS.
        control_plane_args: vec!["--lease-ttl-ms", "2000", "--lease-max-budget", "50000"],
        control_planes: 2,
        ..GatewayOptions::default()
    }
}

/// One level of the tenant tree: an organization or a tenant under one.
#[derive(Debug, Clone)]
pub(super) struct Level {
    pub(super) id: String,
    pub(super) parent: Option<String>,
    tier: &'static str,
    /// Hard limits (quota + overage).
    pub(super) hard: Units,
}

/// The tenant tree of the exactness tests.
#[derive(Debug, Clone)]
pub(super) struct Tree {
    /// Organizations first.
    pub(super) levels: Vec<Level>,
}

impl Tree {
    pub(super) fn new() -> Tree {
        let hard = |tier: &str| {
            let (_, requests, bytes) = TIERS.iter().find(|(name, _, _)| *name == tier).unwrap();
            [requests[0] + requests[1], bytes[0] + bytes[1]]
        };
        let level = |id: String, parent: Option<&str>, tier: &'static str| Level {
            id,
            parent: parent.map(String::from),
            tier,
            hard: hard(tier),
        };
        let mut levels = vec![
            level("org-a".into(), None, "org-bytes"),
            level("org-b".into(), None, "org-roomy"),
        ];
        for i in 0..25 {
            levels.push(level(
                format!("org-a/t{i:02}"),
                Some("org-a"),
                "tenant-roomy",
            ));
        }
        for i in 0..25 {
            let tier = ["tenant-requests", "tenant-bytes", "tenant-roomy"][i % 3];
            levels.push(level(format!("org-b/t{i:02}"), Some("org-b"), tier));
        }
        Tree { levels }
    }

    /// Creates the tiers and the tenants through the admin API.
    pub(super) async fn create(&self, gateway: &Gateway) {
        for (name, requests, bytes) in TIERS {
            let limit = |resource: &str, [quota, overage]: [u64; 2]| {
                json!({
                    "resource": resource, "period": "month", "quota": quota, "overage": overage
                })
            };
            let limits = json!([limit(RESOURCES[0], requests), limit(RESOURCES[1], bytes)]);
            gateway.create_tier(name, limits).await.unwrap();
        }
        for level in &self.levels {
            let body = match &level.parent {
                // Room for the children's quotas to sum past the org's own.
                None => json!({"id": level.id, "tier": level.tier, "overcommit": 1000}),
                Some(parent) => json!({"id": level.id, "parent_id": parent, "tier": level.tier}),
            };
            gateway
                .admin(Method::POST, "/tenants", Some(body))
                .await
                .unwrap();
        }
    }

    /// The tenants that take traffic (the leaves).
    pub(super) fn tenants(&self) -> Vec<String> {
        (self.levels.iter())
            .filter(|l| l.parent.is_some())
            .map(|l| l.id.clone())
            .collect()
    }

    pub(super) fn level(&self, id: &str) -> &Level {
        self.levels.iter().find(|l| l.id == id).unwrap()
    }

    /// `units` per tenant, summed up the tree: per level (tenants and organizations).
    pub(super) fn per_level(&self, units: &BTreeMap<String, Units>) -> BTreeMap<String, Units> {
        let mut sums: BTreeMap<String, Units> =
            self.levels.iter().map(|l| (l.id.clone(), [0, 0])).collect();
        for (tenant, amount) in units {
            let level = self.level(tenant);
            for id in std::iter::once(&level.id).chain(&level.parent) {
                add(sums.get_mut(id).unwrap(), *amount);
            }
        }
        sums
    }
}

pub(super) fn add(sum: &mut Units, units: Units) {
    sum[0] += units[0];
    sum[1] += units[1];
}

/// The levels and resources whose `usage` is past their hard limit.
pub(super) fn past_hard(tree: &Tree, usage: &BTreeMap<String, Units>) -> Vec<String> {
    let mut past = Vec::new();
    for (level, used) in usage {
        let hard = tree.level(level).hard;
        for (r, resource) in RESOURCES.iter().enumerate() {
            if used[r] > hard[r] {
                past.push(format!("{level} {resource}: {} > {}", used[r], hard[r]));
            }
        }
    }
    past
}

/// Asserts that the limits of [`BINDING`] bound, and that nothing else did: each such
/// level's tenants were refused and its counted usage got near its hard limit (it was
/// reached by what was admitted, not only by budgets held); tenants with room at both
/// levels were never refused.
pub(super) fn assert_limits_bound(tree: &Tree, tally: &Tally, counted: &BTreeMap<String, Units>) {
    let refused = |level: &Level| -> u64 {
        (tally.iter())
            .filter(|((_, tenant), _)| {
                *tenant == level.id || tree.level(tenant).parent.as_ref() == Some(&level.id)
            })
            .map(|(_, seen)| seen.rejected)
            .sum()
    };
    for level in &tree.levels {
        let binding = BINDING.iter().find(|(tier, _)| *tier == level.tier);
        let parent_binds = (level.parent.as_ref())
            .is_some_and(|p| BINDING.iter().any(|(tier, _)| *tier == tree.level(p).tier));
        match binding {
            Some(&(_, r)) => {
                let (used, hard) = (counted[&level.id][r], level.hard[r]);
                assert!(refused(level) > 0, "{} never refused", level.id);
                assert!(
                    used * 10 >= hard * 9,
                    "{} stopped at {used} of {hard} {}",
                    level.id,
                    RESOURCES[r]
                );
            }
            None if !parent_binds && level.parent.is_some() => {
                assert_eq!(refused(level), 0, "{} has room yet was refused", level.id);
            }
            None => {}
        }
    }
}

/// One line per level: hard limits, what the clients saw admitted and what was counted.
pub(super) fn table(
    tree: &Tree,
    admitted: &BTreeMap<String, Units>,
    counted: &BTreeMap<String, Units>,
) -> String {
    let mut lines = vec![format!(
        "{:<12} {:>22} {:>22} {:>22}",
        "level", "hard (req, bytes)", "admitted", "counted"
    )];
    for level in &tree.levels {
        let id = &level.id;
        lines.push(format!(
            "{id:<12} {:>22} {:>22} {:>22}",
            format!("{:?}", level.hard),
            format!("{:?}", admitted.get(id).copied().unwrap_or_default()),
            format!("{:?}", counted.get(id).copied().unwrap_or_default()),
        ));
    }
    lines.join("\n")
}
