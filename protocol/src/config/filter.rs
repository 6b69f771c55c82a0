//! The whole filter configuration: parsed from JSON, then checked section by section.

use serde::{Deserialize, Serialize};

use super::budgets::BudgetsConfig;
use super::control_plane::{ControlPlaneConfig, FailureMode};
use super::costs::CostsConfig;
use super::error::ConfigError;
use super::headers::HeadersConfig;
use super::matching::MatchConfig;
use super::quota_path;
use super::tenant::TenantConfig;

/// The whole filter configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The control plane to ask.
    pub control_plane: ControlPlaneConfig,
    /// Who the tenant is.
    #[serde(default)]
    pub tenant: TenantConfig,
    /// Which requests count.
    #[serde(default, rename = "match")]
    pub matching: MatchConfig,
    /// What a request costs.
    #[serde(default)]
    pub costs: CostsConfig,
    /// The quota headers.
    #[serde(default)]
    pub headers: HeadersConfig,
    /// What to do without a decision.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Decide, count and add headers, but never reject (a log-only rollout).
    #[serde(default)]
    pub shadow: bool,
    /// The longest a REJECT is remembered so the tenant's next requests are answered
    /// 429 without a callout (the control plane's `cache_reject_for_s` and the window's
    /// reset bound it too); 0 turns the cache off.
    #[serde(default = "default_reject_cache_max_s")]
    pub reject_cache_max_s: u64,
    /// The fast path: budgets leased from the control plane and spent locally.
    #[serde(default)]
    pub budgets: BudgetsConfig,
    /// The path the gateway answers itself with the caller's own quota (`GET`, for the
    /// tenant its requests are charged to; `POST /v1/quota` to the control plane);
    /// with `tenant.from: path`, the path after the tenant's prefix. Never counted.
    /// Absent: off.
    #[serde(default)]
    pub quota_path: Option<String>,
}

impl FilterConfig {
    /// Parses and validates the JSON of the filter config.
    pub fn from_json(bytes: &[u8]) -> Result<FilterConfig, ConfigError> {
        let mut config: FilterConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        config.validate()?;
        config.control_plane.authorize();
        Ok(config)
    }

    /// Every section in turn: the first bad value is the one named.
    fn validate(&self) -> Result<(), ConfigError> {
        self.control_plane.validate()?;
        self.tenant.validate()?;
        self.matching.validate()?;
        self.costs.validate()?;
        self.budgets.validate()?;
        self.headers.validate()?;
        quota_path::validate(self.quota_path.as_deref())
    }

    /// Whether a request with this method and path is checked and counted. The query
    /// string is not part of the match.
    pub fn counts(&self, method: &str, path: &str) -> bool {
        self.matching.counts(method, path)
    }
}

fn default_reject_cache_max_s() -> u64 {
    60
}
