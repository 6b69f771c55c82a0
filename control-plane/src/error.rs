//! The one error type of the HTTP API, answered as `application/problem+json` (RFC 9457):
//!
//! ```json
//! {"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
//!  "detail": "limits[0].quota: at most 9223372036854775807", "code": "validation",
//!  "invalid-params": [{"name": "limits[0].quota", "reason": "at most 9223372036854775807"}]}
//! ```
//!
//! Internal errors answer a generic 500 and are logged with their source chain;
//! unavailable stores answer 503 so that the filter applies its failure mode.

use std::error::Error as StdError;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::repo::RepoError;
use crate::store::StoreError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Any error a handler answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: not JSON, a bad query string (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but a value is invalid (422), naming the field.
    #[error("{}", validation_text(.field.as_deref(), .message))]
    Validation {
        /// Path of the offending field (`limits[0].quota`).
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The body is larger than the server reads (413).
    #[error("{0}")]
    TooLarge(String),
    /// Missing or wrong bearer token (401).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The token is valid but may not do this (403): a read-only token writing.
    #[error("{0}")]
    Forbidden(String),
    /// The addressed object or route does not exist (404).
    #[error("{0} not found")]
    NotFound(String),
    /// A decision call (`/v1`) sent to the admin listener, which does not serve it when
    /// the decision API has a listener of its own (404): a gateway configured with the
    /// wrong port would otherwise only see a bare 404.
    #[error(
        "the decision API (/v1) is not served on the admin listener: send it to the decision \
         listener (tollgate serve --decision-listen)"
    )]
    WrongListener,
    /// The route exists but not with this method (405).
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The write conflicts with what exists or breaks a rule (409).
    #[error("{0}")]
    Conflict(String),
    /// A backing store cannot be reached or did not answer within the deadline (503).
    #[error("{store} is unavailable")]
    Unavailable {
        /// `redis` or `postgres`.
        store: &'static str,
        /// Why, for the log.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Anything else (500); the details go to the log only.
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

fn validation_text(field: Option<&str>, message: &str) -> String {
    match field {
        Some(field) => format!("{field}: {message}"),
        None => message.to_string(),
    }
}

/// A problem body (RFC 9457) with Tollgate's extension members.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// A stable machine-readable code: `validation`, `too_large`, `unauthorized`,
    /// `forbidden`, `not_found`, `wrong_listener`, `method_not_allowed`, `conflict`,
    /// `unavailable`, `internal`.
    pub code: String,
    /// The offending fields, for 400 and 422.
    #[serde(rename = "invalid-params", skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

/// One offending field.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidParam {
    /// Its path in the request (`limits[0].quota`, `tenant`, `cursor`).
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ApiError {
    /// A 422 naming `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Validation {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A 500 from a message, for invariants that should hold but did not.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::Internal(message.into().into())
    }

    /// A 503 for `store`.
    pub fn unavailable(store: &'static str, why: impl Into<String>) -> ApiError {
        ApiError::Unavailable {
            store,
            source: why.into().into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::WrongListener => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `code` of the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) | ApiError::Validation { .. } => "validation",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::WrongListener => "wrong_listener",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let invalid_params = match self {
            ApiError::Validation {
                field: Some(field),
                message,
            } => vec![InvalidParam {
                name: field.clone(),
                reason: message.clone(),
            }],
            _ => Vec::new(),
        };
        Problem {
            problem_type: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().into(),
            invalid_params,
        }
    }
}

/// The error and its sources, one line, for logs.
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(_) => tracing::error!(error = %chain(&self), "request failed"),
            ApiError::Unavailable { .. } => tracing::warn!(error = %chain(&self), "store down"),
            _ => {}
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status_code(), body).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl From<RepoError> for ApiError {
    fn from(error: RepoError) -> ApiError {
        match error {
            RepoError::Unavailable(source) => ApiError::Unavailable {
                store: "postgres",
                source: Box::new(source),
            },
            RepoError::Conflict(message) => ApiError::Conflict(message),
            RepoError::NotFound(what) => ApiError::NotFound(what),
            RepoError::Invalid { field, message } => ApiError::field(field, message),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        if error.is_transient() {
            ApiError::Unavailable {
                store: "redis",
                source: Box::new(error),
            }
        } else {
            ApiError::Internal(Box::new(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_names_the_field_in_invalid_params() {
        let problem = ApiError::field("limits[0].quota", "at most 5").problem();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.title, "Unprocessable Entity");
        assert_eq!(problem.detail, "limits[0].quota: at most 5");
        assert_eq!(problem.invalid_params[0].name, "limits[0].quota");
    }

    #[test]
    fn internal_problem_says_nothing_of_its_cause() {
        let problem = ApiError::internal("password=hunter2 in the query").problem();
        assert_eq!(problem.detail, "internal error");
    }
}
