//! A throwaway `redis-server`: no persistence, its own port.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

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
        let mut command = Command::new("redis-server");
        command.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
        command.args(["--save", "", "--appendonly", "no"]);
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
}
