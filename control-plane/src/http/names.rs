//! The shapes of tenant ids, tier names and webhook ids in the OpenAPI document, as
//! `TenantId`, `TierName` and `WebhookId` schemas with the pattern the validators apply, so that a client (or a
//! generator of test requests) can tell a valid name from the document alone.
//!
//! The handlers still take plain `String`s and validate them
//! ([`tollgate_protocol::is_valid_tenant_id`], [`crate::model::names::is_valid_tier_name`]);
//! these types only name their schemas (`#[schema(value_type = TenantId)]`).

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// [`tollgate_protocol::is_valid_tenant_id`] as a regular expression (ECMA-262, no
/// look-ahead): 1–128 of `A-Za-z0-9._:@/-`, but not `.` or `..`, spelled as "starts with
/// no dot", "one dot, then no dot" or "two dots, then anything".
pub const TENANT_ID_PATTERN: &str = "^(?:[A-Za-z0-9_:@/-][A-Za-z0-9._:@/-]{0,127}\
     |\\.[A-Za-z0-9_:@/-][A-Za-z0-9._:@/-]{0,126}\
     |\\.\\.[A-Za-z0-9._:@/-]{1,126})$";

/// [`crate::model::names::is_valid_tier_name`] as a regular expression.
pub const TIER_NAME_PATTERN: &str = "^[a-z0-9_-]{1,64}$";

/// The schema of a tenant id.
pub struct TenantId;

impl PartialSchema for TenantId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(128))
            .pattern(Some(TENANT_ID_PATTERN))
            .description(Some(
                "A tenant id: 1-128 characters of letters, digits and `._:@/-`, not `.` or \
                 `..`. In a URL path `/` is written `%2F`.",
            ))
            .into()
    }
}

impl ToSchema for TenantId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TenantId")
    }
}

/// The schema of a tier name.
pub struct TierName;

impl PartialSchema for TierName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(64))
            .pattern(Some(TIER_NAME_PATTERN))
            .description(Some("A tier name: 1-64 characters of `a-z 0-9 _ -`."))
            .into()
    }
}

impl ToSchema for TierName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TierName")
    }
}

/// The schema of a webhook subscription's id.
pub struct WebhookId;

impl PartialSchema for WebhookId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(64))
            .pattern(Some(TIER_NAME_PATTERN))
            .description(Some(
                "A webhook subscription's id: 1-64 characters of `a-z 0-9 _ -`, chosen by \
                 the operator (`tollgate apply` matches subscriptions by it).",
            ))
            .into()
    }
}

impl ToSchema for WebhookId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WebhookId")
    }
}
