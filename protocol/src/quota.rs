//! `POST /v1/quota`: a tenant's own view of its quota, which the gateway answers at
//! the filter's `quota_path` for the caller's tenant.
//!
//! The filter sends who the caller is (the tenant and roles it found as for any other
//! request); the control plane answers every limit at every level of the tenant's
//! chain with its live usage, the binding one (as the quota headers name it), the
//! burn rate of each over the last minutes, and when each runs out at that rate. The
//! view counts nothing. The filter passes the body on as it is, so a field added here
//! reaches clients without a new filter.

use serde::{Deserialize, Serialize};

use crate::check::{PolicyStatus, RejectReason};

/// The path of the quota view endpoint, version included.
pub const QUOTA_PATH: &str = "/v1/quota";

/// How far back a burn rate looks, in milliseconds: it is the rate over (about) the
/// last five minutes.
pub const RATE_LOOKBACK_MS: u64 = 300_000;

/// What the filter asks: the caller's tenant and roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaRequest {
    /// The tenant, as the gateway identified the caller.
    pub tenant: String,
    /// The caller's roles (they may select the tenant's tier).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// What the control plane answers: every limit of the tenant and its ancestors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaView {
    /// The tenant asked about.
    pub tenant: String,
    /// When the view was taken (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// `unknown_tenant` when no tier applies to the tenant (then there are no limits:
    /// the gateway answers 403, as it does to the tenant's other requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// The binding limit, as the quota headers name it: the one with the least
    /// headroom, at whichever level. `null` when no limit applies.
    #[serde(default)]
    pub binding: Option<PolicyStatus>,
    /// One entry per limit per level, the tenant's own first, then its parent's, and so
    /// on up the chain.
    #[serde(default)]
    pub limits: Vec<LimitUsage>,
}

/// One limit of one level, now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimitUsage {
    /// Whose limit it is: the tenant asked about or one of its ancestors.
    pub tenant: String,
    /// The resource it limits.
    pub resource: String,
    /// The policy name the quota headers use (`monthly`, `rolling-hour`).
    pub policy: String,
    /// `second` … `month`, or `none` for a gauge (`concurrent_requests`).
    pub period: String,
    /// `calendar` or `rolling`.
    pub window: String,
    /// The included amount per window.
    pub quota: u64,
    /// The hard limit (`quota + overage`; the quota for an unlimited limit).
    pub limit: u64,
    /// Usage counted in the current window.
    pub used: u64,
    /// `limit - used`, never negative.
    pub remaining: u64,
    /// Always allows (still counts).
    pub unlimited: bool,
    /// `ok`, `warning` (past `warn_at`) or `exceeded` (at or past the hard limit).
    pub status: UsageStatus,
    /// Whether this is the binding limit (the one `binding` names).
    pub binding: bool,
    /// Seconds until usage starts to free up: the window's reset, or for a rolling
    /// window when its oldest counted usage slides out. 1 for a gauge.
    pub reset_after_s: u64,
    /// When usage starts to free up, to the millisecond (what `reset_after_s` rounds
    /// up to whole seconds); `null` for a gauge.
    #[serde(default)]
    pub resets_at: Option<String>,
    /// How fast usage has grown lately.
    pub burn_rate: BurnRate,
    /// When the limit runs out at that rate.
    pub forecast: Forecast,
}

/// A limit's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum UsageStatus {
    /// Below the warning threshold.
    Ok,
    /// Past the warning threshold, below the hard limit.
    Warning,
    /// At or past the hard limit: requests that need more are refused.
    Exceeded,
}

impl UsageStatus {
    /// The name as JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageStatus::Ok => "ok",
            UsageStatus::Warning => "warning",
            UsageStatus::Exceeded => "exceeded",
        }
    }
}

/// Usage counted per second over a recent span: `units` counted from `since` until the
/// view was taken, `span_ms` later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BurnRate {
    /// `units / span_ms × 1000`; `null` when it cannot be known (`basis` says why).
    #[serde(default)]
    pub per_second: Option<f64>,
    /// Usage counted over the span.
    #[serde(default)]
    pub units: Option<u64>,
    /// Where the span starts (RFC 3339, UTC, milliseconds).
    #[serde(default)]
    pub since: Option<String>,
    /// How long the span is, in milliseconds.
    #[serde(default)]
    pub span_ms: Option<u64>,
    /// What the span starts from.
    pub basis: RateBasis,
}

/// What a burn rate's span starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RateBasis {
    /// A usage sample the control plane took of the limit's counter (every history
    /// flush, of windows longer than five minutes).
    Sample,
    /// The start of a window or rolling bucket of the limit, when usage was zero.
    WindowStart,
    /// Unknown: no sample of the last ten minutes and no window start in them (the
    /// limit was not used for ten minutes, or only since the last flush).
    NoSamples,
    /// Unknown: a gauge (`concurrent_requests`) holds, it does not accumulate.
    Gauge,
}

/// When a limit runs out at its burn rate: `runs_out_in_s` and `runs_out_at` are set
/// only when `outcome` is `runs_out` or `exhausted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Forecast {
    /// Which case this is.
    pub outcome: ForecastOutcome,
    /// Whole seconds until it runs out, rounded down.
    #[serde(default)]
    pub runs_out_in_s: Option<u64>,
    /// When it runs out (RFC 3339, UTC, milliseconds).
    #[serde(default)]
    pub runs_out_at: Option<String>,
}

/// The cases of a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ForecastOutcome {
    /// It reaches its hard limit before its window resets, at `runs_out_at`. For a
    /// rolling window this is the earliest: usage leaving the window can only postpone
    /// it.
    RunsOut,
    /// It is at its hard limit now.
    Exhausted,
    /// The window resets first (a rolling window: within one period at this rate,
    /// everything counted now has left the window, and a period of it fits).
    ResetsFirst,
    /// Nothing was counted over the span: it never runs out at this rate.
    NotBurning,
    /// The burn rate is unknown.
    NoRate,
    /// An unlimited limit never runs out.
    Unlimited,
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn a_quota_request_refuses_unknown_fields_and_defaults_its_roles() {
        let request: QuotaRequest = serde_json::from_str(r#"{"tenant":"acme"}"#).unwrap();
        assert!(request.roles.is_empty());
        assert!(serde_json::from_str::<QuotaRequest>(r#"{"tenant":"a","tenants":1}"#).is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_unknown_tenants_view_parses_with_nothing_but_its_head() {
        let json =
            r#"{"tenant":"ghost","at":"2026-11-17T12:00:00.000Z","reason":"unknown_tenant"}"#;
        let view: QuotaView = serde_json::from_str(json).unwrap();
        assert_eq!(view.reason, Some(RejectReason::UnknownTenant));
        assert!(view.limits.is_empty() && view.binding.is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn cases_are_written_in_snake_case() {
        let forecast = Forecast {
            outcome: ForecastOutcome::ResetsFirst,
            runs_out_in_s: None,
            runs_out_at: None,
        };
        let json = serde_json::to_value(&forecast).unwrap();
        assert_eq!(json["outcome"], "resets_first");
        assert!(json["runs_out_in_s"].is_null());
        let basis = serde_json::to_value(RateBasis::WindowStart).unwrap();
        assert_eq!(basis, "window_start");
    }
}
