//! The filter's configuration: JSON in the Envoy filter config
//! (`config.configuration`), parsed once in `on_configure`.
//!
//! Every field has a default except the control-plane cluster, so the smallest config
//! is `{"control_plane": {"cluster": "tollgate_control_plane"}}`. Unknown fields are
//! refused and every value is checked, and the error names the field: a typo must make
//! Envoy refuse the listener, not silently run it unprotected. `envoy/README.md`
//! documents every field with an example.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::check::AMOUNT_MAX;
use crate::resource;

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
    /// How long a request may wait for a decision before `failure_mode` applies. The
    /// filter enforces it itself; Envoy's own callout timeout is set later, as a backstop.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The secret the control plane's decision API asks of gateways (`tollgate serve
    /// --decision-token`), sent on every callout as `authorization: Bearer`. Envoy's
    /// config dump shows it: keep Envoy's admin interface private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<ConfigSecret>,
    /// `Bearer <token>`, built once from `token` when the config is read.
    #[serde(skip)]
    pub authorization: Option<ConfigSecret>,
}

/// A secret of the filter config: read from JSON as a string, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigSecret(String);

impl ConfigSecret {
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

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

/// Which requests are checked and counted; the others pass untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Methods that count (upper case); empty means every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Methods that never count.
    #[serde(default)]
    pub exclude_methods: Vec<String>,
    /// Path prefixes that count.
    #[serde(default = "default_include_paths")]
    pub include_paths: Vec<String>,
    /// Path prefixes that never count, even inside an included prefix.
    #[serde(default = "default_exclude_paths")]
    pub exclude_paths: Vec<String>,
}

/// An upstream-reported cost read from a response header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseHeaderCost {
    /// The header carrying a non-negative integer (lower case), e.g. `x-usage-tokens`.
    pub header: String,
    /// The resource it is counted as, e.g. `tokens`.
    pub resource: String,
}

/// An upstream-reported cost read from a JSON (or `text/event-stream`) response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseJsonCost {
    /// RFC 6901 JSON pointer to a non-negative integer, e.g. `/usage/total_tokens`. In
    /// an event stream, the last event's `data:` JSON that has it wins.
    pub pointer: String,
    /// The resource it is counted as, e.g. `tokens`.
    pub resource: String,
    /// The most body the filter keeps to parse (a plain JSON body) or to hold one event
    /// (a stream); a larger body counts 0 and is logged.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
}

/// What a request costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostsConfig {
    /// One `requests` per counted request.
    #[serde(default = "yes")]
    pub requests: bool,
    /// `request_bytes`: reserved from `content-length` at the headers, checked as the
    /// body streams past what was reserved, settled to the bytes seen at the end.
    #[serde(default = "yes")]
    pub request_bytes: bool,
    /// How many body bytes the first check reserves ahead while a body streams beyond
    /// what `content-length` announced (or without one); each further check of the same
    /// body asks twice as far, up to 16 times this, and exactly what was seen near the
    /// hard limit.
    #[serde(default = "default_stream_reserve_bytes")]
    pub stream_reserve_bytes: u64,
    /// `response_bytes`: the response body's bytes, settled after the response.
    #[serde(default)]
    pub response_bytes: bool,
    /// A cost the upstream reports in a response header, settled after the response.
    #[serde(default)]
    pub response_header: Option<ResponseHeaderCost>,
    /// A cost the upstream reports in its JSON or event-stream body, settled after it.
    #[serde(default)]
    pub response_json: Option<ResponseJsonCost>,
    /// What each cost known only after the response holds at the headers, so a tenant
    /// with nothing left is refused before the upstream does the work.
    #[serde(default = "default_response_reserve")]
    pub response_reserve: u64,
    /// `concurrent_requests`: one slot held (under `x-request-id`) while the request
    /// is in flight.
    #[serde(default)]
    pub concurrent_requests: bool,
}

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
}

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

/// The placeholder of the tenant segment in `tenant.path_pattern`.
pub const TENANT_PLACEHOLDER: &str = "{tenant}";

