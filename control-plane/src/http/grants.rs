//! `/admin/v1/tenants/{id}/grants`: amounts added to one tenant's hard limit on a
//! resource, period and window, from `effective_at` until `expires_at` (or until the end
//! of the limit's window in force at `effective_at`: `until: window_end`).
//!
//! A grant is created, listed (in force, scheduled and ended alike), read and revoked:
//! revoking ends it now and keeps the record, with who revoked it and why — there is no
//! DELETE, because billing reads what was granted. Every write drops the tenant's cached
//! chains (its descendants' too) here and, through the bus, on every other instance.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::limits::{parse_id, span_of};
use super::names::TenantId;
use super::paging::{page_view_with, paging, PageView};
use super::state::AppState;
use crate::error::{ApiError, Problem};
use crate::model::names::{is_valid_resource, RESOURCE_RULE};
use crate::model::views::GrantView;
use crate::model::window::WindowKind;
use crate::model::{Grant, Span};
use crate::repo::{GrantFilter, GrantsAt, NewGrant};
use crate::store::COUNTER_MAX;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_grants, create_grant))
        .routes(routes!(get_grant))
        .routes(routes!(revoke_grant))
}

/// The pattern of a grant's `key`.
const KEY_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";

/// The longest `reason`, in characters.
const MAX_REASON: usize = 1024;

/// A new grant. Give its end as `expires_at` or as `until: window_end`, not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    /// The resource of the limit it raises.
    resource: String,
    /// The period of the limit it raises: `second` … `month`, or `none` for a gauge.
    period: String,
    /// The window of the limit it raises: `calendar` (default) or `rolling`.
    window: Option<String>,
    /// What it adds to the limit's hard limit (quota + overage), at least 1.
    #[schema(minimum = 1)]
    amount: u64,
    /// From when it counts (default: now).
    effective_at: Option<DateTime<Utc>>,
    /// The first instant it no longer counts; in the future, after `effective_at`.
    expires_at: Option<DateTime<Utc>>,
    /// `window_end`: until the end of the limit's calendar window in force at
    /// `effective_at` (the month's end for a monthly limit).
    #[schema(pattern = "^window_end$")]
    until: Option<String>,
    /// Why it is granted, for billing and the audit log: 1–1024 characters.
    #[schema(min_length = 1, max_length = 1024)]
    reason: String,
    /// A stable name of your choosing, unique per tenant (`tollgate apply` finds the
    /// grant by it): 1–128 of `A-Za-z0-9._:-`.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    key: Option<String>,
}

/// Revoking a grant: it stops counting now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeGrant {
    /// Why, for billing and the audit log: at most 1024 characters.
    #[schema(max_length = 1024)]
    reason: Option<String>,
}

/// Filters and paging of a tenant's grants.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListGrants {
    /// Only grants that are `in_force`, `scheduled` (not yet in force) or `ended`
    /// (expired or revoked) now.
    #[param(pattern = "^(in_force|scheduled|ended)$")]
    state: Option<String>,
    /// Only grants on this resource.
    resource: Option<String>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// An instant PostgreSQL and the calendar can both hold (years 0000 to 9999).
fn instant(field: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if (0..=9999).contains(&at.year()) {
        Ok(at)
    } else {
        Err(ApiError::field(
            field,
            "an instant in the years 0000 to 9999",
        ))
    }
}

/// The reason of a grant or a revocation: no longer than [`MAX_REASON`] characters.
fn reason(field: &str, text: &str, required: bool) -> Result<(), ApiError> {
    if required && text.trim().is_empty() {
        return Err(ApiError::field(field, "say why (1-1024 characters)"));
    }
    if text.chars().count() > MAX_REASON {
        return Err(ApiError::field(field, "at most 1024 characters"));
    }
    Ok(())
}

fn is_valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// When the grant of `span` ends: `expires_at`, or the end of the calendar window in
/// force at `effective_at` (`until: window_end`).
fn expiry(
    span: Span,
    effective_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    until: Option<&str>,
) -> Result<DateTime<Utc>, ApiError> {
    match (expires_at, until) {
        (Some(_), Some(_)) => Err(ApiError::field(
            "until",
            "give expires_at or until, not both",
        )),
        (None, None) => Err(ApiError::field(
            "expires_at",
            "give expires_at (an instant) or until: window_end",
        )),
        (Some(at), None) => instant("expires_at", at),
        (None, Some("window_end")) => match span {
            Span::Window(series) if series.kind == WindowKind::Calendar => series
                .period
                .window_at(effective_at)
                .map(|window| window.end)
                .ok_or_else(|| ApiError::field("effective_at", "no window at this instant")),
            Span::Window(_) => Err(ApiError::field(
                "until",
                "a rolling window has no end: give expires_at",
            )),
            Span::Gauge => Err(ApiError::field(
                "until",
                "a gauge (period none) has no window: give expires_at",
            )),
        },
        (None, Some(_)) => Err(ApiError::field("until", "expected window_end")),
    }
}

