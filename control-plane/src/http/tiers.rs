//! `/admin/v1/tiers`: named bundles of limits.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::json::{objects, optional_objects, ApiJson, ApiPath, ApiQuery};
use super::limits::limit_def;
use super::names::TierName;
use super::paging::{page_view, paging, PageView};
use super::state::AppState;
use crate::error::{ApiError, Problem};
use crate::model::names::is_valid_tier_name;
use crate::model::views::{LimitSpec, TierView};
use crate::model::LimitDef;
use crate::repo::{NewTier, TierPatch};

/// At most this many limits per tier: each is a counter on every matching request.
const MAX_LIMITS: usize = 64;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tiers, create_tier))
        .routes(routes!(get_tier, update_tier, delete_tier))
}

/// A new tier.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTier {
    /// 1–64 characters of `a-z 0-9 _ -`.
    #[schema(value_type = TierName)]
    name: String,
    /// What it is for.
    #[serde(default)]
    description: String,
    /// Its limits; at most one per resource, period and window.
    #[serde(default, deserialize_with = "objects")]
    limits: Vec<LimitSpec>,
}

/// A change to a tier; what is absent stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTier {
    /// A new description.
    description: Option<String>,
    /// The complete new set of limits: limits on the same resource and span keep their
    /// id, others are added, and the ones left out are removed.
    #[serde(default, deserialize_with = "optional_objects")]
    limits: Option<Vec<LimitSpec>>,
}

/// Paging of the tier listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTiers {
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

fn validate_description(description: &str) -> Result<(), ApiError> {
    if description.len() > 1024 {
        return Err(ApiError::field("description", "at most 1024 bytes"));
    }
    Ok(())
}

/// The limits of a tier body, validated: distinct by resource and span.
fn validate_limits(limits: &[LimitSpec]) -> Result<Vec<LimitDef>, ApiError> {
    if limits.len() > MAX_LIMITS {
        return Err(ApiError::field(
            "limits",
            format!("at most {MAX_LIMITS} limits"),
        ));
    }
    let mut seen = HashSet::new();
    let mut defs = Vec::with_capacity(limits.len());
    for (i, limit) in limits.iter().enumerate() {
        let def = limit_def(limit, &format!("limits[{i}]."))?;
        if !seen.insert((def.resource.clone(), def.span)) {
            return Err(ApiError::field(
                format!("limits[{i}]"),
                format!(
                    "a {} {} limit on {} is already given",
                    def.span.window_kind(),
                    def.span.period_name(),
                    def.resource
                ),
            ));
        }
        defs.push(def);
    }
    Ok(defs)
}

/// List tiers with their limits.
#[utoipa::path(
    get, path = "/admin/v1/tiers", tag = "tiers", params(ListTiers),
    responses(
        (status = 200, description = "A page of tiers", body = PageView<TierView>),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "A bad cursor or page size", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_tiers(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListTiers>,
) -> Result<Json<PageView<TierView>>, ApiError> {
    let paging = paging(query.cursor.as_deref(), query.limit)?;
    let page = state
        .engine
        .repo
        .list_tiers(&paging)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(page_view(page)))
}

/// Create a tier with its limits (all or nothing).
#[utoipa::path(
    post, path = "/admin/v1/tiers", tag = "tiers", request_body = CreateTier,
    responses(
        (status = 201, description = "Created", body = TierView),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 409, description = "The tier exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = super::responses::Unavailable),
    ),
    security(("bearer" = []))
)]
async fn create_tier(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTier>,
) -> Result<(StatusCode, Json<TierView>), ApiError> {
    if !is_valid_tier_name(&body.name) {
        return Err(ApiError::field(
            "name",
            "1-64 characters of a-z, 0-9, _ and -",
        ));
    }
    validate_description(&body.description)?;
    let new = NewTier {
        limits: validate_limits(&body.limits)?,
        name: body.name,
        description: body.description,
    };
    let tier = state
        .engine
        .repo
        .create_tier(&admin.actor, &new)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    state.engine.invalidate_catalog().await;
    tracing::info!(tier = %tier.name, limits = tier.limits.len(), "tier created");
    Ok((StatusCode::CREATED, Json(TierView::from(&tier))))
}

