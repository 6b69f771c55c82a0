//! Counters in process memory with the semantics of the Redis scripts: the store of the
//! handler unit tests, and the reference the Redis store is contract-tested against.
//!
//! Key lifetimes run on the real clock, as Redis TTLs do; gauge holds run on the call's
//! `now`, as in the scripts. Each call runs under one lock, so it is atomic as a script.
//!
//! # Layout
//! - `store` — [`MemoryStore`] and its [`CounterStore`](super::CounterStore) calls.
//! - `entries` — the map of values with expiries, and the steps the calls share.
//! - `check`, `settle`, `lease` — the calls, each the twin of its Lua script.
//! - `samples` — usage samples beside counters, the twin of the Redis sorted sets.

mod check;
mod entries;
mod lease;
mod samples;
mod settle;
mod store;

pub use store::MemoryStore;
