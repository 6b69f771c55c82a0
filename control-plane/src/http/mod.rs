//! The HTTP surface. One route table, [`routes`], builds both the router ([`app`]) and
//! the OpenAPI 3.1 document served at `/admin/v1/openapi.json`, so the two cannot
//! disagree. Admin handlers take the [`auth::Admin`] extractor: no route can forget it
//! silently, and the document marks each one with the bearer scheme.
//!
//! # Layout
//! - [`decisions`] — `POST /v1/check`, `/v1/leases`, `/v1/settle`, `/v1/release` (the
//!   filter's API).
//! - [`tiers`], [`limits`], [`tenants`], [`assignments`], [`usage`], [`events`] — the
//!   admin API under `/admin/v1`, one module per resource.
//! - [`ops`] — `/health`, `/ready`, `/metrics`, the OpenAPI document.
//! - [`auth`], [`json`], [`paging`] — bearer tokens, JSON, query and path extraction
//!   with problem+json rejections, cursor pagination.
//! - [`names`] — the schemas of tenant ids and tier names in the document.
//! - `document` — what [`openapi`] adds to the generated document: the extractors'
//!   rejections, links.

mod assignments;
pub mod auth;
mod decisions;
mod document;
mod events;
pub mod json;
mod limits;
pub mod names;
mod ops;
pub mod paging;
pub mod state;
mod tenants;
mod tiers;
mod usage;

#[cfg(test)]
mod tests;

use std::future::Future;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse};
use utoipa_axum::router::OpenApiRouter;

use self::state::AppState;
use crate::error::{ApiError, Problem};

pub use self::json::{ApiJson, ApiPath, ApiQuery};

/// The document's frame: title, the bearer scheme, the tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate control plane",
        description = "Per-tenant quota enforcement for Envoy: the decision API the filter \
                       calls (/v1) and the admin API operators use (/admin/v1). Every error \
                       is application/problem+json (RFC 9457)."
    ),
    modifiers(&BearerScheme),
    components(responses(Unauthorized, Malformed, TooLarge, Invalid, Unavailable)),
    tags(
        (name = "decisions", description = "What the Envoy filter calls."),
        (name = "tiers", description = "Named bundles of limits."),
        (name = "limits", description = "Limits of tiers and per-tenant overrides."),
        (name = "tenants", description = "Tenants and their hierarchy."),
        (name = "assignments", description = "Which tier applies to whom."),
        (name = "usage", description = "Effective quota, live usage, resets, history."),
        (name = "events", description = "The audit log."),
        (name = "operations", description = "Health, readiness, metrics."),
    )
)]
struct ApiDoc;

/// No bearer token, or a wrong one.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unauthorized(pub Problem);

/// The body is not JSON, or not sent as `application/json`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Malformed(pub Problem);

/// The body is larger than the server reads (2 MiB).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct TooLarge(pub Problem);

/// A value is invalid; `invalid-params` names it.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Invalid(pub Problem);

/// PostgreSQL is unavailable: admin writes are refused until it is back.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unavailable(pub Problem);

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// All of them, on one listener (development, or a decision API kept private by
    /// the network).
    Everything,
    /// The decision API (`/v1`) with `/health` and `/ready`: the gateways' listener.
    Decisions,
    /// The admin API, the OpenAPI document, `/health`, `/ready` and `/metrics`: the
    /// operators' listener.
    Admin,
}

/// The routes of `surface`, with their documentation.
fn routes_of(surface: Surface) -> OpenApiRouter<AppState> {
    let frame = OpenApiRouter::with_openapi(ApiDoc::openapi());
    let admin = || {
        OpenApiRouter::new()
            .merge(tiers::routes())
            .merge(limits::routes())
            .merge(tenants::routes())
            .merge(assignments::routes())
            .merge(usage::routes())
            .merge(events::routes())
            .merge(ops::routes())
    };
    match surface {
        Surface::Everything => frame.merge(decisions::routes()).merge(admin()),
        Surface::Decisions => frame.merge(decisions::routes()).merge(ops::probes()),
        Surface::Admin => frame.merge(admin()),
    }
}

/// Every route with its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    routes_of(Surface::Everything)
}

/// The OpenAPI document of [`routes`]: both APIs, wherever they are served.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = routes().split_for_parts().1;
    document::complete(&mut document);
    document
}

/// The router of every route of [`routes`].
pub fn app(state: AppState) -> Router {
    app_for(state, Surface::Everything)
}

/// The router of `surface`; unknown routes and methods answer a problem+json 404 / 405.
pub fn app_for(state: AppState, surface: Surface) -> Router {
    let (router, _) = routes_of(surface).split_for_parts();
    router
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

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
    tokio::spawn(async move {
        shutdown.await;
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
