//! The append-only event log: admin changes (in their own transaction), resets, first
//! warnings and aggregated rejections (written in batches by the event sink), and its
//! listings.

use sqlx::types::Json;

use super::event::{event_from_row, EventFilter, NewEvent, StoredEvent, EVENT_COLUMNS};
use crate::repo::connection::QuotaRepo;
use crate::repo::error::RepoError;
use crate::repo::page::{Page, Paging};
impl QuotaRepo {
    /// Appends events written outside admin transactions (warnings, rejections) in one
    /// statement. A first warning already recorded by another instance is skipped.
    /// Returns how many were written.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<u64, RepoError> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut kinds = Vec::with_capacity(events.len());
        let mut tenants = Vec::with_capacity(events.len());
        let mut data = Vec::with_capacity(events.len());
        for event in events {
            kinds.push(event.kind.clone());
            tenants.push(event.tenant_id.clone());
            data.push(Json(event.data.clone()));
        }
        let result = sqlx::query(
            "INSERT INTO events (kind, tenant_id, data) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::jsonb[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(kinds)
        .bind(tenants)
        .bind(data)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Events matching `filter`, newest first.
    pub async fn list_events(
        &self,
        filter: &EventFilter,
        paging: &Paging,
    ) -> Result<Page<StoredEvent>, RepoError> {
        let before_id: Option<i64> = match &paging.after {
            Some(cursor) => Some(
                cursor
                    .parse()
                    .map_err(|_| RepoError::invalid("cursor", "not a cursor of this listing"))?,
            ),
            None => None,
        };
        let (kind_exact, kind_prefix) = match filter.kind.as_deref() {
            Some(kind) if kind.ends_with('.') => (None, Some(format!("{kind}%"))),
            Some(kind) => (Some(kind.to_string()), None),
            None => (None, None),
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE ($1::text IS NULL OR tenant_id = $1) \
               AND ($2::text IS NULL OR kind = $2) \
               AND ($3::text IS NULL OR kind LIKE $3) \
               AND ($4::timestamptz IS NULL OR at >= $4) \
               AND ($5::timestamptz IS NULL OR at < $5) \
               AND ($6::bigint IS NULL OR id < $6) \
             ORDER BY id DESC LIMIT $7"
        ))
        .bind(&filter.tenant)
        .bind(kind_exact)
        .bind(kind_prefix)
        .bind(filter.since)
        .bind(filter.until)
        .bind(before_id)
        .bind(paging.limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(events, paging.limit, |e| e.id.to_string()))
    }
}
