//! [`MemoryStore`]: the map behind a mutex, and the [`CounterStore`] calls on it.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::entries::{past, release_held, Entries};
use super::{check, lease, samples, settle};
use crate::store::call::{Adjustment, Call, CallMode, Reply, Seed, Snapshot};
use crate::store::counter_store::{CounterStore, StoreFuture};
use crate::store::error::StoreError;
use crate::store::lease::{LeaseCall, LeaseReply};
use crate::store::samples::Sampled;
use crate::store::settlement::{Cancelled, SettleReply, Settlement};
use crate::store::validate::{validate_call, validate_lease, validate_settlement};

/// Counters in a map behind a std mutex (never held across an `.await`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Forgets everything, as a Redis restart without persistence does.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Every update runs to completion under the lock; a poisoned map is consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CounterStore for MemoryStore {
    fn call<'a>(&'a self, call: &'a Call) -> StoreFuture<'a, Reply> {
        Box::pin(async move {
            validate_call(call)?;
            if call.mode == CallMode::Check && past(call.deadline_ms) {
                return Err(StoreError::PastDeadline);
            }
            check::run(&mut self.lock(), call)
        })
    }

    fn seed<'a>(&'a self, markers: &'a [String], seeds: &'a [Seed]) -> StoreFuture<'a, u64> {
        Box::pin(async move { Ok(check::seed(&mut self.lock(), markers, seeds)) })
    }

    fn adjust<'a>(
        &'a self,
        keys: &'a [String],
        adjustment: Adjustment,
        ttl_s: i64,
    ) -> StoreFuture<'a, (u64, u64)> {
        Box::pin(async move { Ok(check::adjust(&mut self.lock(), keys, adjustment, ttl_s)) })
    }

    fn settle<'a>(&'a self, settlement: &'a Settlement) -> StoreFuture<'a, SettleReply> {
        Box::pin(async move {
            validate_settlement(settlement)?;
            Ok(settle::settle(&mut self.lock(), settlement))
        })
    }

    fn lease<'a>(&'a self, budget: &'a LeaseCall) -> StoreFuture<'a, LeaseReply> {
        Box::pin(async move {
            validate_lease(budget)?;
            Ok(lease::lease(&mut self.lock(), budget))
        })
    }

    fn release<'a>(&'a self, record_key: &'a str, request_id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move { Ok(release_held(&mut self.lock(), record_key, request_id)) })
    }

    fn cancel<'a>(
        &'a self,
        lease_record: &'a str,
        check_record: &'a str,
        request_id: &'a str,
    ) -> StoreFuture<'a, Cancelled> {
        Box::pin(async move {
            Ok(settle::cancel(
                &mut self.lock(),
                lease_record,
                check_record,
                request_id,
            ))
        })
    }

    fn snapshot<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Snapshot>>> {
        Box::pin(async move { Ok(check::snapshot(&mut self.lock(), keys)) })
    }

    fn record_samples<'a>(
        &'a self,
        at_ms: i64,
        counters: &'a [(String, Snapshot)],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move { samples::record(&mut self.lock(), at_ms, counters) })
    }

    fn samples<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Sampled>> {
        Box::pin(async move { samples::read(&self.lock(), keys) })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}
