//! What a request costs: what is counted at its headers, and what the upstream reports
//! afterwards.

use serde::{Deserialize, Serialize};

use super::error::{fail, is_header_name, ConfigError};
use super::priced::PricedCost;
use crate::check::AMOUNT_MAX;
use crate::resource;

/// An upstream-reported cost read from a response header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseHeaderCost {
    /// The header carrying a non-negative integer (lower case), e.g. `x-usage-tokens`.
    pub header: String,
    /// The resource it is counted as, e.g. `tokens`.
    pub resource: String,
}

/// An upstream-reported cost read from a JSON (or `text/event-stream`) response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseJsonCost {
    /// RFC 6901 JSON pointer to a non-negative integer, e.g. `/usage/total_tokens`. In
    /// an event stream, the last event's `data:` JSON that has it wins.
    pub pointer: String,
    /// The resource it is counted as, e.g. `tokens`.
    pub resource: String,
    /// The most body the filter keeps to parse (a plain JSON body) or to hold one event
    /// (a stream); a larger body counts 0 and is logged.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
}

/// What a request costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostsConfig {
    /// One `requests` per counted request.
    #[serde(default = "yes")]
    pub requests: bool,
    /// `request_bytes`: reserved from `content-length` at the headers, checked as the
    /// body streams past what was reserved, settled to the bytes seen at the end.
    #[serde(default = "yes")]
    pub request_bytes: bool,
    /// How many body bytes the first check reserves ahead while a body streams beyond
    /// what `content-length` announced (or without one); each further check of the same
    /// body asks twice as far, up to 16 times this, and exactly what was seen near the
    /// hard limit.
    #[serde(default = "default_stream_reserve_bytes")]
    pub stream_reserve_bytes: u64,
    /// `response_bytes`: the response body's bytes, settled after the response.
    #[serde(default)]
    pub response_bytes: bool,
    /// A cost the upstream reports in a response header, settled after the response.
    #[serde(default)]
    pub response_header: Option<ResponseHeaderCost>,
    /// A cost the upstream reports in its JSON or event-stream body, settled after it.
    #[serde(default)]
    pub response_json: Option<ResponseJsonCost>,
    /// A cost priced per model from several parts the upstream reports in its JSON or
    /// event-stream body (tokens of each kind), with the parts also countable on their
    /// own; it holds what its price table sizes at the headers, not `response_reserve`.
    #[serde(default)]
    pub priced: Option<PricedCost>,
    /// What each cost known only after the response holds at the headers, so a tenant
    /// with nothing left is refused before the upstream does the work.
    #[serde(default = "default_response_reserve")]
    pub response_reserve: u64,
    /// `concurrent_requests`: the request holds one slot of the gauge while it is in
    /// flight (under an id of the filter's own), released by its settlement.
    #[serde(default)]
    pub concurrent_requests: bool,
}

impl Default for CostsConfig {
    fn default() -> Self {
        CostsConfig {
            requests: true,
            request_bytes: true,
            stream_reserve_bytes: default_stream_reserve_bytes(),
            response_bytes: false,
            response_header: None,
            response_json: None,
            priced: None,
            response_reserve: default_response_reserve(),
            concurrent_requests: false,
        }
    }
}

impl CostsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        // Both are amounts the filter asks the control plane for.
        if !(1..=AMOUNT_MAX).contains(&self.stream_reserve_bytes) {
            return fail(
                "costs.stream_reserve_bytes",
                "must be 1..=9223372036854775807",
            );
        }
        if self.response_reserve > AMOUNT_MAX {
            return fail(
                "costs.response_reserve",
                "must be at most 9223372036854775807",
            );
        }
        if let Some(cost) = &self.response_header {
            if !is_header_name(&cost.header) {
                return fail(
                    "costs.response_header.header",
                    "must be a lower-case header name",
                );
            }
            if !is_operator_resource(&cost.resource) {
                return fail(
                    "costs.response_header.resource",
                    "must be a resource name other than the built-in ones",
                );
            }
        }
        if let Some(cost) = &self.response_json {
            if !(cost.pointer.is_empty() || cost.pointer.starts_with('/')) {
                return fail("costs.response_json.pointer", "must be a JSON pointer");
            }
            if !is_operator_resource(&cost.resource) {
                return fail(
                    "costs.response_json.resource",
                    "must be a resource name other than the built-in ones",
                );
            }
            if cost.max_body_bytes == 0 {
                return fail("costs.response_json.max_body_bytes", "must be at least 1");
            }
        }
        if let Some(priced) = &self.priced {
            let taken: Vec<&str> = [
                self.response_header.as_ref().map(|c| c.resource.as_str()),
                self.response_json.as_ref().map(|c| c.resource.as_str()),
            ]
            .into_iter()
            .flatten()
            .collect();
            priced.validate(&taken, is_operator_resource)?;
        }
        Ok(())
    }
}

/// Costs read from responses are the operator's own resources: counting them as
/// `requests` or `request_bytes` would charge a request twice.
fn is_operator_resource(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && ![
            resource::REQUESTS,
            resource::REQUEST_BYTES,
            resource::RESPONSE_BYTES,
            resource::CONCURRENT_REQUESTS,
        ]
        .contains(&name)
}

fn yes() -> bool {
    true
}

fn default_stream_reserve_bytes() -> u64 {
    64 * 1024
}

fn default_max_body_bytes() -> u64 {
    1024 * 1024
}

fn default_response_reserve() -> u64 {
    1
}
