//! Prometheus metrics, in one registry served at `/metrics`. Per-tenant labels
//! only where an operator opts in (`--metrics-tenant-labels`): their cardinality is the
//! number of tenants.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// Buckets for store and check latencies, 100 µs to 1 s.
const LATENCY_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The `outcome` labels of `tollgate_settlements_total`.
pub const SETTLE_OUTCOMES: [&str; 6] = [
    "settled",
    "duplicate",
    "unknown_tenant",
    "invalid",
    "unavailable",
    "error",
];

/// The `outcome` labels of `tollgate_leases_total`.
pub const LEASE_OUTCOMES: [&str; 8] = [
    "granted",
    "per_request",
    "rejected",
    "returned",
    "duplicate",
    "invalid",
    "unavailable",
    "error",
];

/// The `result` labels of `tollgate_webhook_attempts_total`.
pub const WEBHOOK_ATTEMPT_RESULTS: [&str; 6] = [
    "delivered",
    "http_error",
    "timeout",
    "connect",
    "refused",
    "error",
];

/// The control plane's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `tollgate_checks_total{decision}`: decisions answered by `/v1/check`.
    pub checks: IntCounterVec,
    /// `tollgate_decisions_total{resource,decision}`: decisions per requested resource.
    pub decisions: IntCounterVec,
    /// `tollgate_tenant_decisions_total{tenant,decision}`: only with tenant labels on.
    pub tenant_decisions: Option<IntCounterVec>,
    /// `tollgate_settlements_total{outcome}`: settlements answered by `/v1/settle`.
    pub settlements: IntCounterVec,
    /// `tollgate_leases_total{outcome}`: lease requests answered by `/v1/leases`.
    pub leases: IntCounterVec,
    /// `tollgate_lease_units_total{kind}`: units of budget granted and refunded.
    pub lease_units: IntCounterVec,
    /// `tollgate_check_duration_seconds`: time to answer `/v1/check`.
    pub check_duration: Histogram,
    /// `tollgate_store_errors_total{store}`: failed Redis / PostgreSQL calls.
    pub store_errors: IntCounterVec,
    /// `tollgate_store_duration_seconds{store,op}`: store call latency.
    pub store_duration: HistogramVec,
    /// `tollgate_definition_cache_total{result}`: hit, miss, stale, fallback, directory.
    pub definition_cache: IntCounterVec,
    /// `tollgate_definition_invalidations_total{scope}`: tenant, catalog, all.
    pub invalidations: IntCounterVec,
    /// `tollgate_definitions_age_seconds`: age of the catalog that decides now.
    pub definitions_age: Gauge,
    /// `tollgate_directory_tenants`: tenants in the tenant directory.
    pub directory_tenants: IntGauge,
    /// `tollgate_directory_left_out_tenants`: tenants the directory refused since its
    /// last full sync began, being at `--directory-max-tenants`.
    pub directory_left_out: IntGauge,
    /// `tollgate_directory_syncs_total{result}`: full syncs of the directory, ok or
    /// failed.
    pub directory_syncs: IntCounterVec,
    /// `tollgate_counter_seeds_total`: tenants whose counters were re-seeded from history.
    pub seeds: IntCounter,
    /// `tollgate_gauge_releases_total`: gauge slots given back by `/v1/release` and
    /// `/v1/settle`.
    pub releases: IntCounter,
    /// `tollgate_events_written_total{kind}`: events appended to the log.
    pub events_written: IntCounterVec,
    /// `tollgate_events_dropped_total`: events lost to a full queue.
    pub events_dropped: IntCounter,
    /// `tollgate_history_flush_lag_seconds`: time since the last successful history flush.
    pub history_lag: Gauge,
    /// `tollgate_history_pending_counters`: counters waiting to be persisted.
    pub history_pending: IntGauge,
    /// `tollgate_history_rows_written_total`: usage history rows upserted.
    pub history_rows: IntCounter,
    /// `tollgate_history_dropped_total`: counter snapshots dropped because the queue
    /// was full (they are written again on the counter's next use).
    pub history_dropped: IntCounter,
    /// `tollgate_check_refunds_units_total`: units taken back from checks the filter
    /// refused after all (`/v1/release` with `refund`).
    pub check_refunds: IntCounter,
    /// `tollgate_redis_circuit_open`: 1 while Redis is considered down and calls skip it.
    pub redis_circuit_open: IntGauge,
    /// `tollgate_fallback_calls_total{op,outcome}`: checks and settlements counted in
    /// PostgreSQL while Redis was down.
    pub fallback_calls: IntCounterVec,
    /// `tollgate_fallback_reconciled_units_total`: units counted in PostgreSQL that
    /// reached Redis once it was back.
    pub fallback_reconciled: IntCounter,
    /// `tollgate_fallback_pending_counters`: counters with usage counted in PostgreSQL
    /// that Redis does not have yet.
    pub fallback_pending: IntGauge,
    /// `tollgate_webhook_crossings_total`: threshold crossings this control plane
    /// recorded first (each is one event, whichever control plane saw it).
    pub webhook_crossings: IntCounter,
    /// `tollgate_webhook_crossings_reported_total`: threshold crossings this control
    /// plane wrote, recorded first here or found recorded by another: with
    /// `crossings_total`, what shows that several saw one crossing and it is one event.
    pub webhook_crossings_reported: IntCounter,
    /// `tollgate_webhook_crossings_dropped_total`: crossings dropped because the queue
    /// was full (the history flusher's safety net finds them again).
    pub webhook_crossings_dropped: IntCounter,
    /// `tollgate_webhook_pending`: deliveries waiting, of every control plane.
    pub webhook_pending: IntGauge,
    /// `tollgate_webhook_oldest_pending_seconds`: age of the oldest waiting delivery.
    pub webhook_oldest_pending: Gauge,
    /// `tollgate_webhook_delivered_total`: deliveries this control plane delivered.
    pub webhook_delivered: IntCounter,
    /// `tollgate_webhook_failed_total`: deliveries this control plane gave up on.
    pub webhook_failed: IntCounter,
    /// `tollgate_webhook_attempts_total{result}`: attempts, by how they ended.
    pub webhook_attempts: IntCounterVec,
}

