//! The fast path's budgets.

use serde::{Deserialize, Serialize};

use super::error::{fail, ConfigError};
use crate::check::AMOUNT_MAX;

/// Budgets (`POST /v1/leases`): a request whose costs are known at its headers is
/// admitted from a budget every worker shares, without a callout; the control plane
/// reserved the budget as usage, so budgets never let usage pass a hard limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetsConfig {
    /// Off: every counted request is checked (`/v1/check`).
    #[serde(default)]
    pub enabled: bool,
    /// How much of a resource one lease asks for (the control plane grants less near a
    /// limit, and nothing when a budget would be too coarse: then each request is
    /// checked).
    #[serde(default = "default_budget_want")]
    pub want: u64,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        BudgetsConfig {
            enabled: false,
            want: default_budget_want(),
        }
    }
}

impl BudgetsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=AMOUNT_MAX).contains(&self.want) {
            return fail("budgets.want", "must be 1..=9223372036854775807");
        }
        Ok(())
    }
}

fn default_budget_want() -> u64 {
    1000
}
