//! Counters in process memory, with the same semantics as the Redis script: the store
//! of the handler unit tests, and a reference the Redis store is tested against.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::Utc;

use super::{CounterOp, CounterStore, ScriptOutcome, StoreFuture};

/// A counter's value and the unix second it expires at.
type Entry = (u64, i64);

/// Counters in a map behind a std mutex (never held across an `.await`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    counters: Mutex<HashMap<String, Entry>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // The map stays consistent even if a holder panicked: every update is one insert.
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_and_count_now(&self, ops: &[CounterOp]) -> ScriptOutcome {
        let now = Utc::now().timestamp();
        let mut counters = self.lock();
        let current = |key: &str| match counters.get(key) {
            Some(&(value, expire_at)) if expire_at > now => value,
            _ => 0,
        };
        let used: Vec<u64> = ops.iter().map(|op| current(&op.key)).collect();
        let violated = ops
            .iter()
            .zip(&used)
            .position(|(op, &used)| u128::from(used) + u128::from(op.amount) > u128::from(op.cap));
        if violated.is_some() {
            return ScriptOutcome {
                admitted: false,
                used,
                violated,
            };
        }
        let mut after = Vec::with_capacity(ops.len());
        for (op, used) in ops.iter().zip(used) {
            // Cannot overflow: used + amount <= cap <= u64::MAX was just checked.
            let value = used.saturating_add(op.amount);
            if op.amount > 0 {
                counters.insert(op.key.clone(), (value, op.expire_at));
            }
            after.push(value);
        }
        ScriptOutcome {
            admitted: true,
            used: after,
            violated: None,
        }
    }

    fn read_now(&self, keys: &[String]) -> Vec<u64> {
        let now = Utc::now().timestamp();
        let counters = self.lock();
        keys.iter()
            .map(|key| match counters.get(key) {
                Some(&(value, expire_at)) if expire_at > now => value,
                _ => 0,
            })
            .collect()
    }
}

impl CounterStore for MemoryStore {
    fn check_and_count<'a>(&'a self, ops: &'a [CounterOp]) -> StoreFuture<'a, ScriptOutcome> {
        Box::pin(async move { Ok(self.check_and_count_now(ops)) })
    }

    fn read<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(async move { Ok(self.read_now(keys)) })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}
