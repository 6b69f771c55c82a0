//! Events from the decision path (first warnings, rejections) written to the event log
//! in the background, so that a check never waits on PostgreSQL.
//!
//! Rejections are aggregated: one event per (tenant, limit, window) and flush interval
//! with their count, so a tenant hammering a full quota writes a row every few seconds,
//! not one per request. Everything waiting is bounded; what does not fit is dropped and
//! counted (`tollgate_events_dropped_total`). While PostgreSQL is down, events wait and
//! are written when it is back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::event::NewEvent;
use crate::metrics::Metrics;
use crate::repo::connection::QuotaRepo;

/// At most this many events wait to be written.
const MAX_PENDING: usize = 10_000;
/// At most this many distinct limits have rejections counted between two flushes.
const MAX_REJECTION_KEYS: usize = 10_000;

/// Which limit a rejection or warning is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LimitRef {
    /// The tenant whose request it was.
    pub tenant: String,
    /// The tenant whose limit it is (the tenant or an ancestor).
    pub level: String,
    /// The resource.
    pub resource: String,
    /// The policy name (`monthly`, `rolling-hour`).
    pub policy: String,
    /// The counter of the current window (identifies the window).
    pub counter: String,
}

#[derive(Debug)]
struct Rejections {
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    limit: u64,
    used: u64,
}

#[derive(Debug, Default)]
struct Queues {
    pending: Vec<NewEvent>,
    rejections: HashMap<LimitRef, Rejections>,
}

/// The decision path's event log writer.
#[derive(Debug)]
pub struct EventSink {
    queues: Mutex<Queues>,
    metrics: Arc<Metrics>,
}

impl EventSink {
    /// An empty sink.
    pub fn new(metrics: Arc<Metrics>) -> EventSink {
        EventSink {
            queues: Mutex::new(Queues::default()),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        // Every update is one push or one map entry: a poisoned lock is consistent.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first warning of a limit's window: usage just crossed its warning threshold.
    pub fn warning(&self, limit: &LimitRef, used: u64, quota: u64, at: DateTime<Utc>) {
        let event = NewEvent {
            kind: "quota.warning".into(),
            tenant_id: Some(limit.level.clone()),
            data: json!({
                "requested_by": limit.tenant, "resource": limit.resource, "policy": limit.policy,
                "counter": limit.counter, "used": used, "quota": quota, "at": at,
            }),
            ..NewEvent::default()
        };
        let mut queues = self.lock();
        if queues.pending.len() < MAX_PENDING {
            queues.pending.push(event);
        } else {
            self.metrics.events_dropped.inc();
        }
    }

    /// A request rejected by `limit`; counted until the next flush.
    pub fn rejection(&self, limit: &LimitRef, used: u64, hard: u64, at: DateTime<Utc>) {
        let mut queues = self.lock();
        let room = queues.rejections.len() < MAX_REJECTION_KEYS;
        match queues.rejections.get_mut(limit) {
            Some(entry) => {
                entry.count += 1;
                entry.last = at;
                entry.used = used;
            }
            None if room => {
                queues.rejections.insert(
                    limit.clone(),
                    Rejections {
                        count: 1,
                        first: at,
                        last: at,
                        limit: hard,
                        used,
                    },
                );
            }
            None => self.metrics.events_dropped.inc(),
        }
    }

    /// Takes what is waiting: queued events, then one event per aggregated rejection.
    fn take(&self) -> Vec<NewEvent> {
        let mut queues = self.lock();
        let mut events = std::mem::take(&mut queues.pending);
        for (limit, r) in queues.rejections.drain() {
            events.push(NewEvent {
                kind: "quota.rejected".into(),
                tenant_id: Some(limit.level.clone()),
                data: json!({
                    "requested_by": limit.tenant, "resource": limit.resource,
                    "policy": limit.policy, "counter": limit.counter, "count": r.count,
                    "first_at": r.first, "last_at": r.last, "limit": r.limit, "used": r.used,
                }),
                ..NewEvent::default()
            });
        }
        events
    }

    /// Puts back events that could not be written, as far as they fit.
    fn put_back(&self, events: Vec<NewEvent>) {
        let mut queues = self.lock();
        let room = MAX_PENDING.saturating_sub(queues.pending.len());
        let dropped = events.len().saturating_sub(room);
        queues.pending.extend(events.into_iter().take(room));
        self.metrics.events_dropped.inc_by(dropped as u64);
    }

    /// Writes what is waiting; on failure keeps it for the next attempt.
    pub async fn flush(&self, repo: &QuotaRepo) {
        let events = self.take();
        if events.is_empty() {
            return;
        }
        let mut kinds: HashMap<String, u64> = HashMap::new();
        for event in &events {
            *kinds.entry(event.kind.clone()).or_default() += 1;
        }
        match repo.append_events(&events).await {
            Ok(_) => {
                for (kind, n) in kinds {
                    self.metrics
                        .events_written
                        .with_label_values(&[&kind])
                        .inc_by(n);
                }
            }
            Err(error) => {
                tracing::warn!(%error, events = events.len(), "cannot write events yet");
                self.put_back(events);
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
    use super::*;

    fn limit(tenant: &str) -> LimitRef {
        LimitRef {
            tenant: tenant.into(),
            level: "acme".into(),
            resource: "requests".into(),
            policy: "per-minute".into(),
            counter: "c".into(),
        }
    }

    #[test]
    fn a_flood_of_rejections_becomes_one_event_with_its_count() {
        let sink = EventSink::new(Arc::new(Metrics::new(false).unwrap()));
        let at = Utc::now();
        for _ in 0..10_000 {
            sink.rejection(&limit("acme/alice"), 10, 10, at);
        }
        sink.rejection(&limit("acme/bob"), 10, 10, at);
        let events = sink.take();
        assert_eq!(events.len(), 2);
        let alice = events
            .iter()
            .find(|e| e.data["requested_by"] == "acme/alice")
            .unwrap();
        assert_eq!(alice.kind, "quota.rejected");
        assert_eq!(alice.data["count"], 10_000);
        assert!(sink.take().is_empty());
    }

    #[test]
    fn what_does_not_fit_is_dropped_and_counted() {
        let metrics = Arc::new(Metrics::new(false).unwrap());
        let sink = EventSink::new(metrics.clone());
        for i in 0..MAX_PENDING + 5 {
            sink.warning(&limit(&format!("t{i}")), 9, 10, Utc::now());
        }
        assert_eq!(metrics.events_dropped.get(), 5);
        assert_eq!(sink.take().len(), MAX_PENDING);
    }
}
