//! The two cached shapes `/v1/check` decides from: the [`Catalog`] (every tier and
//! every assignment not tied to one tenant) and a tenant's [`Chain`] (it and its
//! ancestors).

use std::collections::HashMap;

use super::grant::Grant;
use super::limit::LimitDef;
use super::tenant::{Assignment, Mode};

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
    /// Its grants that had not ended when the chain was loaded (in force or scheduled):
    /// resolution picks those in force at the decision's instant. Most tenants have
    /// none.
    pub grants: Vec<Grant>,
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
