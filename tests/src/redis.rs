//! A throwaway `redis-server`: no persistence, its own port; plain, or TLS only
//! ([`Redis::start_tls`]).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::{free_port, wait_for_port, ChildGuard};
use crate::tls::Pki;

/// A running Redis.
#[derive(Debug)]
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Whether the port speaks TLS (and only TLS).
    tls: bool,
    child: ChildGuard,
}

impl Redis {
    /// Starts Redis on a free port with its log in `dir`.
    pub async fn start(dir: &Path) -> Result<Redis> {
        Redis::start_on(dir, free_port()?).await
    }

    /// Starts Redis on `port` (again, after a stop: tests of reconnection).
    pub async fn start_on(dir: &Path, port: u16) -> Result<Redis> {
        Redis::spawn(dir, port, &["--save", "", "--appendonly", "no"]).await
    }

    /// Starts a Redis that keeps its data on disk in `dir`, every write synced before
    /// it is answered (as production runs it): started again on the same `port` and
    /// `dir` after a stop, it has everything it acknowledged.
    pub async fn start_durable_on(dir: &Path, port: u16) -> Result<Redis> {
        let data = dir.join(format!("redis-{port}-data"));
        std::fs::create_dir_all(&data)?;
        let data = data.display().to_string();
        let durable = [
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ];
        Redis::spawn(dir, port, &[&durable[..], &["--dir", &data]].concat()).await
    }

    async fn spawn(dir: &Path, port: u16, persistence: &[&str]) -> Result<Redis> {
        let mut command = Command::new("redis-server");
        command.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
        command.args(persistence);
        let log = dir.join(format!("redis-{port}.log"));
        let mut child =
            ChildGuard::spawn("redis-server", command, log.clone(), libc::SIGTERM, None)?;
        wait_for_port(&mut child, port, &log).await?;
        Ok(Redis {
            port,
            tls: false,
            child,
        })
    }

    /// Starts Redis with TLS only (no plain port) on a free port, presenting `pki`'s
    /// server certificate; with `require_client_cert`, clients must present a
    /// certificate `pki`'s CA signed (mutual TLS).
    pub async fn start_tls(dir: &Path, pki: &Pki, require_client_cert: bool) -> Result<Redis> {
        let port = free_port()?;
        let mut command = Command::new("redis-server");
        command.args(["--port", "0", "--tls-port", &port.to_string()]);
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        command.arg("--tls-cert-file").arg(&pki.server_cert);
        command.arg("--tls-key-file").arg(&pki.server_key);
        command.arg("--tls-ca-cert-file").arg(&pki.ca_cert);
        let auth = if require_client_cert { "yes" } else { "no" };
        command.args(["--tls-auth-clients", auth]);
        let log = dir.join(format!("redis-tls-{port}.log"));
        let mut child =
            ChildGuard::spawn("redis-server", command, log.clone(), libc::SIGTERM, None)?;
        wait_for_port(&mut child, port, &log).await?;
        Ok(Redis {
            port,
            tls: true,
            child,
        })
    }

    /// The URL clients connect with (`rediss://` for a TLS Redis).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// Kills the server (SIGKILL), as a crash does: only what it wrote to disk survives.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Freezes the server (SIGSTOP), as a stalled host or a network that drops packets
    /// does: connections stay open, and commands wait unanswered until [`Redis::thaw`].
    pub fn freeze(&self) {
        self.child.signal(libc::SIGSTOP);
    }

    /// Lets a frozen server run again (SIGCONT): it then runs every command it was sent
    /// meanwhile, in order.
    pub fn thaw(&self) {
        self.child.signal(libc::SIGCONT);
    }

    /// Makes Redis slow: every client's commands wait `pause` before they run
    /// (`CLIENT PAUSE … ALL`), as behind a blocked or overloaded server. Returns once the
    /// pause is in force. Plain Redis only.
    pub async fn pause(&self, pause: Duration) -> Result<()> {
        let millis = pause.as_millis().to_string();
        let command = format!(
            "*4\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n${}\r\n{millis}\r\n$3\r\nALL\r\n",
            millis.len()
        );
        let mut connection = TcpStream::connect(("127.0.0.1", self.port)).await?;
        connection.write_all(command.as_bytes()).await?;
        let mut reply = [0u8; 5];
        connection.read_exact(&mut reply).await?;
        ensure!(&reply == b"+OK\r\n", "CLIENT PAUSE answered {reply:?}");
        Ok(())
    }
}
