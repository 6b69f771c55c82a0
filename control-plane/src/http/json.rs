//! JSON bodies and query strings with problem+json rejections: a malformed body or
//! query, or a body not sent as JSON, is a 400; a body of the wrong shape a 422 naming
//! the field (`limits[0].quota`), found with `serde_path_to_error` — a missing field
//! too, although serde puts it in the message rather than the path.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::error::Category;

use crate::error::ApiError;

/// `Json<T>` with [`ApiError`] rejections.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// `Query<T>` with [`ApiError`] rejections.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// For `Option<Option<T>>` fields of PATCH bodies (with `#[serde(default)]`): absent
/// is `None` (keep), `null` is `Some(None)` (clear), a value is `Some(Some(v))`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The field a serde "missing field `name`" message names, under `path` (`.` is the top).
fn missing_field(path: &str, message: &str) -> Option<String> {
    let (name, _) = message.strip_prefix("missing field `")?.split_once('`')?;
    Some(if path == "." {
        name.to_string()
    } else {
        format!("{path}.{name}")
    })
}

/// Parses `bytes` as `T`, classifying failures as 400 (not JSON) or 422 (wrong shape).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            Category::Data => {
                let message = inner.to_string();
                let field =
                    missing_field(&path, &message).or_else(|| (path != ".").then_some(path));
                ApiError::Validation { field, message }
            }
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::BadRequest(format!("malformed JSON: {inner}"))
            }
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<ApiJson<T>, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::BadRequest(
                "expected a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        parse(&bytes).map(ApiJson)
    }
}

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: for<'de> Deserialize<'de>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ApiQuery<T>, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                let message = error.into_inner().to_string();
                ApiError::Validation {
                    field: (path != ".").then_some(path),
                    message,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        limits: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        quota: u64,
    }

    #[test]
    fn wrong_type_deep_in_the_body_names_its_path() {
        let error = parse::<Body>(br#"{"limits":[{"quota":1},{"quota":-1}]}"#).unwrap_err();
        assert!(
            matches!(&error, ApiError::Validation { field: Some(f), .. } if f == "limits[1].quota"),
            "{error:?}"
        );
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let top = parse::<Body>(br#"{}"#).unwrap_err();
        assert!(
            matches!(&top, ApiError::Validation { field: Some(f), .. } if f == "limits"),
            "{top:?}"
        );
        let deep = parse::<Body>(br#"{"limits":[{}]}"#).unwrap_err();
        assert!(
            matches!(&deep, ApiError::Validation { field: Some(f), .. } if f == "limits[0].quota"),
            "{deep:?}"
        );
    }

    #[test]
    fn truncated_json_is_a_bad_request() {
        assert!(matches!(
            parse::<Body>(br#"{"limits":["#),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn json_content_types_are_recognized() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(
            CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&headers));
        headers.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
    }
}
