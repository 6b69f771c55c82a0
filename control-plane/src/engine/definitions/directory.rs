//! The tenant directory: a compact in-process replica of every tenant's own definitions
//! (parent, own tier, mode, direct assignments, overrides, grants not ended), so that
//! while PostgreSQL is down a tenant whose chain this process never cached can still be
//! decided — its [`Chain`] is built here by walking parent pointers, the tenant first,
//! the root last, exactly as `repo/catalog.rs` loads it.
//!
//! Only a fallback: decisions read the definitions cache (`cache.rs`) and PostgreSQL,
//! and `engine/lookup.rs` turns to the directory only when a chain that is not cached
//! could not be loaded. `directory_sync.rs` keeps it current; it is the one writer, so
//! a full sync and a single tenant's update never interleave.
//!
//! # Memory
//! One hash-map slot per tenant — the id as an `Arc<str>` (16 bytes) and an [`Entry`]
//! (48 bytes: parent and tier pointers, an optional box, the mode) — plus the id's bytes
//! once: a child's parent pointer is its parent's own key, and tier names are interned.
//! The few tenants with direct assignments, overrides or grants carry them in a box; the
//! others pay 8 bytes for its absence. Grants are read with their tenant (the ones not
//! ended by then), so an ended one stays in the box until the tenant is read again — at
//! the latest by the next full sync — while resolution ignores it from its end on. `tests/directory_memory.rs` measures the total with a
//! counting allocator (the figures are in the README's Known limits). The number of
//! tenants is bounded: past `max_tenants`, tenants not in yet are left out (counted,
//! and reported by the sync), while the ones in are still kept current.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::Notify;

use crate::model::{Assignment, Chain, ChainLevel, Grant, LimitDef, Mode, MAX_DEPTH};
use crate::repo::TenantRow;

/// How many changed tenants wait for their reload at most; past it one full sync
/// replaces them (it reads every tenant anyway).
const MAX_QUEUED_CHANGES: usize = 10_000;

/// What a tenant has beyond its tier and mode; most tenants have none.
#[derive(Debug)]
struct Extras {
    assignments: Box<[Assignment]>,
    overrides: Box<[LimitDef]>,
    grants: Box<[Grant]>,
}

/// One tenant, without its id (the map's key).
#[derive(Debug)]
struct Entry {
    /// The parent's own key (the same allocation), or a string of [`Tenants::unresolved`].
    parent: Option<Arc<str>>,
    /// Interned in [`Tenants::tiers`].
    tier: Option<Arc<str>>,
    /// `None` when the tenant has no direct assignment, override or grant.
    extras: Option<Box<Extras>>,
    /// The full sync that last saw the tenant: one that did not has found it deleted.
    seen: u32,
    mode: Mode,
}

#[derive(Debug, Default)]
struct Tenants {
    entries: HashMap<Arc<str>, Entry>,
    /// Parents named by entries but absent themselves (not read yet, or left out by the
    /// bound): once a parent's own row comes, this string becomes its key.
    unresolved: HashSet<Arc<str>>,
    /// Every tier name held, once.
    tiers: HashSet<Arc<str>>,
    /// The number of the current (or last) full sync.
    sync: u32,
    /// Tenants refused since the current full sync began, because of the bound.
    left_out: usize,
}

impl Tenants {
    fn parent(&mut self, parent: &str) -> Arc<str> {
        if let Some((key, _)) = self.entries.get_key_value(parent) {
            return key.clone();
        }
        if let Some(named) = self.unresolved.get(parent) {
            return named.clone();
        }
        let named: Arc<str> = Arc::from(parent);
        self.unresolved.insert(named.clone());
        named
    }

    fn tier(&mut self, tier: &str) -> Arc<str> {
        if let Some(interned) = self.tiers.get(tier) {
            return interned.clone();
        }
        let interned: Arc<str> = Arc::from(tier);
        self.tiers.insert(interned.clone());
        interned
    }

