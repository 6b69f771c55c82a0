//! The one shared state of every handler and background task.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::audit::EventSink;
use crate::breaker::Breaker;
use crate::config::{RedisOutage, Secret};
use crate::definitions::DefinitionsCache;
use crate::error::ApiError;
use crate::flusher::UsageFlusher;
use crate::http::auth::TokenDigest;
use crate::metrics::Metrics;
use crate::plan::lease::LeaseSettings;
use crate::repo::{QuotaRepo, RepoError};
use crate::store::bus::Bus;
use crate::store::{CounterStore, StoreError};

/// What the handlers need from the configuration.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The bearer token of `/admin/v1`, as a digest.
    pub admin_token: TokenDigest,
    /// A bearer token of `/admin/v1` that may only read, as a digest.
    pub admin_read_token: Option<TokenDigest>,
    /// The secret gateways present to `/v1` (the decision API), as a digest; `None`:
    /// the decision API is open to whoever reaches its listener.
    pub decision_token: Option<TokenDigest>,
    /// How long quota definitions are fresh in the cache.
    pub definitions_ttl: Duration,
    /// How long a check may wait for definitions when the filter does not say
    /// (`x-tollgate-deadline-ms`, `x-envoy-expected-rq-timeout-ms`).
    pub default_deadline: Duration,
    /// How long an unreleased gauge slot is held.
    pub gauge_lease: Duration,
    /// Whether metrics carry per-tenant labels.
    pub metrics_tenant_labels: bool,
    /// How budgets of `/v1/leases` are sized.
    pub leases: LeaseSettings,
    /// What decides while Redis is unreachable.
    pub redis_outage: RedisOutage,
}

impl AppConfig {
    /// A configuration with the defaults of `tollgate serve` and this admin token.
    pub fn with_token(admin_token: Secret) -> AppConfig {
        AppConfig {
            admin_token: TokenDigest::of(admin_token.expose()),
            admin_read_token: None,
            decision_token: None,
            definitions_ttl: Duration::from_secs(5),
            default_deadline: Duration::from_millis(200),
            gauge_lease: Duration::from_secs(300),
            metrics_tenant_labels: false,
            leases: LeaseSettings::default(),
            redis_outage: RedisOutage::Postgres,
        }
    }
}

/// How often a call probes Redis while the breaker is open: recovery is noticed within
/// this, and a dead Redis costs one failed call per interval, not one per request.
const REDIS_PROBE_EVERY: Duration = Duration::from_millis(250);

/// Where "now" comes from: the system clock, or a test's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Immutable configuration.
    pub config: Arc<AppConfig>,
    /// Quota definitions, events and usage history in PostgreSQL.
    pub repo: QuotaRepo,
    /// Live counters (Redis in production, memory in tests).
    pub store: Arc<dyn CounterStore>,
    /// Invalidation messages to and from other instances.
    pub bus: Arc<dyn Bus>,
    /// Quota definitions cached for `/v1/check`.
    pub definitions: Arc<DefinitionsCache>,
    /// Events of the decision path, written in the background.
    pub events: Arc<EventSink>,
    /// Counters to persist to the usage history.
    pub flusher: Arc<UsageFlusher>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Whether decisions skip Redis for now, after it failed them.
    pub redis_breaker: Arc<Breaker>,
    /// Whether PostgreSQL may hold checks counted there during a Redis outage: only
    /// then does a take-back that Redis knows nothing of look for its check there. Set
    /// when an outage is seen, cleared by the reconciler once none is left.
    pub fallback_checks: Arc<AtomicBool>,
    /// The time.
    pub clock: Clock,
    /// This process's name on the invalidation bus.
    pub instance: String,
}

impl AppState {
    /// State over a pool, a counter store and a bus, with fresh metrics and caches.
    pub fn new(
        config: AppConfig,
        pool: PgPool,
        store: Arc<dyn CounterStore>,
        bus: Arc<dyn Bus>,
    ) -> Result<AppState, prometheus::Error> {
        let metrics = Arc::new(Metrics::new(config.metrics_tenant_labels)?);
        // Unknown at start (an earlier process may have left some): the reconciler's
        // first round finds out.
        let fallback_checks = config.redis_outage == RedisOutage::Postgres;
        Ok(AppState {
            definitions: Arc::new(DefinitionsCache::new(
                config.definitions_ttl,
                metrics.store_duration.clone(),
            )),
            events: Arc::new(EventSink::new(metrics.clone())),
            flusher: Arc::new(UsageFlusher::new(metrics.clone())),
            config: Arc::new(config),
            repo: QuotaRepo::new(pool),
            store,
            bus,
            metrics,
            redis_breaker: Arc::new(Breaker::new(REDIS_PROBE_EVERY)),
            fallback_checks: Arc::new(AtomicBool::new(fallback_checks)),
            clock: Arc::new(Utc::now),
            instance: crate::bus::instance_id(),
        })
    }

    /// The same state on another clock.
    pub fn with_clock(mut self, clock: Clock) -> AppState {
        self.clock = clock;
        self
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// A PostgreSQL failure as an API error, counted.
    pub fn postgres_error(&self, error: RepoError) -> ApiError {
        if matches!(error, RepoError::Unavailable(_) | RepoError::Query(_)) {
            self.metrics
                .store_errors
                .with_label_values(&["postgres"])
                .inc();
        }
        ApiError::from(error)
    }

    /// A Redis failure as an API error, counted.
    pub fn redis_error(&self, error: StoreError) -> ApiError {
        self.metrics
            .store_errors
            .with_label_values(&["redis"])
            .inc();
        ApiError::from(error)
    }

    /// Drops cached definitions of `tenant` here and tells the other instances.
    pub async fn invalidate_tenant(&self, tenant: &str) {
        self.definitions.invalidate_tenant(tenant);
        self.metrics
            .invalidations
            .with_label_values(&["tenant"])
            .inc();
        self.broadcast(&crate::bus::tenant_message(tenant)).await;
    }

    /// Drops the cached catalog here and tells the other instances.
    pub async fn invalidate_catalog(&self) {
        self.definitions.invalidate_catalog();
        self.metrics
            .invalidations
            .with_label_values(&["catalog"])
            .inc();
        self.broadcast(crate::bus::CATALOG_MESSAGE).await;
    }

    async fn broadcast(&self, message: &str) {
        if let Err(error) = self.bus.publish(&self.instance, message).await {
            // The other instances fall back to the cache TTL.
            tracing::warn!(%error, message, "cannot broadcast an invalidation");
        }
    }
}
