//! `POST /v1/check`, `POST /v1/leases`, `POST /v1/settle`, `POST /v1/release` and
//! `POST /v1/quota`: what the Envoy filter calls.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use tollgate_protocol::{
    CheckRequest, CheckResponse, LeaseRequest, LeaseResponse, QuotaRequest, QuotaView,
    ReleaseRequest, ReleaseResponse, SettleRequest, SettleResponse,
};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Gateway;
use super::json::ApiJson;
use super::state::AppState;
use crate::engine;
use crate::error::{ApiError, Problem};
use tollgate_protocol::check::DEADLINE_HEADER;

/// The header Envoy puts on callouts with its timeout for them (the filter sets that
/// later than its own deadline, as a backstop).
const ENVOY_TIMEOUT_HEADER: &str = "x-envoy-expected-rq-timeout-ms";

/// The deadline headers as the OpenAPI document describes them, once for every
/// endpoint that reads them; [`deadline`] reads the headers themselves. They are hints:
/// one that is not a whole number of milliseconds is ignored rather than failing the
/// decision, so the document gives them as strings.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Never built: it only documents the headers.
struct DeadlineHeader {
    /// How long the filter waits for this answer, in milliseconds; definitions are not
    /// awaited longer. Not a whole number: ignored.
    #[param(rename = "x-tollgate-deadline-ms")]
    deadline_ms: Option<String>,
    /// Envoy's timeout for the callout, in milliseconds; the shorter of the two applies.
    /// Not a whole number: ignored.
    #[param(rename = "x-envoy-expected-rq-timeout-ms")]
    timeout_ms: Option<String>,
}

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check))
        .routes(routes!(lease))
        .routes(routes!(settle))
        .routes(routes!(release))
        .routes(routes!(quota))
}

/// When this request's caller stops waiting: after the shorter of the filter's deadline
/// and Envoy's timeout, whichever it sends (clamped to 10 ms – 10 s), else the
/// configured default.
fn deadline(state: &AppState, headers: &HeaderMap) -> engine::Deadline {
    engine::Deadline::after(caller_deadline(headers).unwrap_or(state.config.default_deadline))
}

fn caller_deadline(headers: &HeaderMap) -> Option<Duration> {
    let millis = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    [millis(DEADLINE_HEADER), millis(ENVOY_TIMEOUT_HEADER)]
        .into_iter()
        .flatten()
        .min()
        .map(|ms| Duration::from_millis(ms.clamp(10, 10_000)))
}

