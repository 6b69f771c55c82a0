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
    /// Starts Redis with its log in `dir`.
    pub async fn start(dir: &Path) -> Result<Redis> {
        let port = free_port()?;
        let mut command = Command::new("redis-server");
        command.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
        command.args(["--save", "", "--appendonly", "no"]);
        let log = dir.join("redis.log");
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