/// Get a tier with its limits.
#[utoipa::path(
    get, path = "/admin/v1/tiers/{name}", tag = "tiers",
    params(("name" = TierName, Path, description = "The tier name")),
    responses(
        (status = 200, description = "The tier", body = TierView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tier", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_tier(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TierView>, ApiError> {
    let tier = state
        .engine
        .repo
        .get_tier(&name)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(TierView::from(&tier)))
}

/// Change a tier's description and/or replace its whole set of limits.
#[utoipa::path(
    patch, path = "/admin/v1/tiers/{name}", tag = "tiers",
    params(("name" = TierName, Path, description = "The tier name")), request_body = UpdateTier,
    responses(
        (status = 200, description = "The changed tier", body = TierView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tier", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A parent's overcommit would be passed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn update_tier(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTier>,
) -> Result<Json<TierView>, ApiError> {
    if let Some(description) = &body.description {
        validate_description(description)?;
    }
    let patch = TierPatch {
        description: body.description,
        limits: body.limits.as_deref().map(validate_limits).transpose()?,
    };
    let tier = state
        .engine
        .repo
        .update_tier(&admin.actor, &name, &patch, state.engine.now())
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    state.engine.invalidate_catalog().await;
    Ok(Json(TierView::from(&tier)))
}

/// Delete a tier and its limits; refused while a tenant or an assignment uses it.
#[utoipa::path(
    delete, path = "/admin/v1/tiers/{name}", tag = "tiers",
    params(("name" = TierName, Path, description = "The tier name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tier", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tier is in use", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn delete_tier(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .engine
        .repo
        .delete_tier(&admin.actor, &name)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    state.engine.invalidate_catalog().await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> Vec<LimitSpec> {
        serde_json::from_str(json).unwrap()
    }

    fn field_of(error: ApiError) -> Option<String> {
        match error {
            ApiError::Validation { field, .. } => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn one_resource_may_have_several_periods_but_not_the_same_one_twice() {
        let ok = input(
            r#"[{"resource":"requests","period":"minute","quota":100},
                {"resource":"requests","period":"month","quota":100000},
                {"resource":"requests","period":"minute","window":"rolling","quota":100}]"#,
        );
        assert_eq!(validate_limits(&ok).unwrap().len(), 3);
        let twice = input(
            r#"[{"resource":"requests","period":"day","quota":1},
                {"resource":"requests","period":"day","quota":2}]"#,
        );
        assert_eq!(
            field_of(validate_limits(&twice).unwrap_err()).as_deref(),
            Some("limits[1]")
        );
    }

    #[test]
    fn bad_values_are_refused_naming_their_field() {
        let cases = [
            (
                r#"[{"resource":"a:b","period":"day","quota":1}]"#,
                "limits[0].resource",
            ),
            (
                r#"[{"resource":"r","period":"fortnight","quota":1}]"#,
                "limits[0].period",
            ),
            (
                r#"[{"resource":"r","period":"day","quota":1,"warn_at":1.5}]"#,
                "limits[0].warn_at",
            ),
            (
                r#"[{"resource":"r","period":"second","window":"rolling","quota":1}]"#,
                "limits[0].window",
            ),
            (
                r#"[{"resource":"r","period":"none","window":"rolling","quota":1}]"#,
                "limits[0].window",
            ),
            (
                r#"[{"resource":"r","period":"day","window":"sliding","quota":1}]"#,
                "limits[0].window",
            ),
            (
                r#"[{"resource":"r","period":"day","quota":9223372036854775807,"overage":1}]"#,
                "limits[0].overage",
            ),
            (
                r#"[{"resource":"r","period":"day","quota":18446744073709551615}]"#,
                "limits[0].quota",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(
                field_of(validate_limits(&input(json)).unwrap_err()).as_deref(),
                Some(field),
                "{json}"
            );
        }
    }

    #[test]
    fn defaults_are_calendar_no_overage_warn_at_80_percent_and_limited() {
        let defs = validate_limits(&input(
            r#"[{"resource":"requests","period":"month","quota":10}]"#,
        ))
        .unwrap();
        let limit = defs[0].limit;
        assert_eq!(
            (limit.overage, limit.warn_at, limit.unlimited),
            (0, tollgate_protocol::WarnAt::DEFAULT, false)
        );
        assert_eq!(
            defs[0].span.window_kind(),
            crate::model::window::WindowKind::Calendar
        );
    }
}
