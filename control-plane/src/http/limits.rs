//! `/admin/v1/limits`: limits of tiers and per-tenant overrides, one at a time.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use tollgate_protocol::{Limit, WarnAt};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::paging::{page_view, paging, PageView};
use super::state::AppState;
use crate::error::{ApiError, Problem};
use crate::model::names::is_valid_resource;
use crate::model::views::{LimitSpec, LimitView};
use crate::model::window::{Period, Series, WindowKind};
use crate::model::{LimitDef, LimitOwner, Span};
use crate::repo::LimitFilter;
use crate::store::COUNTER_MAX;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_limits, create_limit))
        .routes(routes!(get_limit, update_limit, delete_limit))
}

/// The span a `period` (`none`: a gauge) and a `window` name, validated; errors name the
/// field under `prefix`. Limits and grants name spans alike.
pub(super) fn span_of(period: &str, window: &str, prefix: &str) -> Result<Span, ApiError> {
    let field = |name: &str| format!("{prefix}{name}");
    let kind: WindowKind =
        window
            .parse()
            .map_err(|e: crate::model::window::UnknownWindowKind| {
                ApiError::field(field("window"), e.to_string())
            })?;
    if period == "none" {
        if kind == WindowKind::Rolling {
            return Err(ApiError::field(
                field("window"),
                "a gauge (period none) has no window",
            ));
        }
        return Ok(Span::Gauge);
    }
    let period: Period = period.parse().map_err(|_| {
        ApiError::field(
            field("period"),
            "expected second, minute, hour, day, week, month or none",
        )
    })?;
    if kind == WindowKind::Rolling && period == Period::Second {
        return Err(ApiError::field(
            field("window"),
            "rolling windows need a period of a minute or longer",
        ));
    }
    Ok(Span::Window(Series { period, kind }))
}

/// The validated limit of `spec`; errors name the field under `prefix` (`limits[0].`).
pub(super) fn limit_def(spec: &LimitSpec, prefix: &str) -> Result<LimitDef, ApiError> {
    let field = |name: &str| format!("{prefix}{name}");
    if !is_valid_resource(&spec.resource) {
        return Err(ApiError::field(
            field("resource"),
            "1-64 characters of a-z, 0-9, _, . and -",
        ));
    }
    let span = span_of(&spec.period, &spec.window, prefix)?;
    for (name, value) in [("quota", spec.quota), ("overage", spec.overage)] {
        if value > COUNTER_MAX {
            return Err(ApiError::field(
                field(name),
                format!("at most {COUNTER_MAX}"),
            ));
        }
    }
    if spec
        .quota
        .checked_add(spec.overage)
        .is_none_or(|hard| hard > COUNTER_MAX)
    {
        return Err(ApiError::field(
            field("overage"),
            format!("quota + overage must be at most {COUNTER_MAX}"),
        ));
    }
    let warn_at = WarnAt::from_fraction(spec.warn_at)
        .ok_or_else(|| ApiError::field(field("warn_at"), "a fraction from 0 to 1"))?;
    Ok(LimitDef {
        resource: spec.resource.clone(),
        span,
        limit: Limit {
            quota: spec.quota,
            overage: spec.overage,
            warn_at,
            unlimited: spec.unlimited,
        },
    })
}

/// A new limit: on a tier, or as an override of one tenant's limits.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLimit {
    /// The tier it belongs to (exactly one of `tier` and `tenant`).
    tier: Option<String>,
    /// The tenant whose limit on the same resource and span it replaces or adds to.
    tenant: Option<String>,
    /// The resource, as in a tier's limits.
    resource: String,
    /// `second` … `month`, or `none` for a gauge.
    period: String,
    /// `calendar` (default) or `rolling`.
    window: Option<String>,
    /// The included amount per window.
    quota: u64,
    /// How far past the quota usage may go (default 0).
    overage: Option<u64>,
    /// Where the status turns to warning (default 0.8).
    warn_at: Option<f64>,
    /// Always allow, still count (default false).
    unlimited: Option<bool>,
}

/// A change to a limit; what is absent stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLimit {
    /// A new resource.
    resource: Option<String>,
    /// A new period.
    period: Option<String>,
    /// A new window kind.
    window: Option<String>,
    /// A new quota.
    quota: Option<u64>,
    /// A new overage.
    overage: Option<u64>,
    /// A new warning threshold.
    warn_at: Option<f64>,
    /// Unlimited or not.
    unlimited: Option<bool>,
}

/// Filters and paging of the limit listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListLimits {
    /// Only this tier's limits.
    tier: Option<String>,
    /// Only this tenant's overrides.
    tenant: Option<String>,
    /// Only limits on this resource.
    resource: Option<String>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// List limits.
