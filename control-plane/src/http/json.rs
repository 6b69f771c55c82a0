//! JSON bodies, query strings and path parameters with problem+json rejections: a
//! malformed body, or a body not sent as JSON, is a 400; a body past the size limit a
//! 413; a body of the wrong shape a 422 naming the field (`limits[0].quota`), found with
//! `serde_path_to_error` — a missing field too, although serde puts it in the message
//! rather than the path. A bad or missing query or path parameter is a 422 naming it.
//!
//! Text holding NUL (U+0000, `\u0000` in JSON, `%00` in a URL) is refused here, naming
//! where it is: PostgreSQL's `text` and `jsonb` cannot store it, so it would otherwise
//! fail deep in a query as a 500.

use std::fmt;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Datelike, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::Value;

use crate::error::ApiError;

/// `Json<T>` with [`ApiError`] rejections.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// `Query<T>` with [`ApiError`] rejections.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` with [`ApiError`] rejections.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

/// What a 422 says of text holding NUL.
const NUL: &str = "may not contain NUL (U+0000)";

/// Whether the JSON text `bytes`, known to be valid JSON, has a `\u0000` escape in a
/// string: the only way NUL can be in valid JSON. Cheap, so that only such bodies pay
/// for [`nul_path`].
fn has_escaped_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|&b| b == b'\\') {
        let escape = i + at + 1;
        if bytes[escape..].starts_with(b"u0000") {
            return true;
        }
        // Skip the escaped character, so that `\\u0000` (a backslash, then `u0000`)
        // is not taken for NUL.
        i = escape + 1;
        if i >= bytes.len() {
            break;
        }
    }
    false
}

/// Where in `value` the first string or object key holding NUL is, as a path like
/// `serde_path_to_error`'s (`labels.team`, `limits[0].resource`; `.` for the top).
/// A key holding NUL is reported at its object.
fn nul_path(value: &Value, path: &str) -> Option<String> {
    let join = |name: &str| {
        if path == "." {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    match value {
        Value::String(text) => text.contains('\0').then(|| path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, &format!("{}[{i}]", path.trim_end_matches('.')))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(path.to_string())
            } else {
                nul_path(item, &join(key))
            }
        }),
        _ => None,
    }
}

/// A 422 for NUL at `path` (`.`: the body itself).
fn nul_error(path: String) -> ApiError {
    ApiError::Validation {
        field: (path != ".").then_some(path),
        message: NUL.into(),
    }
}

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

/// `T` read from a JSON object only. serde also reads a struct from an array of its
/// fields in order (`[null, null]` for a tier change), a form the API does not document
/// and a client only sends by mistake.
#[derive(Debug, Clone)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }
        }

        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// For `Vec<T>` fields (with `#[serde(default)]`) whose items are objects: each is read
/// as an [`Object`].
pub fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let items = Vec::<Object<T>>::deserialize(deserializer)?;
    Ok(items.into_iter().map(|Object(item)| item).collect())
}

/// [`objects`] for `Option<Vec<T>>` fields (with `#[serde(default)]`).
pub fn optional_objects<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let items = Option::<Vec<Object<T>>>::deserialize(deserializer)?;
    Ok(items.map(|items| items.into_iter().map(|Object(item)| item).collect()))
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

/// For `Option<DateTime<Utc>>` query fields (with `#[serde(default)]`): an RFC 3339
/// instant, whose year has four digits. chrono also reads years like `-100000`, which a
/// PostgreSQL `timestamptz` cannot hold, so the query would fail as a 500.
pub fn instant<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match Option::<DateTime<Utc>>::deserialize(deserializer)? {
        Some(at) if !(0..=9999).contains(&at.year()) => Err(serde::de::Error::custom(
            "an RFC 3339 instant in the years 0000 to 9999",
        )),
        at => Ok(at),
    }
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

/// Parses `bytes` as `T`, from a JSON object, classifying failures as 400 (not JSON) or
/// 422 (wrong shape).
///
/// A body is read once without tracking where the parser is, which every check and
/// lease pays for; only a body that fails is read again with `serde_path_to_error`, to
/// name the field. Both reads take the same `Deserialize`, so they agree on what is
/// valid.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut fast = serde_json::Deserializer::from_slice(bytes);
    if let Ok(Object(value)) = Object::<T>::deserialize(&mut fast) {
        if fast.end().is_ok() {
            return refuse_nul(bytes).map(|()| value);
        }
    }
    parse_naming_the_field(bytes)
}