/// Decide and count one request.
///
/// Every limit of every requested resource at every level of the tenant's chain is
/// checked and counted in one atomic step: all or nothing. A rejected request changes
/// no counter. `reason: unknown_tenant` when no tier applies to the tenant.
#[utoipa::path(
    post, path = "/v1/check", tag = "decisions",
    request_body = CheckRequest,
    params(DeadlineHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The decision", body = CheckResponse),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or the definitions unavailable: the filter applies its failure mode",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn check(
    _gateway: Gateway,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CheckRequest>,
) -> Result<Json<CheckResponse>, ApiError> {
    let timer = state.engine.metrics.check_duration.start_timer();
    let result = engine::check(&state.engine, &request, deadline(&state, &headers)).await;
    timer.observe_duration();
    result.map(Json)
}

/// Give back a budget and reserve the next one: the fast path.
///
/// The budget of `resource` is counted as usage at once, at every level of the tenant's
/// chain — the counters a check of that amount would count in — so budgets outstanding
/// never let usage pass a hard limit. It is sized from the headroom, per level: at most
/// `want` and the configured maximum, and at every level of the chain with an enforced
/// limit of the resource, the level's headroom (under its tightest such limit) split
/// between the budgets held at or below it — one per gateway and tenant —
/// (`headroom_level / (2 × holders_level)`), so that a parent's many tenants share its
/// headroom; smaller than the configured minimum it is 0, and the gateway checks each
/// request (`/v1/check`).
/// `ttl_ms` never reaches past a charged window's reset; with under a second left,
/// nothing is leased. `policy` and `warn_after` are as of before the budget: the gateway
/// adds what it spends.
///
/// `previous` gives back the lease this one replaces: its unspent part is refunded, once
/// (0 when it was returned before or its record expired, a minute after its `ttl_ms`; a
/// budget never returned stays counted). `spent` above what it granted is refused (422
/// naming `previous.spent`; nothing changed). `want: 0` only gives back.
///
/// Idempotent by `id`: a retry of a lease already granted answers the same budget for
/// what is left of its time, and reserves nothing again. REJECT when an enforced limit
/// has no headroom at all (`cache_reject_for_s` as a check's), or with
/// `reason: unknown_tenant`. Gauges (`concurrent_requests`) cannot be leased (422).
#[utoipa::path(
    post, path = "/v1/leases", tag = "decisions",
    request_body = LeaseRequest,
    params(DeadlineHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The budget (possibly 0) and the refund", body = LeaseResponse),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "An invalid value (a gauge resource, a bad id, `previous.spent` above its grant); nothing changed",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or the definitions unavailable: the filter checks each request (or applies its failure mode)",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn lease(
    _gateway: Gateway,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<LeaseRequest>, ApiError>,
) -> Result<Json<LeaseResponse>, ApiError> {
    let ApiJson(request) = body.inspect_err(|_| engine::count_lease(&state.engine, "invalid"))?;
    engine::lease(&state.engine, &request, deadline(&state, &headers))
        .await
        .map(Json)
}

/// Settle what a counted request really cost, once it is over.
///
/// Signed corrections per resource, applied at every level of the tenant's chain in one
/// atomic step, never rejected: a positive amount is counted even past the hard limit
/// (the upstream already did the work; the next checks reject), a negative one refunds
/// what the check reserved, never below zero and only in the window the check counted
/// it in (`checked_at_ms`). Gauges are refused (422): release them with
/// `release_request_id`, which gives back the request's slots in the same step. An
/// unknown tenant answers `released: 0` and changes nothing.
///
/// Idempotent by `id` (for an hour): a retry of a settlement already applied — its
/// answer was lost — changes nothing and answers `released: 0`.
#[utoipa::path(
    post, path = "/v1/settle", tag = "decisions",
    request_body = SettleRequest,
    params(DeadlineHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Settled", body = SettleResponse),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "An invalid value (a gauge resource, no checked_at_ms, a bad id); nothing changed",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or the definitions unavailable; nothing changed",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn settle(
    _gateway: Gateway,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<SettleRequest>, ApiError>,
) -> Result<Json<SettleResponse>, ApiError> {
    // A body that does not parse is counted too: a filter sending them loses billing.
    let ApiJson(request) =
        body.inspect_err(|_| engine::count_settlement(&state.engine, "invalid"))?;
    engine::settle(&state.engine, &request, deadline(&state, &headers))
        .await
        .map(Json)
}

/// Give back the gauge slots (`concurrent_requests`) a finished request holds.
///
/// Idempotent by request id: a second release finds nothing and answers `released: 0`.
#[utoipa::path(
    post, path = "/v1/release", tag = "decisions",
    request_body = ReleaseRequest,
    params(DeadlineHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "What was released", body = ReleaseResponse),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn release(
    _gateway: Gateway,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ReleaseRequest>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    engine::release(&state.engine, &request, deadline(&state, &headers))
        .await
        .map(Json)
}

/// A tenant's own quota, for the gateway's self-view: every limit, live, with burn
/// rates and forecasts. Counts nothing.
///
/// The gateway sends the tenant and roles it identified the caller by, as for a check;
/// it answers the caller at its `quota_path` with this body (`cache-control: private,
/// max-age=1`). One entry per limit per level of the tenant's chain (a level in `off`
/// mode counts nothing and is left out), the tenant's own first: its usage, hard limit,
/// what remains and its status as a check sees them, and when usage starts to free
/// up. `binding` is the one the quota headers name: the least headroom at any level.
///
/// `burn_rate` is the usage counted per second from a recent point until now: the
/// newest point at least five minutes back, else the oldest after it, of the points in
/// the last ten minutes (at least a second back) where the limit's usage is known —
/// usage samples the control plane takes at each history flush of windows longer than
/// five minutes (`basis: sample`), and the starts of its windows or rolling buckets,
/// where usage was zero (`window_start`). Without one it is `null` (`no_samples`: no use
/// for ten minutes, or only since the last flush); gauges have none (`gauge`).
/// `forecast` runs that rate forward: `runs_out` (when the hard limit is reached; for a
/// rolling window the earliest), `exhausted` (now), `resets_first` (the window resets —
/// a rolling one turns over — before), `not_burning` (rate 0), `no_rate`, `unlimited`.
///
/// `reason: unknown_tenant`, without limits, when no tier applies to the tenant. The
/// definitions come from the cache, as for a check, within the deadline.
#[utoipa::path(
    post, path = "/v1/quota", tag = "decisions",
    request_body = QuotaRequest,
    params(DeadlineHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's quota, live", body = QuotaView),
        (status = 400, response = super::responses::Malformed),
        (status = 401, response = super::responses::Unauthorized),
        (status = 422, description = "An invalid value", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or the definitions unavailable: the gateway answers 503",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn quota(
    _gateway: Gateway,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<QuotaRequest>,
) -> Result<Json<QuotaView>, ApiError> {
    engine::quota_view(&state.engine, &request, deadline(&state, &headers))
        .await
        .map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (axum::http::HeaderName::from_static(n), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn the_filters_deadline_wins_over_envoys_later_backstop() {
        let both = headers(&[
            ("x-tollgate-deadline-ms", "200"),
            ("x-envoy-expected-rq-timeout-ms", "1200"),
        ]);
        assert_eq!(caller_deadline(&both), Some(Duration::from_millis(200)));
        let envoy = headers(&[("x-envoy-expected-rq-timeout-ms", "1200")]);
        assert_eq!(caller_deadline(&envoy), Some(Duration::from_millis(1200)));
        let wild = headers(&[
            ("x-tollgate-deadline-ms", "0"),
            ("x-envoy-expected-rq-timeout-ms", "x"),
        ]);
        assert_eq!(caller_deadline(&wild), Some(Duration::from_millis(10)));
        assert_eq!(caller_deadline(&HeaderMap::new()), None);
    }
}
