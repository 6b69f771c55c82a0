//! `tollgate`: parse the command line, set up logging, then serve, migrate, or run an
//! admin command against a running server.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tollgate_control_plane::bus;
use tollgate_control_plane::config::{
    Cli, Command, LogFormat, MigrateArgs, RedisOutage, Secret, ServeArgs,
};
use tollgate_control_plane::http::auth::TokenDigest;
use tollgate_control_plane::http::Listeners;
use tollgate_control_plane::plan::lease::LeaseSettings;
use tollgate_control_plane::store::bus::Bus;
use tollgate_control_plane::store::{CounterStore, RedisStore, RedisTls};
use tollgate_control_plane::{serve, AppConfig, AppState, MIGRATOR};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    tollgate_control_plane::config::load_config_file(&args).context("reading the --config file")?;
    match Cli::parse().command {
        Command::Serve(args) => {
            init_tracing(args.log_format);
            run_serve(args).await
        }
        Command::Migrate(args) => {
            init_tracing(args.log_format);
            run_migrate(args).await
        }
        Command::Tier(args) => {
            tollgate_control_plane::cli::exit(tollgate_control_plane::cli::tier::run(args).await)
        }
        Command::Tenant(args) => {
            tollgate_control_plane::cli::exit(tollgate_control_plane::cli::tenant::run(args).await)
        }
        Command::Assignment(args) => tollgate_control_plane::cli::exit(
            tollgate_control_plane::cli::assignment::run(args).await,
        ),
        Command::Usage(args) => {
            tollgate_control_plane::cli::exit(tollgate_control_plane::cli::usage::run(args).await)
        }
        Command::Events(args) => {
            tollgate_control_plane::cli::exit(tollgate_control_plane::cli::events::run(args).await)
        }
        Command::Apply(args) => {
            tollgate_control_plane::cli::exit(tollgate_control_plane::cli::apply::run(args).await)
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A pool that connects when first used, so `serve` starts while PostgreSQL is down.
fn lazy_pool(url: &Secret) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(10)
        // Admin writes fail with 503 quickly when PostgreSQL is down; checks do not wait
        // on the pool at all once definitions are cached.
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(url.expose())
        .context("parsing the PostgreSQL URL")
}

async fn run_migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let pool = lazy_pool(&args.database_url)?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    pool.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// Applies migrations once PostgreSQL answers, retrying every second until it does.
async fn migrate_when_reachable(pool: PgPool) {
    loop {
        match MIGRATOR.run(&pool).await {
            Ok(()) => {
                tracing::info!("migrations applied");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "PostgreSQL not ready for migrations; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let admin_read_token = args.admin_read_token.as_ref();
    let decision_token = args.decision_token.as_ref();
    for (name, token) in [
        ("admin token", Some(&args.admin_token)),
        ("admin read token", admin_read_token),
        ("decision token", decision_token),
    ] {
        if token.is_some_and(|t| t.expose().trim().is_empty()) {
            bail!("the {name} must not be empty");
        }
    }
    if admin_read_token.is_some_and(|read| read == &args.admin_token) {
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
            .expose()
            .split(',')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        RedisStore::cluster_with_tls(&nodes, &redis_tls).context("configuring Redis Cluster")?
    } else {
        RedisStore::with_tls(args.redis_url.expose(), &redis_tls).context("configuring Redis")?
    };
    if let Err(error) = redis.ping().await {
        // With its cause: a refused certificate must be visible here.
        let cause = std::error::Error::source(&error).map_or_else(String::new, |c| c.to_string());
        tracing::warn!(%error, %cause, "Redis is not reachable yet; checks answer 503 until it is");
    }
    let redis = Arc::new(redis);
    let config = AppConfig {
        admin_token: TokenDigest::of(args.admin_token.expose()),
        admin_read_token: admin_read_token.map(|t| TokenDigest::of(t.expose())),
        decision_token: decision_token.map(|t| TokenDigest::of(t.expose())),
        redis_outage: args.redis_outage,
        definitions_ttl: Duration::from_millis(args.definitions_ttl_ms),
        default_deadline: Duration::from_millis(args.check_deadline_ms),
        gauge_lease: Duration::from_secs(args.gauge_lease_s),
        metrics_tenant_labels: args.metrics_tenant_labels,
        leases: LeaseSettings {
            max_budget: args.lease_max_budget,
            min_grant: args.lease_min_grant,
            ttl: Duration::from_millis(args.lease_ttl_ms),
        },
    };
    let store: Arc<dyn CounterStore> = redis.clone();
    let bus: Arc<dyn Bus> = redis;
    let state = AppState::new(config, pool.clone(), store.clone(), bus.clone())
        .context("creating metrics")?;

    tokio::spawn(migrate_when_reachable(pool));
    tokio::spawn(bus::listen(
        bus,
        state.definitions.clone(),
        state.instance.clone(),
        Duration::from_millis(args.invalidation_poll_ms),
    ));
    tokio::spawn(state.events.clone().run(
        state.repo.clone(),
        Duration::from_millis(args.events_flush_ms),
    ));
    if args.redis_outage == RedisOutage::Postgres {
        tokio::spawn(tollgate_control_plane::fallback::reconcile(
            state.clone(),
            Duration::from_millis(500),
        ));
    }
    tokio::spawn(state.flusher.clone().run(
        store.clone(),
        state.repo.clone(),
        Duration::from_millis(args.history_flush_ms),
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
    serve(listeners, state.clone(), shutdown_signal())
        .await
        .context("serving")?;
    // In-flight requests are done: persist what they counted and recorded.
    let flushed = tokio::time::timeout(Duration::from_secs(10), async {
        state.flusher.flush(store.as_ref(), &state.repo).await;
        state.events.flush(&state.repo).await;
    })
    .await;
    if flushed.is_err() {
        tracing::warn!("shutdown: usage history and events not flushed within 10 s");
    }
    tracing::info!("shut down");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
