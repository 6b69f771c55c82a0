//! A control plane over its own Redis and PostgreSQL, for tests of the admin API: admin
//! requests with the token, and answers checked as the API promises them (no 5xx; every
//! refusal a problem+json).
//!
//! Failing the test is these helpers' job, so they panic with the answer in the message.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::control_plane::{ControlPlane, ADMIN_TOKEN, DECISION_TOKEN};
use crate::postgres::Postgres;
use crate::raw::{read_response, RawResponse};
use crate::redis::Redis;

/// A control plane over its own Redis and PostgreSQL, and an HTTP client for it.
/// Dropped in field order: the servers stop before their directory goes.
#[derive(Debug)]
pub struct AdminStack {
    /// The control plane.
    pub control_plane: ControlPlane,
    _redis: Redis,
    _postgres: Postgres,
    http: reqwest::Client,
    /// Where the servers keep their data and logs.
    pub dir: TempDir,
}

impl AdminStack {
    /// Starts Redis, PostgreSQL and the control plane, and waits until it is ready.
    pub async fn start() -> AdminStack {
        AdminStack::start_with(&[]).await
    }

    /// [`AdminStack::start`] with more `serve` flags.
    pub async fn start_with(flags: &[&str]) -> AdminStack {
        let dir = tempfile::tempdir().unwrap();
        let (redis, postgres) =
            tokio::try_join!(Redis::start(dir.path()), Postgres::start(dir.path())).unwrap();
        let control_plane =
            ControlPlane::start_with(dir.path(), &postgres.url(), &redis.url(), flags)
                .await
                .unwrap();
        control_plane
            .wait_ready(Duration::from_secs(60))
            .await
            .unwrap();
        AdminStack {
            control_plane,
            _redis: redis,
            _postgres: postgres,
            http: reqwest::Client::new(),
            dir,
        }
    }

    /// Runs `sql` on its PostgreSQL ([`Postgres::psql`]): history and other rows at a
    /// scale, or of a past, the API cannot make.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        self._postgres.psql(sql)
    }

    /// An admin request to `/admin/v1{path}`, with the token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        let url = format!("{}/admin/v1{path}", self.control_plane.url());
        self.http.request(method, url).bearer_auth(ADMIN_TOKEN)
    }

    /// A decision request to `/v1/check`, on the decision listener with the gateway
    /// secret, as the filter sends it.
    pub fn check(&self, body: &Value) -> RequestBuilder {
        let url = format!("{}/v1/check", self.control_plane.decision_url());
        self.http.post(url).bearer_auth(DECISION_TOKEN).json(body)
    }

    /// Sends `request`; asserts the answer is no 5xx and, when not a success, a
    /// problem+json whose `status` is the HTTP status. Returns status and body.
    pub async fn send(&self, request: RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(!status.is_server_error(), "{status}: {body}");
        if !status.is_success() {
            assert_eq!(content_type, "application/problem+json", "{status}: {body}");
            assert_eq!(body["status"], status.as_u16(), "{body}");
        }
        (status, body)
    }

    /// Sends `request` and asserts a 422 naming `field`.
    pub async fn refused(&self, request: RequestBuilder, field: &str) {
        let (status, body) = self.send(request).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        assert_eq!(body["invalid-params"][0]["name"], field, "{body}");
    }

    /// Every tenant id and the number of events: what a refused write must not change.
    pub async fn written(&self) -> (Vec<String>, usize) {
        let (_, tenants) = self
            .send(self.admin(Method::GET, "/tenants?limit=500"))
            .await;
        let ids = tenants["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        let (_, events) = self
            .send(self.admin(Method::GET, "/events?limit=500"))
            .await;
        (ids, events["items"].as_array().unwrap().len())
    }

    /// POSTs a JSON body of `size` bytes to `/admin/v1/tenants`, reading the answer while it
    /// writes (the server may answer, 413, and stop reading before the body ends; reqwest
    /// may then see only the broken pipe), and returns the answer.
    pub async fn oversized_upload(&self, size: usize) -> RawResponse {
        let stream = TcpStream::connect(("127.0.0.1", self.control_plane.port))
            .await
            .unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST /admin/v1/tenants HTTP/1.1\r\nhost: tollgate\r\n\
             authorization: Bearer {ADMIN_TOKEN}\r\ncontent-type: application/json\r\n\
             content-length: {size}\r\n\r\n"
        );
        let body = format!(r#"{{"id":"{}"}}"#, "a".repeat(size - 9));
        let writing = tokio::spawn(async move {
            // The server may stop reading and close: a failed write is expected.
            let _ = writer.write_all(head.as_bytes()).await;
            let _ = writer.write_all(body.as_bytes()).await;
            writer
        });
        let answer = tokio::time::timeout(Duration::from_secs(30), read_response(&mut reader))
            .await
            .expect("no answer to the oversized body")
            .unwrap();
        writing.abort();
        answer
    }
}

/// `id` as one URL path segment (`/` as `%2F`).
pub fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
