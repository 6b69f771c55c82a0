//! One request's way through the filter: [`RequestFlow`], driven by the request's
//! callbacks, against the [`Host`](crate::host::Host) trait, so it runs natively in
//! tests.
//!
//! A request runs one way through small steps, one file each: its headers (match,
//! tenant, costs; or the caller's own quota, answered here), its admission (a remembered rejection, budgets, a check), the
//! answer, its body, its response, and what is settled when it is over.
//!
//! # Layout
//! - `state` — where a request stands, and every transition, in one function.
//! - `request` — the flow's data, and what every step shares.
//! - `headers` — request headers: which requests count, the tenant, the costs.
//! - `self_view` — a request for the caller's own quota (`quota_path`), answered by the
//!   filter with the control plane's view.
//! - `admission` — a remembered rejection, budgets (a refill, or a wait for another
//!   request's), or a check.
//! - `callout` — sending a callout within the request's deadline.
//! - `answer` — a check's answer or its deadline: admitted, refused, the failure mode.
//! - `request_body` — the body against what was counted for it.
//! - `priced` — a priced cost's steps: its reserve, the request body read (or held
//!   and rewritten for `include_usage`), and its charge at the settlement.
//! - `response` — quota headers, costs reported afterwards, the settlement.
//! - `follow_ups` — what a request leaves its worker after each callback.

mod admission;
mod answer;
mod callout;
mod follow_ups;
mod headers;
mod priced;
mod request;
mod request_body;
mod response;
mod self_view;
mod state;

pub use follow_ups::{FollowUps, Woken};
pub use request::{Next, RequestFlow};
