//! The in-process cache of tenant quotas, so `/v1/check` does not query PostgreSQL on
//! the hot path (SPEC §5).
//!
//! Entries live for a short TTL; unknown tenants are cached too (negative entries), so
//! a flood of requests for a made-up tenant does not reach the database. Admin writes
//! clear the cache. A load that started before a clear does not refill the cache with
//! what it read (generation check). Expired entries are kept so that checks can fall
//! back to them while PostgreSQL is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::model::TenantQuota;

/// Above this many entries, inserting first drops every expired one, then everything.
const MAX_ENTRIES: usize = 100_000;

/// A cached lookup: the quota, or `None` for an unknown tenant.
pub type Cached = Option<Arc<TenantQuota>>;

/// What the cache knows about a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Loaded within the TTL.
    Fresh(Cached),
    /// Older than the TTL: reload, but usable if the reload fails.
    Stale(Cached),
    /// Never loaded, or cleared since.
    Absent,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, (Instant, Cached)>,
    /// Bumped by every clear.
    generation: u64,
}

/// Tenant quotas by tenant id.
#[derive(Debug)]
pub struct DefinitionsCache {
    ttl: Duration,
    entries: Mutex<Entries>,
}

impl DefinitionsCache {
    /// A cache whose entries are fresh for `ttl`.
    pub fn new(ttl: Duration) -> DefinitionsCache {
        DefinitionsCache {
            ttl,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Every update is a single map operation, so a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What is cached for `tenant` at `now`.
    pub fn lookup(&self, tenant: &str, now: Instant) -> Lookup {
        match self.lock().map.get(tenant) {
            Some((loaded, cached)) if now.duration_since(*loaded) < self.ttl => {
                Lookup::Fresh(cached.clone())
            }
            Some((_, cached)) => Lookup::Stale(cached.clone()),
            None => Lookup::Absent,
        }
    }

    /// The generation to pass to [`DefinitionsCache::insert`]; take it before loading.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Caches what a load that began at `generation` read, unless the cache was cleared
    /// meanwhile (the load may have read definitions that are already replaced).
    pub fn insert(&self, tenant: &str, cached: Cached, generation: u64, now: Instant) {
        let mut entries = self.lock();
        if entries.generation != generation {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries
                .map
                .retain(|_, (loaded, _)| now.duration_since(*loaded) < ttl);
            if entries.map.len() >= MAX_ENTRIES {
                entries.map.clear();
            }
        }
        entries.map.insert(tenant.to_string(), (now, cached));
    }

    /// Forgets everything; called after every admin write.
    pub fn clear(&self) {
        let mut entries = self.lock();
        entries.map.clear();
        entries.generation = entries.generation.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(tenant: &str) -> Cached {
        Some(Arc::new(TenantQuota {
            tenant: tenant.into(),
            root: tenant.into(),
            tier: "pro".into(),
            limits: vec![],
        }))
    }

    #[test]
    fn entry_is_fresh_within_the_ttl_and_stale_after() {
        let cache = DefinitionsCache::new(Duration::from_secs(5));
        let t0 = Instant::now();
        cache.insert("acme", quota("acme"), cache.generation(), t0);
        assert_eq!(
            cache.lookup("acme", t0 + Duration::from_secs(4)),
            Lookup::Fresh(quota("acme"))
        );
        assert_eq!(
            cache.lookup("acme", t0 + Duration::from_secs(5)),
            Lookup::Stale(quota("acme"))
        );
        assert_eq!(cache.lookup("other", t0), Lookup::Absent);
    }

    #[test]
    fn unknown_tenant_is_cached_as_a_negative_entry() {
        let cache = DefinitionsCache::new(Duration::from_secs(5));
        let t0 = Instant::now();
        cache.insert("ghost", None, cache.generation(), t0);
        assert_eq!(cache.lookup("ghost", t0), Lookup::Fresh(None));
    }

    #[test]
    fn clear_forgets_entries_and_refuses_loads_begun_before_it() {
        let cache = DefinitionsCache::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let before = cache.generation();
        cache.insert("acme", quota("acme"), before, t0);
        cache.clear();
        assert_eq!(cache.lookup("acme", t0), Lookup::Absent);
        cache.insert("acme", quota("acme"), before, t0);
        assert_eq!(cache.lookup("acme", t0), Lookup::Absent);
        cache.insert("acme", quota("acme"), cache.generation(), t0);
        assert_eq!(cache.lookup("acme", t0), Lookup::Fresh(quota("acme")));
    }
}
