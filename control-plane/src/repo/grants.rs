//! Queries over `grants`: amounts added to one tenant's hard limits for a while.
//!
//! A grant is created, read, listed and revoked — ended early, the record kept with who
//! revoked it, when and why — never changed otherwise and never deleted but with its
//! tenant: billing reads what was granted, for how long and by whom. Every write runs in
//! the admin transaction and records its event with before and after.
//!
//! Chains carry their levels' grants that have not ended ([`grants_json_column`], the
//! instant bound by the caller from its own clock), so decisions need no query of their
//! own for them.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::connection::QuotaRepo;
use super::error::{unique_as_conflict, RepoError};
use super::events::NewEvent;
use super::limit_rows::span_of;
use super::page::{Page, Paging};
use crate::model::views::{to_json, GrantView};
use crate::model::window::Period;
use crate::model::{Grant, Span};

/// A grant to create, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    /// The tenant whose hard limit it raises.
    pub tenant: String,
    /// Its stable name, if any.
    pub key: Option<String>,
    /// The resource of the limit it raises.
    pub resource: String,
    /// The span of the limit it raises.
    pub span: Span,
    /// What it adds.
    pub amount: u64,
    /// From when it counts.
    pub effective_at: DateTime<Utc>,
    /// Until when (exclusive).
    pub expires_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

/// Which of a tenant's grants to list, by where they stand at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantsAt {
    /// Counting at the instant.
    InForce(DateTime<Utc>),
    /// Not counting yet.
    Scheduled(DateTime<Utc>),
    /// Expired or revoked by then.
    Ended(DateTime<Utc>),
}

/// Which of a tenant's grants to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    /// Only those in this state at its instant.
    pub state: Option<GrantsAt>,
    /// Only those on this resource.
    pub resource: Option<String>,
}

const GRANT_COLUMNS: &str = "id, tenant_id, key, resource, period, window_kind, amount, \
     effective_at, expires_at, revoked_at, reason, revoke_reason, created_by, revoked_by, \
     created_at";

/// A grant from its stored fields, however they were read (a row, or a chain's JSON).
#[derive(Debug, Deserialize)]
pub(super) struct GrantRow {
    id: i64,
    tenant_id: String,
    key: Option<String>,
    resource: String,
    period: Option<String>,
    window_kind: String,
    amount: i64,
    effective_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    reason: String,
    revoke_reason: Option<String>,
    created_by: Option<String>,
    revoked_by: Option<String>,
    created_at: DateTime<Utc>,
}

impl GrantRow {
    fn read(row: &PgRow) -> Result<GrantRow, sqlx::Error> {
        Ok(GrantRow {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            key: row.try_get("key")?,
            resource: row.try_get("resource")?,
            period: row.try_get("period")?,
            window_kind: row.try_get("window_kind")?,
            amount: row.try_get("amount")?,
            effective_at: row.try_get("effective_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            reason: row.try_get("reason")?,
            revoke_reason: row.try_get("revoke_reason")?,
            created_by: row.try_get("created_by")?,
            revoked_by: row.try_get("revoked_by")?,
            created_at: row.try_get("created_at")?,
        })
    }

    /// The model's grant; `Corrupt` when a stored value is out of range.
    pub(super) fn into_grant(self) -> Result<Grant, RepoError> {
        let id = self.id;
        let corrupt = |what: &str| RepoError::Corrupt(format!("grant {id}: {what}"));
        Ok(Grant {
            span: span_of(self.period, &self.window_kind).map_err(corrupt)?,
            amount: u64::try_from(self.amount).map_err(|_| corrupt("amount"))?,
            id,
            tenant: self.tenant_id,
            key: self.key,
            resource: self.resource,
            effective_at: self.effective_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            reason: self.reason,
            revoke_reason: self.revoke_reason,
            created_by: self.created_by,
            revoked_by: self.revoked_by,
            created_at: self.created_at,
        })
    }
}

fn grant_from_row(row: &PgRow) -> Result<Grant, RepoError> {
    GrantRow::read(row)?.into_grant()
}

/// Per tenant row aliased `c`: its grants that have not ended by the parameter
/// `now_param` (`$3` in a chain), as a JSON array `grants` of [`GrantRow`]s.
pub(super) fn grants_json_column(now_param: &str) -> String {
    format!(
        "COALESCE((SELECT json_agg(json_build_object(
            'id', g.id, 'tenant_id', g.tenant_id, 'key', g.key, 'resource', g.resource,
            'period', g.period, 'window_kind', g.window_kind, 'amount', g.amount,
            'effective_at', g.effective_at, 'expires_at', g.expires_at,
            'revoked_at', g.revoked_at, 'reason', g.reason, 'revoke_reason', g.revoke_reason,
            'created_by', g.created_by, 'revoked_by', g.revoked_by, 'created_at', g.created_at)
            ORDER BY g.id)
            FROM grants g WHERE g.tenant_id = c.id AND g.ends_at > {now_param}), '[]'::json)
            AS grants"
    )
}

