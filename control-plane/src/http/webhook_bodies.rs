//! The bodies of `/admin/v1/webhooks` and their checks, each refusal a 422 naming its
//! field; and the delivery log's shape.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::json::nullable;
use super::names::{TenantId, TierName, WebhookId};
use super::webhook_event::ThresholdEvent;
use crate::engine::webhooks::{AllowList, Refused};
use crate::error::ApiError;
use crate::model::names::is_valid_tier_name;
use crate::model::names::{is_valid_resource, is_valid_tenant_id, RESOURCE_RULE, TENANT_RULE};
use crate::model::webhook::{
    is_valid_webhook_id, normalized_percents, signing_key, MAX_FILTER_ITEMS, WEBHOOK_ID_RULE,
};
use crate::repo::webhooks::{AttemptRow, Delivery};

/// The longest URL a subscription may have.
const MAX_URL: usize = 2048;

fn enabled_by_default() -> bool {
    true
}

/// A new subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Its id, chosen here: how it is addressed, and how `tollgate apply` matches it.
    #[schema(value_type = WebhookId)]
    pub id: String,
    /// Where payloads are POSTed: `http` or `https`, no user or password. Loopback,
    /// private and the other special addresses only when `--webhook-allow` allows them.
    #[schema(
        pattern = "^https?://",
        max_length = 2048,
        example = "https://hooks.example.com/tollgate"
    )]
    pub url: String,
    /// The signing secret: `whsec_` and the base64 of 24 to 64 random bytes. Write-only:
    /// never returned or logged.
    #[schema(value_type = String, pattern = "^whsec_[A-Za-z0-9+/]{32,88}={0,2}$", write_only)]
    pub secret: SecretString,
    /// Percentages of the quota to be told about, 1 to 1000 (at most 16).
    #[serde(default)]
    #[schema(max_items = 16, value_type = Vec<u16>)]
    pub thresholds: Vec<u16>,
    /// Whether to be told when usage reaches the hard limit (quota + overage), or a
    /// request is refused by it. At least one threshold or `hard`.
    #[serde(default)]
    pub hard: bool,
    /// Only limits of this tenant (the tenant whose limit it is, not whose request).
    #[schema(value_type = Option<TenantId>)]
    pub tenant: Option<String>,
    /// With `tenant`: the limits of its descendants too.
    #[serde(default)]
    pub subtree: bool,
    /// Only limits of these resources (default: every resource).
    #[serde(default)]
    #[schema(max_items = 64)]
    pub resources: Vec<String>,
    /// Only limits of tenants these tiers apply to (default: every tier).
    #[serde(default)]
    #[schema(max_items = 64, value_type = Vec<TierName>)]
    pub tiers: Vec<String>,
    /// Whether it gets new events (default true).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// What it is for.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
}

/// A change to a subscription; what is absent stays, `tenant: null` watches every
/// tenant again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// A new URL.
    #[schema(pattern = "^https?://", max_length = 2048)]
    pub url: Option<String>,
    /// A new signing secret (a rotation): receivers must accept it from now on.
    #[schema(value_type = Option<String>, pattern = "^whsec_[A-Za-z0-9+/]{32,88}={0,2}$", write_only)]
    pub secret: Option<SecretString>,
    /// New percentages (the whole set).
    #[schema(max_items = 16, value_type = Option<Vec<u16>>)]
    pub thresholds: Option<Vec<u16>>,
    /// Whether the hard limit is told.
    pub hard: Option<bool>,
    /// Another tenant, or `null` for every tenant.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<TenantId>)]
    pub tenant: Option<Option<String>>,
    /// Whether the tenant's descendants are watched too.
    pub subtree: Option<bool>,
    /// New resources (the whole set; empty: every resource).
    #[schema(max_items = 64)]
    pub resources: Option<Vec<String>>,
    /// New tiers (the whole set; empty: every tier).
    #[schema(max_items = 64, value_type = Option<Vec<TierName>>)]
    pub tiers: Option<Vec<String>>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
    /// A new description.
    #[schema(max_length = 1024)]
    pub description: Option<String>,
}

/// Paging of the subscription listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListWebhooks {
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// Filters and paging of the delivery log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveries {
    /// Only deliveries in this state: `pending`, `delivered` or `failed`.
    #[param(pattern = "^(pending|delivered|failed)$")]
    pub status: Option<String>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// Its number, 1 for the first.
    pub attempt: i32,
    /// When it started.
    pub at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: i32,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i32>,
    /// Why it failed without an answer: refused by the allow-list, no connection, no
    /// answer within the deadline.
    pub error: Option<String>,
}

/// One delivery: an event for this subscription, with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// `msg_<n>`: the `webhook-id` header of every attempt, for receivers to tell
    /// repeats apart.
    pub id: String,
    /// `pending`, `delivered` or `failed` (given up after the retry span).
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was delivered or given up.
    pub finished_at: Option<DateTime<Utc>>,
    /// The payload every attempt sends.
    #[schema(value_type = ThresholdEvent)]
    pub event: Value,
    /// Its attempts, newest first.
    pub log: Vec<AttemptView>,
}

impl From<&AttemptRow> for AttemptView {
    fn from(row: &AttemptRow) -> AttemptView {
        AttemptView {
            attempt: row.attempt,
            at: row.at,
            duration_ms: row.duration_ms,
            status_code: row.status_code,
            error: row.error.clone(),
        }
    }
}

