//! Who a request is from: the tenant id and the caller's roles, found where the config
//! says (a header, a claim of the verified JWT payload, or a path segment).
//!
//! The JWT itself is verified by Envoy's `jwt_authn` in front of this filter, which
//! forwards the payload (base64url JSON) in a header; the filter only reads claims.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::Value;
use tollgate_protocol::config::{TenantConfig, TenantSource, TENANT_PLACEHOLDER};
use tollgate_protocol::is_valid_tenant_id;

/// The caller of a counted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant the request is charged to.
    pub tenant: String,
    /// Roles that may select the tenant's tier.
    pub roles: Vec<String>,
}

/// Why no identity could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// No tenant where the config says to look (and no default): 401.
    Missing(String),
    /// Something that cannot be a tenant id: 400.
    Invalid(String),
}

/// The most roles a request carries to the control plane; a token with more keeps the first.
const MAX_ROLES: usize = 32;

/// Finds the identity of a request; `header` looks up a request header.
pub fn identify(
    config: &TenantConfig,
    path: &str,
    header: impl Fn(&str) -> Option<String>,
) -> Result<Identity, IdentityError> {
    // Read and decoded once, and only when the tenant or the roles come from it.
    let uses_payload = config.from == TenantSource::Jwt || config.roles_claim.is_some();
    let payload = uses_payload
        .then(|| header(&config.jwt_payload_header).map(|h| decode_payload(&h)))
        .flatten();
    let found = match config.from {
        TenantSource::Header => header(&config.header).map(Ok),
        TenantSource::Jwt => {
            let claim = config.claim.as_deref().unwrap_or_default();
            match &payload {
                None => None,
                Some(Err(why)) => return Err(IdentityError::Invalid(why.clone())),
                Some(Ok(payload)) => claim_tenant(payload, claim),
            }
        }
        TenantSource::Path => {
            let pattern = config.path_pattern.as_deref().unwrap_or_default();
            path_tenant(pattern, path).map(Ok)
        }
    };
    let tenant = match (found, &config.default) {
        (Some(Ok(tenant)), _) => tenant,
        (Some(Err(why)), _) => return Err(IdentityError::Invalid(why)),
        (None, Some(default)) => default.clone(),
        (None, None) => return Err(IdentityError::Missing(where_from(config))),
    };
    if !is_valid_tenant_id(&tenant) {
        return Err(IdentityError::Invalid(format!(
            "{} is not a valid tenant id (1-128 of A-Z a-z 0-9 . _ : @ / -)",
            where_from(config)
        )));
    }
    let roles = match (&config.roles_claim, &payload) {
        (Some(claim), Some(Ok(payload))) => roles(payload, claim),
        _ => Vec::new(),
    };
    Ok(Identity { tenant, roles })
}

/// Where the tenant was looked for, for error details.
fn where_from(config: &TenantConfig) -> String {
    match config.from {
        TenantSource::Header => format!("the {} header", config.header),
        TenantSource::Jwt => format!(
            "the {} claim of the token",
            config.claim.as_deref().unwrap_or_default()
        ),
        TenantSource::Path => format!(
            "the tenant segment of {}",
            config.path_pattern.as_deref().unwrap_or_default()
        ),
    }
}

/// The JSON payload `jwt_authn` forwards: base64url, with or without padding.
fn decode_payload(encoded: &str) -> Result<Value, String> {
    const BASE64URL: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = BASE64URL
        .decode(encoded.trim())
        .map_err(|_| "the JWT payload header is not base64url".to_string())?;
    serde_json::from_slice(&bytes).map_err(|_| "the JWT payload is not JSON".to_string())
}

/// The value at a dotted claim path (`org.id`).
fn claim<'a>(payload: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(payload, |value, name| value.get(name))
}

/// The tenant in a claim: a string, or an integer written in decimal.
fn claim_tenant(payload: &Value, path: &str) -> Option<Result<String, String>> {
    match claim(payload, path)? {
        Value::String(tenant) => Some(Ok(tenant.clone())),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(Ok(n.to_string())),
        Value::Null => None,
        _ => Some(Err(format!(
            "the {path} claim of the token is not a string"
        ))),
    }
}

