//! Resource names the product knows; operators may define others.

/// One per request.
pub const REQUESTS: &str = "requests";
/// Bytes of the request body.
pub const REQUEST_BYTES: &str = "request_bytes";
/// Bytes of the response body.
pub const RESPONSE_BYTES: &str = "response_bytes";
/// Requests in flight at once (a gauge, no period).
pub const CONCURRENT_REQUESTS: &str = "concurrent_requests";
