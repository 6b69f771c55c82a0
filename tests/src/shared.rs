//! Servers shared by all tests of one test binary: one Redis, one 3-master Redis Cluster
//! and one PostgreSQL, each started on first use. Tests that share one keep apart by
//! their own keys (hash tags) or databases (`#[sqlx::test]` makes one per test).
//!
//! Each server is started from a thread that lives as long as the test process: the
//! children die with the thread that spawned them (`PR_SET_PDEATHSIG`), so a server
//! started from one test's thread would die when that test ends. Their directories are
//! `tollgate-shared-<pid>-*` in the temp dir; those of processes that are gone are
//! removed when the next test process starts one.

use std::path::PathBuf;
use std::sync::{mpsc, OnceLock};

use anyhow::{anyhow, Context, Result};

use crate::postgres::Postgres;
use crate::redis::Redis;
use crate::redis_cluster::RedisCluster;

/// Starts `start` on a thread of its own that then parks forever, and returns what it
/// yields once the server is up.
fn on_keeper_thread<T, S, F>(name: &str, start: F) -> Result<T>
where
    T: Send + 'static,
    S: 'static,
    F: FnOnce(PathBuf) -> Result<(T, S)> + Send + 'static,
{
    let dir = shared_dir(name)?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("shared-{name}"))
        .spawn(move || {
            match start(dir) {
                Ok((value, server)) => {
                    let _ = tx.send(Ok(value));
                    // Keep the server (and this thread, its parent) alive until exit.
                    let _server = server;
                    loop {
                        std::thread::park();
                    }
                }
                Err(error) => {
                    let _ = tx.send(Err(error));
                }
            }
        })
        .context("spawning a keeper thread")?;
    rx.recv().context("keeper thread ended")?
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")
}

/// A fresh directory for a shared server, after removing those of finished processes.
fn shared_dir(name: &str) -> Result<PathBuf> {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(rest) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix("tollgate-shared-"))
            else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or("");
            if !pid.is_empty() && !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = tmp.join(format!("tollgate-shared-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn cached(
    cell: &'static OnceLock<Result<String, String>>,
    start: impl FnOnce() -> Result<String>,
) -> Result<String> {
    cell.get_or_init(|| start().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// The URL of this process's shared Redis.
pub fn redis_url() -> Result<String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    cached(&URL, || {
        on_keeper_thread("redis", |dir| {
            let redis = runtime()?.block_on(Redis::start(&dir))?;
            Ok((redis.url(), redis))
        })
    })
}

/// The node URLs, comma-separated, of this process's shared 3-master Redis Cluster.
pub fn redis_cluster_urls() -> Result<String> {
    static URLS: OnceLock<Result<String, String>> = OnceLock::new();
    cached(&URLS, || {
        on_keeper_thread("redis-cluster", |dir| {
            let cluster = runtime()?.block_on(RedisCluster::start(&dir))?;
            Ok((cluster.url_list(), cluster))
        })
    })
}

/// The URL of this process's shared PostgreSQL (database `postgres`, user `postgres`).
pub fn postgres_url() -> Result<String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    cached(&URL, || {
        on_keeper_thread("postgres", |dir| {
            let postgres = runtime()?.block_on(Postgres::start(&dir))?;
            Ok((postgres.url(), postgres))
        })
    })
}
