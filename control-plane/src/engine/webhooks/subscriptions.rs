//! The enabled webhook subscriptions, cached in process as the definitions are: the
//! decisions compare usage with their thresholds without asking PostgreSQL. Read again
//! on every change (here at once, on other instances through the invalidation bus
//! within a second) and every `--webhook-reload-ms` besides; while PostgreSQL does not
//! answer, the last ones read stay in force.
//!
//! With no enabled subscription, what a decision pays for webhooks is one atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::model::webhook::{Scope, Threshold, WebhookFilter};
use crate::plan::Thresholds;
use crate::repo::{QuotaRepo, RepoError};

/// The enabled subscriptions at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every threshold any of them asks for: what usage is compared with.
    pub thresholds: Thresholds,
    /// Each subscription's filter, by id.
    pub filters: Vec<(String, WebhookFilter)>,
}

impl Snapshot {
    /// The snapshot of `filters`.
    pub fn new(filters: Vec<(String, WebhookFilter)>) -> Snapshot {
        let thresholds = Thresholds::new(filters.iter().flat_map(|(_, f)| f.thresholds()));
        Snapshot {
            thresholds,
            filters,
        }
    }

    /// Whether some subscription asks for `threshold` on the limit of `scope`.
    pub fn wants(&self, scope: &Scope<'_>, threshold: Threshold) -> bool {
        (self.filters.iter()).any(|(_, f)| f.wants(threshold) && f.covers(scope))
    }

    /// Every threshold some subscription asks for on the limit of `scope`, ascending.
    pub fn wanted(&self, scope: &Scope<'_>) -> Vec<Threshold> {
        let mut wanted: Vec<Threshold> = (self.filters.iter())
            .filter(|(_, f)| f.covers(scope))
            .flat_map(|(_, f)| f.thresholds())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
    }
}

/// The cache.
#[derive(Debug)]
pub struct WebhookSubscriptions {
    /// `None` when no subscription is enabled.
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Whether `current` holds anything: read without a lock on every decision.
    any: AtomicBool,
    /// Set by a change: read again at the next tick.
    stale: AtomicBool,
}

impl Default for WebhookSubscriptions {
    fn default() -> WebhookSubscriptions {
        WebhookSubscriptions {
            current: RwLock::new(None),
            any: AtomicBool::new(false),
            // Nothing is known until the first read.
            stale: AtomicBool::new(true),
        }
    }
}

impl WebhookSubscriptions {
    /// The enabled subscriptions, or `None` when there are none.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Marks the cache for reading again (a subscription changed).
    pub fn invalidate(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Puts `filters` in force.
    pub fn set(&self, filters: Vec<(String, WebhookFilter)>) {
        let snapshot = (!filters.is_empty()).then(|| Arc::new(Snapshot::new(filters)));
        let any = snapshot.is_some();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = snapshot;
        self.any.store(any, Ordering::Release);
    }

    /// Reads the enabled subscriptions from PostgreSQL and puts them in force; on
    /// failure the ones in force stay, and it stays marked for reading again.
    pub async fn reload(&self, repo: &QuotaRepo) -> Result<(), RepoError> {
        self.stale.store(false, Ordering::Release);
        match repo.enabled_webhook_filters().await {
            Ok(filters) => {
                self.set(filters);
                Ok(())
            }
            Err(error) => {
                self.stale.store(true, Ordering::Release);
                Err(error)
            }
        }
    }

    /// Keeps the cache current until the process ends: reads again when marked (looked
    /// at every `tick`), and every `every` regardless.
    pub async fn keep_current(self: Arc<Self>, repo: QuotaRepo, every: Duration, tick: Duration) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        let mut failing = false;
        loop {
            ticker.tick().await;
            if !self.stale.load(Ordering::Acquire) && last.elapsed() < every {
                continue;
            }
            last = Instant::now();
            match self.reload(&repo).await {
                Ok(()) => failing = false,
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "cannot read webhook subscriptions; the last ones read stay in force");
                    }
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(tenant: Option<&str>, percents: &[u16], hard: bool) -> WebhookFilter {
        WebhookFilter {
            percents: percents.to_vec(),
            hard,
            tenant: tenant.map(String::from),
            ..WebhookFilter::default()
        }
    }

    #[test]
    fn no_subscription_is_no_snapshot_and_some_are_their_union() {
        let cache = WebhookSubscriptions::default();
        assert!(cache.snapshot().is_none());
        cache.set(vec![
            ("a".into(), filter(Some("acme"), &[80], false)),
            ("b".into(), filter(None, &[50], true)),
        ]);
        let snapshot = cache.snapshot().unwrap();
        assert_eq!(
            snapshot.thresholds,
            Thresholds::new([
                Threshold::Percent(50),
                Threshold::Percent(80),
                Threshold::Hard
            ])
        );
        let scope = |level| Scope {
            level,
            ancestors: &[],
            resource: "requests",
            tier: None,
        };
        assert_eq!(
            snapshot.wanted(&scope("acme")),
            [
                Threshold::Percent(50),
                Threshold::Percent(80),
                Threshold::Hard
            ]
        );
        assert_eq!(
            snapshot.wanted(&scope("globex")),
            [Threshold::Percent(50), Threshold::Hard]
        );
        assert!(!snapshot.wants(&scope("globex"), Threshold::Percent(80)));
        cache.set(Vec::new());
        assert!(cache.snapshot().is_none());
    }
}