    /// Stores `row`; `false` when it is a new tenant past `max` (left out).
    fn upsert(&mut self, row: TenantRow, max: usize) -> bool {
        let TenantRow { parent, level } = row;
        let known = self.entries.contains_key(level.id.as_str());
        if !known && self.entries.len() >= max {
            self.left_out += 1;
            return false;
        }
        let has_extras = !level.assignments.is_empty()
            || !level.overrides.is_empty()
            || !level.grants.is_empty();
        let extras = has_extras.then(|| {
            Box::new(Extras {
                assignments: level.assignments.into_boxed_slice(),
                overrides: level.overrides.into_boxed_slice(),
                grants: level.grants.into_boxed_slice(),
            })
        });
        let entry = Entry {
            parent: parent.map(|p| self.parent(&p)),
            tier: level.tier.map(|t| self.tier(&t)),
            extras,
            seen: self.sync,
            mode: level.mode,
        };
        match self.entries.get_mut(level.id.as_str()) {
            Some(existing) => *existing = entry,
            None => {
                let key = self
                    .unresolved
                    .take(level.id.as_str())
                    .unwrap_or_else(|| Arc::from(level.id));
                self.entries.insert(key, entry);
            }
        }
        true
    }

    fn remove(&mut self, id: &str) {
        if let Some((key, _)) = self.entries.remove_entry(id) {
            // Children still name it: keep the string for when it comes back.
            if Arc::strong_count(&key) > 1 {
                self.unresolved.insert(key);
            }
        }
    }

    /// Drops the strings nothing names any more.
    fn forget_unused_strings(&mut self) {
        self.unresolved.retain(|name| Arc::strong_count(name) > 1);
        self.tiers.retain(|tier| Arc::strong_count(tier) > 1);
    }

    fn chain(&self, tenant: &str) -> Option<Chain> {
        let mut levels = Vec::with_capacity(MAX_DEPTH);
        let (mut id, mut entry) = self.entries.get_key_value(tenant)?;
        loop {
            levels.push(level(id, entry));
            let Some(parent) = &entry.parent else {
                return Some(Chain { levels });
            };
            // Deeper than a tree may be (a cycle between two updates): undecidable
            // here, as is a chain whose parent is missing — never a truncated chain.
            if levels.len() == MAX_DEPTH {
                return None;
            }
            (id, entry) = self.entries.get_key_value(&**parent)?;
        }
    }
}

fn level(id: &str, entry: &Entry) -> ChainLevel {
    let (assignments, overrides, grants) = entry.extras.as_ref().map_or_else(
        || (Vec::new(), Vec::new(), Vec::new()),
        |extras| {
            (
                extras.assignments.to_vec(),
                extras.overrides.to_vec(),
                extras.grants.to_vec(),
            )
        },
    );
    ChainLevel {
        id: id.to_string(),
        mode: entry.mode,
        tier: entry.tier.as_deref().map(str::to_string),
        assignments,
        overrides,
        grants,
    }
}

/// What the directory must read again from PostgreSQL.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Everything (a full sync).
    pub all: bool,
    /// The catalog the directory decides with (tiers, role and default assignments).
    pub catalog: bool,
    /// These tenants (each: its row again, or its removal).
    pub tenants: HashSet<String>,
}

/// Every tenant's own definitions, at most `max_tenants` of them; see the module docs.
#[derive(Debug)]
pub struct TenantDirectory {
    max_tenants: usize,
    tenants: RwLock<Tenants>,
    changes: Mutex<Changes>,
    wake: Notify,
}

impl TenantDirectory {
    /// An empty directory that holds at most `max_tenants` tenants (0: none, the
    /// directory is off).
    pub fn new(max_tenants: usize) -> TenantDirectory {
        TenantDirectory {
            max_tenants,
            tenants: RwLock::new(Tenants::default()),
            changes: Mutex::new(Changes::default()),
            wake: Notify::new(),
        }
    }

