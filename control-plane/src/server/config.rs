//! The server's configuration: the flags of `tollgate serve` and `tollgate migrate`.
//!
//! Every flag can also come from the environment (see `tollgate.env.example`), or from a
//! file of the same `KEY=VALUE` lines named by `--config` (or `TOLLGATE_CONFIG`): flags
//! win over the environment, which wins over the file.
//! Secrets — the tokens and URLs that may carry passwords — are [`SecretString`]s: they
//! print as `[REDACTED]` in `Debug`, so logging the configuration cannot leak them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, ValueEnum};
use secrecy::SecretString;

use crate::engine::RedisOutage;
use crate::repo::history::export::MAX_FLUSH_INTERVAL_MS;

/// Reads a secret from the command line or the environment.
pub fn secret(value: &str) -> Result<SecretString, Infallible> {
    Ok(SecretString::from(value))
}

/// The config-file flag, read before the rest of the command line (see
/// [`load_config_file`]); declared here so that `--help` shows it.
#[derive(Debug, Args)]
pub struct ConfigFile {
    /// A file of `KEY=VALUE` lines (as `tollgate.env.example`) giving flags through
    /// their environment variables; the environment and the command line win over it.
    #[arg(long = "config", env = "TOLLGATE_CONFIG", value_name = "FILE")]
    pub path: Option<PathBuf>,
}

/// Loads the file named by `--config FILE` (or `--config=FILE`) in `args`, or by
/// `TOLLGATE_CONFIG`, into the environment, so that every flag can come from it.
/// Variables already set are kept. Returns the file loaded, if any.
pub fn load_config_file(args: &[String]) -> Result<Option<PathBuf>, dotenvy::Error> {
    let mut named = std::env::var_os("TOLLGATE_CONFIG").map(PathBuf::from);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--config" {
            named = rest.next().map(PathBuf::from);
        } else if let Some(path) = arg.strip_prefix("--config=") {
            named = Some(PathBuf::from(path));
        }
    }
    let loaded = match named {
        Some(path) => {
            dotenvy::from_path(&path)?;
            Some(path)
        }
        None => None,
    };
    rename_env("TOLLGATE_GAUGE_LEASE_S", "TOLLGATE_GAUGE_HOLD_S");
    Ok(loaded)
}

/// Reads a variable under its former name `old` as `new`, unless `new` is set: a
/// deployment written before a rename keeps working.
fn rename_env(old: &str, new: &str) {
    if std::env::var_os(new).is_none() {
        if let Some(value) = std::env::var_os(old) {
            std::env::set_var(new, value);
        }
    }
}

