//! The service behind the gateway: answers 200 to everything and records, per tenant,
//! how many requests and body bytes actually reached it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What reached the upstream for one tenant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Requests.
    pub requests: u64,
    /// Body bytes.
    pub bytes: u64,
}

type Ledger = Arc<Mutex<HashMap<String, Received>>>;

/// A running upstream on a loopback port.
#[derive(Debug)]
pub struct Upstream {
    /// Its port on 127.0.0.1.
    pub port: u16,
    ledger: Ledger,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Binds a free port and serves until dropped.
    pub async fn start() -> Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let ledger = Ledger::default();
        let task = tokio::spawn(serve(listener, ledger.clone(), false));
        Ok(Upstream { port, ledger, task })
    }

    /// What reached it for `tenant`.
    pub fn received(&self, tenant: &str) -> Received {
        self.ledger
            .lock()
            .map(|ledger| ledger.get(tenant).copied().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the recording upstream on `listener`; with `print`, logs every request
/// (the demo's upstream does).
pub async fn serve(
    listener: TcpListener,
    ledger: Arc<Mutex<HashMap<String, Received>>>,
    print: bool,
) {
    let app = Router::new()
        .fallback(
            move |State(ledger): State<Ledger>, headers: HeaderMap, body: Bytes| async move {
                let tenant = headers
                    .get("x-tenant-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if print {
                    println!("upstream: tenant {tenant:?} sent {} bytes", body.len());
                }
                if let Ok(mut ledger) = ledger.lock() {
                    let entry = ledger.entry(tenant).or_default();
                    entry.requests += 1;
                    entry.bytes += body.len() as u64;
                }
                "ok\n"
            },
        )
        .layer(DefaultBodyLimit::disable())
        .with_state(ledger);
    let _ = axum::serve(listener, app).await;
}