    /// The bound it was created with.
    pub fn max_tenants(&self) -> usize {
        self.max_tenants
    }

    /// How many tenants it holds.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether it holds no tenant (not loaded yet, or off).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many tenants were refused since the last full sync began, because the
    /// directory was at its bound.
    pub fn left_out(&self) -> usize {
        self.read().left_out
    }

    /// The chain of `tenant` — it first, its root last — or `None` when the directory
    /// cannot tell it whole: the tenant or one of its ancestors is not held.
    pub fn chain(&self, tenant: &str) -> Option<Chain> {
        self.read().chain(tenant)
    }

    /// Stores one tenant as read now; `false` when it is new and the directory is full.
    pub fn upsert(&self, row: TenantRow) -> bool {
        self.write().upsert(row, self.max_tenants)
    }

    /// Forgets a tenant that no longer exists.
    pub fn remove(&self, id: &str) {
        self.write().remove(id);
    }

    /// Starts a full sync: every tenant that [`TenantDirectory::sync_page`] does not
    /// store again before [`TenantDirectory::finish_sync`] is then removed.
    pub fn begin_sync(&self) {
        let mut tenants = self.write();
        tenants.sync = tenants.sync.wrapping_add(1);
        tenants.left_out = 0;
    }

    /// Stores one page of a full sync; returns how many of its tenants were left out.
    pub fn sync_page(&self, rows: Vec<TenantRow>) -> usize {
        let mut tenants = self.write();
        let before = tenants.left_out;
        for row in rows {
            tenants.upsert(row, self.max_tenants);
        }
        tenants.left_out - before
    }

    /// Ends a full sync: removes the tenants it did not see (deleted since); returns
    /// how many.
    pub fn finish_sync(&self) -> usize {
        let mut tenants = self.write();
        let sync = tenants.sync;
        let before = tenants.entries.len();
        tenants.entries.retain(|_, entry| entry.seen == sync);
        tenants.forget_unused_strings();
        before - tenants.entries.len()
    }

    /// Notes that `tenant` changed in PostgreSQL: the sync reads it again.
    pub fn tenant_changed(&self, tenant: &str) {
        if self.max_tenants == 0 {
            return;
        }
        {
            let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
            if !changes.all {
                changes.tenants.insert(tenant.to_string());
                if changes.tenants.len() > MAX_QUEUED_CHANGES {
                    changes.all = true;
                    changes.tenants = HashSet::new();
                }
            }
        }
        self.wake.notify_one();
    }

    /// Notes that the catalog changed: the sync loads it again, so that a chain from
    /// the directory never meets a catalog older than its tiers.
    pub fn catalog_changed(&self) {
        if self.max_tenants == 0 {
            return;
        }
        self.changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .catalog = true;
        self.wake.notify_one();
    }

    /// Notes that anything may have changed (or changes were missed): the sync reads
    /// every tenant again.
    pub fn reload_all(&self) {
        if self.max_tenants == 0 {
            return;
        }
        {
            let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
            changes.all = true;
            changes.tenants = HashSet::new();
        }
        self.wake.notify_one();
    }

