//! The append-only event log: admin changes (in their own transaction), resets, first
//! warnings and aggregated rejections (written in batches by the event sink).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};

use crate::repo::connection::QuotaRepo;
use crate::repo::error::RepoError;
use crate::repo::page::{Page, Paging};

/// An event to append.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewEvent {
    /// `tier.created`, `tenant.updated`, `usage.reset`, `quota.warning`, `quota.rejected`, …
    pub kind: String,
    /// The tenant it concerns, if one.
    pub tenant_id: Option<String>,
    /// Who did it (admin changes; filled in by the admin transaction).
    pub actor: Option<String>,
    /// What it is about (`tier/pro`, `assignment/12`).
    pub subject: Option<String>,
    /// Details.
    pub data: Value,
    /// The object before an admin change.
    pub before: Option<Value>,
    /// The object after an admin change.
    pub after: Option<Value>,
}

impl NewEvent {
    /// An admin change of `subject`, from `before` to `after`.
    pub fn change(
        kind: &str,
        subject: String,
        tenant_id: Option<String>,
        before: Option<Value>,
        after: Option<Value>,
    ) -> NewEvent {
        NewEvent {
            kind: kind.to_string(),
            tenant_id,
            subject: Some(subject),
            data: Value::Object(Default::default()),
            before,
            after,
            actor: None,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its id (increasing).
    pub id: i64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// The event itself.
    pub event: NewEvent,
}

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only this kind, or kinds starting with it when it ends in `.` (`tier.`).
    pub kind: Option<String>,
    /// Only at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only before this instant.
    pub until: Option<DateTime<Utc>>,
}

const EVENT_COLUMNS: &str = "id, at, kind, tenant_id, actor, subject, data, before, after";

fn event_from_row(row: &PgRow) -> Result<StoredEvent, RepoError> {
    let Json(data) = row.try_get::<Json<Value>, _>("data")?;
    let before: Option<Json<Value>> = row.try_get("before")?;
    let after: Option<Json<Value>> = row.try_get("after")?;
    Ok(StoredEvent {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        event: NewEvent {
            kind: row.try_get("kind")?,
            tenant_id: row.try_get("tenant_id")?,
            actor: row.try_get("actor")?,
            subject: row.try_get("subject")?,
            data,
            before: before.map(|Json(v)| v),
            after: after.map(|Json(v)| v),
        },
    })
}

/// Appends one event on `conn` (inside the admin transaction).
pub(in crate::repo) async fn insert(
    conn: &mut PgConnection,
    event: &NewEvent,
) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO events (kind, tenant_id, actor, subject, data, before, after) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&event.kind)
    .bind(&event.tenant_id)
    .bind(&event.actor)
    .bind(&event.subject)
    .bind(Json(&event.data))
    .bind(event.before.as_ref().map(Json))
    .bind(event.after.as_ref().map(Json))
    .execute(conn)
    .await?;
    Ok(())
}

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
