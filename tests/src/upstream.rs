//! The service behind the gateway: records, per tenant, how many requests and body bytes
//! actually reached it, and answers what the test asks for.
//!
//! Body bytes are counted **as they arrive**, frame by frame, so a body the gateway cut
//! off (a 429 in the middle of an upload, a client that went away) still shows exactly
//! what got through, and [`Received::aborted`] tells when such a body has ended.
//!
//! # The ledger key
//! `x-tenant-id` when the request carries it, else `x-test-tenant` (tests whose tenant
//! comes from a JWT or the path set it), else the path.
//!
//! # Answers chosen by request headers
//! - `x-test-usage-header: N` → a response header `x-usage-tokens: N`;
//! - `x-test-usage-json: N` → `{"usage":{"total_tokens":N}}`, `application/json`;
//! - `x-test-usage-sse: N` → `text/event-stream`: a few `data:` events, then one carrying
//!   `{"usage":{"total_tokens":N}}` (sent in two pieces), then `data: [DONE]`;
//! - `x-test-response-bytes: N` → a body of N bytes;
//! - `x-test-ai: openai|anthropic` → an AI back end's answer to the request's JSON body
//!   (`ai`), the body kept for [`Upstream::last_body`];
//! - otherwise `ok\n`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What reached the upstream for one tenant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Requests (their headers arrived).
    pub requests: u64,
    /// Body bytes, counted as they streamed in.
    pub bytes: u64,
    /// Requests whose body arrived to its end.
    pub completed: u64,
    /// Requests whose body was cut off (Envoy reset or closed the upstream request):
    /// once this moves, `bytes` is final for that request.
    pub aborted: u64,
}

#[derive(Debug, Default)]
struct Entries {
    received: HashMap<String, Received>,
    last_headers: HashMap<String, HeaderMap>,
    last_bodies: HashMap<String, Vec<u8>>,
}

/// What the upstream has seen, shared with whoever started it.
#[derive(Debug, Default, Clone)]
pub struct Ledger(Arc<Mutex<Entries>>);

impl Ledger {
    /// What reached it for `key` (see the module docs).
    pub fn received(&self, key: &str) -> Received {
        self.0
            .lock()
            .map(|e| e.received.get(key).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The headers of the last request recorded under `key`.
    pub fn last_headers(&self, key: &str) -> Option<HeaderMap> {
        self.0
            .lock()
            .ok()
            .and_then(|e| e.last_headers.get(key).cloned())
    }

    fn update(&self, key: &str, change: impl FnOnce(&mut Received)) {
        if let Ok(mut entries) = self.0.lock() {
            change(entries.received.entry(key.to_string()).or_default());
        }
    }
}

/// A running upstream on a loopback port.
#[derive(Debug)]
pub struct Upstream {
    /// Its port on 127.0.0.1.
    pub port: u16,
    ledger: Ledger,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Binds a free port and serves until dropped.
    pub async fn start() -> Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let ledger = Ledger::default();
        let task = tokio::spawn(serve(listener, ledger.clone(), false));
        Ok(Upstream { port, ledger, task })
    }

    /// What reached it for `key` (a tenant, see the module docs).
    pub fn received(&self, key: &str) -> Received {
        self.ledger.received(key)
    }

    /// A header of the last request recorded under `key` (what the gateway added).
    pub fn last_header(&self, key: &str, name: &str) -> Option<String> {
        self.ledger
            .last_headers(key)
            .and_then(|h| h.get(name).and_then(|v| v.to_str().ok()).map(String::from))
    }

    /// The body of the last `x-test-ai` request recorded under `key`, as it arrived.
    pub fn last_body(&self, key: &str) -> Option<Vec<u8>> {
        (self.ledger.0.lock().ok())?.last_bodies.get(key).cloned()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct AppState {
    ledger: Ledger,
    print: bool,
}

/// Serves the recording upstream on `listener`; with `print`, logs every request
/// (the demo's upstream does).
pub async fn serve(listener: TcpListener, ledger: Ledger, print: bool) {
    let app = Router::new()
        .fallback(handle)
        .with_state(AppState { ledger, print });
    let _ = axum::serve(listener, app).await;
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn ledger_key(headers: &HeaderMap, path: &str) -> String {
    ["x-tenant-id", "x-test-tenant"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .unwrap_or(path)
        .to_string()
}

async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let key = ledger_key(&parts.headers, parts.uri.path());
    if let Ok(mut entries) = state.ledger.0.lock() {
        entries
            .last_headers
            .insert(key.clone(), parts.headers.clone());
    }
    state.ledger.update(&key, |r| r.requests += 1);
    let mut stream = body.into_data_stream();
    let mut seen = 0u64;
    let keeps = parts.headers.contains_key("x-test-ai");
    let mut kept = Vec::new();
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(bytes) => {
                seen += bytes.len() as u64;
                if keeps && kept.len() < 4 << 20 {
                    kept.extend_from_slice(&bytes);
                }
                state.ledger.update(&key, |r| r.bytes += bytes.len() as u64);
            }
            Err(_) => {
                state.ledger.update(&key, |r| r.aborted += 1);
                if state.print {
                    println!("upstream: {key:?}: body cut off after {seen} bytes");
                }
                return StatusCode::BAD_REQUEST.into_response();
            }
        }
    }
    state.ledger.update(&key, |r| r.completed += 1);
    if state.print {
        println!("upstream: {key:?} sent {seen} bytes");
    }
    if let Some(answer) = crate::ai::answer(&parts.headers, &kept) {
        if let Ok(mut entries) = state.ledger.0.lock() {
            entries.last_bodies.insert(key, kept);
        }
        return answer;
    }
    answer(&parts.headers)
}

fn answer(headers: &HeaderMap) -> Response {
    let mut response = if let Some(tokens) = header_u64(headers, "x-test-usage-json") {
        let body = format!(
            r#"{{"id":"cmpl-1","choices":[{{"text":"hello"}}],"usage":{{"prompt_tokens":1,"total_tokens":{tokens}}}}}"#
        );
        ([("content-type", "application/json")], body).into_response()
    } else if let Some(tokens) = header_u64(headers, "x-test-usage-sse") {
        event_stream(tokens)
    } else if let Some(bytes) = header_u64(headers, "x-test-response-bytes") {
        vec![b'r'; usize::try_from(bytes).unwrap_or(0)].into_response()
    } else {
        "ok\n".into_response()
    };
    if let Some(tokens) = header_u64(headers, "x-test-usage-header") {
        if let Ok(value) = HeaderValue::from_str(&tokens.to_string()) {
            response.headers_mut().insert("x-usage-tokens", value);
        }
    }
    response
}

/// An OpenAI-style stream: content events, the usage event split across two writes,
/// then `[DONE]`, each write a little apart so they reach Envoy as separate chunks.
fn event_stream(tokens: u64) -> Response {
    let usage = format!(
        "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":1,\"total_tokens\":{tokens}}}}}\n\n"
    );
    let (first, second) = usage.split_at(usage.len() / 2);
    let pieces: Vec<String> = vec![
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n".into(),
        "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}],\"usage\":null}\n\n".into(),
        first.to_string(),
        second.to_string(),
        "data: [DONE]\n\n".into(),
    ];
    let stream = futures_util::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, Infallible>(Bytes::from(piece))
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}
