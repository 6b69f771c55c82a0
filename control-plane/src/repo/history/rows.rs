//! Persisted usage per tenant, resource and counter window: written from Redis by the
//! history flusher, read back to re-seed counters Redis lost, and listed for billing.
//!
//! A row only moves forward. Within one epoch the larger value wins, so that flushes of
//! several instances in any order converge on the newest; a reset or adjustment bumps
//! the epoch, and the first write of a newer epoch replaces the value — a snapshot taken
//! before the change can never bring the old usage back.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::repo::connection::QuotaRepo;
use crate::repo::error::RepoError;
use crate::repo::page::{Page, Paging};

/// One counter window's persisted usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The tenant.
    pub tenant_id: String,
    /// The resource.
    pub resource: String,
    /// The counter series (`month`, `rolling-hour`).
    pub series: String,
    /// The window (or rolling bucket) start.
    pub window_start: DateTime<Utc>,
    /// The window (or rolling bucket) end.
    pub window_end: DateTime<Utc>,
    /// Usage counted in it.
    pub used: u64,
    /// Resets and adjustments so far.
    pub epoch: u64,
}

/// Which history to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only this resource.
    pub resource: Option<String>,
    /// Only this series (`month`, `rolling-hour`).
    pub series: Option<String>,
    /// Only windows starting at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only windows starting before this instant.
    pub to: Option<DateTime<Utc>>,
}

const HISTORY_COLUMNS: &str = "tenant_id, resource, series, window_start, window_end, used, epoch";

pub(super) fn row_from(row: &PgRow) -> Result<HistoryRow, RepoError> {
    let count = |name: &str| -> Result<u64, RepoError> {
        u64::try_from(row.try_get::<i64, _>(name)?)
            .map_err(|_| RepoError::Corrupt(format!("usage history: negative {name}")))
    };
    Ok(HistoryRow {
        tenant_id: row.try_get("tenant_id")?,
        resource: row.try_get("resource")?,
        series: row.try_get("series")?,
        window_start: row.try_get("window_start")?,
        window_end: row.try_get("window_end")?,
        used: count("used")?,
        epoch: count("epoch")?,
    })
}

/// The cursor of a history row: its window start and its series identity.
fn cursor_of(row: &HistoryRow) -> String {
    format!(
        "{}|{}|{}",
        row.window_start.timestamp(),
        row.resource,
        row.series
    )
}

impl QuotaRepo {
    /// Writes a batch of snapshots in one statement; see the module doc for the rule.
    pub async fn upsert_history(&self, rows: &[HistoryRow]) -> Result<u64, RepoError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tenants = Vec::with_capacity(rows.len());
        let mut resources = Vec::with_capacity(rows.len());
        let mut series = Vec::with_capacity(rows.len());
        let mut starts = Vec::with_capacity(rows.len());
        let mut ends = Vec::with_capacity(rows.len());
        let mut used = Vec::with_capacity(rows.len());
        let mut epochs = Vec::with_capacity(rows.len());
        for row in rows {
            tenants.push(row.tenant_id.clone());
            resources.push(row.resource.clone());
            series.push(row.series.clone());
            starts.push(row.window_start);
            ends.push(row.window_end);
            used.push(i64::try_from(row.used).unwrap_or(i64::MAX));
            epochs.push(i64::try_from(row.epoch).unwrap_or(i64::MAX));
        }
        let result = sqlx::query(
            "INSERT INTO usage_history AS h \
                 (tenant_id, resource, series, window_start, window_end, used, epoch) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], \
                                  $5::timestamptz[], $6::bigint[], $7::bigint[]) \
             ON CONFLICT (tenant_id, resource, series, window_start) DO UPDATE SET \
                 used = CASE WHEN EXCLUDED.epoch > h.epoch THEN EXCLUDED.used \
                             WHEN EXCLUDED.epoch = h.epoch THEN GREATEST(h.used, EXCLUDED.used) \
                             ELSE h.used END, \
                 epoch = GREATEST(h.epoch, EXCLUDED.epoch), \
                 window_end = EXCLUDED.window_end, \
                 updated_at = now()",
        )
        .bind(tenants)
        .bind(resources)
        .bind(series)
        .bind(starts)
        .bind(ends)
        .bind(used)
        .bind(epochs)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// The persisted windows of `tenants` that may still count at `now`: every window
    /// ending after `now - lookback` (the caller keeps those that still count).
    pub async fn open_history(
        &self,
        tenants: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<HistoryRow>, RepoError> {
        sqlx::query(&format!(
            "SELECT {HISTORY_COLUMNS} FROM usage_history \
             WHERE tenant_id = ANY($1) AND window_end > $2"
        ))
        .bind(tenants)
        .bind(since)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row_from)
        .collect()
    }

    /// A tenant's usage history, newest window first.
    pub async fn list_history(
        &self,
        tenant: &str,
        filter: &HistoryFilter,
        paging: &Paging,
    ) -> Result<Page<HistoryRow>, RepoError> {
        let cursor = match &paging.after {
            Some(text) => {
                let mut parts = text.splitn(3, '|');
                let start = parts
                    .next()
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(|s| DateTime::from_timestamp(s, 0));
                match (start, parts.next(), parts.next()) {
                    (Some(start), Some(resource), Some(series)) => {
                        Some((start, resource.to_string(), series.to_string()))
                    }
                    _ => return Err(RepoError::invalid("cursor", "not a cursor of this listing")),
                }
            }
            None => None,
        };
        let (c_start, c_resource, c_series) = match cursor {
            Some((s, r, e)) => (Some(s), Some(r), Some(e)),
            None => (None, None, None),
        };
        let rows = sqlx::query(&format!(
            "SELECT {HISTORY_COLUMNS} FROM usage_history \
             WHERE tenant_id = $1 AND ($2::text IS NULL OR resource = $2) \
               AND ($3::text IS NULL OR series = $3) \
               AND ($4::timestamptz IS NULL OR window_start >= $4) \
               AND ($5::timestamptz IS NULL OR window_start < $5) \
               AND ($6::timestamptz IS NULL OR window_start < $6 OR \
                    (window_start = $6 AND (resource, series) > ($7::text, $8::text))) \
             ORDER BY window_start DESC, resource, series LIMIT $9"
        ))
        .bind(tenant)
        .bind(&filter.resource)
        .bind(&filter.series)
        .bind(filter.from)
        .bind(filter.to)
        .bind(c_start)
        .bind(c_resource)
        .bind(c_series)
        .bind(paging.limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let rows = rows.iter().map(row_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, paging.limit, cursor_of))
    }
}
