//! The HTTP surface: one [`app`] router built from one router per resource, and
//! [`serve`], which takes its listener and shutdown signal so tests can bind port 0.

mod auth;
mod check;
mod json;
mod ops;
mod tenants;
mod tiers;

#[cfg(test)]
mod tests;

use std::future::Future;

use axum::middleware;
use axum::Router;
use tokio::net::TcpListener;

use crate::error::ApiError;
use crate::state::AppState;

pub use self::json::ApiJson;
pub use self::tiers::{is_valid_resource, is_valid_tier_name};

/// Every route: `/v1/check`, `/admin/v1/*` (bearer token), `/health`, `/ready`,
/// `/metrics`. Unknown routes answer a JSON 404.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .merge(tiers::router())
        .merge(tenants::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ));
    Router::new()
        .merge(check::router())
        .merge(ops::router())
        .merge(admin)
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then finishes in-flight
/// requests. Logs `listening on <addr>` once the listener is serving.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening on {addr}");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
