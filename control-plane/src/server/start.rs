//! Starting the server: connect the stores (lazily, so it starts while they are down),
//! wire the engine and the HTTP API, spawn the background tasks, serve until a signal,
//! then persist what the last requests counted.
//!
//! Start-up failures are reported, not handled: this is the one place besides `main`
//! that uses `anyhow`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::config::{MigrateArgs, ServeArgs};
use super::logging::init_tracing;
use super::shutdown::shutdown_signal;
use crate::engine::definitions::{keep_directory, listen, RESYNC_EVERY};
use crate::engine::fallback::reconcile;
use crate::engine::webhooks::{AllowList, Deliverer, WebhookSettings};
use crate::engine::{EngineSettings, RedisOutage};
use crate::http::serve::{serve as serve_http, Listeners};
use crate::http::state::{AppConfig, AppState};
use crate::http::token::TokenDigest;
use crate::plan::lease::LeaseSettings;
use crate::repo::MIGRATOR;
use crate::store::bus::Bus;
use crate::store::{CounterStore, RedisStore, RedisTls};

/// `tollgate migrate`: applies pending migrations and returns.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    let pool = lazy_pool(&args.database_url)?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    pool.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// `tollgate serve`: serves until SIGINT or SIGTERM, then flushes and returns.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    run(args).await
}

/// A pool that connects when first used, so `serve` starts while PostgreSQL is down.
fn lazy_pool(url: &SecretString) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(10)
        // Admin writes fail with 503 quickly when PostgreSQL is down; checks do not wait
        // on the pool at all once definitions are cached.
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(url.expose_secret())
        .context("parsing the PostgreSQL URL")
}

