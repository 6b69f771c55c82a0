//! `application/problem+json` bodies (RFC 9457) for the filter's local replies.

use serde::Serialize;

use crate::check::PolicyStatus;

/// The media type of every problem body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The registered problem type for a quota that is exhausted.
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// A problem body: the RFC's members plus Tollgate's quota members where they apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the type.
    pub title: String,
    /// The HTTP status of the reply.
    pub status: u16,
    /// What happened to this request.
    pub detail: String,
    /// Names of the policies the request would have broken.
    #[serde(rename = "violated-policies", skip_serializing_if = "Vec::is_empty")]
    pub violated_policies: Vec<String>,
    /// The tenant, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The exhausted resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Its hard limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Usage already counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    /// Seconds until the window resets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_after_s: Option<u64>,
}

impl Problem {
    /// A problem with no quota members (`type` is `about:blank`, as the RFC says for
    /// problems that are just their HTTP status).
    pub fn plain(status: u16, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: "about:blank".into(),
            title: title.into(),
            status,
            detail: detail.into(),
            violated_policies: Vec::new(),
            tenant: None,
            resource: None,
            limit: None,
            used: None,
            reset_after_s: None,
        }
    }

    /// The 429 body for a request that would pass `policy`'s hard limit. When the limit
    /// is an ancestor's (the team's, the organization's), the detail says whose.
    pub fn quota_exceeded(tenant: &str, policy: &PolicyStatus) -> Problem {
        let whose = match policy.tenant.as_deref() {
            Some(owner) if owner != tenant => format!("tenant {tenant}'s parent {owner}"),
            _ => format!("tenant {tenant}"),
        };
        Problem {
            problem_type: QUOTA_EXCEEDED_TYPE.into(),
            title: "Request cannot be satisfied as assigned quota has been exceeded".into(),
            status: 429,
            detail: format!(
                "{whose} has used {} of its {} {} limit of policy {}",
                policy.used, policy.limit, policy.resource, policy.name
            ),
            violated_policies: vec![policy.name.clone()],
            tenant: Some(tenant.into()),
            resource: Some(policy.resource.clone()),
            limit: Some(policy.limit),
            used: Some(policy.used),
            reset_after_s: Some(policy.reset_after_s),
        }
    }

    /// The body as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail; an empty body is the
        // harmless fallback rather than a panic inside the proxy.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn quota_exceeded_body_has_the_registered_type_and_our_members() {
        let policy = PolicyStatus {
            name: "monthly".into(),
            tenant: None,
            resource: "request_bytes".into(),
            quota: 100,
            limit: 120,
            used: 110,
            remaining: 10,
            reset_after_s: 3600,
            window_s: None,
        };
        let body: serde_json::Value =
            serde_json::from_slice(&Problem::quota_exceeded("acme", &policy).to_json()).unwrap();
        assert_eq!(body["type"], QUOTA_EXCEEDED_TYPE);
        assert_eq!(body["status"], 429);
        assert_eq!(body["violated-policies"], serde_json::json!(["monthly"]));
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["resource"], "request_bytes");
        assert_eq!(body["limit"], 120);
        assert_eq!(body["used"], 110);
        assert_eq!(body["reset_after_s"], 3600);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn plain_problem_omits_quota_members() {
        let body: serde_json::Value =
            serde_json::from_slice(&Problem::plain(401, "Unauthorized", "no tenant").to_json())
                .unwrap();
        assert_eq!(body["type"], "about:blank");
        assert!(body.get("tenant").is_none());
        assert!(body.get("violated-policies").is_none());
    }
}
