//! The usage history as billing reads it: every tenant's windows that start in a time
//! range, a bounded page at a time, and whether each window's value is final.
//!
//! # When a window is closed
//!
//! A window is **closed** at `now` — its persisted value is final — when both hold:
//!
//! - `now` is at least [`SETTLING`] past the moment the window stops counting
//!   (`Series::frees_at`): its end for a calendar window; for a rolling bucket, the end
//!   of the last rolling period it is part of (a refund may still take from a bucket
//!   until then, and a reset or an adjustment of the limit bumps its epoch). Past that
//!   moment no check, settlement, take-back, lease return, reset or adjustment changes
//!   the window's counter any more, and the flusher's last write of it has landed.
//! - No usage counted in PostgreSQL during a Redis outage is waiting to reach the
//!   window's counter (a pending `fallback_counters` row): until the reconciler has
//!   carried it to Redis and persisted the result, the history lacks it.
//!
//! Every other window is **open**: its value is what was persisted so far and may grow
//! (or, within its rolling period, shrink).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::rows::HistoryRow;
use crate::model::window::{Series, Window};
use crate::repo::connection::QuotaRepo;
use crate::repo::error::RepoError;
use crate::store::CHECK_RECORD_TTL_MS;

/// The longest interval between two flushes of the usage history
/// (`--history-flush-ms` is at most this).
pub const MAX_FLUSH_INTERVAL_MS: u64 = 60_000;

/// How long after a window stops counting its persisted value may still change: a
/// take-back of a check counted just before the end lands while the check's record
/// lives ([`CHECK_RECORD_TTL_MS`], which also outlives a lease's return, kept a minute
/// past a lease that never outlives its window), the next flush persists it (at most
/// [`MAX_FLUSH_INTERVAL_MS`] later), and two minutes more cover a decision's deadline,
/// the flush's own duration and clocks of several instances that disagree a little.
pub const SETTLING: Duration =
    Duration::from_millis(CHECK_RECORD_TTL_MS as u64 + MAX_FLUSH_INTERVAL_MS + 120_000);

/// Whose windows an export reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant's, whether or not the tenant still exists.
    All,
    /// This tenant's only.
    One(String),
    /// This tenant's and its descendants' now (by `parent_id`, as the tenants are
    /// when the page is read).
    Subtree(String),
}

/// Which windows an export reads: those starting in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFilter {
    /// The first window start included.
    pub from: DateTime<Utc>,
    /// The first window start no longer included.
    pub to: DateTime<Utc>,
    /// Whose windows.
    pub tenants: TenantScope,
    /// Only this resource.
    pub resource: Option<String>,
    /// Only this series (`month`, `rolling-hour`).
    pub series: Option<String>,
}

/// A window's place in the export's order: where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportKey {
    /// The window start.
    pub window_start: DateTime<Utc>,
    /// The tenant.
    pub tenant_id: String,
    /// The resource.
    pub resource: String,
    /// The series.
    pub series: String,
}

/// One window of the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    /// The window's persisted usage.
    pub row: HistoryRow,
    /// Whether usage counted in PostgreSQL during a Redis outage still waits to reach
    /// the window's counter.
    pub reconciling: bool,
}

impl ExportRow {
    /// When the window closes by time (see the module doc), if its series is one the
    /// control plane knows.
    pub fn settles_at(&self) -> Option<DateTime<Utc>> {
        let series = Series::parse(&self.row.series)?;
        let window = Window {
            start: self.row.window_start,
            end: self.row.window_end,
        };
        let settling = chrono::Duration::from_std(SETTLING).ok()?;
        series.frees_at(&window).checked_add_signed(settling)
    }

    /// Whether the window is closed at `now` (see the module doc). A series this
    /// control plane does not know is never closed: nothing says when it would be.
    pub fn is_closed(&self, now: DateTime<Utc>) -> bool {
        !self.reconciling && self.settles_at().is_some_and(|at| at <= now)
    }

    /// The window's place in the export's order.
    pub fn key(&self) -> ExportKey {
        ExportKey {
            window_start: self.row.window_start,
            tenant_id: self.row.tenant_id.clone(),
            resource: self.row.resource.clone(),
            series: self.row.series.clone(),
        }
    }
}

