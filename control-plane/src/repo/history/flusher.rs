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
//!
//! Each flush also leaves, beside every counter it read whose window is longer than
//! five minutes, a usage sample (`store/samples.rs`): what it held and when, kept ten
//! minutes, from which a tenant's view of its quota tells its burn rate. It costs one
//! more pipelined Redis round trip per tenant tree a flush reads, and nothing on the
//! check path. A sample that cannot be written is skipped (the next flush writes
//! another); it never fails the flush.
//!
//! And each flush is the webhooks' safety net: a counter marked with a [`Watch`] (the
//! thresholds subscriptions ask for on its limit) whose persisted usage has reached one
//! of them offers that crossing to the [`CrossingSink`] again. A crossing already
//! written costs nothing (the sink remembers it, and the table keeps one row per
//! counter and threshold); one whose report was lost — a full queue, a control plane
//! killed before its sink wrote — is recorded then, at the counter's next flush.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::model::window::Window;

use super::rows::HistoryRow;
use crate::metrics::Metrics;
use crate::repo::connection::QuotaRepo;
use crate::repo::error::RepoError;
use crate::repo::webhooks::{CrossingSink, Watch};
use crate::store::samples::is_sampled;
use crate::store::{Counter, CounterStore, Snapshot, StoreError};

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
    /// The thresholds to check its usage against, when subscriptions watch its limit.
    watch: Option<Arc<Watch>>,
}

/// The history row of a counter a settlement names.
fn meta_of(counter: &Counter) -> CounterMeta {
    CounterMeta {
        tenant_id: counter.tenant.clone(),
        resource: counter.resource.clone(),
        series: counter.series.name(),
        window_start: counter.window.start,
        window_end: counter.window.end,
        watch: None,
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

/// Reads the counters of `batch` and upserts what exists; with `sample_at` (unix ms),
/// first records what was read as a usage sample of each counter whose window is long
/// enough to need them; with `crossings`, offers it the thresholds each watched counter
/// has reached, as read at that instant. Returns the rows written.
async fn persist(
    batch: &[(String, CounterMeta)],
    store: &dyn CounterStore,
    repo: &QuotaRepo,
    sample_at: Option<DateTime<Utc>>,
    crossings: Option<&CrossingSink>,
) -> Result<u64, FlushError> {
    let keys: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
    let snapshots = store.snapshot(&keys).await?;
    if let Some(at) = sample_at {
        record_samples(batch, &snapshots, store, at.timestamp_millis()).await;
        if let Some(sink) = crossings {
            for ((_, meta), snapshot) in batch.iter().zip(&snapshots) {
                if let (Some(watch), Some(snapshot)) = (&meta.watch, snapshot) {
                    watch.reached(snapshot.used, at).for_each(|c| sink.offer(c));
                }
            }
        }
    }
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

/// Records the existing counters of `batch` whose window is longer than the burn
/// rate's lookback, as read at `at_ms`; a failure is logged, never fails the flush.
async fn record_samples(
    batch: &[(String, CounterMeta)],
    snapshots: &[Option<Snapshot>],
    store: &dyn CounterStore,
    at_ms: i64,
) {
    let sampled: Vec<(String, Snapshot)> = batch
        .iter()
        .zip(snapshots)
        .filter_map(|((key, meta), snapshot)| {
            let window = Window {
                start: meta.window_start,
                end: meta.window_end,
            };
            Some((key.clone(), (*snapshot)?)).filter(|_| is_sampled(&window))
        })
        .collect();
    if sampled.is_empty() {
        return;
    }
    if let Err(error) = store.record_samples(at_ms, &sampled).await {
        tracing::warn!(%error, counters = sampled.len(), "usage samples not recorded");
    }
}

/// Counters used since the last flush, and when one last succeeded.
#[derive(Debug)]
pub struct UsageFlusher {
    dirty: Mutex<HashMap<String, CounterMeta>>,
    last_success: Mutex<Instant>,
    metrics: Arc<Metrics>,
    /// Where watched counters' reached thresholds go (the webhooks' safety net).
    crossings: Arc<CrossingSink>,
}

impl UsageFlusher {
    /// A flusher with nothing to flush, offering reached thresholds to `crossings`.
    pub fn new(metrics: Arc<Metrics>, crossings: Arc<CrossingSink>) -> UsageFlusher {
        UsageFlusher {
            dirty: Mutex::new(HashMap::new()),
            last_success: Mutex::new(Instant::now()),
            metrics,
            crossings,
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
        persist(&batch, store, repo, None, None).await
    }

    /// Marks each counter not yet marked; `counter` names it, with the thresholds to
    /// watch on it, and is called only then (checks mostly touch counters that are
    /// already dirty).
    pub fn touch<'k, C: FnOnce() -> Option<(Counter, Option<Arc<Watch>>)>>(
        &self,
        counters: impl Iterator<Item = (&'k String, C)>,
    ) {
        self.mark(counters.map(|(key, counter)| {
            (key, move || {
                counter().map(|(counter, watch)| CounterMeta {
                    watch,
                    ..meta_of(&counter)
                })
            })
        }));
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

    /// Reads every dirty counter, samples it (`now` is the control plane's clock) and
    /// persists it. Returns how many rows were written.
    pub async fn flush(
        &self,
        store: &dyn CounterStore,
        repo: &QuotaRepo,
        now: DateTime<Utc>,
    ) -> u64 {
        let batch: Vec<(String, CounterMeta)> = self.dirty().drain().collect();
        if batch.is_empty() {
            self.succeeded();
            return 0;
        }
        let written = persist(&batch, store, repo, Some(now), Some(&self.crossings)).await;
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

    /// Flushes every `every` until the process ends; `clock` says when (the engine's).
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn CounterStore>,
        repo: QuotaRepo,
        every: Duration,
        clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.flush(store.as_ref(), &repo, clock()).await;
        }
    }
}
