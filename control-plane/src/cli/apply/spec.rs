//! The shapes `apply` compares: a tier, a tenant and an assignment as the file declares
//! them and as the server lists them. One declaration each, so the two sides cannot
//! drift apart; what only one side has (a tenant's overrides in the file, an
//! assignment's id on the server) wraps these in [`file`](super::file) and
//! [`state`](super::state).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::cli::limit::LimitSpec;
use crate::model::{Mode, Ppm, Subject};

/// A tier and its complete set of limits.
#[derive(Debug, Clone, PartialEq)]
pub struct TierSpec {
    /// The name, which is how the file and the server's tiers are matched.
    pub name: String,
    /// The description (empty when absent).
    pub description: String,
    /// Every limit it has: `apply` replaces the whole set when any of them differs.
    pub limits: Vec<LimitSpec>,
}

/// A tenant's own fields, without its override limits (which are separate objects on
/// the server); what the file leaves out takes the API's default.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSpec {
    /// The id, which is how the file and the server's tenants are matched.
    pub id: String,
    /// The parent, if any.
    pub parent: Option<String>,
    /// The own tier, if any.
    pub tier: Option<String>,
    /// The mode.
    pub mode: Mode,
    /// The overcommit ratio.
    pub overcommit: Ppm,
    /// The labels (a JSON object of strings).
    pub labels: Value,
}

/// An assignment, without the id the server gives it; matched by subject and tier.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentSpec {
    /// To whom.
    pub subject: Subject,
    /// The tier it gives.
    pub tier: String,
    /// Whether it applies.
    pub enabled: bool,
    /// When it stops applying.
    pub expires_at: Option<DateTime<Utc>>,
}
