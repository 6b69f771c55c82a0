//! Queries over `limits`: on a tier, or as a per-tenant override.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::connection::QuotaRepo;
use super::error::{unique_as_conflict, RepoError};
use super::events::NewEvent;
use super::limit_rows::{limit_columns, limit_from_row, LIMIT_COLUMNS};
use super::page::{Page, Paging};
use super::rules;
use crate::model::views::{to_json, LimitView};
use crate::model::{LimitDef, LimitOwner, StoredLimit};

/// Which limits to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitFilter {
    /// Only this tier's.
    pub tier: Option<String>,
    /// Only this tenant's overrides.
    pub tenant: Option<String>,
    /// Only limits on this resource.
    pub resource: Option<String>,
}

/// A change to a limit: the limit as it should be.
pub type LimitPatch = LimitDef;

fn owner_columns(owner: &LimitOwner) -> (Option<&str>, Option<&str>) {
    match owner {
        LimitOwner::Tier(tier) => (Some(tier.as_str()), None),
        LimitOwner::Tenant(tenant) => (None, Some(tenant.as_str())),
    }
}

fn describe(def: &LimitDef) -> String {
    format!(
        "a {} {} limit on {}",
        def.span.window_kind(),
        def.span.period_name(),
        def.resource
    )
}

/// Inserts a limit for `owner`; a second limit on the same resource and span is a
/// conflict.
pub(super) async fn insert(
    conn: &mut PgConnection,
    owner: &LimitOwner,
    def: &LimitDef,
) -> Result<StoredLimit, RepoError> {
    let (tier, tenant) = owner_columns(owner);
    let (period, window, quota, overage, warn_at_ppm) = limit_columns(def)?;
    let row = sqlx::query(&format!(
        "INSERT INTO limits (tier, tenant_id, resource, period, window_kind, quota, overage, \
         warn_at_ppm, unlimited) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         RETURNING {LIMIT_COLUMNS}"
    ))
    .bind(tier)
    .bind(tenant)
    .bind(&def.resource)
    .bind(period)
    .bind(window)
    .bind(quota)
    .bind(overage)
    .bind(warn_at_ppm)
    .bind(def.limit.unlimited)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| unique_as_conflict(e, &describe(def)))?;
    limit_from_row(&row)
}

/// Rewrites limit `id` as `def`.
pub(super) async fn update(
    conn: &mut PgConnection,
    id: i64,
    def: &LimitDef,
) -> Result<StoredLimit, RepoError> {
    let (period, window, quota, overage, warn_at_ppm) = limit_columns(def)?;
    let row = sqlx::query(&format!(
        "UPDATE limits SET resource = $2, period = $3, window_kind = $4, quota = $5, \
         overage = $6, warn_at_ppm = $7, unlimited = $8, updated_at = now() \
         WHERE id = $1 RETURNING {LIMIT_COLUMNS}"
    ))
    .bind(id)
    .bind(&def.resource)
    .bind(period)
    .bind(window)
    .bind(quota)
    .bind(overage)
    .bind(warn_at_ppm)
    .bind(def.limit.unlimited)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| unique_as_conflict(e, &describe(def)))?
    .ok_or_else(|| RepoError::NotFound(format!("limit {id}")))?;
    limit_from_row(&row)
}

/// The limits of `owner`, in id order.
pub(super) async fn of_owner(
    conn: &mut PgConnection,
    owner: &LimitOwner,
) -> Result<Vec<StoredLimit>, RepoError> {
    let (tier, tenant) = owner_columns(owner);
    sqlx::query(&format!(
        "SELECT {LIMIT_COLUMNS} FROM limits \
         WHERE tier IS NOT DISTINCT FROM $1 AND tenant_id IS NOT DISTINCT FROM $2 ORDER BY id"
    ))
    .bind(tier)
    .bind(tenant)
    .fetch_all(conn)
    .await?
    .iter()
    .map(limit_from_row)
    .collect()
}

