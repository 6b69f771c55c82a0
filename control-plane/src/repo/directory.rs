//! The rows the tenant directory (`engine/definitions/directory.rs`) is loaded from:
//! every tenant with its parent and what a chain level holds — own tier, mode, direct
//! assignments, overrides, grants not ended — page by page in id order, or one tenant at
//! a time.
//!
//! The columns are those of a tenant's chain (`catalog.rs`), so a directory row and a
//! chain level never differ in shape.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::catalog::{level_from_row, level_json_columns};
use super::connection::QuotaRepo;
use super::error::RepoError;
use crate::model::ChainLevel;

/// One tenant as the directory keeps it: the level it contributes to every chain it is
/// part of, and the parent that chain continues with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// The tenant's parent; `None` for a root.
    pub parent: Option<String>,
    /// The tenant's own definitions, as in its chain.
    pub level: ChainLevel,
}

/// Tenants matching `filter`, with their grants not ended by `now_param`.
fn tenant_rows_query(filter: &str, now_param: &str) -> String {
    format!(
        "SELECT c.id, c.parent_id, c.tier, c.mode, {}
         FROM tenants c
         WHERE {filter}
         ORDER BY c.id",
        level_json_columns(now_param)
    )
}

fn tenant_row_from(row: &PgRow) -> Result<TenantRow, RepoError> {
    Ok(TenantRow {
        parent: row.try_get("parent_id")?,
        level: level_from_row(row)?,
    })
}

impl QuotaRepo {
    /// At most `limit` tenants with ids after `after` (from the first when `None`), in
    /// id order, with their grants not ended at `now`: one page of a keyset walk over
    /// every tenant.
    pub async fn tenant_rows_after(
        &self,
        after: Option<&str>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<TenantRow>, RepoError> {
        // Every id sorts after the empty string, so the first page needs no other plan
        // than the next ones: an index range scan on the primary key.
        let query = format!("{} LIMIT $2", tenant_rows_query("c.id > $1", "$3"));
        sqlx::query(&query)
            .bind(after.unwrap_or(""))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(now)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(tenant_row_from)
            .collect()
    }

    /// Tenant `id` as the directory keeps it, with its grants not ended at `now`; `None`
    /// when it does not exist.
    pub async fn tenant_row(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TenantRow>, RepoError> {
        sqlx::query(&tenant_rows_query("c.id = $1", "$2"))
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tenant_row_from)
            .transpose()
    }
}
