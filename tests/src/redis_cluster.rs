//! A throwaway three-master Redis Cluster on loopback, for tests of the control plane
//! against a sharded Redis: keys spread over slots, scripts limited to one hash tag
//! (`CROSSSLOT` otherwise), and a cluster that loses its data ([`RedisCluster::flush_all`]).
//!
//! Each node runs in its own sub-directory, because each writes its own `nodes.conf`.
//! The cluster bus port is given explicitly (`--cluster-port`): the default, port +
//! 10000, overflows for the high ephemeral ports [`free_port`] hands out. Right after
//! `redis-cli --cluster create` the nodes report `cluster_state:fail` for a moment, so
//! [`RedisCluster::start`] waits for `cluster_state:ok` on every node before returning.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::{free_port, wait_for_port, ChildGuard};

/// How many masters (no replicas).
const NODES: usize = 3;

/// A running Redis Cluster; every node stops when it is dropped.
#[derive(Debug)]
pub struct RedisCluster {
    ports: Vec<u16>,
    _nodes: Vec<ChildGuard>,
}

impl RedisCluster {
    /// Starts three masters with their logs under `dir`, joins them into one cluster
    /// covering all slots and waits until every node says `cluster_state:ok`.
    pub async fn start(dir: &Path) -> Result<RedisCluster> {
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
            command.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
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
        if !creating.wait_success()? {
            bail!("redis-cli --cluster create failed:\n{}", tail(&log));
        }

        let cluster = RedisCluster {
            ports: ports.to_vec(),
            _nodes: nodes,
        };
        cluster.wait_ok(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// The nodes' ports on 127.0.0.1.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.clone()
    }

    /// One URL per node (`redis://127.0.0.1:P/`), as a cluster client takes them.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}/"))
            .collect()
    }

    /// The URLs joined with `,` (the form a command-line flag takes).
    pub fn url_list(&self) -> String {
        self.urls().join(",")
    }

    /// Empties every node: a cluster that lost its data.
    pub async fn flush_all(&self) -> Result<()> {
        for &port in &self.ports {
            let reply = cli(port, &["FLUSHALL"]).await?;
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
                let info = cli(port, &["CLUSTER", "INFO"]).await?;
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
}

/// Runs `redis-cli -h 127.0.0.1 -p port args…` and returns its standard output.
async fn cli(port: u16, args: &[&str]) -> Result<String> {
    let output = tokio::process::Command::new("redis-cli")
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

/// The last lines of a log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
