//! A throwaway `redis-server`: no persistence, its own port.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::{free_port, wait_for_port, ChildGuard};

/// A running Redis.
#[derive(Debug)]
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
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
        Ok(Redis { port, child })
    }

    /// The URL clients connect with.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// Makes Redis slow: every client's commands wait `pause` before they run
    /// (`CLIENT PAUSE … ALL`), as behind a blocked or overloaded server. Returns once the
    /// pause is in force.
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
