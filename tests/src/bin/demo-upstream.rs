//! The recording upstream as a program, for `scripts/demo.sh`.
//!
//! Usage: `demo-upstream ADDR` (e.g. `127.0.0.1:8080`)

use anyhow::{Context, Result};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<()> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .context("usage: demo-upstream ADDR")?
        .parse()
        .context("ADDR must be host:port, e.g. 127.0.0.1:8080")?;
    let listener = TcpListener::bind(addr).await?;
    tollgate_e2e::upstream::serve(listener, Default::default(), true).await;
    Ok(())
}
