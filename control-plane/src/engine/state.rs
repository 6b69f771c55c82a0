//! [`Engine`]: what every decision needs — the stores, the caches, the background
//! writers, the breaker and the settings — shared by the decision API, the admin API's
//! usage views and the background tasks.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::breaker::Breaker;
use super::definitions::{instance_id, DefinitionsCache};
use super::fallback::FallbackCounters;
use super::webhooks::{WebhookSettings, WebhookSubscriptions};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::plan::lease::LeaseSettings;
use crate::repo::events::EventSink;
use crate::repo::history::UsageFlusher;
use crate::repo::webhooks::CrossingSink;
use crate::repo::{QuotaRepo, RepoError};
use crate::store::bus::Bus;
use crate::store::{CounterStore, StoreError};

/// What decides while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisOutage {
    /// Count in PostgreSQL; reconcile into Redis once it is back.
    Postgres,
    /// Answer 503: the filter applies its failure mode.
    Fail,
}

/// How decisions are made, from the configuration.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long quota definitions are fresh in the cache.
    pub definitions_ttl: Duration,
    /// How long an unreleased gauge hold lasts (a crashed gateway cannot leak slots).
    pub gauge_hold: Duration,
    /// Whether metrics carry per-tenant labels.
    pub metrics_tenant_labels: bool,
    /// How budgets of `/v1/leases` are sized.
    pub leases: LeaseSettings,
    /// What decides while Redis is unreachable.
    pub redis_outage: RedisOutage,
    /// How many tenants the tenant directory holds at most (0: no directory).
    pub directory_max_tenants: usize,
    /// How webhooks are delivered.
    pub webhooks: WebhookSettings,
}

impl Default for EngineSettings {
    /// The defaults of `tollgate serve`.
    fn default() -> EngineSettings {
        EngineSettings {
            definitions_ttl: Duration::from_secs(300),
            gauge_hold: Duration::from_secs(300),
            metrics_tenant_labels: false,
            leases: LeaseSettings::default(),
            redis_outage: RedisOutage::Postgres,
            directory_max_tenants: 1_000_000,
            webhooks: WebhookSettings::default(),
        }
    }
}

/// How often a call probes Redis while the breaker is open: recovery is noticed within
/// this, and a dead Redis costs one failed call per interval, not one per request.
const REDIS_PROBE_EVERY: Duration = Duration::from_millis(250);

/// Where "now" comes from: the system clock, or a test's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Everything a decision needs; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    /// Immutable settings.
    pub settings: Arc<EngineSettings>,
    /// Quota definitions, events and usage history in PostgreSQL.
    pub repo: QuotaRepo,
    /// Live counters (Redis in production, memory in tests).
    pub store: Arc<dyn CounterStore>,
    /// Invalidation messages to and from other instances.
    pub bus: Arc<dyn Bus>,
    /// Quota definitions cached for the decisions.
    pub definitions: Arc<DefinitionsCache>,
    /// Events of the decision path, written in the background.
    pub events: Arc<EventSink>,
    /// Counters to persist to the usage history.
    pub flusher: Arc<UsageFlusher>,
    /// Threshold crossings of the decision path, written in the background with their
    /// webhook deliveries.
    pub crossings: Arc<CrossingSink>,
    /// The enabled webhook subscriptions, cached for the decisions.
    pub webhooks: Arc<WebhookSubscriptions>,
    /// Counters kept in PostgreSQL while Redis is unreachable.
    pub fallback: FallbackCounters,
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

impl Engine {
    /// An engine over a pool, a counter store and a bus, with fresh metrics and caches.
    pub fn new(
        settings: EngineSettings,
        pool: PgPool,
        store: Arc<dyn CounterStore>,
        bus: Arc<dyn Bus>,
    ) -> Result<Engine, prometheus::Error> {
        let metrics = Arc::new(Metrics::new(settings.metrics_tenant_labels)?);
        // Unknown at start (an earlier process may have left some): the reconciler's
        // first round finds out.
        let fallback_checks = settings.redis_outage == RedisOutage::Postgres;
        let repo = QuotaRepo::new(pool);
        let crossings = Arc::new(CrossingSink::new(metrics.clone()));
        Ok(Engine {
            definitions: Arc::new(DefinitionsCache::new(
                settings.definitions_ttl,
                settings.directory_max_tenants,
                metrics.store_duration.clone(),
            )),
            events: Arc::new(EventSink::new(metrics.clone())),
            flusher: Arc::new(UsageFlusher::new(metrics.clone(), crossings.clone())),
            crossings,
            webhooks: Arc::new(WebhookSubscriptions::default()),
            fallback: FallbackCounters::new(repo.clone()),
            settings: Arc::new(settings),
            repo,
            store,
            bus,
            metrics,
            redis_breaker: Arc::new(Breaker::new(REDIS_PROBE_EVERY)),
            fallback_checks: Arc::new(AtomicBool::new(fallback_checks)),
            clock: Arc::new(Utc::now),
            instance: instance_id(),
        })
    }

    /// The same engine on another clock.
    pub fn with_clock(mut self, clock: Clock) -> Engine {
        self.clock = clock;
        self
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// A PostgreSQL failure as an API error, counted.
    pub fn postgres_error(&self, error: RepoError) -> ApiError {
        if error.postgres_failed() {
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
        self.broadcast(&super::definitions::tenant_message(tenant))
            .await;
    }

    /// Drops the cached catalog here and tells the other instances.
    pub async fn invalidate_catalog(&self) {
        self.definitions.invalidate_catalog();
        self.metrics
            .invalidations
            .with_label_values(&["catalog"])
            .inc();
        self.broadcast(super::definitions::CATALOG_MESSAGE).await;
    }

    /// Reads the webhook subscriptions again here and tells the other instances.
    pub async fn invalidate_webhooks(&self) {
        self.webhooks.invalidate();
        if let Err(error) = self.webhooks.reload(&self.repo).await {
            // The background task reads them again at its next tick.
            tracing::warn!(%error, "cannot read webhook subscriptions after a change");
        }
        self.broadcast(super::definitions::WEBHOOKS_MESSAGE).await;
    }

    async fn broadcast(&self, message: &str) {
        if let Err(error) = self.bus.publish(&self.instance, message).await {
            // The other instances fall back to the cache TTL.
            tracing::warn!(%error, message, "cannot broadcast an invalidation");
        }
    }
}
