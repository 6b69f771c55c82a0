//! `/admin/v1/assignments`: which tier applies to whom — one tenant (priority 300), a
//! role (200) or everyone (the default tier, 100) — possibly only until `expires_at`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::json::{nullable, ApiJson, ApiPath, ApiQuery};
use super::limits::parse_id;
use super::paging::{page_view, paging, PageView};
use super::state::AppState;
use crate::error::{ApiError, Problem};
use crate::model::names::{is_valid_role, is_valid_tenant_id};
use crate::model::views::AssignmentView;
use crate::model::{Assignment, Subject};
use crate::repo::{AssignmentFilter, AssignmentPatch, NewAssignment};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_assignments, create_assignment))
        .routes(routes!(
            get_assignment,
            update_assignment,
            delete_assignment
        ))
}

fn enabled_by_default() -> bool {
    true
}

/// A new assignment: give `tier` to exactly one of a tenant, a role, or everyone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAssignment {
    /// The tier it gives.
    tier: String,
    /// A tenant (a direct assignment, priority 300).
    tenant: Option<String>,
    /// A role (priority 200); roles come with each request.
    role: Option<String>,
    /// Everyone else (the default tier, priority 100).
    #[serde(default)]
    default: bool,
    /// Whether it applies (default true).
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    /// When it stops applying (a temporary override); must be in the future.
    expires_at: Option<DateTime<Utc>>,
}

/// A change to an assignment; what is absent stays, `expires_at: null` makes it
/// permanent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAssignment {
    /// Another tier.
    tier: Option<String>,
    /// Enable or disable it.
    enabled: Option<bool>,
    /// A new expiry (in the future), or `null` for none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    expires_at: Option<Option<DateTime<Utc>>>,
}

/// Filters and paging of the assignment listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAssignments {
    /// Only those giving this tier.
    tier: Option<String>,
    /// Only direct assignments to this tenant.
    tenant: Option<String>,
    /// Only assignments to this role.
    role: Option<String>,
    /// Only this kind: `tenant`, `role` or `default`.
    kind: Option<String>,
    /// Only those that apply now (`true`) or do not (`false`).
    active: Option<bool>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

fn future(state: &AppState, expires_at: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    match expires_at {
        Some(at) if at <= state.engine.now() => {
            Err(ApiError::field("expires_at", "must be in the future"))
        }
        _ => Ok(()),
    }
}

/// Drops what a change to `assignment` makes stale, here and on other instances.
async fn invalidate(state: &AppState, assignment: &Assignment) {
    match &assignment.subject {
        Subject::Tenant(tenant) => state.engine.invalidate_tenant(tenant).await,
        _ => state.engine.invalidate_catalog().await,
    }
}

/// List assignments.
#[utoipa::path(
    get, path = "/admin/v1/assignments", tag = "assignments", params(ListAssignments),
    responses(
        (status = 200, description = "A page of assignments", body = PageView<AssignmentView>),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "A bad filter or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_assignments(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListAssignments>,
) -> Result<Json<PageView<AssignmentView>>, ApiError> {
    let paging = paging(query.cursor.as_deref(), query.limit)?;
    if let Some(kind) = &query.kind {
        if !["tenant", "role", "default"].contains(&kind.as_str()) {
            return Err(ApiError::field("kind", "expected tenant, role or default"));
        }
    }
    let filter = AssignmentFilter {
        tier: query.tier,
        tenant: query.tenant,
        role: query.role,
        kind: query.kind,
        active_at: query.active.map(|active| (active, state.engine.now())),
    };
    let page = state
        .engine
        .repo
        .list_assignments(&filter, &paging)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(page_view(page)))
}

/// Create an assignment.
#[utoipa::path(
    post, path = "/admin/v1/assignments", tag = "assignments", request_body = CreateAssignment,
    responses(
        (status = 201, description = "Created", body = AssignmentView),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 409, description = "A parent's overcommit would be passed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value, an unknown tier or tenant", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = super::responses::Unavailable),
    ),
    security(("bearer" = []))
)]
async fn create_assignment(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateAssignment>,
) -> Result<(StatusCode, Json<AssignmentView>), ApiError> {
    let subject = match (body.tenant, body.role, body.default) {
        (Some(tenant), None, false) => {
            if !is_valid_tenant_id(&tenant) {
                return Err(ApiError::field(
                    "tenant",
                    "tenant ids are 1-128 characters of letters, digits and ._:@/-",
                ));
            }
            Subject::Tenant(tenant)
        }
        (None, Some(role), false) => {
            if !is_valid_role(&role) {
                return Err(ApiError::field(
                    "role",
                    "roles are 1-128 printable characters without spaces",
                ));
            }
            Subject::Role(role)
        }
        (None, None, true) => Subject::Default,
        _ => {
            return Err(ApiError::field(
                "tenant",
                "give exactly one of tenant, role and default: true",
            ))
        }
    };
    future(&state, body.expires_at)?;
    let new = NewAssignment {
        tier: body.tier,
        subject,
        enabled: body.enabled,
        expires_at: body.expires_at,
    };
    let created = state
        .engine
        .repo
        .create_assignment(&admin.actor, &new, state.engine.now())
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    invalidate(&state, &created).await;
    Ok((StatusCode::CREATED, Json(AssignmentView::from(&created))))
}

/// Get an assignment.
#[utoipa::path(
    get, path = "/admin/v1/assignments/{id}", tag = "assignments",
    params(("id" = i64, Path, description = "The assignment id")),
    responses(
        (status = 200, description = "The assignment", body = AssignmentView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such assignment", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_assignment(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AssignmentView>, ApiError> {
    let id = parse_id(&id, "assignment")?;
    let assignment = state
        .engine
        .repo
        .get_assignment(id)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(AssignmentView::from(&assignment)))
}

/// Change an assignment's tier, enabled flag or expiry.
#[utoipa::path(
    patch, path = "/admin/v1/assignments/{id}", tag = "assignments",
    params(("id" = i64, Path, description = "The assignment id")), request_body = UpdateAssignment,
    responses(
        (status = 200, description = "The changed assignment", body = AssignmentView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such assignment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A parent's overcommit would be passed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value or an unknown tier", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn update_assignment(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateAssignment>,
) -> Result<Json<AssignmentView>, ApiError> {
    let id = parse_id(&id, "assignment")?;
    if let Some(expires_at) = body.expires_at {
        future(&state, expires_at)?;
    }
    let patch = AssignmentPatch {
        tier: body.tier,
        enabled: body.enabled,
        expires_at: body.expires_at,
    };
    let updated = state
        .engine
        .repo
        .update_assignment(&admin.actor, id, &patch, state.engine.now())
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    invalidate(&state, &updated).await;
    Ok(Json(AssignmentView::from(&updated)))
}

/// Delete an assignment.
#[utoipa::path(
    delete, path = "/admin/v1/assignments/{id}", tag = "assignments",
    params(("id" = i64, Path, description = "The assignment id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such assignment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A parent's overcommit would be passed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn delete_assignment(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "assignment")?;
    let deleted = state
        .engine
        .repo
        .delete_assignment(&admin.actor, id, state.engine.now())
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    invalidate(&state, &deleted).await;
    Ok(StatusCode::NO_CONTENT)
}
