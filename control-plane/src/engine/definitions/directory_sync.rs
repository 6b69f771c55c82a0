//! Keeping the tenant directory (`directory.rs`) a copy of PostgreSQL's tenants, in the
//! background and never on a decision's path: a full sync once PostgreSQL answers (every
//! tenant, page by page in id order), then each tenant an invalidation names read again
//! (`invalidation.rs` for other instances' writes, `Engine::invalidate_tenant` in
//! `engine/state.rs` for this one's), a full sync again on `all` or after a bus outage,
//! and every few minutes anyway (for deletions and messages that never came). The
//! catalog the directory decides with is loaded again on every change to it, so that it
//! knows every tier the directory's tenants name.
//!
//! A sync that fails keeps what the directory had and is tried again a few seconds
//! later; a tenant that could not be read again is left to that full sync too.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::cache::DefinitionsCache;
use super::directory::TenantDirectory;
use crate::engine::state::Clock;
use crate::metrics::Metrics;
use crate::repo::{QuotaRepo, RepoError};

/// Tenants per query of a full sync.
pub const SYNC_PAGE: usize = 5_000;

/// How often every tenant is read again, changed or not.
pub const RESYNC_EVERY: Duration = Duration::from_secs(300);

/// How long after a failed read the full sync is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What one full sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Tenants in the directory after it.
    pub tenants: usize,
    /// Tenants removed (deleted since the previous sync).
    pub removed: usize,
    /// Tenants not taken in, the directory being full.
    pub left_out: usize,
}

/// Reads every tenant into the directory of `definitions` (with the grants that have not
/// ended at `now`), then makes sure a catalog is cached too (the directory decides
/// nothing without one). On failure the directory keeps what it had.
pub async fn sync_directory(
    definitions: &DefinitionsCache,
    repo: &QuotaRepo,
    metrics: &Metrics,
    now: DateTime<Utc>,
) -> Result<SyncReport, RepoError> {
    let directory = definitions.directory();
    let synced = read_every_tenant(directory, repo, now).await;
    show(metrics, directory);
    let result = if synced.is_ok() { "ok" } else { "failed" };
    metrics.directory_syncs.with_label_values(&[result]).inc();
    let report = synced?;
    if report.left_out > 0 {
        tracing::warn!(
            tenants = report.tenants,
            left_out = report.left_out,
            "the tenant directory is full (--directory-max-tenants): while PostgreSQL is \
             down, tenants left out are decided only if their chain is cached"
        );
    }
    if let Err(error) = definitions.catalog(repo).await {
        tracing::warn!(%error, "tenant directory: cannot load the catalog beside it");
    }
    Ok(report)
}

async fn read_every_tenant(
    directory: &TenantDirectory,
    repo: &QuotaRepo,
    now: DateTime<Utc>,
) -> Result<SyncReport, RepoError> {
    directory.begin_sync();
    let mut after: Option<String> = None;
    let mut left_out = 0;
    loop {
        let rows = repo
            .tenant_rows_after(after.as_deref(), SYNC_PAGE, now)
            .await?;
        let more = rows.len() == SYNC_PAGE;
        let last = rows.last().map(|row| row.level.id.clone());
        left_out += directory.sync_page(rows);
        match last {
            Some(id) if more => after = Some(id),
            _ => break,
        }
    }
    let removed = directory.finish_sync();
    Ok(SyncReport {
        tenants: directory.len(),
        removed,
        left_out,
    })
}

/// Reads tenant `id` again: its row, or its removal.
async fn reload(
    directory: &TenantDirectory,
    repo: &QuotaRepo,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    match repo.tenant_row(id, now).await? {
        Some(row) => {
            if !directory.upsert(row) {
                tracing::debug!(tenant = id, "tenant directory full: tenant left out");
            }
        }
        None => directory.remove(id),
    }
    Ok(())
}

fn show(metrics: &Metrics, directory: &TenantDirectory) {
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    metrics.directory_tenants.set(gauge(directory.len()));
    metrics.directory_left_out.set(gauge(directory.left_out()));
}

/// Keeps the directory of `definitions` current until the process ends: a full sync at
/// once (retried until PostgreSQL answers) and every `resync_every`, and the changes
/// invalidations note in between; `clock` tells which grants have ended. Returns at once
/// when the directory is off.
pub async fn keep_directory(
    definitions: Arc<DefinitionsCache>,
    repo: QuotaRepo,
    metrics: Arc<Metrics>,
    clock: Clock,
    resync_every: Duration,
) {
    let directory = definitions.directory().clone();
    if directory.max_tenants() == 0 {
        return;
    }
    let mut full_sync_at = Instant::now();
    loop {
        let changes = directory.take_changes();
        if changes.all || Instant::now() >= full_sync_at {
            // It reads every tenant after the changes just taken were noted.
            let wait = match sync_directory(&definitions, &repo, &metrics, clock()).await {
                Ok(_) => resync_every,
                Err(error) => {
                    tracing::warn!(%error, "tenant directory: full sync failed; keeping what it has");
                    RETRY_AFTER
                }
            };
            full_sync_at = Instant::now() + wait;
        } else {
            if changes.catalog {
                if let Err(error) = definitions.catalog(&repo).await {
                    tracing::warn!(%error, "tenant directory: cannot load the changed catalog; a full sync will");
                    full_sync_at = full_sync_at.min(Instant::now() + RETRY_AFTER);
                }
            }
            for tenant in &changes.tenants {
                if let Err(error) = reload(&directory, &repo, tenant, clock()).await {
                    tracing::warn!(%error, tenant, "tenant directory: cannot read a changed tenant; a full sync will");
                    full_sync_at = full_sync_at.min(Instant::now() + RETRY_AFTER);
                    break;
                }
            }
            show(&metrics, &directory);
        }
        tokio::select! {
            () = directory.changed() => {}
            () = tokio::time::sleep_until(full_sync_at) => {}
        }
    }
}