async fn get_in(conn: &mut PgConnection, tenant: &str, id: i64) -> Result<Grant, RepoError> {
    let row = sqlx::query(&format!(
        "SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| RepoError::NotFound(format!("grant {id} of tenant {tenant}")))?;
    grant_from_row(&row)
}

async fn tenant_exists(conn: &mut PgConnection, tenant: &str) -> Result<(), RepoError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_optional(conn)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(RepoError::NotFound(format!("tenant {tenant}"))),
    }
}

fn bigint(value: u64, field: &str) -> Result<i64, RepoError> {
    i64::try_from(value).map_err(|_| RepoError::invalid(field, "at most 2^63 - 1"))
}

impl QuotaRepo {
    /// Creates a grant; `now` is the instant its view's state is given at.
    pub async fn create_grant(
        &self,
        actor: &str,
        new: &NewGrant,
        now: DateTime<Utc>,
    ) -> Result<Grant, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        tenant_exists(&mut tx.tx, &new.tenant).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO grants (tenant_id, key, resource, period, window_kind, amount, \
             effective_at, expires_at, reason, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {GRANT_COLUMNS}"
        ))
        .bind(&new.tenant)
        .bind(&new.key)
        .bind(&new.resource)
        .bind(new.span.period().map(Period::as_str))
        .bind(new.span.window_kind().to_string())
        .bind(bigint(new.amount, "amount")?)
        .bind(new.effective_at)
        .bind(new.expires_at)
        .bind(&new.reason)
        .bind(actor)
        .fetch_one(&mut *tx.tx)
        .await
        .map_err(|e| {
            let key = new.key.as_deref().unwrap_or_default();
            unique_as_conflict(e, &format!("grant {key} of tenant {}", new.tenant))
        })?;
        let created = grant_from_row(&row)?;
        tx.commit(NewEvent::change(
            "grant.created",
            format!("grant/{}", created.id),
            Some(created.tenant.clone()),
            None,
            Some(to_json(&GrantView::at(&created, now))),
        ))
        .await?;
        Ok(created)
    }

    /// Grant `id` of `tenant`.
    pub async fn get_grant(&self, tenant: &str, id: i64) -> Result<Grant, RepoError> {
        let mut conn = self.pool.acquire().await?;
        get_in(&mut conn, tenant, id).await
    }

    /// `tenant`'s grants matching `filter`, in id order (oldest first); `NotFound` when
    /// the tenant does not exist.
    pub async fn list_grants(
        &self,
        tenant: &str,
        filter: &GrantFilter,
        paging: &Paging,
    ) -> Result<Page<Grant>, RepoError> {
        let after: i64 = match &paging.after {
            Some(cursor) => cursor
                .parse()
                .map_err(|_| RepoError::invalid("cursor", "not a cursor of this listing"))?,
            None => 0,
        };
        let mut conn = self.pool.acquire().await?;
        tenant_exists(&mut conn, tenant).await?;
        let (state, at) = match filter.state {
            None => (None, None),
            Some(GrantsAt::InForce(at)) => (Some("in_force"), Some(at)),
            Some(GrantsAt::Scheduled(at)) => (Some("scheduled"), Some(at)),
            Some(GrantsAt::Ended(at)) => (Some("ended"), Some(at)),
        };
        let rows = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants \
             WHERE tenant_id = $1 AND id > $2 \
               AND ($3::text IS NULL OR resource = $3) \
               AND ($4::text IS NULL \
                    OR ($4 = 'in_force' AND effective_at <= $5 AND ends_at > $5) \
                    OR ($4 = 'scheduled' AND effective_at > $5 AND ends_at > $5) \
                    OR ($4 = 'ended' AND ends_at <= $5)) \
             ORDER BY id LIMIT $6"
        ))
        .bind(tenant)
        .bind(after)
        .bind(&filter.resource)
        .bind(state)
        .bind(at)
        .bind(paging.limit as i64 + 1)
        .fetch_all(&mut *conn)
        .await?;
        let grants = rows
            .iter()
            .map(grant_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(grants, paging.limit, |g| g.id.to_string()))
    }

    /// Ends grant `id` of `tenant` at `now`, keeping its record: who revoked it and why.
    /// A grant that has already ended (expired or revoked) is a conflict.
    pub async fn revoke_grant(
        &self,
        actor: &str,
        tenant: &str,
        id: i64,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Grant, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, tenant, id).await?;
        if before.ends_at() <= now {
            return Err(RepoError::Conflict(format!(
                "grant {id} of tenant {tenant} already ended ({} at {})",
                before.state_at(now).as_str(),
                before.ends_at().to_rfc3339()
            )));
        }
        let row = sqlx::query(&format!(
            "UPDATE grants SET revoked_at = $3, revoked_by = $4, revoke_reason = $5 \
             WHERE id = $1 AND tenant_id = $2 RETURNING {GRANT_COLUMNS}"
        ))
        .bind(id)
        .bind(tenant)
        .bind(now)
        .bind(actor)
        .bind(reason)
        .fetch_one(&mut *tx.tx)
        .await?;
        let after = grant_from_row(&row)?;
        tx.commit(NewEvent::change(
            "grant.revoked",
            format!("grant/{id}"),
            Some(tenant.to_string()),
            Some(to_json(&GrantView::at(&before, now))),
            Some(to_json(&GrantView::at(&after, now))),
        ))
        .await?;
        Ok(after)
    }
}
