//! The one error type of the HTTP API and its JSON body:
//! `{"error":{"code":"validation","message":"…","field":"limits[0].quota"}}`.
//!
//! Internal errors answer a generic 500 and are logged with their source chain;
//! unavailable stores answer 503 so the filter applies its failure mode.

use std::error::Error as StdError;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::repo::RepoError;
use crate::store::StoreError;

/// Any error a handler answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not sent as JSON (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is JSON but a value is invalid (422), naming the field when one applies.
    #[error("{message}")]
    Validation {
        /// Path of the offending field (`limits[0].quota`).
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Missing or wrong bearer token (401).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The addressed object does not exist (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The object already exists (409).
    #[error("{0}")]
    Conflict(String),
    /// A backing store cannot be reached (503).
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

    /// The HTTP status this error answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `code` of the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) | ApiError::Validation { .. } => "validation",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// The `{"error": …}` body.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
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
        let field = match &self {
            ApiError::Validation { field, .. } => field.as_deref(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field,
            },
        };
        (self.status_code(), Json(body)).into_response()
    }
}

impl From<RepoError> for ApiError {
    fn from(error: RepoError) -> ApiError {
        match error {
            RepoError::Unavailable(source) => ApiError::Unavailable {
                store: "postgres",
                source: Box::new(source),
            },
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