    /// What changed since the last call.
    pub fn take_changes(&self) -> Changes {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits until a change is noted (at once if one was noted since the last wait).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tenants> {
        self.tenants.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tenants> {
        self.tenants.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use tollgate_protocol::{Limit, WarnAt};

    use super::*;
    use crate::model::window::{Period, Series};
    use crate::model::{Span, Subject};

    fn row(id: &str, parent: Option<&str>, tier: &str) -> TenantRow {
        TenantRow {
            parent: parent.map(str::to_string),
            level: ChainLevel {
                id: id.to_string(),
                mode: Mode::Enforce,
                tier: Some(tier.to_string()),
                assignments: Vec::new(),
                overrides: Vec::new(),
                grants: Vec::new(),
            },
        }
    }

    fn ids(chain: &Chain) -> Vec<&str> {
        chain.levels.iter().map(|l| l.id.as_str()).collect()
    }

    #[test]
    fn a_chain_is_the_tenant_first_and_its_root_last_whatever_order_rows_came_in() {
        let directory = TenantDirectory::new(10);
        directory.upsert(row("acme/team/bob", Some("acme/team"), "user"));
        directory.upsert(row("acme", None, "org"));
        directory.upsert(row("acme/team", Some("acme"), "team"));
        let chain = directory.chain("acme/team/bob").unwrap();
        assert_eq!(ids(&chain), ["acme/team/bob", "acme/team", "acme"]);
        let tiers: Vec<_> = chain.levels.iter().map(|l| l.tier.as_deref()).collect();
        assert_eq!(tiers, [Some("user"), Some("team"), Some("org")]);
        assert_eq!(ids(&directory.chain("acme").unwrap()), ["acme"]);
    }

    #[test]
    fn a_level_carries_the_tenants_mode_assignments_and_overrides() {
        let directory = TenantDirectory::new(10);
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut bob = row("bob", None, "user");
        bob.level.mode = Mode::Shadow;
        bob.level.assignments = vec![Assignment {
            id: 7,
            tier: "bonus".into(),
            subject: Subject::Tenant("bob".into()),
            enabled: true,
            expires_at: None,
            created_at: at,
            updated_at: at,
        }];
        bob.level.overrides = vec![LimitDef {
            resource: "requests".into(),
            span: Span::Window(Series::calendar(Period::Minute)),
            limit: Limit {
                quota: 2,
                overage: 0,
                warn_at: WarnAt::DEFAULT,
                unlimited: false,
            },
        }];
        let expected = bob.level.clone();
        directory.upsert(bob);
        assert_eq!(directory.chain("bob").unwrap().levels, [expected]);
    }

    #[test]
    fn a_tenant_with_only_grants_keeps_them_in_its_box() {
        let directory = TenantDirectory::new(10);
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut carol = row("carol", None, "user");
        carol.level.grants = vec![Grant {
            id: 3,
            tenant: "carol".into(),
            key: Some("launch".into()),
            resource: "requests".into(),
            span: Span::Window(Series::calendar(Period::Month)),
            amount: 500,
            effective_at: at,
            expires_at: at + chrono::Duration::days(7),
            revoked_at: None,
            reason: "launch week".into(),
            revoke_reason: None,
            created_by: Some("ops".into()),
            revoked_by: None,
            created_at: at,
        }];
        let expected = carol.level.clone();
        directory.upsert(carol);
        directory.upsert(row("dave", None, "user"));
        assert_eq!(directory.chain("carol").unwrap().levels, [expected]);
        let tenants = directory.read();
        assert!(tenants.entries["carol"].extras.is_some());
        assert!(tenants.entries["dave"].extras.is_none(), "no grant, no box");
    }

    #[test]
    fn a_tenant_or_ancestor_missing_or_a_cycle_gives_no_chain() {
        let directory = TenantDirectory::new(10);
        directory.upsert(row("orphan", Some("gone"), "user"));
        assert_eq!(directory.chain("orphan"), None, "a parent not held");
        assert_eq!(directory.chain("nobody"), None);
        directory.upsert(row("a", Some("b"), "t"));
        directory.upsert(row("b", Some("a"), "t"));
        assert_eq!(directory.chain("a"), None, "a cycle is cut at MAX_DEPTH");
    }

    #[test]
    fn past_its_bound_new_tenants_are_left_out_and_known_ones_still_change() {
        let directory = TenantDirectory::new(2);
        directory.begin_sync();
        let left_out = directory.sync_page(vec![
            row("a", None, "free"),
            row("b", None, "free"),
            row("c", None, "free"),
        ]);
        assert_eq!((left_out, directory.len(), directory.left_out()), (1, 2, 1));
        assert_eq!(directory.chain("c"), None);
        assert!(directory.upsert(row("a", None, "pro")));
        assert!(!directory.upsert(row("d", None, "pro")));
        assert_eq!(
            directory.chain("a").unwrap().levels[0].tier.as_deref(),
            Some("pro")
        );
        assert_eq!(directory.left_out(), 2);
    }

    #[test]
    fn a_full_sync_removes_the_tenants_it_did_not_see() {
        let directory = TenantDirectory::new(10);
        directory.begin_sync();
        directory.sync_page(vec![row("a", None, "t"), row("b", None, "t")]);
        assert_eq!(directory.finish_sync(), 0);
        directory.begin_sync();
        directory.sync_page(vec![row("b", None, "t")]);
        assert_eq!(directory.finish_sync(), 1);
        assert_eq!((directory.chain("a"), directory.len()), (None, 1));
    }

    #[test]
    fn parent_pointers_and_tier_names_share_one_string() {
        let directory = TenantDirectory::new(10);
        // The child comes first: its parent pointer is the string the parent's key
        // then takes over.
        directory.upsert(row("acme/web", Some("acme"), "pro"));
        directory.upsert(row("acme", None, "pro"));
        directory.upsert(row("acme/api", Some("acme"), "pro"));
        let tenants = directory.read();
        let (key, _) = tenants.entries.get_key_value("acme").unwrap();
        for child in ["acme/web", "acme/api"] {
            let parent = tenants.entries[child].parent.as_ref().unwrap();
            assert!(Arc::ptr_eq(parent, key), "{child} points at acme's own key");
        }
        let web = tenants.entries["acme/web"].tier.as_ref().unwrap();
        let api = tenants.entries["acme/api"].tier.as_ref().unwrap();
        assert!(Arc::ptr_eq(web, api));
        assert!(tenants.unresolved.is_empty());
        assert!(tenants.entries.values().all(|e| e.extras.is_none()));
    }

    #[test]
    fn a_removed_parents_string_waits_for_its_return_while_children_name_it() {
        let directory = TenantDirectory::new(10);
        directory.upsert(row("acme", None, "pro"));
        directory.upsert(row("acme/web", Some("acme"), "pro"));
        directory.remove("acme");
        assert_eq!(directory.chain("acme/web"), None);
        directory.upsert(row("acme", None, "pro"));
        assert_eq!(
            ids(&directory.chain("acme/web").unwrap()),
            ["acme/web", "acme"]
        );
        directory.remove("acme/web");
        directory.remove("acme");
        directory.begin_sync();
        directory.finish_sync();
        let tenants = directory.read();
        assert!(tenants.unresolved.is_empty() && tenants.tiers.is_empty());
    }

    #[test]
    fn changes_queue_until_taken_and_too_many_become_one_full_sync() {
        let directory = TenantDirectory::new(10);
        directory.tenant_changed("a");
        directory.tenant_changed("a");
        directory.tenant_changed("b");
        directory.catalog_changed();
        let changes = directory.take_changes();
        assert!(!changes.all && changes.catalog);
        assert_eq!(changes.tenants.len(), 2);
        assert_eq!(directory.take_changes(), Changes::default());
        for n in 0..=MAX_QUEUED_CHANGES {
            directory.tenant_changed(&n.to_string());
        }
        let changes = directory.take_changes();
        assert!(changes.all && changes.tenants.is_empty());
        let off = TenantDirectory::new(0);
        off.tenant_changed("a");
        off.catalog_changed();
        off.reload_all();
        assert_eq!(
            off.take_changes(),
            Changes::default(),
            "a directory that is off"
        );
    }

    #[test]
    fn an_entry_stays_small() {
        // The figure the module docs and the README give (64-bit targets).
        assert_eq!(std::mem::size_of::<Entry>(), 48);
        assert_eq!(std::mem::size_of::<Arc<str>>(), 16);
    }
}