/// Roles from a claim: an array of strings, or one space-separated string (OAuth's
/// `scope`). Anything else, and entries that are not plain words, are ignored.
fn roles(payload: &Value, path: &str) -> Vec<String> {
    let words: Vec<&str> = match claim(payload, path) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(text)) => text.split_ascii_whitespace().collect(),
        _ => Vec::new(),
    };
    words
        .into_iter()
        .filter(|role| is_valid_tenant_id(role))
        .take(MAX_ROLES)
        .map(String::from)
        .collect()
}

/// The tenant segment of `path` under `pattern` (`/tenants/{tenant}` matches
/// `/tenants/acme/files?x=1` with `acme`), when the path matches.
fn path_tenant(pattern: &str, path: &str) -> Option<String> {
    path_match(pattern, path).map(|(tenant, _)| tenant.to_string())
}

/// With `tenant.from: path`, what follows the tenant's prefix in `path` (its query
/// left out): `/files/1` of `/tenants/acme/files/1?x=1` under `/tenants/{tenant}`;
/// `None` with another source, or when the path does not match the pattern.
pub fn after_tenant_prefix<'p>(config: &TenantConfig, path: &'p str) -> Option<&'p str> {
    let pattern = config.path_pattern.as_deref()?;
    (config.from == TenantSource::Path)
        .then(|| path_match(pattern, path))
        .flatten()
        .map(|(_, rest)| rest)
}

