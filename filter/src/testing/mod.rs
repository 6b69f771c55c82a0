//! One fake host for every test of the filter's logic: its unit tests, `filter/tests/`
//! and the fuzz targets (`fuzz/`, through the `testing` feature).
//!
//! A [`FakeHost`] is one Envoy worker as the logic sees it through
//! [`Host`](crate::host::Host): request contexts, each with its headers and what the
//! filter did to it ([`FakeRequest`]), one of which is the effective context that
//! per-request host calls act on (or the root, which has no request); the callouts
//! dispatched ([`Dispatched`]), the answer being delivered, the stats counted, the
//! lines logged; and the shared data, which another `FakeHost` can share as Envoy's
//! workers do ([`FakeHost::sharing`]). It records everything and decides nothing:
//! tests assert on the recordings.
//!
//! # Layout
//! - `host` — [`FakeHost`]: building one, driving it (contexts, clock, answers), and
//!   the [`Host`](crate::host::Host) implementation.
//! - `recordings` — what it records: callouts, requests, local replies.
//! - `accessors` — what tests read from it: callouts, checks, replies, stats, logs.

// Test support: a recording that is missing is a failed test, so the accessors unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accessors;
mod host;
mod recordings;

pub use host::{FakeHost, REQUEST, ROOT};
pub use recordings::{Dispatched, FakeRequest, Headers, LocalReply};