/// `tollgate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigFile,
    /// Address of the admin API, `/health`, `/ready` and `/metrics` — and of the
    /// decision API too, unless `--decision-listen` gives it its own.
    #[arg(long, env = "TOLLGATE_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Address of the decision API (`/v1`, with `/health` and `/ready` for Envoy's
    /// health checks) on a listener of its own, reachable from the gateways only; the
    /// admin listener then serves no `/v1`.
    #[arg(long, env = "TOLLGATE_DECISION_LISTEN")]
    pub decision_listen: Option<SocketAddr>,
    /// The secret gateways must present to the decision API (`authorization: Bearer`,
    /// the filter's `control_plane.token`). Without it, whoever reaches the decision
    /// listener may spend any tenant's quota.
    #[arg(long, env = "TOLLGATE_DECISION_TOKEN", hide_env_values = true, value_parser = secret)]
    pub decision_token: Option<SecretString>,
    /// PostgreSQL URL holding the quota definitions. For TLS that verifies the server,
    /// add `?sslmode=verify-full&sslrootcert=/path/to/ca.pem`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = secret)]
    pub database_url: SecretString,
    /// Redis URL holding the live counters; with `--redis-cluster`, a comma-separated
    /// list of some of the cluster's nodes.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_parser = secret)]
    pub redis_url: SecretString,
    /// Whether `--redis-url` names the nodes of a Redis Cluster.
    #[arg(long, env = "TOLLGATE_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// What decides while Redis is unreachable: `postgres` counts in PostgreSQL (from
    /// the persisted usage) and hands what it counted to Redis once it is back; `fail`
    /// answers 503, so the filter applies its failure mode.
    #[arg(long, env = "TOLLGATE_REDIS_OUTAGE", value_enum, default_value_t = RedisOutage::Postgres)]
    pub redis_outage: RedisOutage,
    /// A PEM file of the CA certificates that signed Redis's certificate, trusted
    /// instead of the system's store; needs `rediss://` URLs (which alone turn TLS on).
    #[arg(long, env = "TOLLGATE_REDIS_CA_CERT", value_name = "FILE")]
    pub redis_ca_cert: Option<PathBuf>,
    /// A PEM certificate chain the control plane presents to a Redis that requires
    /// client certificates (`tls-auth-clients yes`); with `--redis-client-key`.
    #[arg(
        long,
        env = "TOLLGATE_REDIS_CLIENT_CERT",
        value_name = "FILE",
        requires = "redis_client_key"
    )]
    pub redis_client_cert: Option<PathBuf>,
    /// The PEM private key of `--redis-client-cert` (read once at start-up, never
    /// logged).
    #[arg(
        long,
        env = "TOLLGATE_REDIS_CLIENT_KEY",
        value_name = "FILE",
        requires = "redis_client_cert"
    )]
    pub redis_client_key: Option<PathBuf>,
    /// Bearer token required by `/admin/v1`.
    #[arg(long, env = "TOLLGATE_ADMIN_TOKEN", hide_env_values = true, value_parser = secret)]
    pub admin_token: SecretString,
    /// A second bearer token of `/admin/v1` that may only read (`GET`, `HEAD`).
    #[arg(long, env = "TOLLGATE_ADMIN_READ_TOKEN", hide_env_values = true, value_parser = secret)]
    pub admin_read_token: Option<SecretString>,
    /// How long cached quota definitions are fresh, in milliseconds; after that they are
    /// still used while a background load refreshes them. Every admin write reaches every
    /// instance's cache through the invalidation stream (and an instance that could not
    /// read it drops its whole cache), and what depends on time (assignments' and
    /// grants' ends) is resolved at each decision's instant, so this is no clock of
    /// correctness: it only bounds how long a change made around the API (SQL on the
    /// tables) goes unseen. Reloading on a short clock cost PostgreSQL a query per
    /// tenant every few seconds.
    #[arg(long, env = "TOLLGATE_DEFINITIONS_TTL_MS", default_value_t = 300_000)]
    pub definitions_ttl_ms: u64,
    /// How many tenants the tenant directory holds at most: the compact copy of every
    /// tenant's own definitions that decides tenants whose chain is not cached while
    /// PostgreSQL is down (115 to 180 bytes a tenant, about 180 MB at 1,000,000; 0 turns
    /// it off). Past it, tenants not in yet are left out
    /// (`tollgate_directory_left_out_tenants`).
    #[arg(long, env = "TOLLGATE_DIRECTORY_MAX_TENANTS", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    pub directory_max_tenants: u64,
    /// How long a check waits for quota definitions when the caller does not send
    /// `x-tollgate-deadline-ms` or `x-envoy-expected-rq-timeout-ms`, in milliseconds.
    #[arg(long, env = "TOLLGATE_CHECK_DEADLINE_MS", default_value_t = 200)]
    pub check_deadline_ms: u64,
    /// How often usage is persisted from Redis to PostgreSQL, in milliseconds (at most a
    /// minute: the billing export takes a window as final a few minutes after its end).
    #[arg(long, env = "TOLLGATE_HISTORY_FLUSH_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(100..=MAX_FLUSH_INTERVAL_MS))]
    pub history_flush_ms: u64,
    /// How often events of the decision path are written, in milliseconds.
    #[arg(long, env = "TOLLGATE_EVENTS_FLUSH_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub events_flush_ms: u64,
    /// How often invalidations from other instances are read, in milliseconds.
    #[arg(long, env = "TOLLGATE_INVALIDATION_POLL_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(10..=1_000))]
    pub invalidation_poll_ms: u64,
    /// How long an unreleased gauge hold (a `concurrent_requests` slot) lasts, in
    /// seconds. Its former names `--gauge-lease-s` and `TOLLGATE_GAUGE_LEASE_S` still work.
    #[arg(long, alias = "gauge-lease-s", env = "TOLLGATE_GAUGE_HOLD_S", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub gauge_hold_s: u64,
    /// The largest budget `/v1/leases` grants, in units of the resource, however far the
    /// tenant is from its limits.
    #[arg(long, env = "TOLLGATE_LEASE_MAX_BUDGET", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub lease_max_budget: u64,
    /// The smallest budget `/v1/leases` grants: nearer the limit the gateway checks each
    /// request.
    #[arg(long, env = "TOLLGATE_LEASE_MIN_GRANT", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    pub lease_min_grant: u64,
    /// How long a budget of `/v1/leases` may be spent, in milliseconds (never past the
    /// reset of a window it is counted in).
    #[arg(long, env = "TOLLGATE_LEASE_TTL_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    pub lease_ttl_ms: u64,
    /// Where webhook deliveries may go besides public addresses: CIDRs (`10.1.0.0/16`),
    /// addresses, host names (`hooks.internal`, allowed whatever they resolve to) or
    /// `*.domain`, comma-separated or repeated. Loopback, private, link-local and the
    /// other special ranges are refused unless listed here.
    #[arg(
        long,
        env = "TOLLGATE_WEBHOOK_ALLOW",
        value_delimiter = ',',
        value_name = "HOST|CIDR"
    )]
    pub webhook_allow: Vec<String>,
    /// Whether webhook deliveries may go to public addresses; `false` leaves only what
    /// `--webhook-allow` lists.
    #[arg(long, env = "TOLLGATE_WEBHOOK_ALLOW_PUBLIC", default_value_t = true,
          action = ArgAction::Set, value_name = "BOOL")]
    pub webhook_allow_public: bool,
    /// The deadline of one webhook delivery attempt (connecting, sending, the answer's
    /// status), in milliseconds.
    #[arg(long, env = "TOLLGATE_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub webhook_timeout_ms: u64,
    /// The wait after a first failed webhook attempt, in milliseconds; it doubles with
    /// each failure, up to `--webhook-backoff-max-ms`.
    #[arg(long, env = "TOLLGATE_WEBHOOK_BACKOFF_MIN_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub webhook_backoff_min_ms: u64,
    /// The longest wait between webhook attempts, in milliseconds.
    #[arg(long, env = "TOLLGATE_WEBHOOK_BACKOFF_MAX_MS", default_value_t = 600_000,
          value_parser = clap::value_parser!(u64).range(10..=86_400_000))]
    pub webhook_backoff_max_ms: u64,
    /// How long after its event a webhook delivery is retried before it is given up
    /// (marked failed), in seconds.
    #[arg(long, env = "TOLLGATE_WEBHOOK_GIVE_UP_S", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
    pub webhook_give_up_s: u64,
    /// How often the outbox is looked at for due webhook deliveries, in milliseconds
    /// (this control plane's own new events go out at once).
    #[arg(long, env = "TOLLGATE_WEBHOOK_POLL_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(20..=60_000))]
    pub webhook_poll_ms: u64,
    /// At most this many webhook attempts of this control plane at once.
    #[arg(long, env = "TOLLGATE_WEBHOOK_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub webhook_concurrency: u64,
    /// Label per-tenant metrics with the tenant id (cardinality: the number of tenants).
    #[arg(long, env = "TOLLGATE_METRICS_TENANT_LABELS")]
    pub metrics_tenant_labels: bool,
    /// Log format.
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `tollgate migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub config: ConfigFile,
    /// PostgreSQL URL to migrate.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = secret)]
    pub database_url: SecretString,
    /// Log format.
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn debug_output_of_serve_args_hides_every_secret() {
        let cli = Cli::try_parse_from([
            "tollgate",
            "serve",
            "--database-url",
            "postgres://u:pgpass@db/x",
            "--redis-url",
            "redis://:redispass@r",
            "--admin-token",
            "s3cret-token",
            "--admin-read-token",
            "r3ad-token",
            "--decision-token",
            "gateway-s3cret",
        ])
        .unwrap();
        let text = format!("{cli:?}");
        for secret in [
            "pgpass",
            "redispass",
            "s3cret-token",
            "r3ad-token",
            "gateway-s3cret",
        ] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(args.admin_token.expose_secret(), "s3cret-token");
        assert_eq!(args.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(args.decision_listen, None);
        assert_eq!(args.definitions_ttl_ms, 300_000);
        assert_eq!(args.directory_max_tenants, 1_000_000);
        assert_eq!(
            (
                args.lease_max_budget,
                args.lease_min_grant,
                args.lease_ttl_ms
            ),
            (10_000, 2, 10_000)
        );
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.redis_ca_cert, None);
    }

    #[test]
    fn a_redis_client_certificate_needs_its_key() {
        let serve = |extra: &[&str]| {
            let mut args = vec![
                "tollgate",
                "serve",
                "--database-url",
                "postgres://db/x",
                "--redis-url",
                "rediss://r",
                "--admin-token",
                "t",
                "--redis-ca-cert",
                "/etc/tollgate/redis-ca.pem",
            ];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        if std::env::var_os("TOLLGATE_REDIS_CLIENT_KEY").is_none() {
            assert!(serve(&["--redis-client-cert", "/c.pem"]).is_err());
        }
        let cli = serve(&[
            "--redis-client-cert",
            "/c.pem",
            "--redis-client-key",
            "/k.pem",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(
            args.redis_ca_cert.as_deref(),
            Some(std::path::Path::new("/etc/tollgate/redis-ca.pem"))
        );
        assert_eq!(
            args.redis_client_key.as_deref(),
            Some(std::path::Path::new("/k.pem"))
        );
    }

    #[test]
    fn webhook_flags_take_lists_repeated_or_comma_separated_and_an_explicit_bool() {
        let serve = |extra: &[&str]| {
            let mut args = vec![
                "tollgate",
                "serve",
                "--database-url",
                "postgres://db/x",
                "--redis-url",
                "redis://r",
                "--admin-token",
                "t",
            ];
            args.extend_from_slice(extra);
            let Command::Serve(args) = Cli::try_parse_from(args).unwrap().command else {
                panic!("expected serve");
            };
            args
        };
        let set = serve(&[
            "--webhook-allow",
            "127.0.0.1,10.0.0.0/8",
            "--webhook-allow",
            "hooks.internal",
            "--webhook-allow-public=false",
            "--webhook-timeout-ms",
            "500",
        ]);
        assert_eq!(
            set.webhook_allow,
            ["127.0.0.1", "10.0.0.0/8", "hooks.internal"]
        );
        assert!(!set.webhook_allow_public);
        assert_eq!(set.webhook_timeout_ms, 500);
        if std::env::var_os("TOLLGATE_WEBHOOK_ALLOW_PUBLIC").is_none() {
            let defaults = serve(&[]);
            assert!(defaults.webhook_allow_public);
            assert_eq!(
                (
                    defaults.webhook_backoff_min_ms,
                    defaults.webhook_backoff_max_ms,
                    defaults.webhook_give_up_s
                ),
                (1_000, 600_000, 86_400)
            );
        }
    }

    #[test]
    fn serve_without_an_admin_token_is_refused() {
        let result = Cli::try_parse_from([
            "tollgate",
            "serve",
            "--database-url",
            "postgres://db/x",
            "--redis-url",
            "redis://r",
        ]);
        // The environment could supply it; only assert when it does not.
        if std::env::var_os("TOLLGATE_ADMIN_TOKEN").is_none() {
            assert!(result.is_err());
        }
    }
}
