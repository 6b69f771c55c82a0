//! `GET /admin/v1/usage/export`: the route, its OpenAPI description and its answer's
//! headers.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::Response;
use chrono::SecondsFormat;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cloudevents::UsageEvent;
use super::format::Writer;
use super::query::ExportQuery;
use super::stream::Export;
use crate::error::{ApiError, Problem};
use crate::http::auth::Admin;
use crate::http::json::ApiQuery;
use crate::http::state::AppState;

/// The header naming the instant windows were judged open or closed at.
pub const AS_OF: &str = "x-tollgate-as-of";

/// The export's route, with its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export_usage))
}

/// Every tenant's persisted usage per window, for billing, streamed.
///
/// One row per tenant, resource, series and window starting in `[from, to)`, ordered
/// by window start, then tenant id (byte order), resource and series; streamed, so any
/// number of windows takes the same memory. `closed` tells whether a window's value is
/// final: it is once the window has stopped counting (its end; for a rolling bucket,
/// the end of the last rolling period it is part of) at least five minutes before the
/// export began (`x-tollgate-as-of`), and no usage counted during a Redis outage still
/// waits to reach it. CSV (a header row, RFC 4180 quoting) and NDJSON (one object per
/// line) hold every window with its `closed` flag; `cloudevents` is a JSON array of
/// CloudEvents 1.0, one per closed window only, as OpenMeter's batch ingest takes it.
/// An export cut short by an error after it began ends without its last chunk.
#[utoipa::path(
    get, path = "/admin/v1/usage/export", tag = "usage",
    params(ExportQuery),
    responses(
        (status = 200,
            description = "The export, as a download. `text/csv`: columns tenant, resource, \
                           series, window_start, window_end, used, epoch, closed. \
                           `application/x-ndjson`: one object per line with the same fields. \
                           `application/cloudevents-batch+json`: the closed windows as events.",
            content(
                (String = "text/csv"),
                (String = "application/x-ndjson"),
                (Vec<UsageEvent> = "application/cloudevents-batch+json"),
            ),
            headers(
                ("content-disposition" = String,
                    description = "`attachment; filename=\"tollgate-usage-<from>-<to>.<csv|ndjson|json>\"`"),
                ("x-tollgate-as-of" = String,
                    description = "The instant (RFC 3339) windows were judged open or closed at"),
            )),
        (status = 401, response = crate::http::responses::Unauthorized),
        (status = 422, description = "A bad parameter: a format, instant, tenant id, resource \
                                      or series that is not one, `to` not after `from` or more \
                                      than 366 days after it, `subtree` without `tenant`",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "PostgreSQL unavailable", body = Problem,
            content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn export_usage(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let (filter, format) = query.checked()?;
    let now = state.engine.now();
    let file_name = format.file_name(filter.from, filter.to);
    let export = Export::start(
        state.engine.repo.clone(),
        filter,
        Writer::new(format, now),
        state.stopping.subscribe(),
    )
    .await
    .map_err(|e| state.engine.postgres_error(e))?;
    Response::builder()
        .header(CONTENT_TYPE, format.content_type())
        .header(
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file_name}\""),
        )
        .header(AS_OF, now.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .header(CACHE_CONTROL, "no-store")
        .body(Body::from_stream(export.into_stream()))
        .map_err(|e| ApiError::internal(e.to_string()))
}