/// The grant `body` asks for `tenant`, validated at `now`.
fn new_grant(tenant: String, body: CreateGrant, now: DateTime<Utc>) -> Result<NewGrant, ApiError> {
    if let Some(key) = &body.key {
        if !is_valid_key(key) {
            return Err(ApiError::field("key", format!("must match {KEY_PATTERN}")));
        }
    }
    if !is_valid_resource(&body.resource) {
        return Err(ApiError::field("resource", RESOURCE_RULE));
    }
    let span = span_of(
        &body.period,
        body.window.as_deref().unwrap_or("calendar"),
        "",
    )?;
    if body.amount == 0 || body.amount > COUNTER_MAX {
        return Err(ApiError::field(
            "amount",
            format!("from 1 to {COUNTER_MAX}"),
        ));
    }
    reason("reason", &body.reason, true)?;
    let effective_at = instant("effective_at", body.effective_at.unwrap_or(now))?;
    let expires_at = expiry(span, effective_at, body.expires_at, body.until.as_deref())?;
    if expires_at <= effective_at {
        return Err(ApiError::field("expires_at", "must be after effective_at"));
    }
    if expires_at <= now {
        return Err(ApiError::field("expires_at", "must be in the future"));
    }
    Ok(NewGrant {
        tenant,
        key: body.key,
        resource: body.resource,
        span,
        amount: body.amount,
        effective_at,
        expires_at,
        reason: body.reason,
    })
}

/// List a tenant's grants, in force, scheduled and ended, oldest first.
#[utoipa::path(
    get, path = "/admin/v1/tenants/{id}/grants", tag = "grants",
    params(("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)"), ListGrants),
    responses(
        (status = 200, description = "A page of grants", body = PageView<GrantView>),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad filter or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_grants(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListGrants>,
) -> Result<Json<PageView<GrantView>>, ApiError> {
    let paging = paging(query.cursor.as_deref(), query.limit)?;
    let now = state.engine.now();
    let state_at = match query.state.as_deref() {
        None => None,
        Some("in_force") => Some(GrantsAt::InForce(now)),
        Some("scheduled") => Some(GrantsAt::Scheduled(now)),
        Some("ended") => Some(GrantsAt::Ended(now)),
        Some(_) => {
            return Err(ApiError::field(
                "state",
                "expected in_force, scheduled or ended",
            ))
        }
    };
    let filter = GrantFilter {
        state: state_at,
        resource: query.resource,
    };
    let page = state
        .engine
        .repo
        .list_grants(&id, &filter, &paging)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(page_view_with(page, |grant: &Grant| {
        GrantView::at(grant, now)
    })))
}

/// Grant a tenant more of one limit for a while.
#[utoipa::path(
    post, path = "/admin/v1/tenants/{id}/grants", tag = "grants",
    params(("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)")),
    request_body = CreateGrant,
    responses(
        (status = 201, description = "Created", body = GrantView),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant has a grant with this key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = super::responses::Unavailable),
    ),
    security(("bearer" = []))
)]
async fn create_grant(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateGrant>,
) -> Result<(StatusCode, Json<GrantView>), ApiError> {
    let now = state.engine.now();
    let new = new_grant(id, body, now)?;
    let grant = state
        .engine
        .repo
        .create_grant(&admin.actor, &new, now)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    state.engine.invalidate_tenant(&grant.tenant).await;
    tracing::info!(tenant = %grant.tenant, grant = grant.id, amount = grant.amount, "grant created");
    Ok((StatusCode::CREATED, Json(GrantView::at(&grant, now))))
}

/// Get one of a tenant's grants.
#[utoipa::path(
    get, path = "/admin/v1/tenants/{id}/grants/{grant_id}", tag = "grants",
    params(
        ("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)"),
        ("grant_id" = i64, Path, description = "The grant id"),
    ),
    responses(
        (status = 200, description = "The grant", body = GrantView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such grant of this tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_grant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((id, grant_id)): ApiPath<(String, String)>,
) -> Result<Json<GrantView>, ApiError> {
    let grant_id = parse_id(&grant_id, "grant")?;
    let grant = state
        .engine
        .repo
        .get_grant(&id, grant_id)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(GrantView::at(&grant, state.engine.now())))
}

