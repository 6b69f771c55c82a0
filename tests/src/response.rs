//! Assertions on what the gateway answered: headers, problem+json bodies, 429s.
//!
//! Failing the test is these helpers' job, so they panic with the answer in the message.

#![allow(clippy::panic, clippy::unwrap_used)]

use reqwest::{Response, StatusCode};
use serde_json::Value;

/// The problem type of a refusal for quota (`type` in the 429 body).
pub const QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// The value of header `name`; panics, listing the headers, when it is missing.
pub fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {:?}", response.headers()))
}

/// Whether the answer carries header `name`.
pub fn has_header(response: &Response, name: &str) -> bool {
    response.headers().contains_key(name)
}

/// Asserts a problem+json answer with `status` and returns its body.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "{:?}", response.headers());
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    body
}

/// Asserts a 429 quota-exceeded answer on `resource`, with `retry-after` no earlier than
/// the reset the body reports, and returns the body.
pub async fn quota_exceeded(response: Response, resource: &str) -> Value {
    let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
    let body = problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["type"], QUOTA_EXCEEDED, "{body}");
    assert_eq!(body["resource"], resource, "{body}");
    let reset = body["reset_after_s"].as_u64().unwrap();
    assert!(
        retry_after >= reset,
        "retry-after {retry_after} < reset {reset}"
    );
    body
}
