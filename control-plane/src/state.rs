//! The one shared state of every handler, and the loads that go through it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::config::Secret;
use crate::definitions::{Cached, DefinitionsCache, Lookup};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::repo::{QuotaRepo, RepoError};
use crate::store::{CounterStore, StoreError};

/// What the handlers need from the configuration.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The bearer token of `/admin/v1`.
    pub admin_token: Secret,
    /// How long tenant quotas are cached.
    pub definitions_ttl: Duration,
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Immutable configuration.
    pub config: Arc<AppConfig>,
    /// Quota definitions in PostgreSQL.
    pub repo: QuotaRepo,
    /// Live counters (Redis in production, memory in tests).
    pub store: Arc<dyn CounterStore>,
    /// Tenant quotas cached for `/v1/check`.
    pub definitions: Arc<DefinitionsCache>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// State over a pool and a counter store, with fresh metrics and an empty cache.
    pub fn new(
        config: AppConfig,
        pool: PgPool,
        store: Arc<dyn CounterStore>,
    ) -> Result<AppState, prometheus::Error> {
        Ok(AppState {
            definitions: Arc::new(DefinitionsCache::new(config.definitions_ttl)),
            config: Arc::new(config),
            repo: QuotaRepo::new(pool),
            store,
            metrics: Arc::new(Metrics::new()?),
        })
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

    /// The quota of `tenant` (`None` if unknown), from the cache when fresh. A stale
    /// entry is reloaded, and still used if PostgreSQL is down: decisions keep flowing
    /// from cached definitions (SPEC §5).
    pub async fn tenant_quota(&self, tenant: &str) -> Result<Cached, ApiError> {
        let stale = match self.definitions.lookup(tenant, Instant::now()) {
            Lookup::Fresh(cached) => {
                self.metrics
                    .definition_cache
                    .with_label_values(&["hit"])
                    .inc();
                return Ok(cached);
            }
            Lookup::Stale(cached) => Some(cached),
            Lookup::Absent => None,
        };
        self.metrics
            .definition_cache
            .with_label_values(&["miss"])
            .inc();
        let generation = self.definitions.generation();
        match self.repo.tenant_quota(tenant).await {
            Ok(loaded) => {
                let cached = loaded.map(Arc::new);
                self.definitions
                    .insert(tenant, cached.clone(), generation, Instant::now());
                Ok(cached)
            }
            Err(RepoError::Unavailable(source)) if stale.is_some() => {
                self.metrics
                    .store_errors
                    .with_label_values(&["postgres"])
                    .inc();
                tracing::warn!(error = %source, tenant, "PostgreSQL down; using stale definitions");
                Ok(stale.flatten())
            }
            Err(error) => Err(self.postgres_error(error)),
        }
    }
}
