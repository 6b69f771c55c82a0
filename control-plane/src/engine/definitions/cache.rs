//! The in-process cache of quota definitions, so that `/v1/check` does not query
//! PostgreSQL on the hot path and keeps deciding while PostgreSQL is slow or
//! down.
//!
//! Two caches of one kind: the [`Catalog`] (one entry) and tenant [`Chain`]s (one entry
//! per tenant id, unknown tenants included so a flood of made-up ids stays off the
//! database). Each entry is:
//! - **fresh** for the TTL: served as is;
//! - **stale** after it: served at once while one background load refreshes it
//!   (stale-while-revalidate), and kept if that load fails (stale-while-error);
//! - **suspect** after an invalidation (an admin write changed what it holds), or when
//!   its load overlapped one: reloaded before use; only if that reload fails does the
//!   old value decide (and for a second after a failure the reload is not retried, so a
//!   dead PostgreSQL costs no check any time);
//! - **absent**: loaded.
//!
//! Loads are single flight: concurrent lookups of one key wait for one load, which runs
//! as its own task so that it completes and fills the cache even when the caller's
//! deadline gave up on it. Invalidation only marks entries — it never removes what the
//! cache could fall back on — and is targeted: a change to tenant `x` marks every chain
//! that contains `x` (its descendants' too); a change to tiers or role/default
//! assignments marks the catalog.
//!
//! Beside the caches, the [`TenantDirectory`] (`directory.rs`): every tenant's own
//! definitions, for a tenant whose chain is not cached when PostgreSQL does not answer.
//! Invalidations reach it too, as tenants to read again.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::future::Cache;
use prometheus::HistogramVec;

use super::directory::TenantDirectory;
use crate::model::{Catalog, Chain};
use crate::repo::{QuotaRepo, RepoError};

/// How many tenant chains are kept at most (least useful ones are evicted first).
const MAX_CHAINS: u64 = 200_000;

/// After a failed load, how long lookups use the old value without trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How a lookup was served, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Fresh from the cache.
    Hit,
    /// Loaded now (absent or suspect before).
    Miss,
    /// Past its TTL; a refresh is under way.
    Stale,
    /// The load failed; an older (stale or suspect) entry decided instead.
    Fallback,
    /// Nothing cached and PostgreSQL did not answer: the tenant directory's copy
    /// decided.
    Directory,
}

/// A load error shared by every lookup that waited for the same load.
pub type LoadError = Arc<RepoError>;

struct Entry<V> {
    value: V,
    loaded_at: Instant,
    /// Distinguishes successive entries of one key: a load replaces one generation.
    generation: u64,
    suspect: AtomicBool,
    refreshing: AtomicBool,
    /// When a load meant to replace this entry last failed.
    failed_at: std::sync::Mutex<Option<Instant>>,
}

impl<V> Entry<V> {
    fn failed_recently(&self) -> bool {
        self.failed_at
            .lock()
            .map(|at| at.is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE))
            .unwrap_or(false)
    }

    fn failed_now(&self) {
        if let Ok(mut at) = self.failed_at.lock() {
            *at = Some(Instant::now());
        }
    }
}

/// One stale-while-revalidate cache over a loader.
struct SwrCache<K, V> {
    ttl: Duration,
    entries: Cache<K, Arc<Entry<V>>>,
    /// Loads in flight, by key and the generation they replace: single flight.
    loads: Cache<(K, u64), Arc<Entry<V>>>,
    /// Bumped by every invalidation; a load that sees it move is suspect.
    epoch: Arc<AtomicU64>,
    generations: Arc<AtomicU64>,
}