/// Revoke a grant: it stops counting now, and its record stays with who revoked it, when
/// and why. Usage admitted under it stays counted.
#[utoipa::path(
    post, path = "/admin/v1/tenants/{id}/grants/{grant_id}/revoke", tag = "grants",
    params(
        ("id" = TenantId, Path, description = "The tenant id (`/` written `%2F`)"),
        ("grant_id" = i64, Path, description = "The grant id"),
    ),
    request_body = RevokeGrant,
    responses(
        (status = 200, description = "The revoked grant", body = GrantView),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such grant of this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The grant has already ended (expired or revoked)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = super::responses::Unavailable),
    ),
    security(("bearer" = []))
)]
async fn revoke_grant(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath((id, grant_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RevokeGrant>,
) -> Result<Json<GrantView>, ApiError> {
    let grant_id = parse_id(&grant_id, "grant")?;
    if let Some(text) = &body.reason {
        reason("reason", text, false)?;
    }
    let now = state.engine.now();
    let grant = state
        .engine
        .repo
        .revoke_grant(&admin.actor, &id, grant_id, body.reason.as_deref(), now)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    state.engine.invalidate_tenant(&id).await;
    tracing::info!(tenant = %id, grant = grant_id, "grant revoked");
    Ok(Json(GrantView::at(&grant, now)))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::window::{Period, Series};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap()
    }

    fn body(json: serde_json::Value) -> CreateGrant {
        serde_json::from_value(json).unwrap()
    }

    fn field_of(error: ApiError) -> Option<String> {
        match error {
            ApiError::Validation { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn until_window_end_is_the_end_of_the_calendar_window_at_effective_at() {
        let grant = new_grant(
            "acme".into(),
            body(
                serde_json::json!({"resource": "requests", "period": "month",
                "amount": 10, "until": "window_end", "reason": "credit",
                "effective_at": "2026-11-20T08:00:00Z"}),
            ),
            now(),
        )
        .unwrap();
        assert_eq!(
            grant.expires_at,
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(grant.span, Span::Window(Series::calendar(Period::Month)));
        let now_on = new_grant(
            "acme".into(),
            body(serde_json::json!({"resource": "requests", "period": "day",
                "amount": 10, "until": "window_end", "reason": "credit"})),
            now(),
        )
        .unwrap();
        assert_eq!(now_on.effective_at, now());
        assert_eq!(
            now_on.expires_at,
            Utc.with_ymd_and_hms(2026, 11, 18, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn bad_grants_are_refused_naming_their_field() {
        let base = serde_json::json!({"resource": "requests", "period": "month",
            "amount": 10, "expires_at": "2026-12-01T00:00:00Z", "reason": "credit"});
        let with = |field: &str, value: serde_json::Value| {
            let mut json = base.clone();
            json[field] = value;
            field_of(new_grant("acme".into(), body(json), now()).unwrap_err())
        };
        let cases = [
            ("amount", serde_json::json!(0), "amount"),
            ("amount", serde_json::json!(COUNTER_MAX + 1), "amount"),
            ("resource", serde_json::json!("Requests!"), "resource"),
            ("period", serde_json::json!("fortnight"), "period"),
            ("window", serde_json::json!("sliding"), "window"),
            ("reason", serde_json::json!("  "), "reason"),
            ("reason", serde_json::json!("x".repeat(1025)), "reason"),
            ("key", serde_json::json!("no spaces"), "key"),
            ("until", serde_json::json!("window_end"), "until"),
            (
                "expires_at",
                serde_json::json!("2026-11-17T12:00:00Z"),
                "expires_at",
            ),
            (
                "expires_at",
                serde_json::json!("2026-01-01T00:00:00Z"),
                "expires_at",
            ),
            (
                "effective_at",
                serde_json::json!("2026-12-01T00:00:00Z"),
                "expires_at",
            ),
        ];
        for (field, value, named) in cases {
            assert_eq!(
                with(field, value.clone()).as_deref(),
                Some(named),
                "{field}: {value}"
            );
        }
        let mut neither = base.clone();
        neither.as_object_mut().unwrap().remove("expires_at");
        let error = new_grant("acme".into(), body(neither.clone()), now()).unwrap_err();
        assert_eq!(field_of(error).as_deref(), Some("expires_at"));
        for (period, window) in [("none", "calendar"), ("hour", "rolling")] {
            let mut json = neither.clone();
            json["until"] = serde_json::json!("window_end");
            json["period"] = serde_json::json!(period);
            json["window"] = serde_json::json!(window);
            let error = new_grant("acme".into(), body(json), now()).unwrap_err();
            assert_eq!(
                field_of(error).as_deref(),
                Some("until"),
                "{period} {window}"
            );
        }
    }
}
