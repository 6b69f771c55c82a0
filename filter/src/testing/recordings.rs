//! What a fake host records: callouts, requests, local replies.

use serde::de::DeserializeOwned;

/// Header names and values, in order.
pub type Headers = Vec<(String, String)>;

/// A local reply: status, headers and body.
pub type LocalReply = (u32, Headers, Vec<u8>);

/// One callout the filter dispatched (or tried to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    /// The context whose callback dispatched it: the SDK hands the answer to that
    /// context (and drops it if that context is gone).
    pub context: u32,
    /// The effective context when it was dispatched.
    pub effective: u32,
    /// Its token; `None` when the host refused it.
    pub token: Option<u32>,
    /// The Envoy cluster.
    pub cluster: String,
    /// Pseudo-headers and headers.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
}

impl Dispatched {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The control-plane endpoint it calls.
    pub fn path(&self) -> &str {
        self.header(":path").unwrap_or_default()
    }

    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).expect("a JSON callout body")
    }
}

/// One request as the host sees it.
#[derive(Debug, Clone, Default)]
pub struct FakeRequest {
    /// Its request headers (the filter's writes included).
    pub headers: std::collections::HashMap<String, String>,
    /// Request headers the filter set, in order.
    pub set_headers: Headers,
    /// Request headers the filter removed, in order.
    pub removed_headers: Vec<String>,
    /// The request body Envoy buffers for the filter (what `request_body` reads).
    pub request_buffer: Vec<u8>,
    /// Every body the filter replaced the buffered request body with, in order.
    pub replaced_bodies: Vec<Vec<u8>>,
    /// The upstream's response headers.
    pub response_headers: std::collections::HashMap<String, String>,
    /// The response body chunk being passed on.
    pub response_chunk: Vec<u8>,
    /// Response headers the filter added, in order.
    pub added_headers: Headers,
    /// Every local reply the filter sent.
    pub replies: Vec<LocalReply>,
    /// How often the filter resumed it.
    pub resumed: u32,
}