impl<K, V> SwrCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(ttl: Duration, capacity: u64) -> Self {
        SwrCache {
            ttl,
            entries: Cache::builder().max_capacity(capacity).build(),
            loads: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(2))
                .build(),
            epoch: Arc::new(AtomicU64::new(0)),
            generations: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Runs `load` into a new entry of `key`, suspect if an invalidation happened
    /// meanwhile, and stores it.
    fn loading<Fut>(
        &self,
        key: K,
        load: Fut,
    ) -> impl Future<Output = Result<Arc<Entry<V>>, RepoError>>
    where
        Fut: Future<Output = Result<V, RepoError>>,
    {
        let epoch = self.epoch.clone();
        let generations = self.generations.clone();
        let entries = self.entries.clone();
        let started = epoch.load(Ordering::SeqCst);
        async move {
            let value = load.await?;
            let entry = Arc::new(Entry {
                value,
                loaded_at: Instant::now(),
                generation: generations.fetch_add(1, Ordering::SeqCst),
                suspect: AtomicBool::new(epoch.load(Ordering::SeqCst) != started),
                refreshing: AtomicBool::new(false),
                failed_at: std::sync::Mutex::new(None),
            });
            entries.insert(key, entry.clone()).await;
            Ok(entry)
        }
    }

    async fn get<F, Fut>(&self, key: K, load: F) -> Result<(V, Freshness), LoadError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<V, RepoError>> + Send + 'static,
    {
        let current = self.entries.get(&key).await;
        if let Some(entry) = &current {
            if !entry.suspect.load(Ordering::SeqCst) {
                if entry.loaded_at.elapsed() < self.ttl {
                    return Ok((entry.value.clone(), Freshness::Hit));
                }
                if !entry.refreshing.swap(true, Ordering::SeqCst) {
                    self.refresh_in_background(key, entry.clone(), load);
                }
                return Ok((entry.value.clone(), Freshness::Stale));
            }
            if entry.failed_recently() {
                return Ok((entry.value.clone(), Freshness::Fallback));
            }
        }
        let generation = current.as_ref().map_or(0, |e| e.generation);
        let loads = self.loads.clone();
        let loading = self.loading(key.clone(), load());
        let task =
            tokio::spawn(async move { loads.try_get_with((key, generation), loading).await });
        let loaded = match task.await {
            Ok(result) => result,
            Err(join) => Err(Arc::new(RepoError::Corrupt(format!(
                "definitions load failed: {join}"
            )))),
        };
        match (loaded, current) {
            (Ok(entry), _) => Ok((entry.value.clone(), Freshness::Miss)),
            (Err(_), Some(old)) => {
                old.failed_now();
                Ok((old.value.clone(), Freshness::Fallback))
            }
            (Err(error), None) => Err(error),
        }
    }

    fn refresh_in_background<F, Fut>(&self, key: K, stale: Arc<Entry<V>>, load: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<V, RepoError>> + Send + 'static,
    {
        let loading = self.loading(key, load());
        tokio::spawn(async move {
            if let Err(error) = loading.await {
                tracing::warn!(%error, "refreshing quota definitions failed; serving stale ones");
                stale.refreshing.store(false, Ordering::SeqCst);
            }
        });
    }

    /// Marks the entries `matches` selects as suspect.
    fn invalidate_where(&self, matches: impl Fn(&K, &V) -> bool) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for (key, entry) in self.entries.iter() {
            if matches(&key, &entry.value) {
                entry.suspect.store(true, Ordering::SeqCst);
            }
        }
    }

    async fn age(&self, key: &K) -> Option<Duration> {
        self.entries.get(key).await.map(|e| e.loaded_at.elapsed())
    }

    /// Whatever the cache holds for `key`, fresh or not, without loading it.
    async fn held(&self, key: &K) -> Option<V> {
        self.entries.get(key).await.map(|e| e.value.clone())
    }
}

/// The catalog and the tenant chains, cached; the tenant directory beside them.
pub struct DefinitionsCache {
    catalog: SwrCache<(), Arc<Catalog>>,
    chains: SwrCache<String, Option<Arc<Chain>>>,
    /// Every tenant's own definitions, for when PostgreSQL does not answer.
    directory: Arc<TenantDirectory>,
    /// Whether the last load that finished failed because PostgreSQL did not answer:
    /// lookups then turn to the directory without waiting (`engine/lookup.rs`).
    loads_failing: Arc<AtomicBool>,
    /// Observes how long each load from PostgreSQL takes, by what it loads.
    load_duration: HistogramVec,
}

