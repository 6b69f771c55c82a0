//! The quota headers the filter adds to responses and tells the upstream.

use serde::{Deserialize, Serialize};

use super::error::{fail, is_header_name, ConfigError};

/// The quota headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    /// Prefix of the plain quota headers (`x-quota-` gives `x-quota-limit`, …).
    #[serde(default = "default_header_prefix")]
    pub prefix: String,
    /// The IETF draft `RateLimit-Policy` and `RateLimit` headers.
    #[serde(default = "yes")]
    pub draft: bool,
    /// Also the `x-cache-quota-*` names older clients read.
    #[serde(default)]
    pub cache_quota_names: bool,
    /// Tell the upstream the quota status in this request header (empty: don't).
    #[serde(default = "default_upstream_status_header")]
    pub upstream_status: String,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        HeadersConfig {
            prefix: default_header_prefix(),
            draft: true,
            cache_quota_names: false,
            upstream_status: default_upstream_status_header(),
        }
    }
}

impl HeadersConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.prefix.is_empty() && !is_header_name(&self.prefix) {
            return fail(
                "headers.prefix",
                "must be lower-case header-name characters",
            );
        }
        if !self.upstream_status.is_empty() && !is_header_name(&self.upstream_status) {
            return fail(
                "headers.upstream_status",
                "must be a lower-case header name",
            );
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}

fn default_header_prefix() -> String {
    "x-quota-".into()
}

fn default_upstream_status_header() -> String {
    "x-quota-status".into()
}
