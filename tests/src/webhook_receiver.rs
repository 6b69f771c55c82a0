//! A webhook receiver, as a subscriber would run one: an HTTP server on a free loopback
//! port that verifies every delivery's Standard Webhooks signature with the
//! subscription's secret — on its own, with `hmac` and `sha2`, not with the control
//! plane's code — and answers what the test scripts: a status, or nothing at all (it
//! holds the request open, as a hung receiver does).
//!
//! A request whose signature does not verify, or whose timestamp is more than five
//! minutes off, is answered 401 and recorded as not verified.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the receiver answers a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// This status.
    Status(u16),
    /// Nothing: the request is held open until the sender gives up.
    Hang,
}

/// One delivery that reached the receiver.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: i64,
    /// Every header as sent (names lower case; a repeated one: its last value).
    pub headers: BTreeMap<String, String>,
    /// The body, as sent.
    pub body: Vec<u8>,
    /// Whether its signature verified.
    pub verified: bool,
    /// What it was answered (`None`: held open).
    pub answered: Option<u16>,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Whether it was verified and answered 2xx: delivered.
    pub fn delivered(&self) -> bool {
        self.verified && self.answered.is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Debug)]
struct Inner {
    key: Vec<u8>,
    script: VecDeque<Answer>,
    then: Answer,
    received: Vec<Received>,
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    /// Its port on 127.0.0.1.
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
    task: JoinHandle<()>,
}

/// The HMAC key of a `whsec_` secret.
fn key_of(secret: &str) -> Result<Vec<u8>> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| anyhow!("a secret starts with whsec_"))?;
    STANDARD.decode(encoded).context("the secret's base64")
}

/// Whether `signatures` (space-separated `v1,<base64>`) holds the signature of
/// `id.timestamp.body` under `key`.
pub fn verify(key: &[u8], id: &str, timestamp: &str, body: &[u8], signatures: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|candidate| {
            candidate.len() == expected.len()
                && candidate
                    .bytes()
                    .zip(expected.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let id = header(&headers, "webhook-id").to_string();
    let timestamp_text = header(&headers, "webhook-timestamp");
    let timestamp: i64 = timestamp_text.parse().unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let answer = {
        let mut inner = lock(&inner);
        let fresh = (now - timestamp).abs() <= 300;
        let signatures = header(&headers, "webhook-signature");
        let verified =
            fresh && !id.is_empty() && verify(&inner.key, &id, timestamp_text, &body, signatures);
        let answer = if verified {
            inner.script.pop_front().unwrap_or(inner.then)
        } else {
            Answer::Status(401)
        };
        let all = (headers.iter())
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect();
        inner.received.push(Received {
            id,
            timestamp,
            headers: all,
            body: body.to_vec(),
            verified,
            answered: match answer {
                Answer::Status(status) => Some(status),
                Answer::Hang => None,
            },
            at: Instant::now(),
        });
        answer
    };
    match answer {
        Answer::Status(status) => StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Answer::Hang => std::future::pending().await,
    }
}

impl WebhookReceiver {
    /// Starts a receiver checking signatures with `secret` (`whsec_…`), answering the
    /// deliveries that verify with `script` in order, then 204.
    pub async fn start(secret: &str, script: &[Answer]) -> Result<WebhookReceiver> {
        WebhookReceiver::start_on(0, secret, script).await
    }

    /// [`WebhookReceiver::start`] on `port` (0: any free one): a receiver that comes
    /// back on the address its subscription names.
    pub async fn start_on(port: u16, secret: &str, script: &[Answer]) -> Result<WebhookReceiver> {
        let inner = Arc::new(Mutex::new(Inner {
            key: key_of(secret)?,
            script: script.iter().copied().collect(),
            then: Answer::Status(204),
            received: Vec::new(),
        }));
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let port = listener.local_addr()?.port();
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(WebhookReceiver { port, inner, task })
    }

    /// Its URL for `path` (`/hooks/ops`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers every delivery from now on with `answer` (the script is dropped).
    pub fn answer_with(&self, answer: Answer) {
        let mut inner = lock(&self.inner);
        inner.script.clear();
        inner.then = answer;
    }

    /// Everything that reached it, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner).received.clone()
    }

    /// What it took: verified and answered 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(Received::delivered)
            .collect()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_vector_verifies_and_a_changed_body_does_not() {
        let key = key_of("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let signature = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
        assert!(verify(&key, id, "1649367553", body, signature));
        assert!(verify(
            &key,
            id,
            "1649367553",
            body,
            &format!("v1,AAAA {signature}")
        ));
        assert!(!verify(&key, id, "1649367554", body, signature));
        assert!(!verify(&key, id, "1649367553", b"{}", signature));
    }
}
