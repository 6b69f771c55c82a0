//! What a change becomes: an admin API request, and the instants its diff line names,
//! written the same way by every kind of change (grants' included).

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::Value;

/// An admin API request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path under `/admin/v1`.
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// An instant as RFC 3339 in UTC (`2027-01-01T00:00:00Z`), or `none`.
pub fn instant(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "none".to_string(),
        |at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    )
}
