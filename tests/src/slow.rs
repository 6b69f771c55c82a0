//! A TCP proxy that holds what its clients send for a fixed time before passing it on:
//! a control plane that answers slowly, so requests pile up behind one callout.
//!
//! Each chunk is forwarded `delay` after it was read (not after the one before it), so
//! callouts multiplexed on one HTTP/2 connection are each delayed once.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// A running slow proxy on a loopback port.
#[derive(Debug)]
pub struct Slow {
    /// Its port on 127.0.0.1.
    pub port: u16,
    target: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl Slow {
    /// Binds a free port. Connections are refused until [`Slow::forward_to`] names
    /// where to.
    pub async fn start(delay: Duration) -> Result<Slow> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let target = Arc::new(AtomicU16::new(0));
        let to = target.clone();
        let task = tokio::spawn(async move {
            // Dropped with the task: every connection ends with the proxy.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let port = to.load(Ordering::SeqCst);
                connections.spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", port)).await {
                        relay(client, server, delay).await;
                    }
                });
            }
        });
        Ok(Slow { port, target, task })
    }

    /// Forwards new connections to `port` on 127.0.0.1.
    pub fn forward_to(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Client to server delayed, server to client as it comes, until either side closes.
async fn relay(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buffer).await {
            if chunks
                .send((Instant::now() + delay, buffer[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to_server.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    let back = async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    };
    tokio::select! {
        _ = async { tokio::join!(read, write) } => {}
        () = back => {}
    }
}
