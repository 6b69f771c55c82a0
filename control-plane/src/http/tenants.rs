//! `/admin/v1/tenants`: tenants and their hierarchy.
//!
//! Tenant ids may contain `/` (`acme/research`): in paths it is written `%2F`
//! (`/admin/v1/tenants/acme%2Fresearch`), as in any path segment.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::json::{nullable, ApiJson, ApiPath, ApiQuery};
use super::names::{TenantId, TierName};
use super::paging::{page_view, paging, PageView};
use super::state::AppState;
use crate::error::{ApiError, Problem};
use crate::model::names::{is_valid_tenant_id, TENANT_RULE};
use crate::model::views::TenantView;
use crate::model::{Mode, Ppm};
use crate::repo::{NewTenant, TenantFilter, TenantPatch};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
}

/// A new tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// The id the gateway sees: 1–128 characters of letters, digits and `._:@/-`.
    #[schema(value_type = TenantId)]
    id: String,
    /// Its parent (team, organization); trees are at most 4 levels deep.
    #[schema(value_type = Option<TenantId>)]
    parent_id: Option<String>,
    /// Its own tier (a direct assignment overrides it).
    #[schema(value_type = Option<TierName>)]
    tier: Option<String>,
    /// `enforce` (default), `shadow` or `off`.
    #[schema(pattern = "^(enforce|shadow|off)$")]
    mode: Option<String>,
    /// How far its children's quotas may sum past its own (default 1: not at all).
    #[schema(minimum = 0.000001, maximum = 1000)]
    overcommit: Option<f64>,
    /// Free-form labels (a JSON object).
    #[schema(value_type = Option<Object>)]
    labels: Option<serde_json::Value>,
}

/// A change to a tenant; what is absent stays, `null` clears `parent_id` or `tier`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// A new parent, or `null` to make it a root.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<TenantId>)]
    parent_id: Option<Option<String>>,
    /// A new own tier, or `null` for none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<TierName>)]
    tier: Option<Option<String>>,
    /// `enforce`, `shadow` or `off`.
    #[schema(pattern = "^(enforce|shadow|off)$")]
    mode: Option<String>,
    /// A new overcommit ratio.
    #[schema(minimum = 0.000001, maximum = 1000)]
    overcommit: Option<f64>,
    /// New labels, replacing the old.
    #[schema(value_type = Option<Object>)]
    labels: Option<serde_json::Value>,
}

/// Filters and paging of the tenant listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTenants {
    /// Only children of this tenant.
    parent: Option<String>,
    /// Only tenants whose own tier is this.
    tier: Option<String>,
    /// Only tenants in this mode.
    mode: Option<String>,
    /// Only tenants with this label, as `key=value`.
    label: Option<String>,
    /// Only tenants whose id starts with this (case-sensitive): `acme/` finds acme's
    /// teams. Served from an index at any number of tenants.
    #[param(
        pattern = "^[A-Za-z0-9._:@/-]{1,128}$",
        min_length = 1,
        max_length = 128
    )]
    prefix: Option<String>,
    /// Only tenants without a parent (`true`: the roots of the trees) or with one
    /// (`false`).
    root: Option<bool>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

fn mode(field: &str, text: &str) -> Result<Mode, ApiError> {
    text.parse().map_err(|e: String| ApiError::field(field, e))
}

fn overcommit(ratio: f64) -> Result<Ppm, ApiError> {
    Ppm::from_ratio(ratio).ok_or_else(|| {
        ApiError::field(
            "overcommit",
            "a ratio above 0 and at most 1000 (1 = no overcommit)",
        )
    })
}

fn labels(labels: &serde_json::Value) -> Result<(), ApiError> {
    let Some(object) = labels.as_object() else {
        return Err(ApiError::field("labels", "labels must be a JSON object"));
    };
    if object.len() > 64 || labels.to_string().len() > 16_384 {
        return Err(ApiError::field("labels", "at most 64 labels and 16 KiB"));
    }
    Ok(())
}

/// Whether `prefix` may start a tenant id: 1–128 of the characters ids are made of.
fn valid_prefix(prefix: &str) -> Result<(), ApiError> {
    let ok = (1..=128).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@/-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "prefix",
            "1-128 characters of letters, digits and ._:@/-",
        ))
    }
}

fn optional_id(field: &str, id: Option<&str>) -> Result<(), ApiError> {
    match id {
        Some(id) if !is_valid_tenant_id(id) => Err(ApiError::field(field, TENANT_RULE)),
        _ => Ok(()),
    }
}

