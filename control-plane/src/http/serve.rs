//! Serving the routes: on one listener, or the admin and decision APIs apart; draining
//! in-flight requests on shutdown.

use std::future::Future;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

use super::routes::{app, app_for, Surface};
use super::state::AppState;

/// Where the control plane listens.
#[derive(Debug)]
pub enum Listeners {
    /// Everything on one listener.
    Shared(TcpListener),
    /// The admin API and the decision API apart.
    Split {
        /// Operators': [`Surface::Admin`].
        admin: TcpListener,
        /// Gateways': [`Surface::Decisions`].
        decisions: TcpListener,
    },
}

/// Serves on `listeners` until `shutdown` resolves, then finishes in-flight requests.
/// Logs `listening on <addr>` once each listener is serving.
pub async fn serve(
    listeners: Listeners,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(());
    let stopping = state.stopping.clone();
    tokio::spawn(async move {
        shutdown.await;
        // Long answers in flight end at their next step.
        stopping.send_replace(true);
        // Every server holds a receiver until it has drained.
        let _ = stop.send(());
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.changed().await;
        }
    };
    match listeners {
        Listeners::Shared(listener) => serve_one(listener, app(state), until_stopped()).await,
        Listeners::Split { admin, decisions } => {
            let admin = serve_one(
                admin,
                app_for(state.clone(), Surface::Admin),
                until_stopped(),
            );
            let decisions = serve_one(
                decisions,
                app_for(state, Surface::Decisions),
                until_stopped(),
            );
            tokio::try_join!(admin, decisions).map(|_| ())
        }
    }
}

async fn serve_one(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening on {addr}");
    // No Nagle: an HTTP/2 answer is several small writes, and with Nagle and the
    // client's delayed ACKs each decision waited tens of milliseconds (p99 36 ms over
    // h2c in the benchmark, 5-14 ms without).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