fn counter_vec(
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new(tenant_labels: bool) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let metrics = Metrics {
            checks: counter_vec(
                "tollgate_checks_total",
                "Checks answered, by decision.",
                &["decision"],
            )?,
            decisions: counter_vec(
                "tollgate_decisions_total",
                "Decisions per requested resource.",
                &["resource", "decision"],
            )?,
            tenant_decisions: if tenant_labels {
                Some(counter_vec(
                    "tollgate_tenant_decisions_total",
                    "Checks answered, by tenant and decision.",
                    &["tenant", "decision"],
                )?)
            } else {
                None
            },
            settlements: counter_vec(
                "tollgate_settlements_total",
                "Settlements answered, by outcome: settled, duplicate (a retry of one \
                 already applied; nothing changed), unknown_tenant, invalid, unavailable, \
                 error.",
                &["outcome"],
            )?,
            leases: counter_vec(
                "tollgate_leases_total",
                "Lease requests answered, by outcome: granted (a budget reserved), \
                 per_request (no budget: too near a limit or a window's reset), rejected \
                 (no headroom, or an unknown tenant), returned (a return only), duplicate \
                 (a retry of a lease granted before; nothing reserved again), invalid, \
                 unavailable, error.",
                &["outcome"],
            )?,
            lease_units: counter_vec(
                "tollgate_lease_units_total",
                "Units of budget reserved by leases (granted) and given back unspent \
                 (refunded).",
                &["kind"],
            )?,
            check_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "tollgate_check_duration_seconds",
                    "Time to answer a check, store round trips included.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            store_errors: counter_vec(
                "tollgate_store_errors_total",
                "Failed store calls, by store.",
                &["store"],
            )?,
            store_duration: HistogramVec::new(
                HistogramOpts::new("tollgate_store_duration_seconds", "Store call latency.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["store", "op"],
            )?,
            definition_cache: counter_vec(
                "tollgate_definition_cache_total",
                "Quota definition lookups, by how they were served: hit, miss, stale, \
                 fallback (PostgreSQL failed; an older entry decided), directory (a chain \
                 not cached and PostgreSQL not answering: the tenant directory's copy \
                 decided).",
                &["result"],
            )?,
            invalidations: counter_vec(
                "tollgate_definition_invalidations_total",
                "Definition cache invalidations, by scope.",
                &["scope"],
            )?,
            definitions_age: Gauge::new(
                "tollgate_definitions_age_seconds",
                "Age of the cached quota catalog that decides now.",
            )?,
            directory_tenants: IntGauge::new(
                "tollgate_directory_tenants",
                "Tenants in the tenant directory, which decides tenants whose chain is \
                 not cached while PostgreSQL is down.",
            )?,
            directory_left_out: IntGauge::new(
                "tollgate_directory_left_out_tenants",
                "Tenants left out of the tenant directory since its last full sync \
                 began, because it held --directory-max-tenants already (0: every \
                 tenant is in).",
            )?,
            directory_syncs: counter_vec(
                "tollgate_directory_syncs_total",
                "Full syncs of the tenant directory from PostgreSQL, by result (ok, \
                 failed: the directory keeps what it had and retries).",
                &["result"],
            )?,
            seeds: IntCounter::new(
                "tollgate_counter_seeds_total",
                "Tenants whose counters were re-seeded from the usage history.",
            )?,
            releases: IntCounter::new(
                "tollgate_gauge_releases_total",
                "Gauge slots given back by /v1/release and /v1/settle.",
            )?,
            events_written: counter_vec(
                "tollgate_events_written_total",
                "Events appended to the event log, by kind.",
                &["kind"],
            )?,
            events_dropped: IntCounter::new(
                "tollgate_events_dropped_total",
                "Events dropped because the event queue was full.",
            )?,
            history_lag: Gauge::new(
                "tollgate_history_flush_lag_seconds",
                "Seconds since usage was last persisted to PostgreSQL.",
            )?,
            history_pending: IntGauge::new(
                "tollgate_history_pending_counters",
                "Counters with usage not yet persisted.",
            )?,
            history_rows: IntCounter::new(
                "tollgate_history_rows_written_total",
                "Usage history rows upserted.",
            )?,
            history_dropped: IntCounter::new(
                "tollgate_history_dropped_total",
                "Counter snapshots dropped because the history queue was full.",
            )?,
            check_refunds: IntCounter::new(
                "tollgate_check_refunds_units_total",
                "Units taken back from checks the filter refused by its failure mode \
                 after they were counted (a late or lost answer).",
            )?,
            redis_circuit_open: IntGauge::new(
                "tollgate_redis_circuit_open",
                "1 while Redis is considered down: decisions skip it (PostgreSQL fallback \
                 or the filter's failure mode) and one call probes it now and then.",
            )?,
            fallback_calls: counter_vec(
                "tollgate_fallback_calls_total",
                "Checks and settlements counted in PostgreSQL while Redis was down, by op \
                 and outcome (admitted, rejected, duplicate, unavailable).",
                &["op", "outcome"],
            )?,
            fallback_reconciled: IntCounter::new(
                "tollgate_fallback_reconciled_units_total",
                "Units counted in PostgreSQL during a Redis outage that reached Redis.",
            )?,
            fallback_pending: IntGauge::new(
                "tollgate_fallback_pending_counters",
                "Counters with usage counted in PostgreSQL that Redis does not have yet.",
            )?,
            webhook_crossings: IntCounter::new(
                "tollgate_webhook_crossings_total",
                "Threshold crossings this control plane recorded first (one event each, \
                 whichever control plane saw it).",
            )?,
            webhook_crossings_reported: IntCounter::new(
                "tollgate_webhook_crossings_reported_total",
                "Threshold crossings this control plane wrote, whether it or another \
                 recorded them first.",
            )?,
            webhook_crossings_dropped: IntCounter::new(
                "tollgate_webhook_crossings_dropped_total",
                "Threshold crossings dropped because their queue was full.",
            )?,
            webhook_pending: IntGauge::new(
                "tollgate_webhook_pending",
                "Webhook deliveries waiting to be delivered, of every control plane.",
            )?,
            webhook_oldest_pending: Gauge::new(
                "tollgate_webhook_oldest_pending_seconds",
                "Age of the oldest webhook delivery waiting to be delivered.",
            )?,
            webhook_delivered: IntCounter::new(
                "tollgate_webhook_delivered_total",
                "Webhook deliveries this control plane delivered.",
            )?,
            webhook_failed: IntCounter::new(
                "tollgate_webhook_failed_total",
                "Webhook deliveries this control plane gave up on after the retry span.",
            )?,
            webhook_attempts: counter_vec(
                "tollgate_webhook_attempts_total",
                "Webhook delivery attempts, by result: delivered (2xx), http_error (another \
                 status), timeout, connect (no connection), refused (an address the \
                 allow-list does not allow), error.",
                &["result"],
            )?,
            registry,
        };
        metrics.register()?;
        // Make the common series visible from the start, at zero.
        for decision in ["allow", "warn", "reject"] {
            metrics.checks.with_label_values(&[decision]);
        }
        for outcome in SETTLE_OUTCOMES {
            metrics.settlements.with_label_values(&[outcome]);
        }
        for outcome in LEASE_OUTCOMES {
            metrics.leases.with_label_values(&[outcome]);
        }
        for kind in ["granted", "refunded"] {
            metrics.lease_units.with_label_values(&[kind]);
        }
        for store in ["redis", "postgres"] {
            metrics.store_errors.with_label_values(&[store]);
        }
        for result in ["hit", "miss", "stale", "fallback", "directory"] {
            metrics.definition_cache.with_label_values(&[result]);
        }
        for scope in ["tenant", "catalog", "all"] {
            metrics.invalidations.with_label_values(&[scope]);
        }
        for result in ["ok", "failed"] {
            metrics.directory_syncs.with_label_values(&[result]);
        }
        for (op, outcome) in [
            ("check", "admitted"),
            ("check", "rejected"),
            ("check", "unavailable"),
            ("settle", "admitted"),
            ("settle", "duplicate"),
            ("settle", "unavailable"),
        ] {
            metrics.fallback_calls.with_label_values(&[op, outcome]);
        }
        for result in WEBHOOK_ATTEMPT_RESULTS {
            metrics.webhook_attempts.with_label_values(&[result]);
        }
        Ok(metrics)
    }

    fn register(&self) -> Result<(), prometheus::Error> {
        let r = &self.registry;
        r.register(Box::new(self.checks.clone()))?;
        r.register(Box::new(self.decisions.clone()))?;
        if let Some(tenant_decisions) = &self.tenant_decisions {
            r.register(Box::new(tenant_decisions.clone()))?;
        }
        r.register(Box::new(self.settlements.clone()))?;
        r.register(Box::new(self.leases.clone()))?;
        r.register(Box::new(self.lease_units.clone()))?;
        r.register(Box::new(self.check_duration.clone()))?;
        r.register(Box::new(self.store_errors.clone()))?;
        r.register(Box::new(self.store_duration.clone()))?;
        r.register(Box::new(self.definition_cache.clone()))?;
        r.register(Box::new(self.invalidations.clone()))?;
        r.register(Box::new(self.definitions_age.clone()))?;
        r.register(Box::new(self.directory_tenants.clone()))?;
        r.register(Box::new(self.directory_left_out.clone()))?;
        r.register(Box::new(self.directory_syncs.clone()))?;
        r.register(Box::new(self.seeds.clone()))?;
        r.register(Box::new(self.releases.clone()))?;
        r.register(Box::new(self.events_written.clone()))?;
        r.register(Box::new(self.events_dropped.clone()))?;
        r.register(Box::new(self.history_lag.clone()))?;
        r.register(Box::new(self.history_pending.clone()))?;
        r.register(Box::new(self.history_rows.clone()))?;
        r.register(Box::new(self.history_dropped.clone()))?;
        r.register(Box::new(self.check_refunds.clone()))?;
        r.register(Box::new(self.redis_circuit_open.clone()))?;
        r.register(Box::new(self.fallback_calls.clone()))?;
        r.register(Box::new(self.fallback_reconciled.clone()))?;
        r.register(Box::new(self.fallback_pending.clone()))?;
        r.register(Box::new(self.webhook_crossings.clone()))?;
        r.register(Box::new(self.webhook_crossings_reported.clone()))?;
        r.register(Box::new(self.webhook_crossings_dropped.clone()))?;
        r.register(Box::new(self.webhook_pending.clone()))?;
        r.register(Box::new(self.webhook_oldest_pending.clone()))?;
        r.register(Box::new(self.webhook_delivered.clone()))?;
        r.register(Box::new(self.webhook_failed.clone()))?;
        r.register(Box::new(self.webhook_attempts.clone()))?;
        Ok(())
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
