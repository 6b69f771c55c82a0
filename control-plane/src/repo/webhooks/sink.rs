//! [`CrossingSink`]: threshold crossings the decisions saw, written to PostgreSQL in the
//! background — a decision never waits on it — with their outbox rows, in one statement
//! per batch (`crossings.rs`).
//!
//! Crossings wait in a bounded queue, one entry per (counter, threshold): a flood of
//! rejections at a hard limit is one entry. Those written (or found written by another
//! control plane) are remembered, so the same crossing seen again — each rejection, or
//! the history flusher's safety net at every flush — costs no write; the memory is
//! bounded and forgets everything when full, which only costs one write more per
//! crossing. What does not fit in the queue is dropped and counted
//! (`tollgate_webhook_crossings_dropped_total`): the safety net finds it again at the
//! counter's next flush. While PostgreSQL is down, crossings wait and are written when
//! it is back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::crossings::NewCrossing;
use crate::metrics::Metrics;
use crate::model::webhook::Threshold;
use crate::repo::connection::QuotaRepo;

/// At most this many crossings wait to be written.
const MAX_PENDING: usize = 10_000;

/// At most this many crossings are known (waiting, being written, or written).
const MAX_KNOWN: usize = 100_000;

#[derive(Debug, Default)]
struct Queues {
    /// By counter key, each threshold known: waiting to be written (`Some`), or being
    /// written or written (`None`). Keyed by the counter so that a decision can ask
    /// without allocating.
    known: HashMap<String, Vec<(Threshold, Option<NewCrossing>)>>,
    /// How many wait.
    pending: usize,
    /// How many are known in all.
    count: usize,
}

impl Queues {
    fn knows(&self, counter_key: &str, threshold: Threshold) -> bool {
        self.known
            .get(counter_key)
            .is_some_and(|known| known.iter().any(|(t, _)| *t == threshold))
    }

    /// Forgets what is written, keeping what waits.
    fn forget_written(&mut self) {
        self.known.retain(|_, known| {
            known.retain(|(_, waiting)| waiting.is_some());
            !known.is_empty()
        });
        self.count = self.pending;
    }
}

/// The decision path's writer of threshold crossings.
#[derive(Debug)]
pub struct CrossingSink {
    queues: Mutex<Queues>,
    metrics: Arc<Metrics>,
    /// Woken when a write queued deliveries, so this control plane's deliverer sends
    /// them at once rather than at its next poll.
    queued: Arc<Notify>,
}