async fn get_in(conn: &mut PgConnection, id: i64) -> Result<StoredLimit, RepoError> {
    let row = sqlx::query(&format!("SELECT {LIMIT_COLUMNS} FROM limits WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| RepoError::NotFound(format!("limit {id}")))?;
    limit_from_row(&row)
}

/// Refuses a limit for an owner that does not exist, naming the field.
async fn owner_exists(conn: &mut PgConnection, owner: &LimitOwner) -> Result<(), RepoError> {
    let (field, query, name) = match owner {
        LimitOwner::Tier(tier) => ("tier", "SELECT 1 FROM tiers WHERE name = $1", tier),
        LimitOwner::Tenant(tenant) => ("tenant", "SELECT 1 FROM tenants WHERE id = $1", tenant),
    };
    let found: Option<i32> = sqlx::query_scalar(query)
        .bind(name)
        .fetch_optional(conn)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(RepoError::invalid(
            field,
            format!("{field} {name} does not exist"),
        )),
    }
}

/// The parents whose overcommit a change of `owner`'s limits can break.
pub(super) async fn affected_parents(
    conn: &mut PgConnection,
    owner: &LimitOwner,
) -> Result<Vec<String>, RepoError> {
    match owner {
        LimitOwner::Tier(tier) => rules::parents_affected_by_tier(conn, tier).await,
        LimitOwner::Tenant(tenant) => rules::parents_affected_by_tenant(conn, tenant).await,
    }
}

fn subject_of(limit: &StoredLimit) -> (String, Option<String>) {
    let tenant = match &limit.owner {
        LimitOwner::Tenant(t) => Some(t.clone()),
        LimitOwner::Tier(_) => None,
    };
    (format!("limit/{}", limit.id), tenant)
}

impl QuotaRepo {
    /// Adds a limit to a tier, or a per-tenant override.
    pub async fn create_limit(
        &self,
        actor: &str,
        owner: &LimitOwner,
        def: &LimitDef,
        now: DateTime<Utc>,
    ) -> Result<StoredLimit, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        owner_exists(&mut tx.tx, owner).await?;
        let created = insert(&mut tx.tx, owner, def).await?;
        let parents = affected_parents(&mut tx.tx, owner).await?;
        rules::check_overcommit(&mut tx.tx, &parents, now).await?;
        let (subject, tenant) = subject_of(&created);
        let after = to_json(&LimitView::from(&created));
        tx.commit(NewEvent::change(
            "limit.created",
            subject,
            tenant,
            None,
            Some(after),
        ))
        .await?;
        Ok(created)
    }

    /// Limit `id`.
    pub async fn get_limit(&self, id: i64) -> Result<StoredLimit, RepoError> {
        let mut conn = self.pool.acquire().await?;
        get_in(&mut conn, id).await
    }

    /// Limits matching `filter`, in id order.
    pub async fn list_limits(
        &self,
        filter: &LimitFilter,
        paging: &Paging,
    ) -> Result<Page<StoredLimit>, RepoError> {
        let after: i64 = match &paging.after {
            Some(cursor) => cursor
                .parse()
                .map_err(|_| RepoError::invalid("cursor", "not a cursor of this listing"))?,
            None => 0,
        };
        let rows = sqlx::query(&format!(
            "SELECT {LIMIT_COLUMNS} FROM limits \
             WHERE ($1::text IS NULL OR tier = $1) AND ($2::text IS NULL OR tenant_id = $2) \
               AND ($3::text IS NULL OR resource = $3) AND id > $4 \
             ORDER BY id LIMIT $5"
        ))
        .bind(&filter.tier)
        .bind(&filter.tenant)
        .bind(&filter.resource)
        .bind(after)
        .bind(paging.limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let limits = rows
            .iter()
            .map(limit_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(limits, paging.limit, |l| l.id.to_string()))
    }

    /// Rewrites limit `id` as `def` (its owner stays).
    pub async fn update_limit(
        &self,
        actor: &str,
        id: i64,
        def: &LimitPatch,
        now: DateTime<Utc>,
    ) -> Result<StoredLimit, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, id).await?;
        let after = update(&mut tx.tx, id, def).await?;
        let parents = affected_parents(&mut tx.tx, &after.owner).await?;
        rules::check_overcommit(&mut tx.tx, &parents, now).await?;
        let (subject, tenant) = subject_of(&after);
        tx.commit(NewEvent::change(
            "limit.updated",
            subject,
            tenant,
            Some(to_json(&LimitView::from(&before))),
            Some(to_json(&LimitView::from(&after))),
        ))
        .await?;
        Ok(after)
    }

    /// Deletes limit `id`.
    pub async fn delete_limit(
        &self,
        actor: &str,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<StoredLimit, RepoError> {
        let mut tx = self.admin_tx(actor).await?;
        let before = get_in(&mut tx.tx, id).await?;
        sqlx::query("DELETE FROM limits WHERE id = $1")
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        let parents = affected_parents(&mut tx.tx, &before.owner).await?;
        rules::check_overcommit(&mut tx.tx, &parents, now).await?;
        let (subject, tenant) = subject_of(&before);
        tx.commit(NewEvent::change(
            "limit.deleted",
            subject,
            tenant,
            Some(to_json(&LimitView::from(&before))),
            None,
        ))
        .await?;
        Ok(before)
    }
}
