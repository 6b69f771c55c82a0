//! Bearer-token authentication of `/admin/v1`, as an extractor every admin handler
//! takes: [`Admin`] also carries who acts, for the audit log.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// The header a client may name the acting person or system with (`alice@laptop`); the
/// token is shared, so this is what the audit log can tell apart.
pub const ACTOR_HEADER: &str = "x-tollgate-actor";

/// An authenticated admin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Who acts: the actor header when given and printable, else `admin`.
    pub actor: String,
}

/// Whether `presented` is the admin token. Compared in constant time, so response time
/// does not tell how much of a guessed token was right.
pub fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    !expected.is_empty() && bool::from(presented.ct_eq(expected))
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

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, Response> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(token)
                if token_matches(
                    token.as_bytes(),
                    state.config.admin_token.expose().as_bytes(),
                ) =>
            {
                Ok(Admin {
                    actor: actor(parts),
                })
            }
            _ => {
                let mut response = ApiError::Unauthorized.into_response();
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Err(response)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_tokens_match_and_any_difference_does_not() {
        assert!(token_matches(b"token", b"token"));
        assert!(!token_matches(b"token", b"tokem"));
        assert!(!token_matches(b"token", b"token2"));
        assert!(!token_matches(b"", b""));
    }
}
