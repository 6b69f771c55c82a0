//! Queries over `tenants`, and the resolved quota of one tenant.

use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

use super::tiers::unique_as_conflict;
use super::{QuotaRepo, RepoError};
use crate::model::{Tenant, TenantQuota};

/// A tenant to create, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTenant {
    /// Its id.
    pub id: String,
    /// The tier it is on.
    pub tier: String,
    /// Its labels (a JSON object).
    pub labels: serde_json::Value,
}

const TENANT_COLUMNS: &str = "id, parent_id, tier, labels, created_at, updated_at";

fn tenant_from_row(row: &PgRow) -> Result<Tenant, RepoError> {
    let Json(labels) = row.try_get::<Json<serde_json::Value>, _>("labels")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        parent_id: row.try_get("parent_id")?,
        tier: row.try_get("tier")?,
        labels,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl QuotaRepo {
    /// Creates a tenant; its tier must exist.
    pub async fn create_tenant(&self, tenant: &NewTenant) -> Result<Tenant, RepoError> {
        let row = sqlx::query(&format!(
            "INSERT INTO tenants (id, tier, labels) VALUES ($1, $2, $3) RETURNING {TENANT_COLUMNS}"
        ))
        .bind(&tenant.id)
        .bind(&tenant.tier)
        .bind(Json(&tenant.labels))
        .fetch_one(&self.pool)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                RepoError::UnknownTier(tenant.tier.clone())
            }
            _ => unique_as_conflict(error, &format!("tenant {}", tenant.id)),
        })?;
        tenant_from_row(&row)
    }

    /// The tenant `id`, if it exists.
    pub async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>, RepoError> {
        let row = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// What `/v1/check` decides against for tenant `id`; `None` for an unknown tenant.
    pub async fn tenant_quota(&self, id: &str) -> Result<Option<TenantQuota>, RepoError> {
        let Some(tier) = sqlx::query_scalar::<_, String>("SELECT tier FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let limits = self.tier_limits(&tier).await?;
        Ok(Some(TenantQuota {
            tenant: id.to_string(),
            root: id.to_string(),
            tier,
            limits,
        }))
    }
}
