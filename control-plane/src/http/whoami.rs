//! `GET /admin/v1/whoami`: what the presented token may do, so that a client (the
//! console) can tell a read-only token from an admin one without trying a write.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Admin, Scope};
use super::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami))
}

/// Who a token is.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// `write` (the admin token: everything) or `read` (the read-only token: `GET` and
    /// `HEAD` only).
    #[schema(pattern = "^(write|read)$")]
    pub scope: String,
    /// Who the audit log will say acted: the `x-tollgate-actor` header, else `admin`.
    pub actor: String,
}

/// What this token may do.
#[utoipa::path(
    get, path = "/admin/v1/whoami", tag = "operations",
    responses(
        (status = 200, description = "The token's scope and actor", body = WhoAmI),
        (status = 401, response = super::responses::Unauthorized),
    ),
    security(("bearer" = []))
)]
async fn whoami(admin: Admin) -> Json<WhoAmI> {
    let scope = match admin.scope {
        Scope::Write => "write",
        Scope::Read => "read",
    };
    Json(WhoAmI {
        scope: scope.into(),
        actor: admin.actor,
    })
}