/// List tenants, in byte order of their ids.
#[utoipa::path(
    get, path = "/admin/v1/tenants", tag = "tenants", params(ListTenants),
    responses(
        (status = 200, description = "A page of tenants", body = PageView<TenantView>),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "A bad filter or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_tenants(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListTenants>,
) -> Result<Json<PageView<TenantView>>, ApiError> {
    let paging = paging(query.cursor.as_deref(), query.limit)?;
    let label = match query.label {
        Some(label) => Some(
            label
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| ApiError::field("label", "expected key=value"))?,
        ),
        None => None,
    };
    if let Some(prefix) = &query.prefix {
        valid_prefix(prefix)?;
    }
    if query.root == Some(true) && query.parent.is_some() {
        return Err(ApiError::field(
            "root",
            "a root has no parent: drop root or parent",
        ));
    }
    let filter = TenantFilter {
        prefix: query.prefix,
        root: query.root,
        parent: query.parent,
        tier: query.tier,
        mode: query.mode.as_deref().map(|m| mode("mode", m)).transpose()?,
        label,
    };
    let page = state
        .engine
        .repo
        .list_tenants(&filter, &paging)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(page_view(page)))
}

/// Create a tenant.
#[utoipa::path(
    post, path = "/admin/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses(
        (status = 201, description = "Created", body = TenantView),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 409, description = "The tenant exists, the tree would be too deep, or the parent's overcommit would be passed",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value, an unknown parent or tier", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = super::responses::Unavailable),
    ),
    security(("bearer" = []))
)]
async fn create_tenant(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    if !is_valid_tenant_id(&body.id) {
        return Err(ApiError::field("id", TENANT_RULE));
    }
    optional_id("parent_id", body.parent_id.as_deref())?;
    let labels_value = body
        .labels
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    labels(&labels_value)?;
    let new = NewTenant {
        id: body.id,
        parent_id: body.parent_id,
        tier: body.tier,
        mode: body
            .mode
            .as_deref()
            .map(|m| mode("mode", m))
            .transpose()?
            .unwrap_or_default(),
        overcommit: body
            .overcommit
            .map(overcommit)
            .transpose()?
            .unwrap_or(Ppm::ONE),
        labels: labels_value,
    };
    let tenant = state
        .engine
        .repo
        .create_tenant(&admin.actor, &new, state.engine.now())
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    // A negative cache entry for this id (an unknown tenant) must go.
    state.engine.invalidate_tenant(&tenant.id).await;
    tracing::info!(tenant = %tenant.id, "tenant created");
    Ok((StatusCode::CREATED, Json(TenantView::from(&tenant))))
}

/// Get a tenant.
#[utoipa::path(
    get, path = "/admin/v1/tenants/{id}", tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)")),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = state
        .engine
        .repo
        .get_tenant(&id)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(TenantView::from(&tenant)))
}

/// Change a tenant: parent, own tier, mode, overcommit, labels.
#[utoipa::path(
    patch, path = "/admin/v1/tenants/{id}", tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)")),
    request_body = UpdateTenant,
    responses(
        (status = 200, description = "The changed tenant", body = TenantView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A cycle, a tree too deep, or a parent's overcommit passed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value, an unknown parent or tier", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn update_tenant(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<Json<TenantView>, ApiError> {
    if let Some(parent) = &body.parent_id {
        optional_id("parent_id", parent.as_deref())?;
    }
    if let Some(value) = &body.labels {
        labels(value)?;
    }
    let patch = TenantPatch {
        parent_id: body.parent_id,
        tier: body.tier,
        mode: body.mode.as_deref().map(|m| mode("mode", m)).transpose()?,
        overcommit: body.overcommit.map(overcommit).transpose()?,
        labels: body.labels,
    };
    let tenant = state
        .engine
        .repo
        .update_tenant(&admin.actor, &id, &patch, state.engine.now())
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    state.engine.invalidate_tenant(&id).await;
    Ok(Json(TenantView::from(&tenant)))
}

/// Delete a tenant with its assignments and overrides; refused while it has children.
/// Its usage history and events stay.
#[utoipa::path(
    delete, path = "/admin/v1/tenants/{id}", tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant has children", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn delete_tenant(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .engine
        .repo
        .delete_tenant(&admin.actor, &id)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    state.engine.invalidate_tenant(&id).await;
    Ok(StatusCode::NO_CONTENT)
}
