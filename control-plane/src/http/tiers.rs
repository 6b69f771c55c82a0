//! `/admin/v1/tiers`: create and read tiers with their limits.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_protocol::{Limit, WarnAt};

use super::json::ApiJson;
use crate::error::ApiError;
use crate::model::{LimitDef, Tier};
use crate::repo::{NewTier, RepoError};
use crate::state::AppState;
use crate::store::COUNTER_MAX;
use crate::window::Period;

/// At most this many limits per tier: each is a counter on every matching request.
const MAX_LIMITS: usize = 64;

/// The tier routes (behind admin authentication).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/tiers", post(create_tier))
        .route("/admin/v1/tiers/{name}", get(get_tier))
}

/// `POST /admin/v1/tiers` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTier {
    name: String,
    #[serde(default)]
    limits: Vec<LimitBody>,
}

/// One limit as operators write and read it (`warn_at` as a fraction).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct LimitBody {
    resource: String,
    period: String,
    quota: u64,
    #[serde(default)]
    overage: u64,
    #[serde(default = "default_warn_at")]
    warn_at: f64,
    #[serde(default)]
    unlimited: bool,
}

fn default_warn_at() -> f64 {
    WarnAt::DEFAULT.fraction()
}

/// A tier as the API answers it.
#[derive(Debug, Serialize)]
struct TierView {
    name: String,
    limits: Vec<LimitBody>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Tier> for TierView {
    fn from(tier: Tier) -> TierView {
        TierView {
            name: tier.name,
            limits: tier
                .limits
                .into_iter()
                .map(|def| LimitBody {
                    period: def.period.to_string(),
                    resource: def.resource,
                    quota: def.limit.quota,
                    overage: def.limit.overage,
                    warn_at: def.limit.warn_at.fraction(),
                    unlimited: def.limit.unlimited,
                })
                .collect(),
            created_at: tier.created_at,
            updated_at: tier.updated_at,
        }
    }
}

/// Whether `name` may name a tier: 1–64 characters of `a-z 0-9 _ -`.
pub fn is_valid_tier_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `name` may name a resource: 1–64 characters of `a-z 0-9 _ . -`. No `:`, so
/// counter keys stay unambiguous.
pub fn is_valid_resource(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-'
        })
}

fn validate(body: CreateTier) -> Result<NewTier, ApiError> {
    if !is_valid_tier_name(&body.name) {
        return Err(ApiError::field(
            "name",
            "1-64 characters of a-z, 0-9, _ and -",
        ));
    }
    if body.limits.len() > MAX_LIMITS {
        return Err(ApiError::field(
            "limits",
            format!("at most {MAX_LIMITS} limits"),
        ));
    }
    let mut seen = HashSet::new();
    let mut limits = Vec::with_capacity(body.limits.len());
    for (i, limit) in body.limits.into_iter().enumerate() {
        let field = |name: &str| format!("limits[{i}].{name}");
        if !is_valid_resource(&limit.resource) {
            return Err(ApiError::field(
                field("resource"),
                "1-64 characters of a-z, 0-9, _, . and -",
            ));
        }
        let period: Period = limit
            .period
            .parse()
            .map_err(|e: crate::window::UnknownPeriod| {
                ApiError::field(field("period"), e.to_string())
            })?;
        for (name, value) in [("quota", limit.quota), ("overage", limit.overage)] {
            if value > COUNTER_MAX {
                return Err(ApiError::field(
                    field(name),
                    format!("at most {COUNTER_MAX}"),
                ));
            }
        }
        let warn_at = WarnAt::from_fraction(limit.warn_at)
            .ok_or_else(|| ApiError::field(field("warn_at"), "a fraction from 0 to 1"))?;
        if !seen.insert((limit.resource.clone(), period)) {
            return Err(ApiError::field(
                format!("limits[{i}]"),
                format!("a {} limit on {} is already given", period, limit.resource),
            ));
        }
        limits.push(LimitDef {
            resource: limit.resource,
            period,
            limit: Limit {
                quota: limit.quota,
                overage: limit.overage,
                warn_at,
                unlimited: limit.unlimited,
            },
        });
    }
    Ok(NewTier {
        name: body.name,
        limits,
    })
}

async fn create_tier(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTier>,
) -> Result<(StatusCode, Json<TierView>), ApiError> {
    let new = validate(body)?;
    let tier = match state.repo.create_tier(&new).await {
        Ok(tier) => tier,
        Err(RepoError::Conflict(what)) => {
            return Err(ApiError::Conflict(format!("{what} already exists")))
        }
        Err(error) => return Err(state.postgres_error(error)),
    };
    state.definitions.clear();
    tracing::info!(tier = %tier.name, limits = tier.limits.len(), "tier created");
    Ok((StatusCode::CREATED, Json(tier.into())))
}

async fn get_tier(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TierView>, ApiError> {
    match state.repo.get_tier(&name).await {
        Ok(Some(tier)) => Ok(Json(tier.into())),
        Ok(None) => Err(ApiError::NotFound(format!("tier {name}"))),
        Err(error) => Err(state.postgres_error(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> CreateTier {
        serde_json::from_str(json).unwrap()
    }

    fn field_of(error: ApiError) -> Option<String> {
        match error {
            ApiError::Validation { field, .. } => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn limit_defaults_are_no_overage_warn_at_80_percent_and_limited() {
        let tier = validate(body(
            r#"{"name":"pro","limits":[{"resource":"requests","period":"month","quota":10}]}"#,
        ))
        .unwrap();
        let limit = tier.limits[0].limit;
        assert_eq!(
            (limit.overage, limit.warn_at, limit.unlimited),
            (0, WarnAt::DEFAULT, false)
        );
    }

    #[test]
    fn duplicate_resource_and_period_is_refused_naming_the_second() {
        let error = validate(body(
            r#"{"name":"pro","limits":[{"resource":"requests","period":"day","quota":1},
                {"resource":"requests","period":"day","quota":2}]}"#,
        ))
        .unwrap_err();
        assert_eq!(field_of(error).as_deref(), Some("limits[1]"));
    }

    #[test]
    fn quota_above_the_counter_maximum_is_refused_by_field() {
        let json = format!(
            r#"{{"name":"pro","limits":[{{"resource":"requests","period":"day","quota":{}}}]}}"#,
            u64::MAX
        );
        assert_eq!(
            field_of(validate(body(&json)).unwrap_err()).as_deref(),
            Some("limits[0].quota")
        );
    }

    #[test]
    fn bad_names_periods_and_thresholds_are_refused_by_field() {
        let cases = [
            (r#"{"name":"Pro"}"#, "name"),
            (
                r#"{"name":"pro","limits":[{"resource":"a:b","period":"day","quota":1}]}"#,
                "limits[0].resource",
            ),
            (
                r#"{"name":"pro","limits":[{"resource":"r","period":"week","quota":1}]}"#,
                "limits[0].period",
            ),
            (
                r#"{"name":"pro","limits":[{"resource":"r","period":"day","quota":1,"warn_at":1.5}]}"#,
                "limits[0].warn_at",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(
                field_of(validate(body(json)).unwrap_err()).as_deref(),
                Some(field),
                "{json}"
            );
        }
    }
}
