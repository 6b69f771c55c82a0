//! Queries over `tiers` and `limits`.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{limit_from_row, LimitRow, QuotaRepo, RepoError};
use crate::model::{LimitDef, Tier};

/// A tier to create, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTier {
    /// Its name.
    pub name: String,
    /// Its limits, distinct by (resource, period).
    pub limits: Vec<NewLimit>,
}

/// A limit to create; the same shape as what is stored.
pub type NewLimit = LimitDef;

const LIMIT_COLUMNS: &str = "resource, period, quota, overage, warn_at_ppm, unlimited";

impl QuotaRepo {
    /// Creates a tier and its limits in one transaction: all or nothing.
    pub async fn create_tier(&self, tier: &NewTier) -> Result<Tier, RepoError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO tiers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING \
             RETURNING created_at, updated_at",
        )
        .bind(&tier.name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| RepoError::Conflict(format!("tier {}", tier.name)))?;
        let created_at: DateTime<Utc> = row.try_get("created_at")?;
        let updated_at: DateTime<Utc> = row.try_get("updated_at")?;
        for def in &tier.limits {
            let quota = to_bigint(def.limit.quota, "quota")?;
            let overage = to_bigint(def.limit.overage, "overage")?;
            let warn_at_ppm = i32::try_from(def.limit.warn_at.ppm())
                .map_err(|_| RepoError::Corrupt("warn_at out of range".into()))?;
            sqlx::query(
                "INSERT INTO limits (tier, resource, period, quota, overage, warn_at_ppm, unlimited) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&tier.name)
            .bind(&def.resource)
            .bind(def.period.as_str())
            .bind(quota)
            .bind(overage)
            .bind(warn_at_ppm)
            .bind(def.limit.unlimited)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_as_conflict(e, &format!("limit {}/{}", def.resource, def.period)))?;
        }
        tx.commit().await?;
        Ok(Tier {
            name: tier.name.clone(),
            limits: tier.limits.clone(),
            created_at,
            updated_at,
        })
    }

    /// The tier named `name` with its limits, if it exists.
    pub async fn get_tier(&self, name: &str) -> Result<Option<Tier>, RepoError> {
        let Some(row) = sqlx::query("SELECT created_at, updated_at FROM tiers WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Tier {
            name: name.to_string(),
            limits: self.tier_limits(name).await?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }))
    }

    /// The limits of tier `name`, in a stable order.
    pub(crate) async fn tier_limits(&self, name: &str) -> Result<Vec<LimitDef>, RepoError> {
        let rows: Vec<LimitRow> = sqlx::query_as(&format!(
            "SELECT {LIMIT_COLUMNS} FROM limits WHERE tier = $1 ORDER BY resource, period"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(limit_from_row).collect()
    }
}

fn to_bigint(value: u64, what: &str) -> Result<i64, RepoError> {
    i64::try_from(value).map_err(|_| RepoError::Corrupt(format!("{what} above i64::MAX")))
}

/// A unique violation as a conflict on `what`; other errors as they are.
pub(super) fn unique_as_conflict(error: sqlx::Error, what: &str) -> RepoError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            RepoError::Conflict(what.to_string())
        }
        _ => RepoError::from(error),
    }
}
