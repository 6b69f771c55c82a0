//! One route table, [`routes`], builds both the router ([`app`]) and the OpenAPI 3.1
//! document served at `/admin/v1/openapi.json` ([`openapi`]), so the two cannot
//! disagree. Admin handlers take the [`Admin`](super::auth::Admin) extractor: no route
//! can forget it silently, and the document marks each one with the bearer scheme.

use axum::routing::any;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::responses::{Invalid, Malformed, TooLarge, Unauthorized, Unavailable};
use super::state::AppState;
use super::{
    assignments, console, decisions, document, events, export, grants, limits, ops, tenants, tiers,
    usage, webhooks, whoami,
};
use crate::error::ApiError;

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
        (name = "grants", description = "More of one tenant's limit for a while."),
        (name = "usage", description = "Effective quota, live usage, resets, history, the billing export."),
        (name = "events", description = "The audit log."),
        (name = "webhooks", description = "Threshold notifications: subscriptions and their deliveries."),
        (name = "operations", description = "Health, readiness, metrics."),
    )
)]
struct ApiDoc;

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
    /// The admin API, the OpenAPI document, the console, `/health`, `/ready` and
    /// `/metrics`: the operators' listener.
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
            .merge(grants::routes())
            .merge(usage::routes())
            .merge(export::routes())
            .merge(events::routes())
            .merge(webhooks::routes())
            .merge(ops::routes())
            .merge(whoami::routes())
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
    ops::DOCUMENT.get_or_init(|| openapi().to_json().map_err(|e| e.to_string()));
    let (mut router, _) = routes_of(surface).split_for_parts();
    if surface != Surface::Decisions {
        // The console is for operators: never on the gateways' listener.
        router = router.merge(console::router());
    }
    if surface == Surface::Admin {
        // A gateway pointed at this port gets an answer that says where to go.
        let elsewhere = || async { ApiError::WrongListener };
        router = router
            .route("/v1", any(elsewhere))
            .route("/v1/{*path}", any(elsewhere));
    }
    router
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}
