//! The one shared state of every handler: who may call what, and the engine.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;

use super::token::TokenDigest;
use crate::engine::{Clock, Engine, EngineSettings};
use crate::store::bus::Bus;
use crate::store::CounterStore;

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
    /// How long a decision may wait when the filter does not say
    /// (`x-tollgate-deadline-ms`, `x-envoy-expected-rq-timeout-ms`).
    pub default_deadline: Duration,
    /// How decisions are made.
    pub engine: EngineSettings,
}

impl AppConfig {
    /// A configuration with the defaults of `tollgate serve` and this admin token.
    pub fn with_token(admin_token: &str) -> AppConfig {
        AppConfig {
            admin_token: TokenDigest::of(admin_token),
            admin_read_token: None,
            decision_token: None,
            default_deadline: Duration::from_millis(200),
            engine: EngineSettings::default(),
        }
    }
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Tokens and the default deadline.
    pub config: Arc<AppConfig>,
    /// Decisions, and the stores the admin API reads and writes.
    pub engine: Engine,
    /// Whether PostgreSQL has every migration this binary embeds: a tenant's chain is read
    /// from the newest tables (grants), so `/ready` waits for them. `serve` starts it
    /// false and sets it once its migrations are applied; a state made otherwise (tests,
    /// whose databases are migrated first) starts true.
    pub migrated: Arc<AtomicBool>,
    /// Becomes `true` once the server stops taking requests ([`serve`](super::serve)
    /// sets it), so that a long answer (a usage export) ends instead of holding the
    /// shutdown up.
    pub stopping: Arc<watch::Sender<bool>>,
}

impl AppState {
    /// State over a pool, a counter store and a bus, with fresh metrics and caches.
    pub fn new(
        config: AppConfig,
        pool: PgPool,
        store: Arc<dyn CounterStore>,
        bus: Arc<dyn Bus>,
    ) -> Result<AppState, prometheus::Error> {
        let engine = Engine::new(config.engine.clone(), pool, store, bus)?;
        Ok(AppState {
            config: Arc::new(config),
            engine,
            migrated: Arc::new(AtomicBool::new(true)),
            stopping: Arc::new(watch::channel(false).0),
        })
    }

    /// The same state on another clock.
    pub fn with_clock(mut self, clock: Clock) -> AppState {
        self.engine = self.engine.with_clock(clock);
        self
    }
}
