//! Quota response headers.
//!
//! Two families, both on every counted response:
//! - the IETF httpapi ratelimit-headers draft, as Structured Fields:
//!   `RateLimit-Policy: "monthly";q=1000;qu="content-bytes"` and
//!   `RateLimit: "monthly";r=200;t=3600` (`w` only for fixed-length windows);
//! - plain `X-Quota-Limit`, `-Used`, `-Remaining`, `-Reset` (seconds) and `-Status`,
//!   under a configurable prefix, and optionally again as `X-Cache-Quota-*` for
//!   clients of older caches.
//!
//! Structured Fields integers have at most 15 digits (RFC 9651 §3.3.1): larger values
//! are clamped to 999,999,999,999,999 in the draft headers, never sent unparseable. The
//! plain headers carry the exact number.
//!
//! `q` and `X-Quota-Limit` are the *hard* limit, and `r` counts down to it: they tell a
//! client how much more it may send before it is refused, which is what it throttles by.

use crate::check::PolicyStatus;
use crate::config::HeadersConfig;
use crate::decision::QuotaStatus;
use crate::resource;

/// The largest Structured Fields integer.
pub const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// The prefix of the compatibility header family (`cache_quota_names`).
pub const CACHE_QUOTA_PREFIX: &str = "x-cache-quota-";

/// A header name and value.
pub type Header = (String, String);

/// The quota unit of the draft (`qu`) for a resource, when it has one.
pub fn quota_unit(resource_name: &str) -> Option<&'static str> {
    match resource_name {
        resource::REQUESTS => Some("requests"),
        resource::REQUEST_BYTES | resource::RESPONSE_BYTES => Some("content-bytes"),
        resource::CONCURRENT_REQUESTS => Some("concurrent-requests"),
        _ => None,
    }
}

/// All quota headers for a response: the status always, the counts when a policy applied.
pub fn quota_headers(
    config: &HeadersConfig,
    status: QuotaStatus,
    policy: Option<&PolicyStatus>,
) -> Vec<Header> {
    let mut headers = Vec::with_capacity(14);
    if let (Some(policy), true) = (policy, config.draft) {
        headers.push(("ratelimit-policy".to_string(), ratelimit_policy(policy)));
        headers.push(("ratelimit".to_string(), ratelimit(policy)));
    }
    plain_headers(&mut headers, &config.prefix, status, policy);
    if config.cache_quota_names && config.prefix != CACHE_QUOTA_PREFIX {
        plain_headers(&mut headers, CACHE_QUOTA_PREFIX, status, policy);
    }
    headers
}

fn plain_headers(
    headers: &mut Vec<Header>,
    prefix: &str,
    status: QuotaStatus,
    policy: Option<&PolicyStatus>,
) {
    if let Some(policy) = policy {
        headers.push((format!("{prefix}limit"), policy.limit.to_string()));
        headers.push((format!("{prefix}used"), policy.used.to_string()));
        headers.push((format!("{prefix}remaining"), policy.remaining.to_string()));
        headers.push((format!("{prefix}reset"), policy.reset_after_s.to_string()));
    }
    headers.push((format!("{prefix}status"), status.as_str().to_string()));
}

/// `RateLimit-Policy` field value.
pub fn ratelimit_policy(policy: &PolicyStatus) -> String {
    let mut value = format!("{};q={}", sf_string(&policy.name), sf_int(policy.limit));
    if let Some(unit) = quota_unit(&policy.resource) {
        value.push_str(&format!(";qu={}", sf_string(unit)));
    }
    if let Some(window) = policy.window_s {
        value.push_str(&format!(";w={}", sf_int(window)));
    }
    value
}

/// `RateLimit` field value.
pub fn ratelimit(policy: &PolicyStatus) -> String {
    format!(
        "{};r={};t={}",
        sf_string(&policy.name),
        sf_int(policy.remaining),
        sf_int(policy.reset_after_s)
    )
}