#[utoipa::path(
    get, path = "/admin/v1/limits", tag = "limits", params(ListLimits),
    responses(
        (status = 200, description = "A page of limits", body = PageView<LimitView>),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "A bad filter or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_limits(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListLimits>,
) -> Result<Json<PageView<LimitView>>, ApiError> {
    let paging = paging(query.cursor.as_deref(), query.limit)?;
    let filter = LimitFilter {
        tier: query.tier,
        tenant: query.tenant,
        resource: query.resource,
    };
    let page = state
        .engine
        .repo
        .list_limits(&filter, &paging)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(page_view(page)))
}

/// Add a limit to a tier, or a per-tenant override.
#[utoipa::path(
    post, path = "/admin/v1/limits", tag = "limits", request_body = CreateLimit,
    responses(
        (status = 201, description = "Created", body = LimitView),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 409, description = "A limit on this resource and span exists, or a parent's overcommit would be passed",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value or an unknown tier/tenant", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = super::responses::Unavailable),
    ),
    security(("bearer" = []))
)]
async fn create_limit(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateLimit>,
) -> Result<(StatusCode, Json<LimitView>), ApiError> {
    let owner = match (body.tier, body.tenant) {
        (Some(tier), None) => LimitOwner::Tier(tier),
        (None, Some(tenant)) => LimitOwner::Tenant(tenant),
        _ => {
            return Err(ApiError::field(
                "tier",
                "give exactly one of tier and tenant",
            ))
        }
    };
    let spec = LimitSpec {
        resource: body.resource,
        period: body.period,
        window: body.window.unwrap_or_else(|| "calendar".into()),
        quota: body.quota,
        overage: body.overage.unwrap_or(0),
        warn_at: body.warn_at.unwrap_or(WarnAt::DEFAULT.fraction()),
        unlimited: body.unlimited.unwrap_or(false),
    };
    let def = limit_def(&spec, "")?;
    let created = state
        .engine
        .repo
        .create_limit(&admin.actor, &owner, &def, state.engine.now())
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    invalidate_owner(&state, &created.owner).await;
    Ok((StatusCode::CREATED, Json(LimitView::from(&created))))
}

/// Drops the cached definitions a change to `owner`'s limits affects.
pub(super) async fn invalidate_owner(state: &AppState, owner: &LimitOwner) {
    match owner {
        LimitOwner::Tier(_) => state.engine.invalidate_catalog().await,
        LimitOwner::Tenant(tenant) => state.engine.invalidate_tenant(tenant).await,
    }
}

/// Get a limit.
#[utoipa::path(
    get, path = "/admin/v1/limits/{id}", tag = "limits",
    params(("id" = i64, Path, description = "The limit id")),
    responses(
        (status = 200, description = "The limit", body = LimitView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_limit(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<LimitView>, ApiError> {
    let id = parse_id(&id, "limit")?;
    let limit = state
        .engine
        .repo
        .get_limit(id)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(LimitView::from(&limit)))
}

/// A numeric id from a path; anything else names no object (404).
pub(super) fn parse_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::NotFound(format!("{what} {text}")))
}

/// Change a limit; what the body leaves out stays.
#[utoipa::path(
    patch, path = "/admin/v1/limits/{id}", tag = "limits",
    params(("id" = i64, Path, description = "The limit id")), request_body = UpdateLimit,
    responses(
        (status = 200, description = "The changed limit", body = LimitView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such limit", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Clashes with another limit, or passes a parent's overcommit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn update_limit(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateLimit>,
) -> Result<Json<LimitView>, ApiError> {
    let id = parse_id(&id, "limit")?;
    let current = state
        .engine
        .repo
        .get_limit(id)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    let now = LimitSpec::from(&current.def);
    let spec = LimitSpec {
        resource: body.resource.unwrap_or(now.resource),
        period: body.period.unwrap_or(now.period),
        window: body.window.unwrap_or(now.window),
        quota: body.quota.unwrap_or(now.quota),
        overage: body.overage.unwrap_or(now.overage),
        warn_at: body.warn_at.unwrap_or(now.warn_at),
        unlimited: body.unlimited.unwrap_or(now.unlimited),
    };
    let def = limit_def(&spec, "")?;
    let updated = state
        .engine
        .repo
        .update_limit(&admin.actor, id, &def, state.engine.now())
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    invalidate_owner(&state, &updated.owner).await;
    Ok(Json(LimitView::from(&updated)))
}

/// Delete a limit.
#[utoipa::path(
    delete, path = "/admin/v1/limits/{id}", tag = "limits",
    params(("id" = i64, Path, description = "The limit id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such limit", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Removing an override would pass a parent's overcommit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn delete_limit(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "limit")?;
    let deleted = state
        .engine
        .repo
        .delete_limit(&admin.actor, id, state.engine.now())
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    invalidate_owner(&state, &deleted.owner).await;
    Ok(StatusCode::NO_CONTENT)
}
