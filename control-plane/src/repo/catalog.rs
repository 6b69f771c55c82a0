//! What `/v1/check` decides from, loaded for the definitions cache: the catalog (every
//! tier's limits, the role and default assignments) and one tenant's chain (it and its
//! ancestors, with their direct assignments, overrides and the grants that have not
//! ended at the loader's instant).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

use super::connection::QuotaRepo;
use super::error::RepoError;
use super::grants::{grants_json_column, GrantRow};
use super::limit_rows::{limit_def, limit_from_row, LIMIT_COLUMNS};
use crate::model::{
    Assignment, Catalog, Chain, ChainLevel, LimitDef, LimitOwner, Mode, Subject, MAX_DEPTH,
};

pub(super) const ASSIGNMENT_COLUMNS: &str =
    "id, tier, kind, tenant_id, role, enabled, expires_at, created_at, updated_at";

pub(super) fn assignment_from_row(row: &PgRow) -> Result<Assignment, RepoError> {
    let id: i64 = row.try_get("id")?;
    let subject = subject(
        &row.try_get::<String, _>("kind")?,
        row.try_get("tenant_id")?,
        row.try_get("role")?,
    )
    .ok_or_else(|| RepoError::Corrupt(format!("assignment {id} has no subject")))?;
    Ok(Assignment {
        id,
        tier: row.try_get("tier")?,
        subject,
        enabled: row.try_get("enabled")?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn subject(kind: &str, tenant: Option<String>, role: Option<String>) -> Option<Subject> {
    match (kind, tenant, role) {
        ("tenant", Some(tenant), None) => Some(Subject::Tenant(tenant)),
        ("role", None, Some(role)) => Some(Subject::Role(role)),
        ("default", None, None) => Some(Subject::Default),
        _ => None,
    }
}

/// An assignment as the chain query aggregates it into JSON.
#[derive(Debug, Deserialize)]
struct AssignmentJson {
    id: i64,
    tier: String,
    tenant_id: String,
    enabled: bool,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An override as the chain query aggregates it into JSON.
#[derive(Debug, Deserialize)]
struct OverrideJson {
    id: i64,
    resource: String,
    period: Option<String>,
    window_kind: String,
    quota: i64,
    overage: i64,
    warn_at_ppm: i32,
    unlimited: bool,
}

/// Per tenant row aliased `c`: its direct assignments, its overrides and its grants that
/// have not ended by the parameter `now_param` (the caller's instant), as JSON.
pub(super) fn level_json_columns(now_param: &str) -> String {
    format!(
        "COALESCE((SELECT json_agg(json_build_object(
            'id', a.id, 'tier', a.tier, 'tenant_id', a.tenant_id, 'enabled', a.enabled,
            'expires_at', a.expires_at, 'created_at', a.created_at, 'updated_at', a.updated_at)
            ORDER BY a.id)
            FROM assignments a WHERE a.tenant_id = c.id), '[]'::json) AS assignments,
        COALESCE((SELECT json_agg(json_build_object(
            'id', l.id, 'resource', l.resource, 'period', l.period, 'window_kind', l.window_kind,
            'quota', l.quota, 'overage', l.overage, 'warn_at_ppm', l.warn_at_ppm,
            'unlimited', l.unlimited)
            ORDER BY l.id)
            FROM limits l WHERE l.tenant_id = c.id), '[]'::json) AS overrides,
        {}",
        grants_json_column(now_param)
    )
}

/// The chain of a tenant in one statement (one consistent snapshot, one round trip):
/// the tenant and its ancestors, each with its direct assignments, overrides and grants
/// not ended by `$3`.
fn chain_query() -> String {
    let level_columns = level_json_columns("$3");
    format!(
        "WITH RECURSIVE chain (id, parent_id, tier, mode, depth) AS (
            SELECT id, parent_id, tier, mode, 0 FROM tenants WHERE id = $1
            UNION ALL
            SELECT t.id, t.parent_id, t.tier, t.mode, c.depth + 1
            FROM tenants t JOIN chain c ON t.id = c.parent_id
            WHERE c.depth < $2
        )
        SELECT c.id, c.tier, c.mode, c.depth, {level_columns}
        FROM chain c
        ORDER BY c.depth"
    )
}

impl QuotaRepo {
    /// Every tier with its limits and every role and default assignment, read in one
    /// snapshot.
    pub async fn load_catalog(&self) -> Result<Catalog, RepoError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM tiers")
            .fetch_all(&mut *tx)
            .await?;
        let mut tiers: HashMap<String, Vec<LimitDef>> =
            names.into_iter().map(|name| (name, Vec::new())).collect();
        let rows = sqlx::query(&format!(
            "SELECT {LIMIT_COLUMNS} FROM limits WHERE tier IS NOT NULL ORDER BY id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let stored = limit_from_row(row)?;
            if let LimitOwner::Tier(tier) = stored.owner {
                tiers.entry(tier).or_default().push(stored.def);
            }
        }
        let assignments = sqlx::query(&format!(
            "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE kind <> 'tenant' ORDER BY id"
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(assignment_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(Catalog { tiers, assignments })
    }

    /// The chain of tenant `id`, the tenant first, with the grants that have not ended
    /// at `now`; `None` when it does not exist.
    pub async fn load_chain(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Chain>, RepoError> {
        // The deepest level of a chain is MAX_DEPTH - 1 steps above the tenant.
        let rows = sqlx::query(&chain_query())
            .bind(id)
            .bind(MAX_DEPTH as i32 - 1)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let levels = rows
            .iter()
            .map(level_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Chain { levels }))
    }
}

/// A tenant row with [`level_json_columns`] as a chain level.
pub(super) fn level_from_row(row: &PgRow) -> Result<ChainLevel, RepoError> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: String| RepoError::Corrupt(format!("tenant {id}: {what}"));
    let mode: Mode = row
        .try_get::<String, _>("mode")?
        .parse()
        .map_err(|e: String| corrupt(e))?;
    let Json(assignments) = row.try_get::<Json<Vec<AssignmentJson>>, _>("assignments")?;
    let Json(overrides) = row.try_get::<Json<Vec<OverrideJson>>, _>("overrides")?;
    let Json(grants) = row.try_get::<Json<Vec<GrantRow>>, _>("grants")?;
    let grants = grants
        .into_iter()
        .map(GrantRow::into_grant)
        .collect::<Result<Vec<_>, _>>()?;
    let overrides = overrides
        .into_iter()
        .map(|o| {
            limit_def(
                o.resource,
                o.period,
                &o.window_kind,
                o.quota,
                o.overage,
                o.warn_at_ppm,
                o.unlimited,
            )
            .map_err(|what| corrupt(format!("override {}: {what}", o.id)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChainLevel {
        mode,
        tier: row.try_get("tier")?,
        assignments: assignments
            .into_iter()
            .map(|a| Assignment {
                id: a.id,
                tier: a.tier,
                subject: Subject::Tenant(a.tenant_id),
                enabled: a.enabled,
                expires_at: a.expires_at,
                created_at: a.created_at,
                updated_at: a.updated_at,
            })
            .collect(),
        overrides,
        grants,
        id,
    })
}
