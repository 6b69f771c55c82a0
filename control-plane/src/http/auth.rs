//! Who may call what. `/admin/v1` takes a bearer token, as an extractor every admin
//! handler takes: [`Admin`] also carries who acts, for the audit log. A read-only token
//! may use only `GET` and `HEAD`. The decision API (`/v1`) takes the gateway's shared
//! secret when one is configured, through the [`Gateway`] extractor of every decision
//! handler.
//!
//! Tokens are kept only as SHA-256 digests ([`TokenDigest`](super::token::TokenDigest))
//! and compared in constant time; none is ever logged.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::error::ApiError;

/// The header a client may name the acting person or system with (`alice@laptop`); the
/// token is shared, so this is what the audit log can tell apart.
pub const ACTOR_HEADER: &str = "x-tollgate-actor";

/// What an admin token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Write,
    /// `GET` and `HEAD` only: dashboards, billing exports, on-call engineers.
    Read,
}

/// An authenticated admin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Who acts: the actor header when given and printable, else `admin`.
    pub actor: String,
    /// What the token may do.
    pub scope: Scope,
}

/// An authenticated caller of the decision API: a gateway that presented the shared
/// secret, or anyone when none is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway;

/// The bearer token of a request, if it has one.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

fn actor(parts: &Parts) -> String {
    parts
        .headers
        .get(ACTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|a| {
            (1..=128).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        })
        .unwrap_or("admin")
        .to_string()
}

/// A 401 that names the scheme, as RFC 9110 asks.
fn unauthorized() -> Response {
    let mut response = ApiError::Unauthorized.into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The scope `token` grants, if any.
fn scope_of(state: &AppState, token: &str) -> Option<Scope> {
    // Both are compared, whichever matches, so timing does not tell which kind it was.
    let write = state.config.admin_token.matches(token);
    let read = (state.config.admin_read_token.as_ref()).is_some_and(|t| t.matches(token));
    match (write, read) {
        (true, _) => Some(Scope::Write),
        (false, true) => Some(Scope::Read),
        (false, false) => None,
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, Response> {
        let Some(scope) = bearer(parts).and_then(|token| scope_of(state, token)) else {
            return Err(unauthorized());
        };
        let reads = parts.method == Method::GET || parts.method == Method::HEAD;
        if scope == Scope::Read && !reads {
            let refused = ApiError::Forbidden("this token may only read (GET, HEAD)".into());
            return Err(refused.into_response());
        }
        Ok(Admin {
            actor: actor(parts),
            scope,
        })
    }
}

impl FromRequestParts<AppState> for Gateway {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Gateway, Response> {
        match &state.config.decision_token {
            None => Ok(Gateway),
            Some(secret) if bearer(parts).is_some_and(|token| secret.matches(token)) => Ok(Gateway),
            Some(_) => Err(unauthorized()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::http::token::TokenDigest;

    #[test]
    fn a_digest_matches_its_token_and_nothing_else() {
        let digest = TokenDigest::of("token");
        assert!(digest.matches("token"));
        assert!(!digest.matches("tokem"));
        assert!(!digest.matches("token2"));
        assert!(!digest.matches(""));
    }

    #[test]
    fn a_digest_never_prints_the_token() {
        let printed = format!("{:?}", TokenDigest::of("s3cret-token"));
        assert!(!printed.contains("s3cret"), "{printed}");
    }
}