/// Refuses text holding NUL, naming where it is.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    if has_escaped_nul(bytes) {
        let tree: Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
        if let Some(path) = nul_path(&tree, ".") {
            return Err(nul_error(path));
        }
    }
    Ok(())
}

/// [`parse`] with the position tracked, for the error that names the field.
fn parse_naming_the_field<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let Object(value) = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
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
    refuse_nul(bytes)?;
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
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(rejection.body_text()),
                    _ => ApiError::BadRequest(rejection.body_text()),
                })?;
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
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if name.contains('\0') || value.contains('\0') {
                return Err(ApiError::field(name, NUL));
            }
        }
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                let message = error.into_inner().to_string();
                // A missing parameter is named in the message, not the path.
                let field = match path.as_str() {
                    "." => missing_field(".", &message),
                    _ => Some(path),
                };
                ApiError::Validation { field, message }
            })
    }
}

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiPath<T>, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;

        let Path(value) = Path::<T>::from_request_parts(parts, state).await.map_err(
            |rejection| match &rejection {
                PathRejection::FailedToDeserializePathParams(error) => match error.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        ApiError::field(key.clone(), "not UTF-8 once percent-decoded")
                    }
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::DeserializeError { key, .. } => {
                        ApiError::field(key.clone(), rejection.body_text())
                    }
                    ErrorKind::UnsupportedType { .. } => ApiError::internal(rejection.body_text()),
                    _ => ApiError::Validation {
                        field: None,
                        message: rejection.body_text(),
                    },
                },
                // A route without the parameters its handler takes: a bug of ours.
                _ => ApiError::internal(rejection.body_text()),
            },
        )?;
        // They are UTF-8, or the typed extraction above had failed.
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::internal(rejection.body_text()))?;
        if let Some((name, _)) = raw.iter().find(|(_, value)| value.contains('\0')) {
            return Err(ApiError::field(name, NUL));
        }
        Ok(ApiPath(value))
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
    fn only_an_unescaped_u0000_escape_is_nul() {
        assert!(has_escaped_nul(br#"{"a":"\u0000"}"#));
        assert!(has_escaped_nul(br#"{"a":"\\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"\\u0000"}"#));
        // A backslash at the very end (not valid JSON) is no NUL and no panic.
        assert!(!has_escaped_nul(b"\\"));
        assert!(!has_escaped_nul(br#"{"a":"u0000 \\"}"#));
    }

    #[test]
    fn nul_is_found_where_serde_path_to_error_would_name_it() {
        let value: Value = serde_json::json!({"limits": [{"resource": "a"}, {"resource": "b\0"}]});
        assert_eq!(nul_path(&value, ".").as_deref(), Some("limits[1].resource"));
        let key: Value = serde_json::json!({"labels": {"k\0": 1}});
        assert_eq!(nul_path(&key, ".").as_deref(), Some("labels"));
        let top: Value = serde_json::json!(["\0"]);
        assert_eq!(nul_path(&top, ".").as_deref(), Some("[0]"));
        assert_eq!(nul_path(&serde_json::json!({"a": "b"}), "."), None);
    }

    #[test]
    fn a_struct_is_read_from_an_object_only() {
        let error = parse::<Body>(br#"[[]]"#).unwrap_err();
        assert!(
            matches!(&error, ApiError::Validation { field: None, message } if message.contains("expected a JSON object")),
            "{error:?}"
        );
        assert!(parse::<Body>(br#"{"limits":[]}"#).is_ok());
    }

    #[test]
    fn a_valid_body_is_read_once_and_what_follows_it_is_still_refused() {
        let read = parse::<Body>(br#"{"limits":[{"quota":7}]}"#).unwrap();
        assert_eq!(read.limits[0].quota, 7);
        // The fast read stops at the object's end; the rest makes it malformed.
        assert!(matches!(
            parse::<Body>(br#"{"limits":[]} {}"#),
            Err(ApiError::BadRequest(message)) if message.contains("trailing")
        ));
        // NUL is refused on the fast path too, named where it is.
        let nul = parse::<Value>(br#"{"a":{"b":"\u0000"}}"#).unwrap_err();
        assert!(
            matches!(&nul, ApiError::Validation { field: Some(f), .. } if f == "a.b"),
            "{nul:?}"
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
