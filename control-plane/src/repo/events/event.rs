//! An event as it is appended and as it is stored, and the append inside an admin
//! transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};

use crate::repo::error::RepoError;

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

pub(super) const EVENT_COLUMNS: &str =
    "id, at, kind, tenant_id, actor, subject, data, before, after";

pub(super) fn event_from_row(row: &PgRow) -> Result<StoredEvent, RepoError> {
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
pub(crate) async fn insert(conn: &mut PgConnection, event: &NewEvent) -> Result<(), RepoError> {
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
