//! Prometheus metrics (SPEC §5), in one registry served at `/metrics`. No per-tenant
//! labels: their cardinality is unbounded.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounterVec, Opts, Registry, TextEncoder};

/// The control plane's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `tollgate_checks_total{decision}`: decisions answered by `/v1/check`.
    pub checks: IntCounterVec,
    /// `tollgate_check_duration_seconds`: time to answer `/v1/check`.
    pub check_duration: Histogram,
    /// `tollgate_store_errors_total{store}`: failed Redis / PostgreSQL calls.
    pub store_errors: IntCounterVec,
    /// `tollgate_definition_cache_total{result}`: definition cache hits and misses.
    pub definition_cache: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let checks = IntCounterVec::new(
            Opts::new("tollgate_checks_total", "Checks answered, by decision."),
            &["decision"],
        )?;
        let check_duration = Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_check_duration_seconds",
                "Time to answer a check, store round trip included.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0,
            ]),
        )?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "tollgate_store_errors_total",
                "Failed store calls, by store.",
            ),
            &["store"],
        )?;
        let definition_cache = IntCounterVec::new(
            Opts::new(
                "tollgate_definition_cache_total",
                "Quota definition lookups, by cache result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(checks.clone()))?;
        registry.register(Box::new(check_duration.clone()))?;
        registry.register(Box::new(store_errors.clone()))?;
        registry.register(Box::new(definition_cache.clone()))?;
        // Make every series visible from the start, at zero.
        for decision in ["allow", "warn", "reject"] {
            checks.with_label_values(&[decision]);
        }
        for store in ["redis", "postgres"] {
            store_errors.with_label_values(&[store]);
        }
        for result in ["hit", "miss"] {
            definition_cache.with_label_values(&[result]);
        }
        Ok(Metrics {
            registry,
            checks,
            check_duration,
            store_errors,
            definition_cache,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
