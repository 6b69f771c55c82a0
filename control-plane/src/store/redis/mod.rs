//! The Redis counter store, on one Redis or a Redis Cluster: every call is one Lua
//! script (EVALSHA, reloaded automatically after a restart flushed the script cache)
//! over keys that share one tenant tree's hash tag.
//!
//! Connections are lazy and reconnect by themselves: the control plane starts while Redis
//! is down, and recovers when it comes back. The same connection carries the
//! invalidation messages between control planes (`bus`). `rediss://` URLs
//! connect over TLS, with a private CA or a client certificate from [`RedisTls`].
//!
//! # Layout
//! - `store` — [`RedisStore`]: the connection and the [`CounterStore`](super::CounterStore)
//!   calls.
//! - `scripts` — the Lua scripts (in `scripts/`), assembled per call.
//! - `check`, `settle`, `lease` — each call's keys and arguments, as its script reads them.
//! - `samples` — usage samples in sorted sets beside the counters.
//! - `replies` — the scripts' answers, parsed.
//! - `bus` — the invalidation stream; `tls` — certificates.

mod bus;
mod check;
mod lease;
mod replies;
mod samples;
mod scripts;
mod settle;
mod store;
mod tls;

pub use store::RedisStore;
pub use tls::RedisTls;
