//! `tollgate`: parse the command line, set up logging, connect, migrate, serve.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tollgate_control_plane::config::{Cli, Command, LogFormat, MigrateArgs, Secret, ServeArgs};
use tollgate_control_plane::store::{CounterStore, RedisStore};
use tollgate_control_plane::{serve, AppConfig, AppState, MIGRATOR};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            init_tracing(args.log_format);
            run_serve(args).await
        }
        Command::Migrate(args) => {
            init_tracing(args.log_format);
            run_migrate(args).await
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

async fn connect_postgres(url: &Secret) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(10)
        // Admin writes fail with 503 quickly when PostgreSQL is down.
        .acquire_timeout(Duration::from_secs(3))
        .connect(url.expose())
        .await
        .context("connecting to PostgreSQL")?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    Ok(pool)
}

async fn run_migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let pool = connect_postgres(&args.database_url).await?;
    pool.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.admin_token.expose().trim().is_empty() {
        bail!("the admin token must not be empty");
    }
    let pool = connect_postgres(&args.database_url).await?;
    let store = RedisStore::new(args.redis_url.expose()).context("configuring Redis")?;
    if let Err(error) = store.ping().await {
        tracing::warn!(%error, "Redis is not reachable yet; checks answer 503 until it is");
    }
    let config = AppConfig {
        admin_token: args.admin_token,
        definitions_ttl: Duration::from_millis(args.definitions_ttl_ms),
    };
    let state = AppState::new(config, pool, Arc::new(store)).context("creating metrics")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    serve(listener, state, shutdown_signal())
        .await
        .context("serving")?;
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
