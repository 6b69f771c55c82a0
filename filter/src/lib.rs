//! Tollgate's proxy-wasm HTTP filter.
//!
//! For every counted request the filter asks the control plane for a decision
//! (`POST /v1/check` over `dispatch_http_call`), then lets the request through with
//! quota headers or answers it itself: 429 past the hard limit, 401 without a tenant,
//! and — when no decision arrives in time — the configured failure mode. It keeps its
//! own deadline on every callout, because Envoy has been seen to queue a callout
//! forever when the control-plane cluster has no healthy host.
//!
//! # Layout
//! - [`host`] — the small trait through which the logic talks to Envoy.
//! - [`flow`] — one request's way from headers to decision to response headers; pure,
//!   tested natively against a fake host.
//! - [`deadlines`] — requests waiting on a callout, and which of them ran out of time.
//! - `proxy` (wasm32 only) — the one module that calls `proxy_wasm`: contexts,
//!   configuration, metrics, the tick that enforces deadlines.

pub mod deadlines;
pub mod flow;
pub mod host;

#[cfg(target_arch = "wasm32")]
mod proxy;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy::start();
}}