impl CrossingSink {
    /// An empty sink.
    pub fn new(metrics: Arc<Metrics>) -> CrossingSink {
        CrossingSink {
            queues: Mutex::new(Queues::default()),
            metrics,
            queued: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        // Every update is one insert or one swap: a poisoned lock is consistent.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What wakes the deliverer.
    pub fn queued(&self) -> Arc<Notify> {
        self.queued.clone()
    }

    /// Whether the crossing of `counter_key` at `threshold` waits, is being written or
    /// was written: offering it again would change nothing.
    pub fn knows(&self, counter_key: &str, threshold: Threshold) -> bool {
        self.lock().knows(counter_key, threshold)
    }

    /// Queues `crossing` unless it is known already.
    pub fn offer(&self, crossing: NewCrossing) {
        let mut queues = self.lock();
        if queues.knows(&crossing.limit.counter_key, crossing.threshold) {
            return;
        }
        if queues.pending >= MAX_PENDING {
            drop(queues);
            self.metrics.webhook_crossings_dropped.inc();
            return;
        }
        if queues.count >= MAX_KNOWN {
            queues.forget_written();
        }
        queues.pending += 1;
        queues.count += 1;
        let key = crossing.limit.counter_key.clone();
        let threshold = crossing.threshold;
        queues
            .known
            .entry(key)
            .or_default()
            .push((threshold, Some(crossing)));
    }

    /// Takes what waits; it stays known while it is written.
    fn take(&self) -> Vec<NewCrossing> {
        let mut queues = self.lock();
        if queues.pending == 0 {
            return Vec::new();
        }
        queues.pending = 0;
        (queues.known.values_mut())
            .flat_map(|known| known.iter_mut().filter_map(|(_, waiting)| waiting.take()))
            .collect()
    }

    /// Makes `crossings`, which could not be written, wait again, as far as they fit.
    fn put_back(&self, crossings: Vec<NewCrossing>) {
        let mut guard = self.lock();
        let queues = &mut *guard;
        let mut dropped = 0;
        for crossing in crossings {
            let threshold = crossing.threshold;
            let fits = queues.pending < MAX_PENDING;
            let Some(known) = queues.known.get_mut(&crossing.limit.counter_key) else {
                continue;
            };
            let Some(at) = known.iter().position(|(t, _)| *t == threshold) else {
                continue;
            };
            if fits {
                known[at].1 = Some(crossing);
                queues.pending += 1;
            } else {
                known.swap_remove(at);
                queues.count = queues.count.saturating_sub(1);
                dropped += 1;
            }
        }
        self.metrics.webhook_crossings_dropped.inc_by(dropped);
    }

    /// Writes what waits; on failure keeps it for the next attempt.
    pub async fn flush(&self, repo: &QuotaRepo) {
        let batch = self.take();
        if batch.is_empty() {
            return;
        }
        match repo.record_crossings(&batch).await {
            Ok(recorded) => {
                self.metrics.webhook_crossings.inc_by(recorded.crossings);
                (self.metrics.webhook_crossings_reported).inc_by(batch.len() as u64);
                if recorded.deliveries > 0 {
                    self.queued.notify_one();
                }
            }
            Err(error) => {
                tracing::warn!(%error, crossings = batch.len(), "cannot record threshold crossings yet");
                self.put_back(batch);
            }
        }
    }

    /// Flushes every `every` until the process ends.
    pub async fn run(self: Arc<Self>, repo: QuotaRepo, every: Duration) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.flush(&repo).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::window::Window;
    use crate::repo::webhooks::crossings::CrossedLimit;

    fn crossing(counter: &str, threshold: Threshold) -> NewCrossing {
        let now = Utc::now();
        NewCrossing {
            limit: Arc::new(CrossedLimit {
                counter_key: counter.into(),
                tenant: "acme".into(),
                level: "acme".into(),
                ancestors: Vec::new(),
                tier: None,
                resource: "requests".into(),
                policy: "monthly".into(),
                period: "month".into(),
                window_kind: "calendar".into(),
                window: Window {
                    start: now,
                    end: now,
                },
                resets_at: now,
                quota: 10,
                hard_limit: 10,
            }),
            threshold,
            units: 10,
            used: 10,
            at: now,
            found_by: "check",
        }
    }

    #[test]
    fn one_crossing_seen_many_times_waits_once_and_once_written_is_not_queued_again() {
        let sink = CrossingSink::new(Arc::new(Metrics::new(false).unwrap()));
        for _ in 0..1000 {
            sink.offer(crossing("c", Threshold::Hard));
        }
        sink.offer(crossing("c", Threshold::Percent(80)));
        let batch = sink.take();
        assert_eq!(batch.len(), 2);
        assert!(sink.knows("c", Threshold::Hard));
        sink.offer(crossing("c", Threshold::Hard));
        assert!(sink.take().is_empty());
        sink.put_back(batch);
        assert_eq!(
            sink.take().len(),
            2,
            "what could not be written waits again"
        );
    }

    #[test]
    fn what_does_not_fit_is_dropped_and_counted() {
        let metrics = Arc::new(Metrics::new(false).unwrap());
        let sink = CrossingSink::new(metrics.clone());
        for i in 0..MAX_PENDING + 3 {
            sink.offer(crossing(&format!("c{i}"), Threshold::Hard));
        }
        assert_eq!(metrics.webhook_crossings_dropped.get(), 3);
        assert_eq!(sink.take().len(), MAX_PENDING);
    }
}
