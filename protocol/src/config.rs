//! The filter's configuration: JSON in the Envoy filter config
//! (`config.configuration`), parsed once in `on_configure`.
//!
//! Every field has a default except the control-plane cluster, so the smallest config
//! is `{"control_plane": {"cluster": "tollgate_control_plane"}}`. Unknown fields are
//! refused: a typo must fail `envoy --mode validate`, not silently disable a setting.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What the filter does when it cannot get a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Let the request through with `X-Quota-Status: unknown`.
    #[default]
    Open,
    /// Answer 503.
    Closed,
}

/// Where and how the filter calls the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// The Envoy cluster that reaches the control plane.
    pub cluster: String,
    /// `:authority` of the callouts.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// How long a request may wait for a decision before `failure_mode` applies.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// The whole filter configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The control plane to ask.
    pub control_plane: ControlPlaneConfig,
    /// The request header naming the tenant (lower case).
    #[serde(default = "default_tenant_header")]
    pub tenant_header: String,
    /// What to do without a decision.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Prefix of the plain quota headers (`x-quota-` gives `x-quota-limit`, …).
    #[serde(default = "default_header_prefix")]
    pub header_prefix: String,
    /// Requests whose path starts with one of these are neither checked nor counted.
    #[serde(default = "default_excluded_paths")]
    pub exclude_paths: Vec<String>,
}

/// A configuration the filter must refuse to start with.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Not JSON of the expected shape.
    #[error("invalid filter configuration: {0}")]
    Json(String),
    /// A field with a value out of range.
    #[error("invalid filter configuration: {field}: {problem}")]
    Field {
        /// Dotted path of the field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// The longest wait for a decision we accept; longer means requests pile up.
const MAX_TIMEOUT_MS: u64 = 60_000;

impl FilterConfig {
    /// Parses and validates the JSON of the filter config.
    pub fn from_json(bytes: &[u8]) -> Result<FilterConfig, ConfigError> {
        let config: FilterConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let field = |field, problem| Err(ConfigError::Field { field, problem });
        if self.control_plane.cluster.is_empty() {
            return field("control_plane.cluster", "must not be empty");
        }
        if self.control_plane.authority.is_empty() {
            return field("control_plane.authority", "must not be empty");
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.control_plane.timeout_ms) {
            return field("control_plane.timeout_ms", "must be 1..=60000");
        }
        if !is_header_name(&self.tenant_header) {
            return field("tenant_header", "must be a lower-case header name");
        }
        if !self.header_prefix.is_empty() && !is_header_name(&self.header_prefix) {
            return field("header_prefix", "must be lower-case header-name characters");
        }
        if self.exclude_paths.iter().any(|p| !p.starts_with('/')) {
            return field("exclude_paths", "every entry must start with '/'");
        }
        Ok(())
    }

    /// Whether a request to `path` is checked and counted.
    pub fn counts_path(&self, path: &str) -> bool {
        !self
            .exclude_paths
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
    }
}

/// Whether `id` may name a tenant: 1–128 characters of letters, digits and `._:@/-`.
/// The same rule holds at the gateway and in the admin API, so a tenant that can be
/// created can always be addressed.
pub fn is_valid_tenant_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@/-".contains(&b))
        // `.` and `..` cannot be one segment of a URL path (clients remove them), so the
        // admin API could never address such a tenant.
        && id != "."
        && id != ".."
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn default_authority() -> String {
    "tollgate-control-plane".into()
}

fn default_timeout_ms() -> u64 {
    200
}

fn default_tenant_header() -> String {
    "x-tenant-id".into()
}

fn default_header_prefix() -> String {
    "x-quota-".into()
}

fn default_excluded_paths() -> Vec<String> {
    ["/health", "/metrics", "/ready"].map(String::from).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn smallest_config_takes_every_default() {
        let config = FilterConfig::from_json(br#"{"control_plane":{"cluster":"cp"}}"#).unwrap();
        assert_eq!(config.control_plane.timeout_ms, 200);
        assert_eq!(config.control_plane.authority, "tollgate-control-plane");
        assert_eq!(config.tenant_header, "x-tenant-id");
        assert_eq!(config.failure_mode, FailureMode::Open);
        assert_eq!(config.header_prefix, "x-quota-");
        assert!(!config.counts_path("/health"));
        assert!(!config.counts_path("/metrics/x"));
        assert!(config.counts_path("/upload"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn misspelled_field_is_refused() {
        let err =
            FilterConfig::from_json(br#"{"control_plane":{"cluster":"cp"},"failure":"open"}"#)
                .unwrap_err();
        assert!(matches!(err, ConfigError::Json(m) if m.contains("failure")));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn zero_timeout_is_refused_by_name() {
        let err = FilterConfig::from_json(br#"{"control_plane":{"cluster":"cp","timeout_ms":0}}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid filter configuration: control_plane.timeout_ms: must be 1..=60000"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn upper_case_tenant_header_is_refused() {
        let json = br#"{"control_plane":{"cluster":"cp"},"tenant_header":"X-Tenant"}"#;
        assert!(matches!(
            FilterConfig::from_json(json),
            Err(ConfigError::Field {
                field: "tenant_header",
                ..
            })
        ));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn closed_failure_mode_parses() {
        let json = br#"{"control_plane":{"cluster":"cp"},"failure_mode":"closed"}"#;
        assert_eq!(
            FilterConfig::from_json(json).unwrap().failure_mode,
            FailureMode::Closed
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn tenant_ids_allow_hierarchy_separators_only() {
        assert!(is_valid_tenant_id("acme/research"));
        assert!(is_valid_tenant_id("user@example.com"));
        assert!(!is_valid_tenant_id(""));
        assert!(!is_valid_tenant_id("a b"));
        assert!(!is_valid_tenant_id(&"x".repeat(129)));
        assert!(!is_valid_tenant_id(".") && !is_valid_tenant_id(".."));
        assert!(is_valid_tenant_id("...") && is_valid_tenant_id("a.b"));
    }
}
