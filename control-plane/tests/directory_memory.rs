//! What the tenant directory (`src/engine/definitions/directory.rs`) costs per tenant:
//! synthetic tenants loaded as a full sync loads them, with a global allocator that
//! counts the bytes live on the heap. The figures are printed (`cargo test -p
//! tollgate-control-plane --test directory_memory -- --nocapture`; `DIRECTORY_TENANTS`
//! sets how many tenants) and quoted in the README; the test asserts only a generous
//! ceiling, which the allocation pattern makes deterministic.
//!
//! The bytes are those requested from the allocator; the allocator's own rounding and
//! headers come on top.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use chrono::{TimeZone, Utc};
use tollgate_control_plane::engine::definitions::TenantDirectory;
use tollgate_control_plane::model::window::{Period, Series};
use tollgate_control_plane::model::{Assignment, ChainLevel, LimitDef, Mode, Span, Subject};
use tollgate_control_plane::repo::TenantRow;
use tollgate_protocol::{Limit, WarnAt};

/// The system allocator, counting the bytes it has handed out and not taken back.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

fn add(bytes: usize) {
    LIVE.fetch_add(bytes as isize, Ordering::Relaxed);
}

fn sub(bytes: usize) {
    LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only the counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            add(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            sub(layout.size());
            add(new_size);
        }
        moved
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Tenant `n` of a synthetic population: organizations of 50 (the organization, then
/// its users), in id order as a full sync reads them; one in `extras_every` has an
/// override and one a direct assignment (0: none has either).
fn row(n: usize, extras_every: usize) -> TenantRow {
    let org = format!("org-{:06}", n / 50);
    let (id, parent) = match n % 50 {
        0 => (org, None),
        user => (format!("{org}/user-{user:02}"), Some(org)),
    };
    let mut level = ChainLevel {
        id: id.clone(),
        mode: Mode::Enforce,
        tier: Some(if parent.is_some() { "user" } else { "org" }.to_string()),
        assignments: Vec::new(),
        overrides: Vec::new(),
        grants: Vec::new(),
    };
    if extras_every > 0 && n % extras_every == 1 {
        level.overrides.push(LimitDef {
            resource: "requests".into(),
            span: Span::Window(Series::calendar(Period::Minute)),
            limit: Limit {
                quota: 7,
                overage: 0,
                warn_at: WarnAt::DEFAULT,
                unlimited: false,
            },
        });
    }
    if extras_every > 0 && n % extras_every == 2 {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        level.assignments.push(Assignment {
            id: n as i64,
            tier: "bonus".into(),
            subject: Subject::Tenant(id),
            enabled: true,
            expires_at: None,
            created_at: at,
            updated_at: at,
        });
    }
    TenantRow { parent, level }
}

/// Bytes per tenant of a directory of `tenants` synthetic tenants, loaded by pages.
fn bytes_per_tenant(tenants: usize, extras_every: usize) -> f64 {
    let before = live();
    let directory = TenantDirectory::new(tenants);
    directory.begin_sync();
    for page in (0..tenants).collect::<Vec<_>>().chunks(5_000) {
        let rows = page.iter().map(|&n| row(n, extras_every)).collect();
        assert_eq!(directory.sync_page(rows), 0);
    }
    directory.finish_sync();
    let bytes = live() - before;
    assert_eq!(directory.len(), tenants);
    assert!(directory.chain("org-000001/user-07").is_some());
    let per_tenant = bytes as f64 / tenants as f64;
    println!(
        "{tenants} tenants (extras: {}): {bytes} bytes, {per_tenant:.1} bytes a tenant",
        if extras_every > 0 {
            format!("1 in {extras_every} an override, 1 in {extras_every} an assignment")
        } else {
            "none".into()
        }
    );
    drop(directory);
    per_tenant
}

#[test]
fn a_tenant_costs_the_directory_a_few_hundred_bytes_at_most() {
    let tenants = std::env::var("DIRECTORY_TENANTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let plain = bytes_per_tenant(tenants, 0);
    let mixed = bytes_per_tenant(tenants, 100);
    // The hash table is a power of two of slots at most 7/8 full: between about 115
    // and 180 bytes a plain tenant, depending on where the count falls (116 at 900,000,
    // 176 at 1,000,000, just past a doubling).
    assert!(plain < 200.0, "{plain} bytes a tenant");
    assert!(mixed < 260.0, "{mixed} bytes a tenant");
}
