//! `/admin/v1/events`: the audit log — admin changes with actor and before/after,
//! resets and adjustments, first warnings of a window, aggregated rejections.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::json::{instant, ApiQuery};
use super::paging::{page_view, paging, PageView};
use super::state::AppState;
use crate::error::{ApiError, Problem};
use crate::repo::{EventFilter, StoredEvent};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// Filters and paging of the event listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEvents {
    /// Only events of this tenant.
    tenant: Option<String>,
    /// Only this kind (`tier.created`), or a family ending in `.` (`quota.`).
    kind: Option<String>,
    /// Only events at or after this instant.
    #[serde(default, deserialize_with = "instant")]
    since: Option<DateTime<Utc>>,
    /// Only events before this instant.
    #[serde(default, deserialize_with = "instant")]
    until: Option<DateTime<Utc>>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Its id; newer events have larger ids.
    pub id: i64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// `tier.created`, `tenant.updated`, `assignment.deleted`, `limit.created`,
    /// `usage.reset`, `usage.adjusted`, `quota.warning`, `quota.rejected`, …
    pub kind: String,
    /// The tenant it concerns.
    pub tenant: Option<String>,
    /// Who acted (admin changes).
    pub actor: Option<String>,
    /// What it is about (`tier/pro`).
    pub subject: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The object before an admin change.
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The object after an admin change.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl From<&StoredEvent> for EventView {
    fn from(e: &StoredEvent) -> EventView {
        EventView {
            id: e.id,
            at: e.at,
            kind: e.event.kind.clone(),
            tenant: e.event.tenant_id.clone(),
            actor: e.event.actor.clone(),
            subject: e.event.subject.clone(),
            data: e.event.data.clone(),
            before: e.event.before.clone(),
            after: e.event.after.clone(),
        }
    }
}

/// List events, newest first.
#[utoipa::path(
    get, path = "/admin/v1/events", tag = "events", params(ListEvents),
    responses(
        (status = 200, description = "A page of events", body = PageView<EventView>),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "A bad filter or cursor", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_events(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListEvents>,
) -> Result<Json<PageView<EventView>>, ApiError> {
    let paging = paging(query.cursor.as_deref(), query.limit)?;
    let filter = EventFilter {
        tenant: query.tenant,
        kind: query.kind,
        since: query.since,
        until: query.until,
    };
    let page = state
        .engine
        .repo
        .list_events(&filter, &paging)
        .await
        .map_err(|e| state.engine.postgres_error(e))?;
    Ok(Json(page_view(page)))
}
