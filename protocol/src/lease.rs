//! `POST /v1/leases`: budgets for the fast path.
//!
//! A gateway asks for a budget of one resource for one tenant (with its roles). The
//! control plane counts the budget as usage at every level of the tenant's chain at
//! once, exactly as a check of that amount would, so budgets outstanding can never let
//! usage pass a hard limit. The gateway spends the budget locally and reports what it
//! spent when it asks for the next one (or when the lease expires, or it shuts down);
//! the rest is refunded. A gateway that dies leaves its reservation counted until the
//! lease's record expires: conservative, never over.
//!
//! Budgets are sized from the headroom: large far from the limit, shrinking as it
//! nears, and at every level of the chain split between everyone holding a budget at
//! or below it (so sibling tenants share their organization's headroom), and 0 when a
//! budget would be too coarse — the gateway then checks each request (`/v1/check`).

use serde::{Deserialize, Serialize};

use crate::check::{PolicyStatus, RejectReason};
use crate::decision::Decision;

/// The path of the lease endpoint, version included.
pub const LEASES_PATH: &str = "/v1/leases";

/// What a gateway asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseRequest {
    /// The new lease's id, chosen by the gateway and unique: a retry of a request whose
    /// answer was lost gets the same lease back instead of a second reservation.
    pub id: String,
    /// The gateway (Envoy instance) asking: at every level, headroom is split between
    /// the gateways holding budgets for tenants at or below it.
    pub gateway: String,
    /// The tenant the budget is for.
    pub tenant: String,
    /// The caller's roles (they may select the tenant's tier).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The resource budgeted (`requests`, `request_bytes`, …).
    pub resource: String,
    /// What the gateway expects to spend before the lease expires; the grant is at most
    /// this. 0 only returns `previous`.
    pub want: u64,
    /// The lease this one replaces, with what was spent of it: the rest is refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<LeaseReturn>,
}

/// A lease given back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseReturn {
    /// Its id.
    pub id: String,
    /// How much of it was spent (at most what was granted).
    pub spent: u64,
}

/// What the control plane answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseResponse {
    /// ALLOW or WARN when a budget (possibly 0) was reserved; REJECT when a hard limit
    /// leaves no headroom at all.
    pub decision: Decision,
    /// Set when `decision` is REJECT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// The tenant the budget is for.
    pub tenant: String,
    /// The budget reserved; 0 means "check each request" (too close to a limit, or no
    /// limit window long enough to lease from).
    pub granted: u64,
    /// How long the budget may be spent, in milliseconds (never past a window's reset).
    pub ttl_ms: u64,
    /// The binding policy as of the grant. `used` and `remaining` do not count the
    /// budget just reserved: the gateway adds what it spends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyStatus>,
    /// The usage of the binding policy past which the status is `warning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_after: Option<u64>,
    /// On REJECT: how long the gateway may answer 429 without asking again.
    #[serde(default)]
    pub cache_reject_for_s: u64,
    /// What was refunded of `previous`: its unspent part, or 0 when it had already been
    /// returned or its record had expired.
    #[serde(default)]
    pub refunded: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn lease_request_round_trips_and_refuses_unknown_fields() {
        let request = LeaseRequest {
            id: "g1-7".into(),
            gateway: "g1".into(),
            tenant: "acme".into(),
            roles: vec![],
            resource: "requests".into(),
            want: 1000,
            previous: Some(LeaseReturn {
                id: "g1-6".into(),
                spent: 998,
            }),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            serde_json::from_str::<LeaseRequest>(&json).unwrap(),
            request
        );
        let extra = json.replace("\"want\"", "\"wants\":1,\"want\"");
        assert!(serde_json::from_str::<LeaseRequest>(&extra).is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn per_request_answer_parses_with_defaults() {
        let json = r#"{"decision":"allow","tenant":"acme","granted":0,"ttl_ms":0}"#;
        let response: LeaseResponse = serde_json::from_str(json).unwrap();
        assert_eq!((response.granted, response.refunded), (0, 0));
        assert!(response.policy.is_none());
    }
}
