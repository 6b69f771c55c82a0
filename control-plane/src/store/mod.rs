//! The live usage counters, behind one async trait so handlers run against Redis in
//! production and against memory in unit tests, with the same semantics.
//!
//! The one rule every store keeps (SPEC §2): check-and-count is atomic over all the
//! counters of a request. Either every counter stays within its cap and every one is
//! incremented, or none is touched.

mod memory;
mod redis;

use std::future::Future;
use std::pin::Pin;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// The largest value a counter can hold (Redis counters are signed 64-bit).
pub const COUNTER_MAX: u64 = i64::MAX as u64;

/// A boxed future, because `async fn` in a trait cannot be called through `dyn`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One counter to check and count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterOp {
    /// The counter key; distinct within one call.
    pub key: String,
    /// What the request adds.
    pub amount: u64,
    /// The largest value the counter may reach: the hard limit, or [`COUNTER_MAX`]
    /// for unlimited limits and hard limits beyond it.
    pub cap: u64,
    /// Unix second after which the counter may be dropped (window end plus a grace, so
    /// usage stays readable for a while after the reset).
    pub expire_at: i64,
}

/// What a check-and-count did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOutcome {
    /// Whether every counter was incremented.
    pub admitted: bool,
    /// Each counter's value: after the increment when admitted, unchanged otherwise.
    pub used: Vec<u64>,
    /// Index of the first counter that would have passed its cap (when not admitted).
    pub violated: Option<usize>,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time; retrying later may work.
    #[error("counter store unreachable")]
    Unreachable(#[source] ::redis::RedisError),
    /// The store answered with an error of its own (script error, wrong type, …).
    #[error("counter store command failed")]
    Command(#[source] ::redis::RedisError),
    /// The store answered something this code does not understand.
    #[error("unexpected answer from the counter store: {0}")]
    Protocol(String),
}

impl StoreError {
    /// Whether the failure is about reaching the store (answer 503 and let the filter
    /// apply its failure mode) rather than a bug (answer 500).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unreachable(_))
    }
}

impl From<::redis::RedisError> for StoreError {
    fn from(error: ::redis::RedisError) -> StoreError {
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
        {
            StoreError::Unreachable(error)
        } else {
            StoreError::Command(error)
        }
    }
}

/// Live usage counters.
pub trait CounterStore: Send + Sync {
    /// Atomically: if every `used + amount <= cap`, increment every counter (setting its
    /// expiry); otherwise change nothing. Keys must be distinct.
    fn check_and_count<'a>(&'a self, ops: &'a [CounterOp]) -> StoreFuture<'a, ScriptOutcome>;

    /// The current value of each key (0 when absent), live.
    fn read<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<u64>>;

    /// Whether the store answers, for `/ready`.
    fn ping(&self) -> StoreFuture<'_, ()>;
}
