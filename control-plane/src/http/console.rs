//! The admin console at `/console/` on the admin listener: plain ES modules, a
//! stylesheet and one HTML page from `console/app/`, embedded in the binary at compile
//! time. It calls `/admin/v1` with the token the operator signs in with.
//!
//! Every answer under `/console` carries a Content-Security-Policy that allows only
//! this origin's scripts, styles and API (no inline code), and is revalidated on each
//! use (`no-cache` with an `ETag`): the files have no content hashes in their names, so
//! a browser must not keep an old module once the binary is upgraded.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

use super::state::AppState;
use crate::error::ApiError;

/// The console's files.
#[derive(RustEmbed)]
#[folder = "../console/app/"]
struct Assets;

/// What every console answer may load: this origin's scripts, styles, images and API
/// only; no inline script or style, no plugins, no framing, no form posts.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The console's routes (the admin listener's, never the gateways').
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(to_index))
        .route("/console/", get(index))
        .route("/console/{*path}", get(asset))
}

/// `/console` → `/console/`, where the page's relative addresses resolve.
async fn to_index() -> Response {
    let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/console/"));
    secure(response)
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// The media type of a console file, by its extension; `None` for any other file,
/// which is not served (no guessing, no sniffing).
fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => return None,
    })
}

/// The file at `path`, or a 304 when the browser's copy is current, or a 404.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let found = content_type(path).and_then(|kind| Some((kind, Assets::get(path)?)));
    let Some((kind, file)) = found else {
        return secure(ApiError::NotFound(format!("console file {path}")).into_response());
    };
    let tag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    let current = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if current {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let bytes = match file.data {
            Cow::Borrowed(bytes) => Bytes::from_static(bytes),
            Cow::Owned(bytes) => Bytes::from(bytes),
        };
        let mut response = Body::from(bytes).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
        response
    };
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(ETAG, value);
    }
    secure(response)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `response` with the console's security and caching headers.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        (CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use sqlx::postgres::PgPoolOptions;
    use tower::ServiceExt;

    use super::CONTENT_SECURITY_POLICY_VALUE;
    use crate::http::routes::{app_for, Surface};
    use crate::http::state::{AppConfig, AppState};
    use crate::store::bus::MemoryBus;
    use crate::store::MemoryStore;

    fn router(surface: Surface) -> axum::Router {
        let pool = PgPoolOptions::new()
            .connect_lazy("postgres://tollgate@127.0.0.1:1/tollgate")
            .unwrap();
        let state = AppState::new(
            AppConfig::with_token("token"),
            pool,
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryBus::default()),
        )
        .unwrap();
        app_for(state, surface)
    }

    async fn get(surface: Surface, path: &str, etag: Option<&str>) -> axum::response::Response {
        let mut request = Request::get(path);
        if let Some(tag) = etag {
            request = request.header("if-none-match", tag);
        }
        router(surface)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header<'a>(response: &'a axum::response::Response, name: &str) -> &'a str {
        response.headers()[name].to_str().unwrap()
    }

    fn assert_secured(response: &axum::response::Response) {
        assert_eq!(
            header(response, "content-security-policy"),
            CONTENT_SECURITY_POLICY_VALUE
        );
        assert_eq!(header(response, "x-content-type-options"), "nosniff");
        assert_eq!(header(response, "referrer-policy"), "no-referrer");
        assert_eq!(header(response, "cache-control"), "no-cache");
    }

    #[tokio::test]
    async fn the_page_its_modules_and_its_stylesheet_come_with_their_types_and_the_policy() {
        for (path, kind) in [
            ("/console/", "text/html; charset=utf-8"),
            ("/console/js/main.js", "text/javascript; charset=utf-8"),
            ("/console/console.css", "text/css; charset=utf-8"),
            ("/console/favicon.svg", "image/svg+xml"),
        ] {
            let response = get(Surface::Admin, path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&response, "content-type"), kind, "{path}");
            assert!(header(&response, "etag").starts_with('"'), "{path}");
            assert_secured(&response);
        }
    }

    #[tokio::test]
    async fn the_policy_allows_no_inline_script_or_style() {
        for directive in [
            "default-src 'none'",
            "script-src 'self';",
            "style-src 'self';",
            "frame-ancestors 'none'",
        ] {
            assert!(CONTENT_SECURITY_POLICY_VALUE.contains(directive));
        }
        assert!(!CONTENT_SECURITY_POLICY_VALUE.contains("unsafe"));
    }

    #[tokio::test]
    async fn a_current_copy_is_not_sent_again() {
        let first = get(Surface::Admin, "/console/js/api.js", None).await;
        let tag = header(&first, "etag").to_string();
        let again = get(Surface::Admin, "/console/js/api.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&again, "etag"), tag);
        assert_secured(&again);
        let stale = get(Surface::Admin, "/console/js/api.js", Some("\"old\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn console_redirects_to_its_page_and_unknown_files_are_404_with_the_policy() {
        let redirect = get(Surface::Admin, "/console", None).await;
        assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(&redirect, "location"), "/console/");
        for path in ["/console/nope.js", "/console/../Cargo.toml", "/console/js"] {
            let missing = get(Surface::Admin, path, None).await;
            assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{path}");
            assert_secured(&missing);
        }
    }

    #[tokio::test]
    async fn the_console_is_on_the_admin_listener_and_never_on_the_gateways() {
        let shared = get(Surface::Everything, "/console/", None).await;
        assert_eq!(shared.status(), StatusCode::OK);
        let gateways = get(Surface::Decisions, "/console/", None).await;
        assert_eq!(gateways.status(), StatusCode::NOT_FOUND);
        assert!(!gateways.headers().contains_key("content-security-policy"));
    }
}