/// Applies migrations once PostgreSQL answers, retrying every second until it does, then
/// sets `migrated` (which `/ready` waits for).
async fn migrate_when_reachable(pool: PgPool, migrated: Arc<AtomicBool>) {
    loop {
        match MIGRATOR.run(&pool).await {
            Ok(()) => {
                tracing::info!("migrations applied");
                migrated.store(true, Ordering::Relaxed);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "PostgreSQL not ready for migrations; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let admin_read_token = args.admin_read_token.as_ref();
    let decision_token = args.decision_token.as_ref();
    for (name, token) in [
        ("admin token", Some(&args.admin_token)),
        ("admin read token", admin_read_token),
        ("decision token", decision_token),
    ] {
        if token.is_some_and(|t| t.expose_secret().trim().is_empty()) {
            bail!("the {name} must not be empty");
        }
    }
    if admin_read_token.is_some_and(|read| read.expose_secret() == args.admin_token.expose_secret())
    {
        bail!("the admin read token must differ from the admin token");
    }
    let pool = lazy_pool(&args.database_url)?;
    let redis_client = args
        .redis_client_cert
        .as_deref()
        .zip(args.redis_client_key.as_deref());
    let redis_tls = RedisTls::from_files(args.redis_ca_cert.as_deref(), redis_client)
        .context("reading the Redis TLS files")?;
    let redis = if args.redis_cluster {
        let nodes: Vec<String> = args
            .redis_url
            .expose_secret()
            .split(',')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        RedisStore::cluster_with_tls(&nodes, &redis_tls).context("configuring Redis Cluster")?
    } else {
        RedisStore::with_tls(args.redis_url.expose_secret(), &redis_tls)
            .context("configuring Redis")?
    };
    if let Err(error) = redis.ping().await {
        // With its cause: a refused certificate must be visible here.
        let cause = std::error::Error::source(&error).map_or_else(String::new, |c| c.to_string());
        tracing::warn!(%error, %cause, "Redis is not reachable yet; checks answer 503 until it is");
    }
    let redis = Arc::new(redis);
    let webhooks = webhook_settings(&args)?;
    let config = AppConfig {
        admin_token: TokenDigest::of(args.admin_token.expose_secret()),
        admin_read_token: admin_read_token.map(|t| TokenDigest::of(t.expose_secret())),
        decision_token: decision_token.map(|t| TokenDigest::of(t.expose_secret())),
        default_deadline: Duration::from_millis(args.check_deadline_ms),
        engine: EngineSettings {
            redis_outage: args.redis_outage,
            definitions_ttl: Duration::from_millis(args.definitions_ttl_ms),
            directory_max_tenants: usize::try_from(args.directory_max_tenants)
                .context("--directory-max-tenants is too large for this platform")?,
            gauge_hold: Duration::from_secs(args.gauge_hold_s),
            metrics_tenant_labels: args.metrics_tenant_labels,
            leases: LeaseSettings {
                max_budget: args.lease_max_budget,
                min_grant: args.lease_min_grant,
                ttl: Duration::from_millis(args.lease_ttl_ms),
            },
            webhooks,
        },
    };
    let store: Arc<dyn CounterStore> = redis.clone();
    let bus: Arc<dyn Bus> = redis;
    let mut state = AppState::new(config, pool.clone(), store.clone(), bus.clone())
        .context("creating metrics")?;
    state.migrated = Arc::new(AtomicBool::new(false));

    tokio::spawn(migrate_when_reachable(pool, state.migrated.clone()));
    let engine = state.engine.clone();
    tokio::spawn(listen(
        bus,
        engine.definitions.clone(),
        engine.webhooks.clone(),
        engine.instance.clone(),
        Duration::from_millis(args.invalidation_poll_ms),
    ));
    tokio::spawn(engine.webhooks.clone().keep_current(
        engine.repo.clone(),
        engine.settings.webhooks.reload,
        Duration::from_millis(args.invalidation_poll_ms),
    ));
    tokio::spawn(engine.crossings.clone().run(
        engine.repo.clone(),
        Duration::from_millis(args.events_flush_ms),
    ));
    let deliverer = Deliverer::new(
        engine.repo.clone(),
        engine.settings.webhooks.clone(),
        engine.metrics.clone(),
        engine.crossings.queued(),
    )
    .context("creating the webhook client")?;
    tokio::spawn(deliverer.run());
    tokio::spawn(keep_directory(
        engine.definitions.clone(),
        engine.repo.clone(),
        engine.metrics.clone(),
        engine.clock.clone(),
        RESYNC_EVERY,
    ));
    tokio::spawn(engine.events.clone().run(
        engine.repo.clone(),
        Duration::from_millis(args.events_flush_ms),
    ));
    if args.redis_outage == RedisOutage::Postgres {
        tokio::spawn(reconcile(engine.clone(), Duration::from_millis(500)));
    }
    tokio::spawn(engine.flusher.clone().run(
        store.clone(),
        engine.repo.clone(),
        Duration::from_millis(args.history_flush_ms),
        engine.clock.clone(),
    ));

    let bind = |addr: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))
    };
    let listeners = match args.decision_listen {
        Some(decisions) => Listeners::Split {
            admin: bind(args.listen).await?,
            decisions: bind(decisions).await?,
        },
        None => {
            tracing::warn!(
                "the decision API shares the admin listener; give it its own, reachable \
                 from the gateways only, with --decision-listen"
            );
            Listeners::Shared(bind(args.listen).await?)
        }
    };
    if decision_token.is_none() {
        tracing::warn!(
            "the decision API takes no secret: whoever reaches it can spend any tenant's \
             quota; set --decision-token and the filter's control_plane.token"
        );
    }
    serve_http(listeners, state, shutdown_signal())
        .await
        .context("serving")?;
    // In-flight requests are done: persist what they counted and recorded.
    let flushed = tokio::time::timeout(Duration::from_secs(10), async {
        engine
            .flusher
            .flush(store.as_ref(), &engine.repo, engine.now())
            .await;
        engine.events.flush(&engine.repo).await;
        // After the history: its last flush may find crossings to record.
        engine.crossings.flush(&engine.repo).await;
    })
    .await;
    if flushed.is_err() {
        tracing::warn!("shutdown: usage history and events not flushed within 10 s");
    }
    tracing::info!("shut down");
    Ok(())
}

/// How webhooks are delivered, from `args`.
fn webhook_settings(args: &ServeArgs) -> anyhow::Result<WebhookSettings> {
    let allow = AllowList::parse(&args.webhook_allow, args.webhook_allow_public)
        .map_err(|e| anyhow!("--webhook-allow: {e}"))?;
    if args.webhook_backoff_min_ms > args.webhook_backoff_max_ms {
        bail!("--webhook-backoff-min-ms must not be above --webhook-backoff-max-ms");
    }
    tracing::info!(
        allow = ?args.webhook_allow,
        public = args.webhook_allow_public,
        "webhook deliveries may go to public addresses (when allowed) and the allow-list"
    );
    Ok(WebhookSettings {
        allow: Arc::new(allow),
        timeout: Duration::from_millis(args.webhook_timeout_ms),
        backoff_min: Duration::from_millis(args.webhook_backoff_min_ms),
        backoff_max: Duration::from_millis(args.webhook_backoff_max_ms),
        give_up_after: Duration::from_secs(args.webhook_give_up_s),
        poll: Duration::from_millis(args.webhook_poll_ms),
        concurrency: usize::try_from(args.webhook_concurrency).unwrap_or(8),
        ..WebhookSettings::default()
    })
}
