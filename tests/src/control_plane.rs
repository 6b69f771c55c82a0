//! The real `tollgate serve` binary, as operators run it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::process::{free_port, target_dir, ChildGuard};

/// The bearer token tests administer with.
pub const ADMIN_TOKEN: &str = "e2e-admin-token";

/// The secret the test gateways present to the decision API (`--decision-token`, the
/// filter's `control_plane.token`).
pub const DECISION_TOKEN: &str = "e2e-gateway-secret";

/// Flags every test control plane gets: usage and events are persisted every 200 ms, so
/// tests of durability need not wait long.
const TEST_FLAGS: [&str; 4] = ["--history-flush-ms", "200", "--events-flush-ms", "200"];

/// A running control plane, as production runs it: the admin API and the decision API
/// on listeners of their own, the decision API behind [`DECISION_TOKEN`]. Can be
/// stopped and started again on the same ports.
#[derive(Debug)]
pub struct ControlPlane {
    /// The admin listener's port on 127.0.0.1 (`/admin/v1`, `/health`, `/metrics`).
    pub port: u16,
    /// The decision listener's port on 127.0.0.1 (`/v1`): where gateways call.
    pub decision_port: u16,
    database_url: String,
    redis_url: String,
    extra_args: Vec<String>,
    log: PathBuf,
    child: Option<ChildGuard>,
}

impl ControlPlane {
    /// Starts `tollgate serve` against the given stores, logging into `dir`, and waits
    /// until it is alive (not until it is ready: it starts without PostgreSQL too).
    pub async fn start(dir: &Path, database_url: &str, redis_url: &str) -> Result<ControlPlane> {
        ControlPlane::start_with(dir, database_url, redis_url, &[]).await
    }

    /// [`ControlPlane::start`] with more `serve` flags (`--redis-cluster`, …).
    pub async fn start_with(
        dir: &Path,
        database_url: &str,
        redis_url: &str,
        extra_args: &[&str],
    ) -> Result<ControlPlane> {
        let port = free_port()?;
        let mut control_plane = ControlPlane {
            port,
            decision_port: free_port()?,
            database_url: database_url.to_string(),
            redis_url: redis_url.to_string(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            log: dir.join(format!("control-plane-{port}.log")),
            child: None,
        };
        control_plane.restart().await?;
        Ok(control_plane)
    }

    /// The binary under test: `target/debug/tollgate`, or `TOLLGATE_BIN`.
    pub fn binary() -> Result<PathBuf> {
        let path = std::env::var("TOLLGATE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| target_dir().join("debug").join("tollgate"));
        if !path.exists() {
            bail!(
                "{} is missing: run `cargo build -p tollgate-control-plane`",
                path.display()
            );
        }
        Ok(path)
    }

    /// Base URL of its admin API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Base URL of its decision API (calls need [`DECISION_TOKEN`]).
    pub fn decision_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.decision_port)
    }

    /// The sum of metric `name` over its label sets that hold `labels` (e.g.
    /// `op="cancel"`; empty: every set), from its `/metrics`.
    pub async fn metric(&self, name: &str, labels: &str) -> Result<f64> {
        let text = reqwest::get(format!("{}/metrics", self.url()))
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok((text.lines())
            .filter_map(|line| line.strip_prefix(name))
            .filter(|rest| rest.starts_with(['{', ' ']) && rest.contains(labels))
            .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// The pid of the running process (to read its memory in `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(ChildGuard::id)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the process (SIGTERM, graceful).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.stop();
        }
    }

    /// Kills the process (SIGKILL), as a crash does: nothing drained, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Starts the process again (or for the first time) and waits until `/health` answers.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        let mut command = Command::new(Self::binary()?);
        command.args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)]);
        let decisions = format!("127.0.0.1:{}", self.decision_port);
        command.args(["--decision-listen", &decisions]);
        command.args(["--decision-token", DECISION_TOKEN]);
        command.args([
            "--database-url",
            &self.database_url,
            "--redis-url",
            &self.redis_url,
        ]);
        command.args(["--admin-token", ADMIN_TOKEN]);
        // A test's own value of a flag replaces the harness's.
        for flag in TEST_FLAGS.chunks(2) {
            if !self.extra_args.iter().any(|arg| *arg == flag[0]) {
                command.args(flag);
            }
        }
        command.args(&self.extra_args);
        command.env("RUST_LOG", "info");
        let mut child =
            ChildGuard::spawn("tollgate", command, self.log.clone(), libc::SIGTERM, None)?;
        let client = reqwest::Client::new();
        let health = format!("{}/health", self.url());
        for _ in 0..1500 {
            child.check_alive(&self.log)?;
            let ok = client
                .get(&health)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                self.child = Some(child);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = std::fs::read_to_string(&self.log).context("reading the control-plane log")?;
        bail!("control plane not healthy after 30 s:\n{log}")
    }

    /// Waits until `/ready` answers 200: migrations applied, stores reachable.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let client = reqwest::Client::new();
        let ready = format!("{}/ready", self.url());
        let start = std::time::Instant::now();
        loop {
            let reply = client
                .get(&ready)
                .timeout(Duration::from_secs(3))
                .send()
                .await;
            if reply.as_ref().is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if start.elapsed() > timeout {
                let body = match reply {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                bail!(
                    "control plane not ready after {timeout:?}: {body}\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
