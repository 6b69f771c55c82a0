//! A throwaway three-master Redis Cluster on loopback, for tests of the control plane
//! against a sharded Redis: keys spread over slots, scripts limited to one hash tag
//! (`CROSSSLOT` otherwise), and a cluster that loses its data ([`RedisCluster::flush_all`]).
//!
//! Each node runs in its own sub-directory, because each writes its own `nodes.conf`.
//! The cluster bus port is given explicitly (`--cluster-port`): the default, port +
//! 10000, could overflow or land on another test's port. Right after
//! `redis-cli --cluster create` the nodes report `cluster_state:fail` for a moment, so
//! [`RedisCluster::start`] waits for `cluster_state:ok` on every node before returning.
//! [`RedisCluster::start_tls`] makes the same cluster speak TLS only, clients and
//! cluster bus alike (`tls-cluster yes`, so nodes announce their TLS ports).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::{free_port, wait_for_port, ChildGuard};
use crate::tls::Pki;

/// How many masters (no replicas).
const NODES: usize = 3;

/// A running Redis Cluster; every node stops when it is dropped.
#[derive(Debug)]
pub struct RedisCluster {
    ports: Vec<u16>,
    /// `redis-cli`'s TLS flags, empty for a plain cluster.
    cli_tls: Vec<String>,
    _nodes: Vec<ChildGuard>,
}

impl RedisCluster {
    /// Starts three masters with their logs under `dir`, joins them into one cluster
    /// covering all slots and waits until every node says `cluster_state:ok`.
    pub async fn start(dir: &Path) -> Result<RedisCluster> {
        RedisCluster::start_with(dir, None).await
    }

    /// [`RedisCluster::start`] with TLS only, presenting `pki`'s server certificate
    /// (clients need no certificate of their own).
    pub async fn start_tls(dir: &Path, pki: &Pki) -> Result<RedisCluster> {
        RedisCluster::start_with(dir, Some(pki)).await
    }

    async fn start_with(dir: &Path, pki: Option<&Pki>) -> Result<RedisCluster> {
        let cli_tls: Vec<String> = match pki {
            Some(pki) => vec![
                "--tls".into(),
                "--cacert".into(),
                pki.ca_cert.display().to_string(),
            ],
            None => Vec::new(),
        };
        // Client ports and bus ports, all distinct.
        let mut free = Vec::with_capacity(2 * NODES);
        while free.len() < 2 * NODES {
            let port = free_port()?;
            if !free.contains(&port) {
                free.push(port);
            }
        }
        let (ports, bus_ports) = free.split_at(NODES);
        let mut nodes = Vec::with_capacity(NODES);
        for (&port, &bus_port) in ports.iter().zip(bus_ports) {
            let home = dir.join(format!("redis-cluster-{port}"));
            std::fs::create_dir_all(&home)
                .with_context(|| format!("creating {}", home.display()))?;
            let mut command = Command::new("redis-server");
            command.current_dir(&home);
            match pki {
                Some(pki) => {
                    command.args(["--port", "0", "--tls-port", &port.to_string()]);
                    command.args(["--tls-cluster", "yes", "--tls-auth-clients", "no"]);
                    command.arg("--tls-cert-file").arg(&pki.server_cert);
                    command.arg("--tls-key-file").arg(&pki.server_key);
                    command.arg("--tls-ca-cert-file").arg(&pki.ca_cert);
                }
                None => {
                    command.args(["--port", &port.to_string()]);
                }
            }
            command.args(["--bind", "127.0.0.1"]);
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]);
            command.args(["--cluster-port", &bus_port.to_string()]);
            command.args(["--save", "", "--appendonly", "no"]);
            let log = dir.join(format!("redis-cluster-{port}.log"));
            let mut child =
                ChildGuard::spawn("redis-server", command, log.clone(), libc::SIGTERM, None)?;
            wait_for_port(&mut child, port, &log).await?;
            nodes.push(child);
        }

        let mut create = Command::new("redis-cli");
        create.args(&cli_tls);
        create.args(["--cluster", "create"]);
        create.args(ports.iter().map(|port| format!("127.0.0.1:{port}")));
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let log = dir.join("redis-cluster-create.log");
        let mut creating = ChildGuard::spawn(
            "redis-cli --cluster create",
            create,
            log.clone(),
            libc::SIGTERM,
            None,
        )?;
        // Bounded: nodes that cannot reach each other (a cluster bus refusing their
        // certificates) leave `redis-cli` "waiting for the cluster to join" for ever.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = creating.try_status()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("redis-cli --cluster create did not finish within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if !status.success() {
            bail!("redis-cli --cluster create failed:\n{}", tail(&log));
        }

        let cluster = RedisCluster {
            ports: ports.to_vec(),
            cli_tls,
            _nodes: nodes,
        };
        cluster.wait_ok(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// The nodes' ports on 127.0.0.1.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.clone()
    }

    /// One URL per node (`redis://127.0.0.1:P/`, `rediss://` with TLS), as a cluster
    /// client takes them.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.cli_tls.is_empty() {
            "redis"
        } else {
            "rediss"
        };
        self.ports
            .iter()
            .map(|port| format!("{scheme}://127.0.0.1:{port}/"))
            .collect()
    }

    /// The URLs joined with `,` (the form a command-line flag takes).
    pub fn url_list(&self) -> String {
        self.urls().join(",")
    }

    /// Empties every node: a cluster that lost its data.
    pub async fn flush_all(&self) -> Result<()> {
        for &port in &self.ports {
            let reply = self.cli(port, &["FLUSHALL"]).await?;
            if reply.trim() != "OK" {
                bail!("FLUSHALL on port {port} answered {reply:?}");
            }
        }
        Ok(())
    }

    /// Polls `cluster info` on every node until all say `cluster_state:ok`.
    async fn wait_ok(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let mut last = String::new();
            let mut all_ok = true;
            for &port in &self.ports {
                let info = self.cli(port, &["CLUSTER", "INFO"]).await?;
                if !info.lines().any(|line| line.trim() == "cluster_state:ok") {
                    all_ok = false;
                    last = format!("port {port}:\n{info}");
                    break;
                }
            }
            if all_ok {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("Redis Cluster not ok within {timeout:?}; {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `redis-cli -h 127.0.0.1 -p port args…` and returns its standard output.
    async fn cli(&self, port: u16, args: &[&str]) -> Result<String> {
        let output = tokio::process::Command::new("redis-cli")
            .args(&self.cli_tls)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .await
            .context("running redis-cli")?;
        if !output.status.success() {
            bail!(
                "redis-cli -p {port} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// The last lines of a log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
