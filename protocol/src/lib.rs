//! Everything the Tollgate filter and control plane must agree on, with no I/O.
//!
//! The crate builds for the host and for `wasm32`: its tests run natively and under
//! `wasm-bindgen-test`, so the decision math is proven to behave the same inside
//! Envoy's wasm VM as in the control plane.
//!
//! # Layout
//! - [`decision`] — ALLOW / WARN / REJECT from a limit, the usage and an amount.
//! - [`price`] — priced costs: weighted parts summed exactly, rounded up once.
//! - [`check`] — the `POST /v1/check`, `/v1/settle` and `/v1/release` bodies.
//! - [`lease`] — the `POST /v1/leases` bodies (budgets for the fast path).
//! - [`headers`] — `RateLimit-Policy`, `RateLimit` and `X-Quota-*` response headers.
//! - [`quota`] — the `POST /v1/quota` bodies (a tenant's own view of its quota).
//! - [`problem`] — `application/problem+json` bodies for local replies.
//! - [`config`] — the filter's JSON configuration schema and its validation.
//! - [`resource`] — the resource names the product knows.

pub mod check;
pub mod config;
pub mod decision;
pub mod headers;
pub mod lease;
pub mod price;
pub mod problem;
pub mod quota;
pub mod resource;

pub use check::{
    CheckRequest, CheckResponse, PolicyStatus, RejectReason, ReleaseRequest, ReleaseResponse,
    SettleRequest, SettleResponse,
};
pub use config::{is_valid_tenant_id, ConfigError, FailureMode, FilterConfig, TenantSource};
pub use decision::{Decision, Limit, QuotaStatus, WarnAt};
pub use lease::{LeaseRequest, LeaseResponse, LeaseReturn};
pub use quota::{QuotaRequest, QuotaView};
