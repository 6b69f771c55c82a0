//! A server that accepts TCP connections and never answers: a control plane that hangs.
//!
//! Stopping the control plane makes Envoy answer a callout 503 at once, so only a peer
//! that accepts and then says nothing proves the filter keeps its own deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running hanging server on a loopback port.
#[derive(Debug)]
pub struct Hanging {
    /// Its port on 127.0.0.1.
    pub port: u16,
    accepted: Arc<AtomicU64>,
    read: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Hanging {
    /// Binds a free port; every connection is read from and never written to, until
    /// this is dropped.
    pub async fn start() -> Result<Hanging> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let accepted = Arc::new(AtomicU64::new(0));
        let read = Arc::new(AtomicU64::new(0));
        let (a, r) = (accepted.clone(), read.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                // Reading keeps the peer's writes flowing; nothing is ever answered.
                connections.spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        r.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    // Hold the socket open until the peer closes it.
                    drop(socket);
                });
            }
        });
        Ok(Hanging {
            port,
            accepted,
            read,
            task,
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Bytes read from all connections so far (the callouts' requests).
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::SeqCst)
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.task.abort();
    }
}
