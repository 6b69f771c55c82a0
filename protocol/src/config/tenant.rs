//! Who a request is charged to: where the tenant id and the caller's roles come from,
//! and what a tenant id may be.

use serde::{Deserialize, Serialize};

use super::error::{fail, is_claim_path, is_header_name, ConfigError};

/// The placeholder of the tenant segment in `tenant.path_pattern`.
pub const TENANT_PLACEHOLDER: &str = "{tenant}";

/// Where the tenant id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantSource {
    /// A request header (`tenant.header`). Only safe when something in front of Envoy
    /// sets it: a client can write any header.
    #[default]
    Header,
    /// A claim of the JWT payload Envoy's `jwt_authn` verified and forwarded
    /// (`tenant.jwt_payload_header`, `tenant.claim`).
    Jwt,
    /// A segment of the path (`tenant.path_pattern`).
    Path,
}

/// How the tenant and its roles are found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Where the tenant id comes from.
    #[serde(default)]
    pub from: TenantSource,
    /// The header naming the tenant when `from` is `header` (lower case).
    #[serde(default = "default_tenant_header")]
    pub header: String,
    /// The header `jwt_authn` forwards the verified payload in
    /// (`forward_payload_header`; base64url JSON).
    #[serde(default = "default_jwt_payload_header")]
    pub jwt_payload_header: String,
    /// The claim holding the tenant when `from` is `jwt`; dots walk into objects
    /// (`org.id`). A string or an integer.
    #[serde(default)]
    pub claim: Option<String>,
    /// The path pattern when `from` is `path`: literal segments and one `{tenant}`
    /// segment, matched as a prefix (`/tenants/{tenant}` matches `/tenants/acme/files`).
    #[serde(default)]
    pub path_pattern: Option<String>,
    /// The JWT claim holding the caller's roles: an array of strings or one
    /// space-separated string. Roles may select a tier.
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// The tenant of requests that carry none; without it they get 401.
    #[serde(default)]
    pub default: Option<String>,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            from: TenantSource::Header,
            header: default_tenant_header(),
            jwt_payload_header: default_jwt_payload_header(),
            claim: None,
            path_pattern: None,
            roles_claim: None,
            default: None,
        }
    }
}

impl TenantConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !is_header_name(&self.header) {
            return fail("tenant.header", "must be a lower-case header name");
        }
        if !is_header_name(&self.jwt_payload_header) {
            return fail(
                "tenant.jwt_payload_header",
                "must be a lower-case header name",
            );
        }
        match self.from {
            TenantSource::Header => {}
            TenantSource::Jwt => match &self.claim {
                Some(claim) if is_claim_path(claim) => {}
                Some(_) => return fail("tenant.claim", "must be dot-separated claim names"),
                None => return fail("tenant.claim", "is required when tenant.from is jwt"),
            },
            TenantSource::Path => match &self.path_pattern {
                Some(pattern) if is_path_pattern(pattern) => {}
                Some(_) => {
                    return fail(
                        "tenant.path_pattern",
                        "must start with '/' and have exactly one {tenant} segment",
                    )
                }
                None => {
                    return fail(
                        "tenant.path_pattern",
                        "is required when tenant.from is path",
                    )
                }
            },
        }
        if self
            .roles_claim
            .as_deref()
            .is_some_and(|c| !is_claim_path(c))
        {
            return fail("tenant.roles_claim", "must be dot-separated claim names");
        }
        if self
            .default
            .as_deref()
            .is_some_and(|d| !is_valid_tenant_id(d))
        {
            return fail("tenant.default", "must be a valid tenant id");
        }
        Ok(())
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

fn is_path_pattern(pattern: &str) -> bool {
    pattern.starts_with('/')
        && pattern
            .split('/')
            .filter(|segment| *segment == TENANT_PLACEHOLDER)
            .count()
            == 1
        && !pattern.replace(TENANT_PLACEHOLDER, "").contains(['{', '}'])
}

fn default_tenant_header() -> String {
    "x-tenant-id".into()
}

fn default_jwt_payload_header() -> String {
    "x-jwt-payload".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

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
