//! End-to-end harness: real processes on free loopback ports in a temporary directory.
//!
//! A [`Gateway`] is the whole product for one test: `redis-server`, a PostgreSQL
//! cluster (`initdb` + `postgres`), the `tollgate` control plane, a recording upstream
//! and Envoy loading the freshly built `.wasm`. Everything stops when it is dropped, and
//! every child is also tied to the test's thread with `PR_SET_PDEATHSIG`, so a test
//! that panics or is killed leaves nothing running.
//!
//! Build first (`scripts/test.sh` does): `cargo build -p tollgate-control-plane` and
//! `cargo build -p tollgate-filter --profile wasm --target wasm32-wasip1`.
//!
//! # Layout
//! - [`process`] — spawning children tied to the test, ports, waiting.
//! - [`redis`], [`postgres`], [`control_plane`], [`envoy`] — one real server each.
//! - [`redis_cluster`] — a three-master Redis Cluster (sharded Redis, `CROSSSLOT`).
//! - [`tls`] — a throwaway CA and certificates for Redis and PostgreSQL with TLS.
//! - [`upstream`] — the backend behind Envoy; records what reached it as it streams and
//!   answers what the test asks for (usage headers, JSON and event-stream bodies).
//! - [`ai`] — its answers as an AI back end: OpenAI chat completions and Anthropic
//!   messages, JSON or event streams, usage where each API puts it.
//! - [`hanging`] — a "control plane" that accepts connections and never answers.
//! - [`slow`] — a proxy that makes the control plane answer late.
//! - [`raw`] — a raw HTTP/1.1 client (chunk-by-chunk uploads, bodies cut short).
//! - [`rendered`] — what a rendered Envoy config holds (its filters, the filter config).
//! - [`response`] — assertions on answers: headers, problem+json bodies, 429s.
//! - [`shared`] — one Redis, Redis Cluster and PostgreSQL per test process.
//! - [`gateway`] — all of them together, plus the admin calls tests need.
//! - [`admin`] — a control plane alone over its own stores, for admin API tests.
//! - [`prometheus`] — a real Prometheus with the shipped scrape config and rules.
//! - [`promql`] — the metric names a PromQL expression reads.
//! - [`webhook_receiver`] — a webhook receiver that verifies signatures and answers what
//!   the test scripts (a status, or a request held open).

pub mod admin;
pub mod ai;
pub mod control_plane;
pub mod envoy;
pub mod gateway;
pub mod hanging;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod promql;
pub mod raw;
pub mod redis;
pub mod redis_cluster;
pub mod rendered;
pub mod response;
pub mod shared;
pub mod slow;
pub mod tls;
pub mod upstream;
pub mod webhook_receiver;

pub use envoy::Template;
pub use gateway::{ControlPlaneTarget, Gateway, GatewayOptions};
pub use process::eventually;
