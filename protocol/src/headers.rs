//! Quota response headers.
//!
//! Two families, both on every counted response:
//! - the IETF httpapi ratelimit-headers draft, as Structured Fields:
//!   `RateLimit-Policy: "monthly";q=1000;qu="content-bytes"` and
//!   `RateLimit: "monthly";r=200;t=3600` (`w` only for fixed-length windows);
//! - plain `X-Quota-Limit`, `-Used`, `-Remaining`, `-Reset` (seconds) and `-Status`,
//!   under a configurable prefix.
//!
//! `q` and `X-Quota-Limit` are the *hard* limit, and `r` counts down to it: they tell a
//! client how much more it may send before it is refused, which is what it throttles by.

use crate::check::PolicyStatus;
use crate::decision::QuotaStatus;
use crate::resource;

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
    prefix: &str,
    status: QuotaStatus,
    policy: Option<&PolicyStatus>,
) -> Vec<Header> {
    let mut headers = Vec::with_capacity(7);
    if let Some(policy) = policy {
        headers.push(("ratelimit-policy".to_string(), ratelimit_policy(policy)));
        headers.push(("ratelimit".to_string(), ratelimit(policy)));
        headers.push((format!("{prefix}limit"), policy.limit.to_string()));
        headers.push((format!("{prefix}used"), policy.used.to_string()));
        headers.push((format!("{prefix}remaining"), policy.remaining.to_string()));
        headers.push((format!("{prefix}reset"), policy.reset_after_s.to_string()));
    }
    headers.push((format!("{prefix}status"), status.as_str().to_string()));
    headers
}

/// `RateLimit-Policy` field value.
pub fn ratelimit_policy(policy: &PolicyStatus) -> String {
    let mut value = format!("{};q={}", sf_string(&policy.name), policy.limit);
    if let Some(unit) = quota_unit(&policy.resource) {
        value.push_str(&format!(";qu={}", sf_string(unit)));
    }
    if let Some(window) = policy.window_s {
        value.push_str(&format!(";w={window}"));
    }
    value
}

/// `RateLimit` field value.
pub fn ratelimit(policy: &PolicyStatus) -> String {
    format!(
        "{};r={};t={}",
        sf_string(&policy.name),
        policy.remaining,
        policy.reset_after_s
    )
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
        let headers = quota_headers("x-quota-", QuotaStatus::Warning, Some(&monthly_bytes()));
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
        let headers = quota_headers("x-q-", QuotaStatus::Unknown, None);
        assert_eq!(
            headers,
            vec![("x-q-status".to_string(), "unknown".to_string())]
        );
    }
}
