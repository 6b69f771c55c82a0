//! Persists usage from Redis to PostgreSQL: so that usage
//! survives a Redis loss (counters are re-seeded from it) and can be billed.
//!
//! Every counted window counter is marked dirty; every flush interval (at most a minute)
//! the dirty counters are read from Redis and upserted. A window's final value is written
//! by the first flush after its last use, so windows are persisted at their end too. A
//! flush that fails keeps its counters dirty for the next one; while PostgreSQL is down
//! they wait in memory (bounded; `tollgate_history_pending_counters`).
//!
//! What can be lost: a crash loses the dirty marks of the last interval — the counters
//! themselves are safe in Redis, and the next use of each marks it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::rows::HistoryRow;
use crate::metrics::Metrics;
use crate::repo::connection::QuotaRepo;
use crate::repo::error::RepoError;
use crate::store::{Counter, CounterStore, StoreError};

/// At most this many counters wait to be persisted.
const MAX_DIRTY: usize = 500_000;

/// The history row a counter key is persisted as (without its usage).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CounterMeta {
    tenant_id: String,
    resource: String,
    series: String,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
}

/// The history row of a counter a settlement names.
fn meta_of(counter: &Counter) -> CounterMeta {
    CounterMeta {
        tenant_id: counter.tenant.clone(),
        resource: counter.resource.clone(),
        series: counter.series.name(),
        window_start: counter.window.start,
        window_end: counter.window.end,
    }
}

/// Why a flush failed.
#[derive(Debug, thiserror::Error)]
enum FlushError {
    #[error("reading the counters from Redis failed")]
    Redis(#[from] StoreError),
    #[error("writing the usage history failed")]
    Postgres(#[from] RepoError),
}

/// Reads the counters of `batch` and upserts what exists. Returns the rows written.
async fn persist(
    batch: &[(String, CounterMeta)],
    store: &dyn CounterStore,
    repo: &QuotaRepo,
) -> Result<u64, FlushError> {
    let keys: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
    let snapshots = store.snapshot(&keys).await?;
    let rows: Vec<HistoryRow> = batch
        .iter()
        .zip(snapshots)
        .filter_map(|((_, meta), snapshot)| {
            snapshot.map(|s| HistoryRow {
                tenant_id: meta.tenant_id.clone(),
                resource: meta.resource.clone(),
                series: meta.series.clone(),
                window_start: meta.window_start,
                window_end: meta.window_end,
                used: s.used,
                epoch: s.epoch,
            })
        })
        .collect();
    repo.upsert_history(&rows).await?;
    Ok(rows.len() as u64)
}

/// Counters used since the last flush, and when one last succeeded.
#[derive(Debug)]
pub struct UsageFlusher {
    dirty: Mutex<HashMap<String, CounterMeta>>,
    last_success: Mutex<Instant>,
    metrics: Arc<Metrics>,
}

impl UsageFlusher {
    /// A flusher with nothing to flush.
    pub fn new(metrics: Arc<Metrics>) -> UsageFlusher {
        UsageFlusher {
            dirty: Mutex::new(HashMap::new()),
            last_success: Mutex::new(Instant::now()),
            metrics,
        }
    }

    fn dirty(&self) -> MutexGuard<'_, HashMap<String, CounterMeta>> {
        // Each update is one insert or one swap: a poisoned map is consistent.
        self.dirty.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the counters a settlement moved (a refund's may be an older rolling bucket).
    pub fn touch_counters(&self, counters: &[Counter]) {
        self.mark(counters.iter().map(|c| (&c.key, move || Some(meta_of(c)))));
    }

    /// Persists `counters` now (usage counted during a Redis outage that just reached
    /// Redis must be in the history before PostgreSQL forgets it was pending).
    pub async fn persist_counters(
        &self,
        store: &dyn CounterStore,
        repo: &QuotaRepo,
        counters: &[Counter],
    ) -> Result<u64, impl std::error::Error> {
        let batch: Vec<(String, CounterMeta)> = counters
            .iter()
            .map(|c| (c.key.clone(), meta_of(c)))
            .collect();
        persist(&batch, store, repo).await
    }

    /// Marks each counter not yet marked; `counter` names it and is called only then
    /// (checks mostly touch counters that are already dirty).
    pub fn touch<'k, C: FnOnce() -> Option<Counter>>(
        &self,
        counters: impl Iterator<Item = (&'k String, C)>,
    ) {
        self.mark(counters.map(|(key, counter)| (key, move || counter().as_ref().map(meta_of))));
    }

    fn mark<'k, M: FnOnce() -> Option<CounterMeta>>(
        &self,
        counters: impl Iterator<Item = (&'k String, M)>,
    ) {
        let mut dirty = self.dirty();
        for (key, meta) in counters {
            if dirty.contains_key(key) {
                continue;
            }
            if dirty.len() >= MAX_DIRTY {
                self.metrics.history_dropped.inc();
                continue;
            }
            if let Some(meta) = meta() {
                dirty.insert(key.clone(), meta);
            }
        }
        self.metrics.history_pending.set(dirty.len() as i64);
    }

    /// Reads every dirty counter and persists it. Returns how many rows were written.
    pub async fn flush(&self, store: &dyn CounterStore, repo: &QuotaRepo) -> u64 {
        let batch: Vec<(String, CounterMeta)> = self.dirty().drain().collect();
        if batch.is_empty() {
            self.succeeded();
            return 0;
        }
        let written = persist(&batch, store, repo).await;
        match written {
            Ok(n) => {
                self.metrics.history_rows.inc_by(n);
                self.succeeded();
                self.metrics.history_pending.set(self.dirty().len() as i64);
                n
            }
            Err(error) => {
                tracing::warn!(%error, counters = batch.len(), "usage history flush failed; will retry");
                let mut dirty = self.dirty();
                for (key, meta) in batch {
                    if dirty.len() < MAX_DIRTY {
                        dirty.entry(key).or_insert(meta);
                    } else {
                        self.metrics.history_dropped.inc();
                    }
                }
                self.metrics.history_pending.set(dirty.len() as i64);
                0
            }
        }
    }

    fn succeeded(&self) {
        *self
            .last_success
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Seconds since the last successful flush, for the lag metric.
    pub fn lag(&self) -> Duration {
        self.last_success
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    /// Flushes every `every` until the process ends.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn CounterStore>,
        repo: QuotaRepo,
        every: Duration,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.flush(store.as_ref(), &repo).await;
        }
    }
}
