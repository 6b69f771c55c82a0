//! A tenant's effective quota, live usage, resets and adjustments, and usage history.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::json::{instant, ApiJson, ApiPath, ApiQuery};
use super::names::TenantId;
use super::paging::{page_view, paging, PageView};
use super::state::AppState;
use crate::engine::resolve_fresh;
use crate::engine::usage::{self, Selection, UsageChanges, UsageReport};
use crate::error::{ApiError, Problem};
use crate::model::names::{
    is_valid_resource, is_valid_role, is_valid_tenant_id, RESOURCE_RULE, TENANT_RULE,
};
use crate::model::resolve::Source;
use crate::model::views::{GrantView, LimitSpec};
use crate::model::window::{Period, UnknownPeriod, WindowKind};
use crate::repo::{HistoryFilter, HistoryRow};
use crate::store::{Adjustment, COUNTER_MAX};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(effective_quota))
        .routes(routes!(live_usage))
        .routes(routes!(reset_usage))
        .routes(routes!(adjust_usage))
        .routes(routes!(usage_history))
}

/// `?roles=` of the quota and usage views.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RolesQuery {
    /// Comma-separated roles to resolve the tenant's limits for (as a request with
    /// them would be).
    roles: Option<String>,
}

fn roles(query: &RolesQuery) -> Result<Vec<String>, ApiError> {
    let roles: Vec<String> = query
        .roles
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    if roles.len() > 32 || roles.iter().any(|r| !is_valid_role(r)) {
        return Err(ApiError::field("roles", "at most 32 comma-separated roles"));
    }
    Ok(roles)
}

/// A tenant's effective quota at every level.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaReport {
    /// The tenant.
    pub tenant: String,
    /// The roles it was resolved for.
    pub roles: Vec<String>,
    /// The tenant first, its root last.
    pub levels: Vec<QuotaLevel>,
}

/// One level's tier, why it applies, its limits and the grants in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaLevel {
    /// The tenant at this level.
    pub tenant: String,
    /// `enforce`, `shadow` or `off`.
    pub mode: String,
    /// The tier that applies, if any.
    pub tier: Option<String>,
    /// The priority it won with (300 direct, 200 role, 100 default).
    pub priority: Option<u16>,
    /// The winning assignment's id, when an assignment won.
    pub assignment_id: Option<i64>,
    /// Why: which assignment (or the tenant's own tier) won.
    pub reason: String,
    /// The limits that apply.
    pub limits: Vec<EffectiveLimit>,
    /// Grants of this level in force now that match none of its limits: they add
    /// nothing (until a limit of their resource, period and window applies).
    pub unmatched_grants: Vec<GrantView>,
}

/// A limit that applies, where it comes from, and the grants that raise it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectiveLimit {
    /// The limit.
    #[serde(flatten)]
    pub spec: LimitSpec,
    /// `tier` or `override` (a per-tenant override).
    pub from: String,
    /// What the grants in force add to its hard limit now.
    pub granted: u64,
    /// The hard limit decisions hold usage to now: quota + overage + `granted`
    /// (what `X-Quota-Limit` shows).
    pub hard_limit: u64,
    /// The grants in force that raise it.
    pub grants: Vec<GrantView>,
}

/// Which of the tenant's own limits to reset; absent fields select all.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetUsage {
    /// Only limits on this resource.
    resource: Option<String>,
    /// Only limits of this period.
    period: Option<String>,
    /// Only `calendar` or `rolling` limits.
    window: Option<String>,
}

/// A signed correction of one limit's usage in its current window: a credit
/// (negative) or a charge (positive). Usage never goes below zero.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustUsage {
    /// The limit's resource.
    resource: String,
    /// The limit's period.
    period: String,
    /// `calendar` (default) or `rolling`.
    window: Option<String>,
    /// What to add (negative: take away).
    delta: i64,
}

/// Filters and paging of the usage history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only this resource.
    resource: Option<String>,
    /// Only this series: a period (`month`) or `rolling-<period>` buckets.
    series: Option<String>,
    /// Only windows starting at or after this instant.
    #[serde(default, deserialize_with = "instant")]
    from: Option<DateTime<Utc>>,
    /// Only windows starting before this instant.
    #[serde(default, deserialize_with = "instant")]
    to: Option<DateTime<Utc>>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// One persisted window of usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    /// The resource.
    pub resource: String,
    /// The series (`month`, `rolling-hour`).
    pub series: String,
    /// The window start.
    pub window_start: DateTime<Utc>,
    /// The window end.
    pub window_end: DateTime<Utc>,
    /// Usage counted in it, as last persisted.
    pub used: u64,
}

impl From<&HistoryRow> for HistoryView {
    fn from(row: &HistoryRow) -> HistoryView {
        HistoryView {
            resource: row.resource.clone(),
            series: row.series.clone(),
            window_start: row.window_start,
            window_end: row.window_end,
            used: row.used,
        }
    }
}

/// The `period` a reset or an adjustment names, checked: an unknown one is a 422, not
/// a selection that matches nothing.
fn period(text: Option<&str>) -> Result<Option<Period>, ApiError> {
    text.map(|p| {
        p.parse()
            .map_err(|e: UnknownPeriod| ApiError::field("period", e.to_string()))
    })
    .transpose()
}

/// The `resource` a reset or an adjustment names, checked as names are everywhere.
fn resource(name: Option<String>) -> Result<Option<String>, ApiError> {
    match name {
        Some(name) if !is_valid_resource(&name) => Err(ApiError::field("resource", RESOURCE_RULE)),
        name => Ok(name),
    }
}