/// A Structured Fields integer: at most 15 digits.
fn sf_int(value: u64) -> u64 {
    value.min(SF_INTEGER_MAX)
}

/// A Structured Fields sf-string (RFC 9651 §3.3.3): printable ASCII, quoted, with `"`
/// and `\` escaped. Other characters cannot be carried and are replaced by `?`.
fn sf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn monthly_bytes() -> PolicyStatus {
        PolicyStatus {
            name: "monthly".into(),
            tenant: None,
            resource: "request_bytes".into(),
            quota: 10_737_418_240,
            limit: 10_737_418_240,
            used: 10_684_989_440,
            remaining: 52_428_800,
            reset_after_s: 1_209_600,
            window_s: None,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn monthly_byte_policy_matches_the_draft_example() {
        let policy = monthly_bytes();
        assert_eq!(
            ratelimit_policy(&policy),
            r#""monthly";q=10737418240;qu="content-bytes""#
        );
        assert_eq!(ratelimit(&policy), r#""monthly";r=52428800;t=1209600"#);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn fixed_window_carries_its_length() {
        let policy = PolicyStatus {
            name: "per-minute".into(),
            tenant: None,
            resource: "requests".into(),
            window_s: Some(60),
            ..monthly_bytes()
        };
        assert_eq!(
            ratelimit_policy(&policy),
            r#""per-minute";q=10737418240;qu="requests";w=60"#
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn operator_defined_resource_has_no_unit() {
        let policy = PolicyStatus {
            resource: "tokens".into(),
            ..monthly_bytes()
        };
        assert_eq!(ratelimit_policy(&policy), r#""monthly";q=10737418240"#);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn policy_names_are_escaped_as_sf_strings() {
        assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(sf_string("caf\u{e9}"), r#""caf?""#);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn counted_response_has_all_headers_under_the_prefix() {
        let headers = quota_headers(
            &HeadersConfig::default(),
            QuotaStatus::Warning,
            Some(&monthly_bytes()),
        );
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-quota-limit"), Some("10737418240"));
        assert_eq!(get("x-quota-used"), Some("10684989440"));
        assert_eq!(get("x-quota-remaining"), Some("52428800"));
        assert_eq!(get("x-quota-reset"), Some("1209600"));
        assert_eq!(get("x-quota-status"), Some("warning"));
        assert!(get("ratelimit").is_some() && get("ratelimit-policy").is_some());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn unknown_status_carries_only_the_status() {
        let config = HeadersConfig {
            prefix: "x-q-".into(),
            ..HeadersConfig::default()
        };
        let headers = quota_headers(&config, QuotaStatus::Unknown, None);
        assert_eq!(
            headers,
            vec![("x-q-status".to_string(), "unknown".to_string())]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn integers_past_fifteen_digits_are_clamped_only_in_structured_fields() {
        let policy = PolicyStatus {
            limit: u64::MAX,
            remaining: 10_u64.pow(15),
            ..monthly_bytes()
        };
        assert_eq!(
            ratelimit_policy(&policy),
            r#""monthly";q=999999999999999;qu="content-bytes""#
        );
        assert_eq!(
            ratelimit(&policy),
            r#""monthly";r=999999999999999;t=1209600"#
        );
        let headers = quota_headers(&HeadersConfig::default(), QuotaStatus::Ok, Some(&policy));
        assert!(headers.contains(&("x-quota-limit".into(), u64::MAX.to_string())));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn compatibility_names_and_no_draft_headers() {
        let config = HeadersConfig {
            draft: false,
            cache_quota_names: true,
            ..HeadersConfig::default()
        };
        let headers = quota_headers(&config, QuotaStatus::Ok, Some(&monthly_bytes()));
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!names.contains(&"ratelimit") && !names.contains(&"ratelimit-policy"));
        assert!(names.contains(&"x-quota-used") && names.contains(&"x-cache-quota-used"));
        assert!(names.contains(&"x-cache-quota-status"));
    }
}
