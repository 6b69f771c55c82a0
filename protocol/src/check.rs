//! `POST /v1/check`: one request's decision.
//!
//! The filter sends what it knows of the request; the control plane checks and counts
//! every resource amount against the tenant's limits in one atomic step and answers the
//! decision with the status of the policy that bound it, which the filter turns into
//! response headers or a 429.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decision::Decision;

/// The path of the check endpoint, version included.
pub const CHECK_PATH: &str = "/v1/check";

/// What the filter asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The tenant id as the gateway saw it.
    pub tenant: String,
    /// Roles of the caller (e.g. from a JWT claim); may select a tier.
    #[serde(default)]
    pub roles: Vec<String>,
    /// What the request costs, per resource (`{"request_bytes": 512}`).
    pub amounts: BTreeMap<String, u64>,
    /// HTTP method, for policies and audit.
    #[serde(default)]
    pub method: String,
    /// Request path, for policies and audit.
    #[serde(default)]
    pub path: String,
}

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// A limit would pass its hard limit.
    QuotaExceeded,
    /// The tenant is not known and no default tier applies.
    UnknownTenant,
}

/// What the control plane answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResponse {
    /// ALLOW, WARN or REJECT.
    pub decision: Decision,
    /// Set when `decision` is REJECT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// The tenant the amounts were counted against.
    pub tenant: String,
    /// The policy that bound the decision: the rejecting one, else the one with the
    /// least headroom. `None` when no limit applies to any requested resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyStatus>,
    /// How long the filter may answer this tenant's requests for this resource with 429
    /// without asking again (only on REJECT; the window's reset at the latest).
    #[serde(default)]
    pub cache_reject_for_s: u64,
}

/// One limit's state after the check, as clients will see it in headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// Policy name used in `RateLimit-Policy` (e.g. `monthly`).
    pub name: String,
    /// The resource the policy limits.
    pub resource: String,
    /// The included amount per window.
    pub quota: u64,
    /// The hard limit (`quota + overage`): past it requests are rejected.
    pub limit: u64,
    /// Usage counted in the window, including this request when it was admitted.
    pub used: u64,
    /// `limit - used`, never negative.
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset_after_s: u64,
    /// The window length in seconds, only for fixed-length windows (not `month`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn check_request_round_trips_through_json() {
        let request = CheckRequest {
            tenant: "acme".into(),
            roles: vec![],
            amounts: BTreeMap::from([("request_bytes".to_string(), 512)]),
            method: "POST".into(),
            path: "/upload".into(),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            serde_json::from_str::<CheckRequest>(&json).unwrap(),
            request
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn check_request_with_unknown_field_is_refused() {
        let json = r#"{"tenant":"a","amounts":{},"tenantt":"b"}"#;
        assert!(serde_json::from_str::<CheckRequest>(json).is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn negative_amount_is_refused() {
        let json = r#"{"tenant":"a","amounts":{"request_bytes":-1}}"#;
        assert!(serde_json::from_str::<CheckRequest>(json).is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reject_response_parses_with_reason() {
        let json = r#"{"decision":"reject","reason":"quota_exceeded","tenant":"acme",
            "policy":{"name":"monthly","resource":"request_bytes","quota":100,"limit":120,
            "used":120,"remaining":0,"reset_after_s":60},"cache_reject_for_s":60}"#;
        let response: CheckResponse = serde_json::from_str(json).unwrap();
        assert_eq!(response.decision, Decision::Reject);
        assert_eq!(response.reason, Some(RejectReason::QuotaExceeded));
        assert_eq!(response.policy.unwrap().window_s, None);
    }
}
