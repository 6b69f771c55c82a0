//! Tollgate's proxy-wasm HTTP filter.
//!
//! For every counted request the filter finds the tenant (a header, a verified JWT
//! claim, or a path segment) and what the request costs, asks the control plane for a
//! decision (`POST /v1/check` over `dispatch_http_call`), then lets the request through
//! with quota headers or answers it itself: 429 past the hard limit, 401/400 without a
//! valid tenant, and — when no decision arrives in time — the configured failure mode.
//! Bodies are checked as they stream past what was announced; costs known only after
//! the response are settled (`POST /v1/settle`) when the request is over.
//! With `quota_path` set, the filter also answers that path itself with the caller's own
//! quota (`POST /v1/quota`), counting nothing.
//!
//! # Layout
//! - [`host`] — the trait through which the logic talks to Envoy.
//! - [`flow`] — one request's way from headers to decision to settlement, one step per
//!   file, its state and every transition in `flow/state.rs`.
//! - [`worker`] — what one Envoy worker keeps between its requests' callbacks and does
//!   in its tick: deadlines, waits for another request's refill, callouts routed by
//!   token, leases to return, the outbox of settlements; it switches the effective
//!   context to act on a request from another's callback.
//! - [`budget`] — the fast path: budgets leased from the control plane, spent by every
//!   worker from shared data, and their refills.
//! - [`gateway`] — one gateway id per Envoy, agreed by its workers in shared data.
//! - [`identity`] — tenant and roles from a header, a JWT claim or the path.
//! - [`body`] — request body bytes against what was counted for them.
//! - [`response_cost`] — response bytes and upstream-reported costs (header, JSON, SSE).
//! - [`json_events`] — the JSON documents of a response body: whole, or event by event.
//! - [`priced`] — a priced cost's parts and model in a response, and the charge.
//! - [`request_json`] — a request's JSON body for a priced cost: its model, held for
//!   [`stream_usage`], the opt-in rewrite that asks a stream to report its usage.
//! - [`reject_cache`] — rejections every worker remembers, in bounded shared data.
//! - [`metrics`] — the stats the filter exports.
//! - [`misconfigured`] — a control plane answering 404 or 401: counted, logged once.
//! - `testing` (tests, and the `testing` feature) — the one fake host every test and
//!   fuzz target uses.
//! - `proxy` (wasm32 only) — the one module that calls `proxy_wasm`: it translates the
//!   SDK's callbacks into calls on the worker and implements [`host::Host`].
//!
//! Everything but `proxy` runs natively against [`host::Host`] and is unit tested so.

pub mod body;
pub mod budget;
pub mod flow;
pub mod gateway;
pub mod host;
pub mod identity;
pub mod json_events;
pub mod metrics;
pub mod misconfigured;
pub mod priced;
pub mod reject_cache;
pub mod request_json;
pub mod response_cost;
pub mod stream_usage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
// The fake host panics on purpose when a test's expectation fails (a missing callout, a
// body that is not JSON). It must never be in the module Envoy loads, where a panic
// traps the VM: the `testing` feature does not build for wasm32.
#[cfg(all(feature = "testing", target_arch = "wasm32"))]
compile_error!(
    "the `testing` feature (the fake host) is for native tests only, never the wasm build"
);
pub mod worker;

#[cfg(target_arch = "wasm32")]
mod proxy;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy::start();
}}
