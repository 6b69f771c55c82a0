//! The one async trait every counter store implements.

use std::future::Future;
use std::pin::Pin;

use super::call::{Adjustment, Call, Reply, Seed, Snapshot};
use super::error::StoreError;
use super::lease::{LeaseCall, LeaseReply};
use super::samples::Sampled;
use super::settlement::{Cancelled, SettleReply, Settlement};

/// A boxed future, because `async fn` in a trait cannot be called through `dyn`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Live usage counters.
pub trait CounterStore: Send + Sync {
    /// Runs one call atomically (see [`Call`]). All keys share one hash tag.
    fn call<'a>(&'a self, call: &'a Call) -> StoreFuture<'a, Reply>;

    /// Creates each counter that does not exist with its persisted usage, then sets the
    /// markers. Counters that exist are left alone. Returns how many were created.
    fn seed<'a>(&'a self, markers: &'a [String], seeds: &'a [Seed]) -> StoreFuture<'a, u64>;

    /// Applies `adjustment` to one limit's counters (current first), bumping their
    /// epochs; `ttl_s` for a counter it creates. Returns the usage before and after.
    fn adjust<'a>(
        &'a self,
        keys: &'a [String],
        adjustment: Adjustment,
        ttl_s: i64,
    ) -> StoreFuture<'a, (u64, u64)>;

    /// Applies a settlement atomically (see [`Settlement`]): every move and the release,
    /// or nothing when a marker is missing or the settlement was applied before (its id
    /// key exists). All keys share one hash tag.
    fn settle<'a>(&'a self, settlement: &'a Settlement) -> StoreFuture<'a, SettleReply>;

    /// Gives back a budget and reserves one atomically (see [`Budget`]). All keys share
    /// one hash tag.
    fn lease<'a>(&'a self, budget: &'a LeaseCall) -> StoreFuture<'a, LeaseReply>;

    /// Releases every gauge the request recorded at `record_key` holds. Idempotent.
    /// Returns how many gauges it released.
    fn release<'a>(&'a self, record_key: &'a str, request_id: &'a str) -> StoreFuture<'a, u64>;

    /// Gives back everything request `request_id`'s check took: the gauges it holds
    /// (`lease_record`), and what it counted in window counters, as recorded at
    /// `check_record` (each never below zero, its epoch bumped). Idempotent: the
    /// records go with it.
    fn cancel<'a>(
        &'a self,
        lease_record: &'a str,
        check_record: &'a str,
        request_id: &'a str,
    ) -> StoreFuture<'a, Cancelled>;

    /// Each counter's usage and epoch, `None` where it does not exist. Keys may belong
    /// to different tenant trees.
    fn snapshot<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Snapshot>>>;

    /// Records beside each counter (in its hash tag) what it held at `at_ms` (unix
    /// milliseconds, the control plane's clock): a usage sample. A counter's samples
    /// older than [`SAMPLES_KEPT_MS`](super::samples::SAMPLES_KEPT_MS) before `at_ms` go,
    /// the newest [`MAX_SAMPLES`](super::samples::MAX_SAMPLES) stay, and all of them go
    /// `SAMPLES_KEPT_MS` after the last one. Keys may belong to different tenant trees.
    fn record_samples<'a>(
        &'a self,
        at_ms: i64,
        counters: &'a [(String, Snapshot)],
    ) -> StoreFuture<'a, ()>;

    /// Each counter's usage now and its samples, oldest first. Keys may belong to
    /// different tenant trees.
    fn samples<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Sampled>>;

    /// Whether the store answers, for `/ready`.
    fn ping(&self) -> StoreFuture<'_, ()>;
}