impl FilterConfig {
    /// Parses and validates the JSON of the filter config.
    pub fn from_json(bytes: &[u8]) -> Result<FilterConfig, ConfigError> {
        let mut config: FilterConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        config.validate()?;
        let cp = &mut config.control_plane;
        cp.authorization = (cp.token.as_ref()).map(|t| ConfigSecret(format!("Bearer {}", t.0)));
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, problem| Err(ConfigError::Field { field, problem });
        let cp = &self.control_plane;
        if cp.cluster.is_empty() {
            return fail("control_plane.cluster", "must not be empty");
        }
        if cp.authority.is_empty() {
            return fail("control_plane.authority", "must not be empty");
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&cp.timeout_ms) {
            return fail("control_plane.timeout_ms", "must be 1..=60000");
        }
        if cp.token.as_ref().is_some_and(|t| {
            !(1..=4096).contains(&t.0.len()) || !t.0.bytes().all(|b| b.is_ascii_graphic())
        }) {
            return fail(
                "control_plane.token",
                "must be 1 to 4096 printable ASCII characters, without spaces",
            );
        }
        self.validate_tenant()?;
        let m = &self.matching;
        if m.methods
            .iter()
            .chain(&m.exclude_methods)
            .any(|m| !is_method(m))
        {
            return fail("match.methods", "must be upper-case method names");
        }
        if m.include_paths.is_empty() {
            return fail("match.include_paths", "must name at least one prefix");
        }
        if m.include_paths.iter().any(|p| !p.starts_with('/')) {
            return fail("match.include_paths", "every entry must start with '/'");
        }
        if m.exclude_paths.iter().any(|p| !p.starts_with('/')) {
            return fail("match.exclude_paths", "every entry must start with '/'");
        }
        self.validate_costs()?;
        if !(1..=AMOUNT_MAX).contains(&self.budgets.want) {
            return fail("budgets.want", "must be 1..=9223372036854775807");
        }
        let h = &self.headers;
        if !h.prefix.is_empty() && !is_header_name(&h.prefix) {
            return fail(
                "headers.prefix",
                "must be lower-case header-name characters",
            );
        }
        if !h.upstream_status.is_empty() && !is_header_name(&h.upstream_status) {
            return fail(
                "headers.upstream_status",
                "must be a lower-case header name",
            );
        }
        Ok(())
    }

