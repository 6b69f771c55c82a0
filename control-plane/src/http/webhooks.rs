//! `/admin/v1/webhooks`: threshold notifications — subscriptions (their secret is
//! write-only: taken, never answered) and each one's delivery log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::names::WebhookId;
use super::paging::{page_view, paging, PageView};
use super::state::AppState;
use super::webhook_bodies::{
    check_description, check_id, check_percents, check_resources, check_secret,
    check_some_threshold, check_status, check_tenant, check_tiers, check_url, CreateWebhook,
    DeliveryView, ListDeliveries, ListWebhooks, UpdateWebhook,
};
use crate::error::{ApiError, Problem};
use crate::model::webhook::{Webhook, WebhookFilter, WebhookView};
use crate::repo::webhooks::WebhookPatch;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
}

/// List webhook subscriptions.
#[utoipa::path(
    get, path = "/admin/v1/webhooks", tag = "webhooks", params(ListWebhooks),
    responses(
        (status = 200, description = "A page of subscriptions", body = PageView<WebhookView>),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "A bad cursor or page size", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_webhooks(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListWebhooks>,
) -> Result<Json<PageView<WebhookView>>, ApiError> {
    let paging = paging(query.cursor.as_deref(), query.limit)?;
    let page = (state.engine.repo.list_webhooks(&paging).await)
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(page_view(page)))
}

/// Subscribe a URL to threshold crossings.
#[utoipa::path(
    post, path = "/admin/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created (without its secret)", body = WebhookView),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value, or a URL the allow-list refuses", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = super::responses::Unavailable),
    ),
    security(("bearer" = []))
)]
async fn create_webhook(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    check_id(&body.id)?;
    check_url(&body.url, &state.engine.settings.webhooks.allow)?;
    check_secret(&body.secret)?;
    let percents = check_percents(&body.thresholds)?;
    check_some_threshold(&percents, body.hard)?;
    check_tenant(body.tenant.as_deref())?;
    let filter = WebhookFilter {
        percents,
        hard: body.hard,
        tenant: body.tenant,
        subtree: body.subtree,
        resources: check_resources(&body.resources)?,
        tiers: check_tiers(&body.tiers)?,
    };
    check_description(&body.description)?;
    let now = state.engine.now();
    let new = Webhook {
        id: body.id,
        url: body.url,
        secret: body.secret,
        filter,
        enabled: body.enabled,
        description: body.description,
        created_at: now,
        updated_at: now,
    };
    let created = (state.engine.repo.create_webhook(&admin.actor, &new).await)
        .map_err(|e| state.engine.postgres_error(e))?;
    state.engine.invalidate_webhooks().await;
    tracing::info!(webhook = %created.id, "webhook subscription created");
    Ok((StatusCode::CREATED, Json(WebhookView::from(&created))))
}

/// Get a subscription (without its secret).
#[utoipa::path(
    get, path = "/admin/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The subscription", body = WebhookView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_webhook(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let webhook =
        (state.engine.repo.get_webhook(&id).await).map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(WebhookView::from(&webhook)))
}

/// Change a subscription; a new `secret` rotates it.
#[utoipa::path(
    patch, path = "/admin/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "The subscription's id")), request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The changed subscription", body = WebhookView),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn update_webhook(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    if let Some(url) = &body.url {
        check_url(url, &state.engine.settings.webhooks.allow)?;
    }
    if let Some(secret) = &body.secret {
        check_secret(secret)?;
    }
    let percents = body.thresholds.as_deref().map(check_percents).transpose()?;
    if let Some(Some(tenant)) = &body.tenant {
        check_tenant(Some(tenant))?;
    }
    if let Some(description) = &body.description {
        check_description(description)?;
    }
    let patch = WebhookPatch {
        url: body.url,
        secret: body.secret,
        percents,
        hard: body.hard,
        tenant: body.tenant,
        subtree: body.subtree,
        resources: body.resources.as_deref().map(check_resources).transpose()?,
        tiers: body.tiers.as_deref().map(check_tiers).transpose()?,
        enabled: body.enabled,
        description: body.description,
    };
    let updated = (state
        .engine
        .repo
        .update_webhook(&admin.actor, &id, &patch)
        .await)
        .map_err(|e| state.engine.postgres_error(e))?;
    state.engine.invalidate_webhooks().await;
    Ok(Json(WebhookView::from(&updated)))
}

/// Delete a subscription with its deliveries, pending ones too.
#[utoipa::path(
    delete, path = "/admin/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn delete_webhook(
    admin: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    (state.engine.repo.delete_webhook(&admin.actor, &id).await)
        .map_err(|e| state.engine.postgres_error(e))?;
    state.engine.invalidate_webhooks().await;
    Ok(StatusCode::NO_CONTENT)
}

/// A subscription's deliveries, newest first, each with its attempts: when, the
/// receiver's status or the error.
#[utoipa::path(
    get, path = "/admin/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = WebhookId, Path, description = "The subscription's id"), ListDeliveries),
    responses(
        (status = 200, description = "A page of deliveries", body = PageView<DeliveryView>),
        (status = 401, response = super::responses::Unauthorized),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad filter, cursor or page size", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_deliveries(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListDeliveries>,
) -> Result<Json<PageView<DeliveryView>>, ApiError> {
    let paging = paging(query.cursor.as_deref(), query.limit)?;
    check_status(query.status.as_deref())?;
    let page = (state.engine.repo)
        .list_deliveries(&id, query.status.as_deref(), &paging)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(page_view(page)))
}
