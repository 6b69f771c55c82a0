//! The counters the filter exports as Envoy stats (`wasmcustom.tollgate.<name>` in
//! Envoy's `/stats`, `tollgate_<name>` in `/stats/prometheus`).

/// One counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Admitted below the warning threshold.
    Allowed,
    /// Admitted past the warning threshold.
    Warned,
    /// Answered 429 (by a decision, mid-body, or from the reject cache).
    Rejected,
    /// Would have been rejected, admitted because of shadow mode.
    ShadowRejected,
    /// Answered 429 from the reject cache, without a callout.
    RejectCacheHits,
    /// Check callouts dispatched to the control plane (headers and mid-body).
    Callouts,
    /// Callouts that were refused, failed or answered garbage.
    CalloutFailures,
    /// Callouts the filter's own deadline gave up on.
    CalloutTimeouts,
    /// Requests let through without a decision (failure mode open).
    FailedOpen,
    /// Requests answered 503 without a decision (failure mode closed).
    FailedClosed,
    /// Requests answered 401: no tenant.
    TenantMissing,
    /// Requests answered 400: a tenant id that cannot be one.
    TenantInvalid,
    /// Requests answered 403: a tenant the control plane does not know.
    TenantUnknown,
    /// Settlements and lease returns sent after requests.
    Settlements,
    /// Settlement attempts that failed (retried a few times, then logged and dropped).
    SettlementFailures,
    /// Requests admitted from a budget, without a callout.
    BudgetHits,
    /// Lease callouts (budget refills).
    Leases,
    /// Requests that waited for a refill another request of their worker had in flight.
    BudgetWaits,
    /// Calls the control plane answered 404 or 401: the filter reaches the wrong
    /// listener or holds the wrong token (logged once per worker).
    ControlPlaneMisconfigured,
    /// Requests for the caller's own quota (`quota_path`) answered with it.
    QuotaViews,
    /// Changes of a budget slot that lost to other workers' writes on every attempt
    /// (a spend is then checked, a lease given back or taken out on the next tick).
    BudgetContention,
    /// Leases granted while their slot was too busy to take them, given back at once
    /// rather than left counted.
    LeasesRecovered,
    /// Settlements, lease returns and give-backs dropped because their queue was full:
    /// what they would have refunded stays counted until the window resets.
    ReturnsDropped,
    /// Responses of a priced cost whose model the price table has no entry for:
    /// charged at the table's highest weights.
    UnknownModels,
    /// Streaming requests a priced cost's `include_usage` rewrote to ask for usage.
    StreamUsageAdded,
}

impl Metric {
    /// Every metric, for defining them all at start-up so each reads 0 until it moves.
    pub const ALL: [Metric; 25] = [
        Metric::Allowed,
        Metric::Warned,
        Metric::Rejected,
        Metric::ShadowRejected,
        Metric::RejectCacheHits,
        Metric::Callouts,
        Metric::CalloutFailures,
        Metric::CalloutTimeouts,
        Metric::FailedOpen,
        Metric::FailedClosed,
        Metric::TenantMissing,
        Metric::TenantInvalid,
        Metric::TenantUnknown,
        Metric::Settlements,
        Metric::SettlementFailures,
        Metric::BudgetHits,
        Metric::Leases,
        Metric::BudgetWaits,
        Metric::ControlPlaneMisconfigured,
        Metric::QuotaViews,
        Metric::BudgetContention,
        Metric::LeasesRecovered,
        Metric::ReturnsDropped,
        Metric::UnknownModels,
        Metric::StreamUsageAdded,
    ];

    /// The stat name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Allowed => "tollgate.allowed",
            Metric::Warned => "tollgate.warned",
            Metric::Rejected => "tollgate.rejected",
            Metric::ShadowRejected => "tollgate.shadow_rejected",
            Metric::RejectCacheHits => "tollgate.reject_cache_hits",
            Metric::Callouts => "tollgate.callouts",
            Metric::CalloutFailures => "tollgate.callout_failures",
            Metric::CalloutTimeouts => "tollgate.callout_timeouts",
            Metric::FailedOpen => "tollgate.failed_open",
            Metric::FailedClosed => "tollgate.failed_closed",
            Metric::TenantMissing => "tollgate.tenant_missing",
            Metric::TenantInvalid => "tollgate.tenant_invalid",
            Metric::TenantUnknown => "tollgate.tenant_unknown",
            Metric::Settlements => "tollgate.settlements",
            Metric::SettlementFailures => "tollgate.settlement_failures",
            Metric::BudgetHits => "tollgate.budget_hits",
            Metric::Leases => "tollgate.leases",
            Metric::BudgetWaits => "tollgate.budget_waits",
            Metric::ControlPlaneMisconfigured => "tollgate.control_plane_misconfigured",
            Metric::QuotaViews => "tollgate.quota_views",
            Metric::BudgetContention => "tollgate.budget_contention",
            Metric::LeasesRecovered => "tollgate.leases_recovered",
            Metric::ReturnsDropped => "tollgate.returns_dropped",
            Metric::UnknownModels => "tollgate.unknown_models",
            Metric::StreamUsageAdded => "tollgate.stream_usage_added",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_listed_once_at_its_own_index() {
        for (index, metric) in Metric::ALL.iter().enumerate() {
            assert_eq!(*metric as usize, index, "{}", metric.name());
        }
    }
}