/// Notes in `failing` whether `loaded` failed because PostgreSQL did not answer.
fn note<T>(failing: &AtomicBool, loaded: &Result<T, RepoError>) {
    let failed = loaded.as_ref().is_err_and(RepoError::postgres_failed);
    failing.store(failed, Ordering::Relaxed);
}

impl DefinitionsCache {
    /// A cache whose entries are fresh for `ttl`, beside a directory of at most
    /// `directory_max_tenants` tenants; loads are timed into `load_duration` (labels
    /// `store`, `op`).
    pub fn new(
        ttl: Duration,
        directory_max_tenants: usize,
        load_duration: HistogramVec,
    ) -> DefinitionsCache {
        DefinitionsCache {
            catalog: SwrCache::new(ttl, 1),
            chains: SwrCache::new(ttl, MAX_CHAINS),
            directory: Arc::new(TenantDirectory::new(directory_max_tenants)),
            loads_failing: Arc::new(AtomicBool::new(false)),
            load_duration,
        }
    }

    /// The tenant directory.
    pub fn directory(&self) -> &Arc<TenantDirectory> {
        &self.directory
    }

    /// Whether the last load that finished failed because PostgreSQL did not answer.
    pub fn loads_failing(&self) -> bool {
        self.loads_failing.load(Ordering::Relaxed)
    }