/// Appends the export page of `filter` after `after` to `query`: at most `limit`
/// windows in the order (window start, tenant, resource, series), ids compared byte by
/// byte.
///
/// Only the conditions the filter asks for are in the text, and the order and the
/// cursor are those of the index of `0008_usage_export.sql`: a page is one index range
/// from the cursor, about its own rows whatever the table holds. Whether a window is
/// still being reconciled is a probe of the pending-counter index of the same migration
/// (or one pass over the pending counters, when they are few). Public so that a test
/// can `EXPLAIN` it.
pub fn push_export<'a>(
    query: &mut QueryBuilder<'a, Postgres>,
    filter: &'a ExportFilter,
    after: Option<&'a ExportKey>,
    limit: usize,
) {
    if let TenantScope::Subtree(root) = &filter.tenants {
        // UNION, not UNION ALL: a cycle (which the writes refuse) could not loop.
        query
            .push("WITH RECURSIVE subtree(id) AS (SELECT ")
            .push_bind(root.as_str())
            .push("::text UNION SELECT t.id FROM tenants t JOIN subtree s ON t.parent_id = s.id) ");
    }
    query.push(
        "SELECT h.tenant_id, h.resource, h.series, h.window_start, h.window_end, h.used, \
                h.epoch, EXISTS (SELECT 1 FROM fallback_counters f WHERE f.pending <> 0 \
                    AND f.tenant_id = h.tenant_id AND f.resource = h.resource \
                    AND f.series = h.series AND f.window_start = h.window_start) \
                AS reconciling \
         FROM usage_history h WHERE h.window_start >= ",
    );
    query.push_bind(filter.from);
    query.push(" AND h.window_start < ").push_bind(filter.to);
    match &filter.tenants {
        TenantScope::All => {}
        TenantScope::One(tenant) => {
            query.push(" AND h.tenant_id = ").push_bind(tenant.as_str());
        }
        TenantScope::Subtree(_) => {
            query.push(" AND h.tenant_id IN (SELECT id FROM subtree)");
        }
    }
    if let Some(resource) = &filter.resource {
        query
            .push(" AND h.resource = ")
            .push_bind(resource.as_str());
    }
    if let Some(series) = &filter.series {
        query.push(" AND h.series = ").push_bind(series.as_str());
    }
    if let Some(key) = after {
        query
            .push(
                " AND (h.window_start, h.tenant_id COLLATE \"C\", h.resource COLLATE \"C\", \
                   h.series COLLATE \"C\") > (",
            )
            .push_bind(key.window_start)
            .push(", ")
            .push_bind(key.tenant_id.as_str())
            .push(", ")
            .push_bind(key.resource.as_str())
            .push(", ")
            .push_bind(key.series.as_str())
            .push(")");
    }
    query
        .push(
            " ORDER BY h.window_start, h.tenant_id COLLATE \"C\", h.resource COLLATE \"C\", \
               h.series COLLATE \"C\" LIMIT ",
        )
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
}

fn export_row(row: &PgRow) -> Result<ExportRow, RepoError> {
    Ok(ExportRow {
        row: super::rows::row_from(row)?,
        reconciling: row.try_get("reconciling")?,
    })
}

impl QuotaRepo {
    /// The next page of the export of `filter`: at most `limit` windows after `after`
    /// (from the first when `None`). A page shorter than `limit` is the last.
    pub async fn export_page(
        &self,
        filter: &ExportFilter,
        after: Option<&ExportKey>,
        limit: usize,
    ) -> Result<Vec<ExportRow>, RepoError> {
        let mut query = QueryBuilder::new("");
        push_export(&mut query, filter, after, limit);
        query
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(export_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, d, h, m, s).unwrap()
    }

    fn window(series: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> ExportRow {
        ExportRow {
            row: HistoryRow {
                tenant_id: "acme".into(),
                resource: "requests".into(),
                series: series.into(),
                window_start: start,
                window_end: end,
                used: 7,
                epoch: 0,
            },
            reconciling: false,
        }
    }

    #[test]
    fn settling_covers_a_take_back_and_the_slowest_flush() {
        let needed = Duration::from_millis(CHECK_RECORD_TTL_MS as u64 + MAX_FLUSH_INTERVAL_MS);
        assert!(SETTLING > needed, "{SETTLING:?}");
        assert_eq!(SETTLING, Duration::from_secs(5 * 60));
    }

    #[test]
    fn a_calendar_window_closes_five_minutes_after_its_end() {
        let day = window("day", at(1, 0, 0, 0), at(2, 0, 0, 0));
        assert_eq!(day.settles_at(), Some(at(2, 0, 5, 0)));
        assert!(!day.is_closed(at(1, 12, 0, 0)), "while it counts");
        assert!(!day.is_closed(at(2, 0, 0, 0)), "at its end");
        assert!(!day.is_closed(at(2, 0, 4, 59)), "while it settles");
        assert!(day.is_closed(at(2, 0, 5, 0)));
        assert!(day.is_closed(at(20, 0, 0, 0)));
    }

    #[test]
    fn a_rolling_bucket_stays_open_while_its_rolling_period_counts_it() {
        // A rolling hour's buckets are a minute long and count for 60 more minutes.
        let bucket = window("rolling-hour", at(1, 10, 0, 0), at(1, 10, 1, 0));
        assert_eq!(bucket.settles_at(), Some(at(1, 11, 6, 0)));
        assert!(!bucket.is_closed(at(1, 10, 30, 0)));
        assert!(!bucket.is_closed(at(1, 11, 5, 59)));
        assert!(bucket.is_closed(at(1, 11, 6, 0)));
    }

    #[test]
    fn a_window_still_being_reconciled_is_open_however_old() {
        let mut day = window("day", at(1, 0, 0, 0), at(2, 0, 0, 0));
        day.reconciling = true;
        assert!(!day.is_closed(at(30, 0, 0, 0)));
    }

    #[test]
    fn a_series_this_control_plane_does_not_know_is_never_closed() {
        let odd = window("fortnight", at(1, 0, 0, 0), at(2, 0, 0, 0));
        assert_eq!(odd.settles_at(), None);
        assert!(!odd.is_closed(at(30, 0, 0, 0)));
    }

    #[test]
    fn the_key_names_the_window_in_the_export_order() {
        let day = window("day", at(1, 0, 0, 0), at(2, 0, 0, 0));
        assert_eq!(
            day.key(),
            ExportKey {
                window_start: at(1, 0, 0, 0),
                tenant_id: "acme".into(),
                resource: "requests".into(),
                series: "day".into(),
            }
        );
    }
}