fn window_kind(text: Option<&str>) -> Result<Option<WindowKind>, ApiError> {
    text.map(|w| {
        w.parse()
            .map_err(|e: crate::model::window::UnknownWindowKind| {
                ApiError::field("window", e.to_string())
            })
    })
    .transpose()
}

/// The effective quota of a tenant: at every level, which tier applies and why, the
/// limits after per-tenant overrides, and the grants in force with the hard limit they
/// make.
#[utoipa::path(
    get, path = "/admin/v1/tenants/{id}/quota", tag = "usage",
    params(("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)"), RolesQuery),
    responses(
        (status = 200, description = "The effective quota", body = QuotaReport),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn effective_quota(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<RolesQuery>,
) -> Result<Json<QuotaReport>, ApiError> {
    let roles = roles(&query)?;
    let (resolved, chain) = resolve_fresh(&state.engine, &id, &roles).await?;
    let now = state.engine.now();
    let levels = resolved
        .levels
        .iter()
        .zip(&chain.levels)
        .map(|(level, stored)| QuotaLevel {
            tenant: level.tenant.clone(),
            mode: level.mode.to_string(),
            tier: level.winner.as_ref().map(|w| w.tier.clone()),
            priority: level.winner.as_ref().map(|w| w.priority),
            assignment_id: level.winner.as_ref().and_then(|w| match w.source {
                Source::Assignment { id, .. } => Some(id),
                Source::OwnTier => None,
            }),
            reason: level.winner.as_ref().map_or_else(
                || "no tier applies at this level".to_string(),
                |w| w.reason(),
            ),
            limits: level
                .limits
                .iter()
                .map(|limit| {
                    let granted = level.granted(limit);
                    EffectiveLimit {
                        spec: LimitSpec::from(limit),
                        from: if stored.overrides.iter().any(|o| o.slot() == limit.slot()) {
                            "override".into()
                        } else {
                            "tier".into()
                        },
                        granted: granted.amount,
                        hard_limit: limit.limit.hard().saturating_add(granted.amount),
                        grants: (level.grants.iter())
                            .filter(|grant| grant.matches(limit))
                            .map(|grant| GrantView::at(grant, now))
                            .collect(),
                    }
                })
                .collect(),
            unmatched_grants: (level.grants.iter())
                .filter(|grant| !level.limits.iter().any(|limit| grant.matches(limit)))
                .map(|grant| GrantView::at(grant, now))
                .collect(),
        })
        .collect();
    Ok(Json(QuotaReport {
        tenant: id,
        roles,
        levels,
    }))
}

/// Live usage of every limit of a tenant and of its ancestors, in the current windows.
#[utoipa::path(
    get, path = "/admin/v1/tenants/{id}/usage", tag = "usage",
    params(("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)"), RolesQuery),
    responses(
        (status = 200, description = "Live usage", body = UsageReport),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn live_usage(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<RolesQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let roles = roles(&query)?;
    usage::report(&state.engine, &id, &roles).await.map(Json)
}

/// Reset the tenant's own usage (not its ancestors') in the current windows to zero.
#[utoipa::path(
    post, path = "/admin/v1/tenants/{id}/usage:reset", tag = "usage",
    params(("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)")),
    request_body = ResetUsage,
    responses(
        (status = 200, description = "What changed", body = UsageChanges),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tenant or no matching limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn reset_usage(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ResetUsage>,
) -> Result<Json<UsageChanges>, ApiError> {
    let selection = Selection {
        resource: resource(body.resource)?,
        period: period(body.period.as_deref())?,
        window: window_kind(body.window.as_deref())?,
    };
    usage::change(
        &state.engine,
        &admin.actor,
        &id,
        &selection,
        Adjustment::To(0),
    )
    .await
    .map(Json)
}

/// Adjust one limit's usage in its current window by a signed delta (credits and
/// corrections).
#[utoipa::path(
    post, path = "/admin/v1/tenants/{id}/usage:adjust", tag = "usage",
    params(("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)")),
    request_body = AdjustUsage,
    responses(
        (status = 200, description = "What changed", body = UsageChanges),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tenant or no matching limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn adjust_usage(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AdjustUsage>,
) -> Result<Json<UsageChanges>, ApiError> {
    if body.delta.unsigned_abs() > COUNTER_MAX {
        return Err(ApiError::field(
            "delta",
            format!("at most {COUNTER_MAX} either way"),
        ));
    }
    let selection = Selection {
        resource: resource(Some(body.resource))?,
        period: period(Some(&body.period))?,
        window: Some(window_kind(body.window.as_deref())?.unwrap_or_default()),
    };
    usage::change(
        &state.engine,
        &admin.actor,
        &id,
        &selection,
        Adjustment::By(body.delta),
    )
    .await
    .map(Json)
}

/// The tenant's persisted usage per window, newest first: what can be billed.
#[utoipa::path(
    get, path = "/admin/v1/tenants/{id}/usage/history", tag = "usage",
    params(("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)"), HistoryQuery),
    responses(
        (status = 200, description = "A page of usage history", body = PageView<HistoryView>),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "A bad filter or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn usage_history(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<PageView<HistoryView>>, ApiError> {
    // History outlives its tenant, so an unknown id is an empty page, not a 404; one that
    // no tenant can have is a mistake.
    if !is_valid_tenant_id(&id) {
        return Err(ApiError::field("id", TENANT_RULE));
    }
    let paging = paging(query.cursor.as_deref(), query.limit)?;
    let filter = HistoryFilter {
        resource: query.resource,
        series: query.series,
        from: query.from,
        to: query.to,
    };
    let page = state
        .engine
        .repo
        .list_history(&id, &filter, &paging)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(page_view(page)))
}
