//! The problem+json answers many operations share, named once in the OpenAPI document
//! (`components.responses`) and referred to by each handler's annotation.

use utoipa::ToResponse;

use crate::error::Problem;

/// No bearer token, or a wrong one.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unauthorized(pub Problem);

/// The body is not JSON, or not sent as `application/json`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Malformed(pub Problem);

/// The body is larger than the server reads (2 MiB).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct TooLarge(pub Problem);

/// A value is invalid; `invalid-params` names it.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Invalid(pub Problem);

/// PostgreSQL is unavailable: admin writes are refused until it is back.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unavailable(pub Problem);
