//! `/admin/v1/tenants`: create and read tenants, and read their live usage.
//!
//! Tenant ids may contain `/` (`acme/research`), so reads use one wildcard route,
//! `/admin/v1/tenants/{*rest}`: a path ending in a literal `/usage` asks for usage,
//! anything else names a tenant. The id is percent-decoded after that split, so the
//! tenant `x/usage` is still reachable as `/admin/v1/tenants/x%2Fusage`.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use tollgate_protocol::is_valid_tenant_id;

use super::json::ApiJson;
use crate::check::{counter_key, policy_status};
use crate::error::ApiError;
use crate::model::Tenant;
use crate::repo::{NewTenant, RepoError};
use crate::state::AppState;

const PREFIX: &str = "/admin/v1/tenants/";
const USAGE_SUFFIX: &str = "/usage";

/// The tenant routes (behind admin authentication).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/tenants", post(create_tenant))
        .route("/admin/v1/tenants/{*rest}", get(get_tenant_or_usage))
}

/// `POST /admin/v1/tenants` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    id: String,
    tier: String,
    #[serde(default = "empty_object")]
    labels: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// A tenant as the API answers it.
#[derive(Debug, Serialize)]
struct TenantView {
    id: String,
    parent_id: Option<String>,
    tier: String,
    labels: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> TenantView {
        TenantView {
            id: t.id,
            parent_id: t.parent_id,
            tier: t.tier,
            labels: t.labels,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// `GET /admin/v1/tenants/{id}/usage` answer.
#[derive(Debug, Serialize)]
struct UsageView {
    tenant: String,
    tier: String,
    usage: Vec<UsageItem>,
}

/// One limit's live counter in its current window.
#[derive(Debug, Serialize)]
struct UsageItem {
    resource: String,
    period: String,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    used: u64,
    quota: u64,
    limit: u64,
    remaining: u64,
    unlimited: bool,
}

async fn create_tenant(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    if !is_valid_tenant_id(&body.id) {
        return Err(ApiError::field(
            "id",
            "tenant ids are 1-128 characters of letters, digits and ._:@/-",
        ));
    }
    if !body.labels.is_object() {
        return Err(ApiError::field("labels", "labels must be a JSON object"));
    }
    let new = NewTenant {
        id: body.id,
        tier: body.tier,
        labels: body.labels,
    };
    let tenant = match state.repo.create_tenant(&new).await {
        Ok(tenant) => tenant,
        Err(RepoError::Conflict(what)) => {
            return Err(ApiError::Conflict(format!("{what} already exists")))
        }
        Err(RepoError::UnknownTier(tier)) => {
            return Err(ApiError::field(
                "tier",
                format!("tier {tier} does not exist"),
            ))
        }
        Err(error) => return Err(state.postgres_error(error)),
    };
    state.definitions.clear();
    tracing::info!(tenant = %tenant.id, tier = %tenant.tier, "tenant created");
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

/// What a tenant read path asks for.
#[derive(Debug, PartialEq, Eq)]
enum TenantPath {
    Tenant(String),
    Usage(String),
}

/// Splits the raw (still percent-encoded) path, then decodes the id.
fn parse_path(raw: &str) -> Option<TenantPath> {
    let rest = raw.strip_prefix(PREFIX)?;
    let (encoded, usage) = match rest.strip_suffix(USAGE_SUFFIX) {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let id = percent_decode_str(encoded).decode_utf8().ok()?.into_owned();
    if !is_valid_tenant_id(&id) {
        return None;
    }
    Some(if usage {
        TenantPath::Usage(id)
    } else {
        TenantPath::Tenant(id)
    })
}

async fn get_tenant_or_usage(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<serde_json::Value>, ApiError> {
    let not_found = || ApiError::NotFound(format!("tenant at {}", uri.path()));
    let value = match parse_path(uri.path()).ok_or_else(not_found)? {
        TenantPath::Tenant(id) => {
            let tenant = state
                .repo
                .get_tenant(&id)
                .await
                .map_err(|e| state.postgres_error(e))?
                .ok_or_else(|| ApiError::NotFound(format!("tenant {id}")))?;
            serde_json::to_value(TenantView::from(tenant))
        }
        TenantPath::Usage(id) => serde_json::to_value(usage(&state, &id).await?),
    };
    value.map(Json).map_err(|e| ApiError::Internal(Box::new(e)))
}

/// The live counters of every limit of `id` in its current window. Definitions come
/// from PostgreSQL (operators expect what they just wrote); counters from Redis, live.
async fn usage(state: &AppState, id: &str) -> Result<UsageView, ApiError> {
    let quota = state
        .repo
        .tenant_quota(id)
        .await
        .map_err(|e| state.postgres_error(e))?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {id}")))?;
    let now = Utc::now();
    let mut windows = Vec::with_capacity(quota.limits.len());
    for def in &quota.limits {
        let window = def
            .period
            .window_at(now)
            .ok_or_else(|| ApiError::internal(format!("no {} window at {now}", def.period)))?;
        windows.push(window);
    }
    let keys: Vec<String> = quota
        .limits
        .iter()
        .zip(&windows)
        .map(|(def, w)| {
            counter_key(
                &quota.root,
                &quota.tenant,
                &def.resource,
                def.period,
                w.start.timestamp(),
            )
        })
        .collect();
    let used = state
        .store
        .read(&keys)
        .await
        .map_err(|e| state.redis_error(e))?;
    if used.len() != keys.len() {
        return Err(ApiError::internal(
            "store answered for the wrong number of counters",
        ));
    }
    let usage = quota
        .limits
        .iter()
        .zip(&windows)
        .zip(used)
        .map(|((def, window), used)| {
            let status = policy_status(def, window, used, now);
            UsageItem {
                resource: def.resource.clone(),
                period: def.period.to_string(),
                window_start: window.start,
                window_end: window.end,
                used,
                quota: status.quota,
                limit: status.limit,
                remaining: status.remaining,
                unlimited: def.limit.unlimited,
            }
        })
        .collect();
    Ok(UsageView {
        tenant: quota.tenant,
        tier: quota.tier,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_with_slashes_and_usage_suffix_are_split_before_decoding() {
        let parse = |p: &str| parse_path(p);
        assert_eq!(
            parse("/admin/v1/tenants/acme/research"),
            Some(TenantPath::Tenant("acme/research".into()))
        );
        assert_eq!(
            parse("/admin/v1/tenants/acme/research/usage"),
            Some(TenantPath::Usage("acme/research".into()))
        );
        assert_eq!(
            parse("/admin/v1/tenants/x%2Fusage"),
            Some(TenantPath::Tenant("x/usage".into()))
        );
        assert_eq!(
            parse("/admin/v1/tenants/user%40example.com"),
            Some(TenantPath::Tenant("user@example.com".into()))
        );
        assert_eq!(parse("/admin/v1/tenants/a%20b"), None);
    }
}
