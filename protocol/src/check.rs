//! `POST /v1/check`: one request's decision.
//!
//! The filter sends what it knows of the request; the control plane checks and counts
//! every resource amount against the tenant's limits in one atomic step and answers the
//! decision with the status of the policy that bound it, which the filter turns into
//! response headers or a 429.
//!
//! `POST /v1/release` gives back what a request holds of a gauge
//! (`concurrent_requests`) once it is done; it is idempotent by request id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decision::Decision;

/// The path of the check endpoint, version included.
pub const CHECK_PATH: &str = "/v1/check";

/// The path of the release endpoint, version included.
pub const RELEASE_PATH: &str = "/v1/release";

/// The header in which the filter tells the control plane how long it waits for this
/// answer, in milliseconds. Envoy's own `x-envoy-expected-rq-timeout-ms` carries the
/// callout's backstop timeout, which is later than the filter's deadline.
pub const DEADLINE_HEADER: &str = "x-tollgate-deadline-ms";

/// The largest amount of one resource a check or lease may ask for: the control
/// plane's counters are signed 64-bit and it refuses more (422). No quota is larger,
/// so an amount past it (a `content-length` of 2^64 - 1) is asked for as this.
pub const AMOUNT_MAX: u64 = i64::MAX as u64;

/// The path of the settle endpoint, version included.
pub const SETTLE_PATH: &str = "/v1/settle";

/// What the filter asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The request's id (Envoy's `x-request-id`): what gauge slots are held under until
    /// `POST /v1/release`. Required when a gauge resource has an amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Count the request even past a hard limit, as if every level were in shadow mode:
    /// a breach is reported as `shadow_reject` on a WARN (the filter's `shadow: true`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub shadow: bool,
}

/// What the filter sends once a counted request is over, to correct what its check
/// counted: `POST /v1/settle`.
///
/// A check counts what is known at the headers: `content-length` bytes, and a reserve
/// for costs known only after the response (tokens an AI back end reports). The
/// settlement brings each resource to what the request really cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettleRequest {
    /// Unique per settlement: a retry of one the control plane already applied (its
    /// answer was lost) is recognised by it and changes nothing.
    pub id: String,
    /// The tenant the request was checked for.
    pub tenant: String,
    /// The roles the check carried (they chose the limits that were charged).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Signed corrections per resource. A positive amount is counted unconditionally:
    /// the upstream already did the work, so it is billed even past the hard limit, and
    /// the tenant's next requests are refused. A negative amount refunds what was
    /// reserved and not used, never below zero, and only in the window the check
    /// counted it in (`checked_at_ms`).
    pub amounts: BTreeMap<String, i64>,
    /// When the check counted the request, in milliseconds since the Unix epoch.
    pub checked_at_ms: u64,
    /// Also releases the gauge slots held under this request id, as `/v1/release` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_request_id: Option<String>,
}

/// What the control plane answers to a settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettleResponse {
    /// How many gauges held a slot for `release_request_id` (0 when none was given or
    /// it was already released).
    pub released: u64,
}

/// What the filter sends when a request that holds gauge slots is done, or when it
/// refused a request whose check may have been counted anyway (`refund`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseRequest {
    /// The tenant the request was checked for.
    pub tenant: String,
    /// The request id the check carried.
    pub request_id: String,
    /// Also take back what the check counted: the filter refused the request by its
    /// failure mode (the answer came too late, or never), so nothing of it was
    /// admitted. Idempotent, and nothing when the check was never counted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub refund: bool,
}

/// What the control plane answers to a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseResponse {
    /// How many gauges held a slot for the request (0 when already released).
    pub released: u64,
    /// With `refund`: the units taken back from the counters the check counted in
    /// (0 when it was never counted, or refunded before).
    #[serde(default)]
    pub refunded: u64,
}

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RejectReason {
    /// A limit would pass its hard limit.
    QuotaExceeded,
    /// The tenant is not known and no default tier applies.
    UnknownTenant,
}

/// What the control plane answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// A level in shadow mode would have rejected this request: it was admitted and
    /// counted anyway, and the status is a warning.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shadow_reject: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// One limit's state after the check, as clients will see it in headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyStatus {
    /// Policy name used in `RateLimit-Policy` (e.g. `monthly`).
    pub name: String,
    /// Whose limit it is: the requesting tenant or one of its ancestors (team, org).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
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
            request_id: Some("r-1".into()),
            shadow: true,
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            serde_json::from_str::<CheckRequest>(&json).unwrap(),
            request
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn settle_request_carries_signed_amounts() {
        let json = r#"{"id":"w1-7","tenant":"a","amounts":{"request_bytes":-10,"tokens":42},
            "checked_at_ms":1700000000000}"#;
        let settle: SettleRequest = serde_json::from_str(json).unwrap();
        assert_eq!(settle.amounts["request_bytes"], -10);
        assert_eq!(settle.release_request_id, None);
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
