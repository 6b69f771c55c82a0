//! What the decision endpoints accept: every field checked and named before anything
//! is looked up or counted.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tollgate_protocol::resource::CONCURRENT_REQUESTS;
use tollgate_protocol::{CheckRequest, LeaseRequest, QuotaRequest, ReleaseRequest, SettleRequest};

use crate::error::ApiError;
use crate::model::names::{
    is_valid_request_id, is_valid_resource, is_valid_role, is_valid_tenant_id, GATEWAY_RULE,
    LEASE_ID_RULE, REQUEST_ID_RULE, RESOURCE_RULE, ROLE_RULE, SETTLEMENT_ID_RULE, TENANT_RULE,
};
use crate::plan::lease::LeaseError;
use crate::plan::settlement::SettleError;
use crate::store::COUNTER_MAX;

/// At most this many resources in one check.
const MAX_RESOURCES: usize = 32;
/// At most this many roles in one check.
const MAX_ROLES: usize = 32;

/// Checks the resources of `amounts`, in order: at most [`MAX_RESOURCES`], each a valid
/// name whose amount `amount_rule` accepts (it answers why not, for the endpoint's own
/// rule on amounts).
fn validate_amounts<T: Copy>(
    amounts: &BTreeMap<String, T>,
    amount_rule: impl Fn(&str, T) -> Option<String>,
) -> Result<(), ApiError> {
    if amounts.len() > MAX_RESOURCES {
        return Err(ApiError::field(
            "amounts",
            format!("at most {MAX_RESOURCES} resources"),
        ));
    }
    for (resource, &amount) in amounts {
        let field = || format!("amounts.{resource}");
        if !is_valid_resource(resource) {
            return Err(ApiError::field(field(), RESOURCE_RULE));
        }
        if let Some(why) = amount_rule(resource, amount) {
            return Err(ApiError::field(field(), why));
        }
    }
    Ok(())
}

fn validate_roles(roles: &[String]) -> Result<(), ApiError> {
    if roles.len() > MAX_ROLES {
        return Err(ApiError::field(
            "roles",
            format!("at most {MAX_ROLES} roles"),
        ));
    }
    if let Some(i) = roles.iter().position(|r| !is_valid_role(r)) {
        return Err(ApiError::field(format!("roles[{i}]"), ROLE_RULE));
    }
    Ok(())
}

pub(super) fn validate(request: &CheckRequest) -> Result<(), ApiError> {
    if !is_valid_tenant_id(&request.tenant) {
        return Err(ApiError::field("tenant", TENANT_RULE));
    }
    validate_amounts(&request.amounts, |_, amount| {
        (amount > COUNTER_MAX).then(|| format!("amounts are at most {COUNTER_MAX}"))
    })?;
    validate_roles(&request.roles)?;
    if let Some(id) = &request.request_id {
        if !is_valid_request_id(id) {
            return Err(ApiError::field("request_id", REQUEST_ID_RULE));
        }
    }
    Ok(())
}

/// Checks a settlement; returns when its check counted.
pub(super) fn validate_settle(request: &SettleRequest) -> Result<DateTime<Utc>, ApiError> {
    // The same alphabet as request ids: the id ends a Redis key, after the hash tag.
    if !is_valid_request_id(&request.id) {
        return Err(ApiError::field("id", SETTLEMENT_ID_RULE));
    }
    if !is_valid_tenant_id(&request.tenant) {
        return Err(ApiError::field("tenant", TENANT_RULE));
    }
    // A request whose only correction is to give back its slot sends no amounts.
    if request.amounts.is_empty() && request.release_request_id.is_none() {
        return Err(ApiError::field(
            "amounts",
            "name at least one resource, or give release_request_id",
        ));
    }
    validate_amounts(&request.amounts, |resource, amount| {
        // concurrent_requests is a gauge under every tier: refused before any lookup.
        (resource == CONCURRENT_REQUESTS && amount != 0)
            .then(|| SettleError::Gauge(resource.to_string()).to_string())
    })?;
    validate_roles(&request.roles)?;
    if let Some(id) = &request.release_request_id {
        if !is_valid_request_id(id) {
            return Err(ApiError::field("release_request_id", REQUEST_ID_RULE));
        }
    }
    i64::try_from(request.checked_at_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| {
            ApiError::field(
                "checked_at_ms",
                "must be a time in milliseconds since the Unix epoch",
            )
        })
}

pub(super) fn validate_quota(request: &QuotaRequest) -> Result<(), ApiError> {
    if !is_valid_tenant_id(&request.tenant) {
        return Err(ApiError::field("tenant", TENANT_RULE));
    }
    validate_roles(&request.roles)
}

pub(super) fn validate_release(request: &ReleaseRequest) -> Result<(), ApiError> {
    if !is_valid_tenant_id(&request.tenant) {
        return Err(ApiError::field("tenant", TENANT_RULE));
    }
    if !is_valid_request_id(&request.request_id) {
        return Err(ApiError::field("request_id", REQUEST_ID_RULE));
    }
    Ok(())
}

/// Checks a lease request, its fields in order.
pub(super) fn validate_lease(request: &LeaseRequest) -> Result<(), ApiError> {
    // The alphabet of request ids: a lease id ends a Redis key, after the hash tag.
    if !is_valid_request_id(&request.id) {
        return Err(ApiError::field("id", LEASE_ID_RULE));
    }
    if !is_valid_request_id(&request.gateway) {
        return Err(ApiError::field("gateway", GATEWAY_RULE));
    }
    if !is_valid_tenant_id(&request.tenant) {
        return Err(ApiError::field("tenant", TENANT_RULE));
    }
    validate_roles(&request.roles)?;
    if !is_valid_resource(&request.resource) {
        return Err(ApiError::field("resource", RESOURCE_RULE));
    }
    if request.resource == CONCURRENT_REQUESTS {
        // A gauge under every tier: refused before any lookup.
        return Err(ApiError::field(
            "resource",
            LeaseError::Gauge(request.resource.clone()).to_string(),
        ));
    }
    if request.want > COUNTER_MAX {
        return Err(ApiError::field("want", format!("at most {COUNTER_MAX}")));
    }
    if let Some(previous) = &request.previous {
        if !is_valid_request_id(&previous.id) {
            return Err(ApiError::field("previous.id", LEASE_ID_RULE));
        }
        if previous.id == request.id {
            return Err(ApiError::field(
                "previous.id",
                "a lease cannot return itself: the new lease needs an id of its own",
            ));
        }
        if previous.spent > COUNTER_MAX {
            return Err(ApiError::field(
                "previous.spent",
                format!("at most {COUNTER_MAX}"),
            ));
        }
    }
    Ok(())
}
