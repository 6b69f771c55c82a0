//! The server's wiring: its configuration (the flags of `tollgate serve` and `migrate`),
//! connecting the stores, building the engine and the HTTP API, the background tasks
//! (invalidations, the tenant directory, events, usage history, reconciliation), logging
//! and shutdown.
//!
//! May import everything below it; only the command line ([`crate::cli`]) imports it.
//!
//! # Layout
//! - [`config`] — the flags, the environment and the config file.
//! - `start` — [`serve`] and [`migrate`].
//! - `logging`, `shutdown` — the subscriber; the signals.

pub mod config;
mod logging;
mod shutdown;
mod start;

pub use start::{migrate, serve};