impl From<&Delivery> for DeliveryView {
    fn from(delivery: &Delivery) -> DeliveryView {
        DeliveryView {
            id: format!("msg_{}", delivery.id),
            status: delivery.status.clone(),
            attempts: delivery.attempts,
            created_at: delivery.created_at,
            next_attempt_at: delivery.next_attempt_at,
            finished_at: delivery.finished_at,
            event: delivery.event.payload(),
            log: delivery.log.iter().map(AttemptView::from).collect(),
        }
    }
}

/// A subscription's id, checked.
pub fn check_id(id: &str) -> Result<(), ApiError> {
    if is_valid_webhook_id(id) {
        Ok(())
    } else {
        Err(ApiError::field("id", WEBHOOK_ID_RULE))
    }
}

/// A URL the guard would send to, as far as can be told before resolving it.
pub fn check_url(url: &str, allow: &AllowList) -> Result<(), ApiError> {
    if url.len() > MAX_URL {
        return Err(ApiError::field("url", format!("at most {MAX_URL} bytes")));
    }
    allow
        .check_url(url)
        .map_err(|Refused(why)| ApiError::field("url", why))
}

/// A secret that can sign.
pub fn check_secret(secret: &SecretString) -> Result<(), ApiError> {
    signing_key(secret)
        .map(|_| ())
        .map_err(|why| ApiError::field("secret", why))
}

/// Percentages, kept ascending and distinct.
pub fn check_percents(percents: &[u16]) -> Result<Vec<u16>, ApiError> {
    normalized_percents(percents).map_err(|why| ApiError::field("thresholds", why))
}

/// A tenant filter.
pub fn check_tenant(tenant: Option<&str>) -> Result<(), ApiError> {
    match tenant {
        Some(tenant) if !is_valid_tenant_id(tenant) => Err(ApiError::field("tenant", TENANT_RULE)),
        _ => Ok(()),
    }
}

/// A list of names, each checked by `valid`, at most [`MAX_FILTER_ITEMS`]; returned
/// without repeats, in order.
pub fn check_names(
    field: &str,
    names: &[String],
    valid: fn(&str) -> bool,
    rule: &str,
) -> Result<Vec<String>, ApiError> {
    if names.len() > MAX_FILTER_ITEMS {
        return Err(ApiError::field(
            field,
            format!("at most {MAX_FILTER_ITEMS}"),
        ));
    }
    let mut kept: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if !valid(name) {
            return Err(ApiError::field(format!("{field}[{i}]"), rule));
        }
        if !kept.contains(name) {
            kept.push(name.clone());
        }
    }
    Ok(kept)
}

/// Resources, checked.
pub fn check_resources(resources: &[String]) -> Result<Vec<String>, ApiError> {
    check_names("resources", resources, is_valid_resource, RESOURCE_RULE)
}

/// Tiers, checked.
pub fn check_tiers(tiers: &[String]) -> Result<Vec<String>, ApiError> {
    check_names(
        "tiers",
        tiers,
        is_valid_tier_name,
        "1-64 characters of a-z, 0-9, _ and -",
    )
}

/// A description.
pub fn check_description(description: &str) -> Result<(), ApiError> {
    if description.len() > 1024 {
        return Err(ApiError::field("description", "at most 1024 bytes"));
    }
    Ok(())
}

/// At least one threshold.
pub fn check_some_threshold(percents: &[u16], hard: bool) -> Result<(), ApiError> {
    if percents.is_empty() && !hard {
        return Err(ApiError::field(
            "thresholds",
            "give at least one percentage, or hard: true",
        ));
    }
    Ok(())
}

/// The delivery log's status filter.
pub fn check_status(status: Option<&str>) -> Result<(), ApiError> {
    match status {
        None | Some("pending" | "delivered" | "failed") => Ok(()),
        Some(_) => Err(ApiError::field("status", "pending, delivered or failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: ApiError) -> Option<String> {
        match error {
            ApiError::Validation { field, .. } => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn each_bad_value_is_refused_naming_its_field() {
        let allow = AllowList::parse(&[], true).unwrap();
        assert_eq!(
            field_of(check_id("Bad Id").unwrap_err()).as_deref(),
            Some("id")
        );
        assert_eq!(
            field_of(check_url("http://127.0.0.1/", &allow).unwrap_err()).as_deref(),
            Some("url")
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert_eq!(
            field_of(check_url(&long, &allow).unwrap_err()).as_deref(),
            Some("url")
        );
        let secret = SecretString::from("whsec_short".to_string());
        assert_eq!(
            field_of(check_secret(&secret).unwrap_err()).as_deref(),
            Some("secret")
        );
        assert_eq!(
            field_of(check_percents(&[0]).unwrap_err()).as_deref(),
            Some("thresholds")
        );
        assert_eq!(
            field_of(check_some_threshold(&[], false).unwrap_err()).as_deref(),
            Some("thresholds")
        );
        assert_eq!(
            field_of(check_tenant(Some("")).unwrap_err()).as_deref(),
            Some("tenant")
        );
        let resources = ["requests".to_string(), "Bad:Name".to_string()];
        assert_eq!(
            field_of(check_resources(&resources).unwrap_err()).as_deref(),
            Some("resources[1]")
        );
        assert_eq!(
            field_of(check_tiers(&["PRO".to_string()]).unwrap_err()).as_deref(),
            Some("tiers[0]")
        );
        assert_eq!(
            field_of(check_status(Some("lost")).unwrap_err()).as_deref(),
            Some("status")
        );
        assert_eq!(
            field_of(check_description(&"x".repeat(1025)).unwrap_err()).as_deref(),
            Some("description")
        );
    }

    #[test]
    fn names_are_kept_once_in_order() {
        let tiers = ["pro", "free", "pro"].map(String::from);
        assert_eq!(check_tiers(&tiers).unwrap(), ["pro", "free"]);
    }
}
