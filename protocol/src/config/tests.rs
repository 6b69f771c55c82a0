//! Whole configurations: defaults, refusals by field name, every option at once.

use wasm_bindgen_test::wasm_bindgen_test;

use super::control_plane::{ConfigSecret, FailureMode};
use super::error::ConfigError;
use super::filter::FilterConfig;
use super::tenant::TenantSource;

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
    assert_eq!(config.quota_path, None, "the self-view is opt-in");
    assert!(!config.counts("GET", "/health"));
    assert!(!config.counts("GET", "/metrics/x"));
    assert!(config.counts("POST", "/upload?x=/health"));
}

#[wasm_bindgen_test(unsupported = test)]
fn misspelled_field_is_refused_by_name() {
    let err = parse(r#"{"control_plane":{"cluster":"cp"},"failure":"open"}"#).unwrap_err();
    assert!(matches!(err, ConfigError::Json(m) if m.contains("failure")));
    let err = parse(r#"{"control_plane":{"cluster":"cp"},"costs":{"request":true}}"#).unwrap_err();
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
        (r#""quota_path":".well-known/quota""#, "quota_path"),
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
        "budgets": {"enabled": true, "want": 500},
        "quota_path": "/.well-known/quota"
    }"#;
    let config = parse(json).unwrap();
    assert_eq!(config.tenant.claim.as_deref(), Some("org.id"));
    assert_eq!(config.quota_path.as_deref(), Some("/.well-known/quota"));
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
fn a_quota_path_must_be_a_plain_normalised_path() {
    for good in [
        "/.well-known/quota",
        "/quota",
        "/v1/me/quota.json",
        "/a-b_c~d",
    ] {
        let json = format!(r#"{{"control_plane":{{"cluster":"cp"}},"quota_path":"{good}"}}"#);
        assert_eq!(parse(&json).unwrap().quota_path.as_deref(), Some(good));
    }
    let long = format!("/{}", "q".repeat(256));
    for bad in [
        "",
        "quota",
        "/quota?x=1",
        "/quota#top",
        "/",
        "//quota",
        "/quota/",
        "/a/./quota",
        "/a/../quota",
        "/my quota",
        "/quot\\u00e4",
        long.as_str(),
    ] {
        let json = format!(r#"{{"control_plane":{{"cluster":"cp"}},"quota_path":"{bad}"}}"#);
        assert_eq!(field_of(&json), "quota_path", "{bad:?}");
    }
}