    fn validate_tenant(&self) -> Result<(), ConfigError> {
        let fail = |field, problem| Err(ConfigError::Field { field, problem });
        let t = &self.tenant;
        if !is_header_name(&t.header) {
            return fail("tenant.header", "must be a lower-case header name");
        }
        if !is_header_name(&t.jwt_payload_header) {
            return fail(
                "tenant.jwt_payload_header",
                "must be a lower-case header name",
            );
        }
        match t.from {
            TenantSource::Header => {}
            TenantSource::Jwt => match &t.claim {
                Some(claim) if is_claim_path(claim) => {}
                Some(_) => return fail("tenant.claim", "must be dot-separated claim names"),
                None => return fail("tenant.claim", "is required when tenant.from is jwt"),
            },
            TenantSource::Path => match &t.path_pattern {
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
        if t.roles_claim.as_deref().is_some_and(|c| !is_claim_path(c)) {
            return fail("tenant.roles_claim", "must be dot-separated claim names");
        }
        if t.default.as_deref().is_some_and(|d| !is_valid_tenant_id(d)) {
            return fail("tenant.default", "must be a valid tenant id");
        }
        Ok(())
    }

    fn validate_costs(&self) -> Result<(), ConfigError> {
        let fail = |field, problem| Err(ConfigError::Field { field, problem });
        let c = &self.costs;
        // Both are amounts the filter asks the control plane for.
        if !(1..=AMOUNT_MAX).contains(&c.stream_reserve_bytes) {
            return fail(
                "costs.stream_reserve_bytes",
                "must be 1..=9223372036854775807",
            );
        }
        if c.response_reserve > AMOUNT_MAX {
            return fail(
                "costs.response_reserve",
                "must be at most 9223372036854775807",
            );
        }
        if let Some(cost) = &c.response_header {
            if !is_header_name(&cost.header) {
                return fail(
                    "costs.response_header.header",
                    "must be a lower-case header name",
                );
            }
            if !is_operator_resource(&cost.resource) {
                return fail(
                    "costs.response_header.resource",
                    "must be a resource name other than the built-in ones",
                );
            }
        }
        if let Some(cost) = &c.response_json {
            if !(cost.pointer.is_empty() || cost.pointer.starts_with('/')) {
                return fail("costs.response_json.pointer", "must be a JSON pointer");
            }
            if !is_operator_resource(&cost.resource) {
                return fail(
                    "costs.response_json.resource",
                    "must be a resource name other than the built-in ones",
                );
            }
            if cost.max_body_bytes == 0 {
                return fail("costs.response_json.max_body_bytes", "must be at least 1");
            }
        }
        Ok(())
    }

    /// Whether a request with this method and path is checked and counted. The query
    /// string is not part of the match.
    pub fn counts(&self, method: &str, path: &str) -> bool {
        let m = &self.matching;
        let path = path.split('?').next().unwrap_or_default();
        let prefixed = |prefixes: &[String]| prefixes.iter().any(|p| path.starts_with(p.as_str()));
        (m.methods.is_empty() || m.methods.iter().any(|x| x == method))
            && !m.exclude_methods.iter().any(|x| x == method)
            && prefixed(&m.include_paths)
            && !prefixed(&m.exclude_paths)
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

fn is_method(method: &str) -> bool {
    !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase())
}

fn is_claim_path(path: &str) -> bool {
    !path.is_empty() && path.split('.').all(|name| !name.is_empty())
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

/// Costs read from responses are the operator's own resources: counting them as
/// `requests` or `request_bytes` would charge a request twice.
fn is_operator_resource(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && ![
            resource::REQUESTS,
            resource::REQUEST_BYTES,
            resource::RESPONSE_BYTES,
            resource::CONCURRENT_REQUESTS,
        ]
        .contains(&name)
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

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            methods: Vec::new(),
            exclude_methods: Vec::new(),
            include_paths: default_include_paths(),
            exclude_paths: default_exclude_paths(),
        }
    }
}

impl Default for CostsConfig {
    fn default() -> Self {
        CostsConfig {
            requests: true,
            request_bytes: true,
            stream_reserve_bytes: default_stream_reserve_bytes(),
            response_bytes: false,
            response_header: None,
            response_json: None,
            response_reserve: default_response_reserve(),
            concurrent_requests: false,
        }
    }
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

fn yes() -> bool {
    true
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

fn default_jwt_payload_header() -> String {
    "x-jwt-payload".into()
}

fn default_include_paths() -> Vec<String> {
    vec!["/".into()]
}

fn default_exclude_paths() -> Vec<String> {
    ["/health", "/metrics", "/ready"].map(String::from).to_vec()
}

fn default_stream_reserve_bytes() -> u64 {
    64 * 1024
}

fn default_max_body_bytes() -> u64 {
    1024 * 1024
}

fn default_response_reserve() -> u64 {
    1
}

fn default_header_prefix() -> String {
    "x-quota-".into()
}

fn default_upstream_status_header() -> String {
    "x-quota-status".into()
}

fn default_reject_cache_max_s() -> u64 {
    60
}

fn default_budget_want() -> u64 {
    1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn parse(json: &str) -> Result<FilterConfig, ConfigError> {
        FilterConfig::from_json(json.as_bytes())
    }

    fn field_of(json: &str) -> &'static str {
        match parse(json) {
            Err(ConfigError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn smallest_config_takes_every_default() {
        let config = parse(r#"{"control_plane":{"cluster":"cp"}}"#).unwrap();
        assert_eq!(config.control_plane.timeout_ms, 200);
        assert_eq!(config.control_plane.authority, "tollgate-control-plane");
        assert_eq!(config.tenant.from, TenantSource::Header);
        assert_eq!(config.tenant.header, "x-tenant-id");
        assert_eq!(config.failure_mode, FailureMode::Open);
        assert_eq!(config.headers.prefix, "x-quota-");
        assert!(config.costs.requests && config.costs.request_bytes);
        assert!(!config.shadow);
        assert!(!config.counts("GET", "/health"));
        assert!(!config.counts("GET", "/metrics/x"));
        assert!(config.counts("POST", "/upload?x=/health"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn misspelled_field_is_refused_by_name() {
        let err = parse(r#"{"control_plane":{"cluster":"cp"},"failure":"open"}"#).unwrap_err();
        assert!(matches!(err, ConfigError::Json(m) if m.contains("failure")));
        let err =
            parse(r#"{"control_plane":{"cluster":"cp"},"costs":{"request":true}}"#).unwrap_err();
        assert!(matches!(err, ConfigError::Json(m) if m.contains("request")));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn zero_timeout_is_refused_by_name() {
        let err = parse(r#"{"control_plane":{"cluster":"cp","timeout_ms":0}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid filter configuration: control_plane.timeout_ms: must be 1..=60000"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_bad_value_names_its_field() {
        let cases = [
            (r#""tenant":{"header":"X-Tenant"}"#, "tenant.header"),
            (r#""tenant":{"from":"jwt"}"#, "tenant.claim"),
            (
                r#""tenant":{"from":"jwt","claim":"org..id"}"#,
                "tenant.claim",
            ),
            (r#""tenant":{"from":"path"}"#, "tenant.path_pattern"),
            (
                r#""tenant":{"from":"path","path_pattern":"/t/{tenant}/{tenant}"}"#,
                "tenant.path_pattern",
            ),
            (r#""tenant":{"default":"a b"}"#, "tenant.default"),
            (r#""match":{"methods":["get"]}"#, "match.methods"),
            (r#""match":{"include_paths":[]}"#, "match.include_paths"),
            (
                r#""match":{"exclude_paths":["health"]}"#,
                "match.exclude_paths",
            ),
            (
                r#""costs":{"stream_reserve_bytes":0}"#,
                "costs.stream_reserve_bytes",
            ),
            (
                r#""costs":{"response_header":{"header":"x-t","resource":"requests"}}"#,
                "costs.response_header.resource",
            ),
            (
                r#""costs":{"response_json":{"pointer":"usage","resource":"tokens"}}"#,
                "costs.response_json.pointer",
            ),
            (r#""headers":{"prefix":"X-"}"#, "headers.prefix"),
            (r#""budgets":{"enabled":true,"want":0}"#, "budgets.want"),
        ];
        for (part, field) in cases {
            let json = format!(r#"{{"control_plane":{{"cluster":"cp"}},{part}}}"#);
            assert_eq!(field_of(&json), field, "{part}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_gateway_token_becomes_a_bearer_header_and_is_never_printed() {
        let json = r#"{"control_plane":{"cluster":"cp","token":"gw-s3cret"}}"#;
        let config = FilterConfig::from_json(json.as_bytes()).unwrap();
        let cp = &config.control_plane;
        assert_eq!(
            cp.token.as_ref().map(ConfigSecret::expose),
            Some("gw-s3cret")
        );
        let authorization = cp.authorization.as_ref().map(ConfigSecret::expose);
        assert_eq!(authorization, Some("Bearer gw-s3cret"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        let none = parse(r#"{"control_plane":{"cluster":"cp"}}"#).unwrap();
        assert_eq!(none.control_plane.authorization, None);
        for bad in ["\"\"", "\"with space\"", "\"line\\nbreak\""] {
            let json = format!(r#"{{"control_plane":{{"cluster":"cp","token":{bad}}}}}"#);
            assert_eq!(field_of(&json), "control_plane.token", "{bad}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn amounts_past_what_the_control_plane_counts_are_refused_by_name() {
        let cases = [
            (
                r#""costs":{"response_reserve":9223372036854775808}"#,
                "costs.response_reserve",
            ),
            (
                r#""costs":{"stream_reserve_bytes":18446744073709551615}"#,
                "costs.stream_reserve_bytes",
            ),
            (r#""budgets":{"want":9223372036854775808}"#, "budgets.want"),
        ];
        for (part, field) in cases {
            let json = format!(r#"{{"control_plane":{{"cluster":"cp"}},{part}}}"#);
            assert_eq!(field_of(&json), field, "{part}");
        }
        let largest = r#"{"control_plane":{"cluster":"cp"},"costs":{"response_reserve":9223372036854775807},
            "budgets":{"want":9223372036854775807}}"#;
        assert!(parse(largest).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_option_parses() {
        let json = r#"{
            "control_plane": {"cluster": "cp", "authority": "cp.local", "timeout_ms": 150},
            "tenant": {"from": "jwt", "jwt_payload_header": "x-payload", "claim": "org.id",
                       "roles_claim": "scope", "default": "anonymous"},
            "match": {"methods": ["GET", "POST"], "exclude_methods": ["OPTIONS"],
                      "include_paths": ["/api"], "exclude_paths": ["/api/health"]},
            "costs": {"requests": true, "request_bytes": true, "stream_reserve_bytes": 4096,
                      "response_bytes": true,
                      "response_header": {"header": "x-usage-tokens", "resource": "tokens"},
                      "response_json": {"pointer": "/usage/total_tokens", "resource": "tokens",
                                        "max_body_bytes": 65536},
                      "response_reserve": 10, "concurrent_requests": true},
            "headers": {"prefix": "x-ratelimit-", "draft": false, "cache_quota_names": true,
                        "upstream_status": ""},
            "failure_mode": "closed",
            "shadow": true,
            "reject_cache_max_s": 0,
            "budgets": {"enabled": true, "want": 500}
        }"#;
        let config = parse(json).unwrap();
        assert_eq!(config.tenant.claim.as_deref(), Some("org.id"));
        assert_eq!(config.failure_mode, FailureMode::Closed);
        assert!(config.counts("GET", "/api/x"));
        assert!(!config.counts("DELETE", "/api/x"));
        assert!(!config.counts("GET", "/other"));
        assert!(!config.counts("GET", "/api/health"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn excluded_methods_never_count() {
        let json = r#"{"control_plane":{"cluster":"cp"},"match":{"exclude_methods":["OPTIONS"]}}"#;
        let config = parse(json).unwrap();
        assert!(!config.counts("OPTIONS", "/x"));
        assert!(config.counts("PUT", "/x"));
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