    /// The catalog as last loaded, fresh or not, without loading it; `None` when none
    /// was ever loaded.
    pub async fn held_catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog.held(&()).await
    }

    /// The catalog.
    pub async fn catalog(&self, repo: &QuotaRepo) -> Result<(Arc<Catalog>, Freshness), LoadError> {
        let repo = repo.clone();
        let timer = self
            .load_duration
            .with_label_values(&["postgres", "catalog"]);
        let failing = self.loads_failing.clone();
        self.catalog
            .get((), move || {
                let (repo, timer, failing) = (repo.clone(), timer.clone(), failing.clone());
                async move {
                    let _timing = timer.start_timer();
                    let loaded = repo.load_catalog().await;
                    note(&failing, &loaded);
                    loaded.map(Arc::new)
                }
            })
            .await
    }

    /// The chain of `tenant`; `None` for a tenant that does not exist. A load reads the
    /// grants that have not ended at `now` (the lookup's instant): resolution then keeps
    /// those in force at each decision's own instant, so a grant's end needs no
    /// invalidation.
    pub async fn chain(
        &self,
        repo: &QuotaRepo,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Result<(Option<Arc<Chain>>, Freshness), LoadError> {
        let repo = repo.clone();
        let id = tenant.to_string();
        let timer = self.load_duration.with_label_values(&["postgres", "chain"]);
        let failing = self.loads_failing.clone();
        self.chains
            .get(tenant.to_string(), move || {
                let (repo, id, timer) = (repo.clone(), id.clone(), timer.clone());
                let failing = failing.clone();
                async move {
                    let _timing = timer.start_timer();
                    let loaded = repo.load_chain(&id, now).await;
                    note(&failing, &loaded);
                    Ok(loaded?.map(Arc::new))
                }
            })
            .await
    }

    /// Marks every chain that contains `tenant` (its own and its descendants'), and
    /// has the directory read the tenant again.
    pub fn invalidate_tenant(&self, tenant: &str) {
        self.chains.invalidate_where(|key, chain| {
            key == tenant || chain.as_ref().is_some_and(|c| c.contains(tenant))
        });
        self.directory.tenant_changed(tenant);
    }

    /// Marks the catalog (tiers, limits, role and default assignments), and has the
    /// directory's sync load it again: the directory decides with it.
    pub fn invalidate_catalog(&self) {
        self.mark_catalog();
        self.directory.catalog_changed();
    }

    /// Marks the catalog only, for a lookup that reloads it at once itself.
    pub fn mark_catalog(&self) {
        self.catalog.invalidate_where(|_, _| true);
    }

    /// Marks everything, and has the directory read every tenant again (and the
    /// catalog with them).
    pub fn invalidate_all(&self) {
        self.mark_catalog();
        self.chains.invalidate_where(|_, _| true);
        self.directory.reload_all();
    }

    /// How old the catalog that decides is, if one is loaded.
    pub async fn catalog_age(&self) -> Option<Duration> {
        self.catalog.age(&()).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn counting_loader(
        loads: Arc<AtomicUsize>,
        fail: Arc<AtomicBool>,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<u64, RepoError>> + Send>>
           + Send
           + Sync
           + 'static {
        move || {
            let loads = loads.clone();
            let fail = fail.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let n = loads.fetch_add(1, Ordering::SeqCst) as u64 + 1;
                if fail.load(Ordering::SeqCst) {
                    Err(RepoError::Corrupt("down".into()))
                } else {
                    Ok(n)
                }
            })
        }
    }

    #[tokio::test]
    async fn a_thousand_concurrent_lookups_of_a_cold_key_make_one_load() {
        let cache: Arc<SwrCache<String, u64>> =
            Arc::new(SwrCache::new(Duration::from_secs(60), 10));
        let loads = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let cache = cache.clone();
            let loader = counting_loader(loads.clone(), fail.clone());
            tasks.push(tokio::spawn(async move {
                cache.get("acme".into(), loader).await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().0, 1);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stale_entry_is_served_at_once_and_refreshed_once_in_the_background() {
        let cache = SwrCache::new(Duration::from_millis(200), 10);
        let loads = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let loader = || counting_loader(loads.clone(), fail.clone());
        assert_eq!(
            cache.get("k".to_string(), loader()).await.unwrap(),
            (1, Freshness::Miss)
        );
        assert_eq!(
            cache.get("k".to_string(), loader()).await.unwrap(),
            (1, Freshness::Hit)
        );
        tokio::time::sleep(Duration::from_millis(220)).await;
        for _ in 0..10 {
            assert_eq!(
                cache.get("k".to_string(), loader()).await.unwrap(),
                (1, Freshness::Stale)
            );
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "one refresh for ten stale lookups"
        );
        assert_eq!(
            cache.get("k".to_string(), loader()).await.unwrap(),
            (2, Freshness::Hit)
        );
    }

    #[tokio::test]
    async fn failing_loads_keep_serving_the_last_known_value() {
        let cache = SwrCache::new(Duration::from_millis(10), 10);
        let loads = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let loader = || counting_loader(loads.clone(), fail.clone());
        cache.get("k".to_string(), loader()).await.unwrap();
        fail.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(40)).await;
            assert_eq!(cache.get("k".to_string(), loader()).await.unwrap().0, 1);
        }
        // Nothing known at all: the error comes through.
        assert!(cache.get("other".to_string(), loader()).await.is_err());
    }

    #[tokio::test]
    async fn an_invalidated_entry_is_reloaded_and_still_decides_if_the_reload_fails() {
        let cache = SwrCache::new(Duration::from_secs(60), 10);
        let loads = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let loader = || counting_loader(loads.clone(), fail.clone());
        cache.get("k".to_string(), loader()).await.unwrap();
        cache.invalidate_where(|_, _| true);
        assert_eq!(
            cache.get("k".to_string(), loader()).await.unwrap(),
            (2, Freshness::Miss)
        );
        cache.invalidate_where(|_, _| true);
        fail.store(true, Ordering::SeqCst);
        assert_eq!(
            cache.get("k".to_string(), loader()).await.unwrap(),
            (2, Freshness::Fallback)
        );
        // Right after a failure the old value decides without another attempt.
        assert_eq!(
            cache.get("k".to_string(), loader()).await.unwrap(),
            (2, Freshness::Fallback)
        );
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn load_overlapping_an_invalidation_is_reloaded_before_it_is_trusted() {
        let cache = Arc::new(SwrCache::new(Duration::from_secs(60), 10));
        let loads = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let loader = counting_loader(loads.clone(), fail.clone());
        let pending = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("k".to_string(), loader).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        // An admin write lands while the load is in flight.
        cache.invalidate_where(|_, _| true);
        assert_eq!(pending.await.unwrap().unwrap().0, 1);
        let again = cache
            .get(
                "k".to_string(),
                counting_loader(loads.clone(), fail.clone()),
            )
            .await
            .unwrap();
        assert_eq!(again, (2, Freshness::Miss));
    }
}