/// The tenant segment of `path` (its query left out) under `pattern`, and the rest of
/// the path after the pattern's segments, when the path matches.
fn path_match<'p>(pattern: &str, path: &'p str) -> Option<(&'p str, &'p str)> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments = path.split('/');
    let mut tenant = None;
    // Where the segments matched so far end in `path`.
    let mut end = 0;
    for (i, expected) in pattern.trim_end_matches('/').split('/').enumerate() {
        let segment = segments.next()?;
        end += segment.len() + usize::from(i > 0);
        if expected == TENANT_PLACEHOLDER {
            if segment.is_empty() {
                return None;
            }
            tenant = Some(segment);
        } else if segment != expected {
            return None;
        }
    }
    Some((tenant?, path.get(end..).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(json: &str) -> TenantConfig {
        serde_json::from_str(json).unwrap()
    }

    fn payload(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn identify_with(
        config: &TenantConfig,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Identity, IdentityError> {
        let headers: HashMap<String, String> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        identify(config, path, |name| headers.get(name).cloned())
    }

    #[test]
    fn header_tenant_by_default() {
        let id = identify_with(&config("{}"), "/", &[("x-tenant-id", "acme")]).unwrap();
        assert_eq!(id.tenant, "acme");
        assert!(id.roles.is_empty());
    }

    #[test]
    fn header_identity_without_a_roles_claim_never_reads_the_jwt_header() {
        let read = std::cell::RefCell::new(Vec::new());
        let id = identify(&config("{}"), "/", |name| {
            read.borrow_mut().push(name.to_string());
            (name == "x-tenant-id").then(|| "acme".to_string())
        })
        .unwrap();
        assert_eq!(id.tenant, "acme");
        assert_eq!(*read.borrow(), vec!["x-tenant-id".to_string()]);
    }

    #[test]
    fn missing_header_is_missing_unless_a_default_is_configured() {
        let missing = identify_with(&config("{}"), "/", &[]);
        assert!(matches!(missing, Err(IdentityError::Missing(m)) if m.contains("x-tenant-id")));
        let id = identify_with(&config(r#"{"default":"anonymous"}"#), "/", &[]).unwrap();
        assert_eq!(id.tenant, "anonymous");
    }

    #[test]
    fn invalid_tenant_is_invalid_even_with_a_default() {
        let config = config(r#"{"default":"anonymous"}"#);
        for bad in ["a b", "..", "x{}", "ü", &"x".repeat(129)] {
            let result = identify_with(&config, "/", &[("x-tenant-id", bad)]);
            assert!(matches!(result, Err(IdentityError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn nested_jwt_claim_and_array_roles() {
        let config = config(r#"{"from":"jwt","claim":"org.id","roles_claim":"roles"}"#);
        let token = payload(r#"{"org":{"id":"acme"},"roles":["admin","gold",7,"a b"]}"#);
        let id = identify_with(&config, "/", &[("x-jwt-payload", &token)]).unwrap();
        assert_eq!(id.tenant, "acme");
        assert_eq!(id.roles, vec!["admin", "gold"]);
    }

    #[test]
    fn space_separated_roles_and_padded_payload_and_integer_tenant() {
        let config = config(r#"{"from":"jwt","claim":"sub","roles_claim":"scope"}"#);
        let token = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"sub":12345,"scope":"read  write"}"#);
        let id = identify_with(&config, "/", &[("x-jwt-payload", &token)]).unwrap();
        assert_eq!(id.tenant, "12345");
        assert_eq!(id.roles, vec!["read", "write"]);
    }

    #[test]
    fn jwt_without_the_claim_is_missing_and_garbage_is_invalid() {
        let config = config(r#"{"from":"jwt","claim":"org.id"}"#);
        let token = payload(r#"{"org":{}}"#);
        let result = identify_with(&config, "/", &[("x-jwt-payload", &token)]);
        assert!(matches!(result, Err(IdentityError::Missing(_))));
        let result = identify_with(&config, "/", &[]);
        assert!(matches!(result, Err(IdentityError::Missing(_))));
        for garbage in [
            "%%%",
            &payload("not json"),
            &payload(r#"{"org":{"id":[1]}}"#),
        ] {
            let result = identify_with(&config, "/", &[("x-jwt-payload", garbage)]);
            assert!(
                matches!(result, Err(IdentityError::Invalid(_))),
                "{garbage}"
            );
        }
    }

    #[test]
    fn a_client_tenant_header_is_ignored_when_the_tenant_comes_from_the_token() {
        let config = config(r#"{"from":"jwt","claim":"sub"}"#);
        let token = payload(r#"{"sub":"acme"}"#);
        let headers = [("x-jwt-payload", token.as_str()), ("x-tenant-id", "victim")];
        assert_eq!(
            identify_with(&config, "/", &headers).unwrap().tenant,
            "acme"
        );
    }

    #[test]
    fn path_pattern_takes_its_segment() {
        let config = config(r#"{"from":"path","path_pattern":"/tenants/{tenant}"}"#);
        let tenant = |path| identify_with(&config, path, &[]).map(|id| id.tenant);
        assert_eq!(tenant("/tenants/acme/files?x=1"), Ok("acme".into()));
        assert_eq!(tenant("/tenants/acme"), Ok("acme".into()));
        assert!(matches!(
            tenant("/tenants/"),
            Err(IdentityError::Missing(_))
        ));
        assert!(matches!(
            tenant("/other/acme"),
            Err(IdentityError::Missing(_))
        ));
        assert!(matches!(
            tenant("/tenants/a%20b"),
            Err(IdentityError::Invalid(_))
        ));
    }

    #[test]
    fn what_follows_the_tenants_prefix_is_the_rest_of_the_path_without_its_query() {
        let config = config(r#"{"from":"path","path_pattern":"/tenants/{tenant}"}"#);
        let rest = |path| after_tenant_prefix(&config, path);
        assert_eq!(
            rest("/tenants/acme/.well-known/quota?x=1"),
            Some("/.well-known/quota")
        );
        assert_eq!(rest("/tenants/acme"), Some(""));
        assert_eq!(rest("/tenants//quota"), None, "no tenant");
        assert_eq!(rest("/other/acme/quota"), None);
        let trailing =
            super::tests::config(r#"{"from":"path","path_pattern":"/v1/{tenant}/chat/"}"#);
        assert_eq!(
            after_tenant_prefix(&trailing, "/v1/acme/chat/quota"),
            Some("/quota")
        );
        let header = super::tests::config("{}");
        assert_eq!(after_tenant_prefix(&header, "/tenants/acme/quota"), None);
    }

    #[test]
    fn path_pattern_with_a_trailing_literal() {
        let config = config(r#"{"from":"path","path_pattern":"/v1/{tenant}/chat/"}"#);
        let tenant = |path| identify_with(&config, path, &[]).map(|id| id.tenant);
        assert_eq!(tenant("/v1/acme/chat/completions"), Ok("acme".into()));
        assert!(matches!(
            tenant("/v1/acme/files"),
            Err(IdentityError::Missing(_))
        ));
    }
}
