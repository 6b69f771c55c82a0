//! Quota definitions in PostgreSQL, through runtime-checked `sqlx` queries (no database
//! is needed to build). Each file holds the queries of one table family; this one the
//! shared handle and error classification.

mod tenants;
mod tiers;

use sqlx::PgPool;
use tollgate_protocol::{Limit, WarnAt};

use crate::model::LimitDef;
use crate::window::Period;

pub use self::tenants::NewTenant;
pub use self::tiers::{NewLimit, NewTier};

/// The queries over the quota model; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct QuotaRepo {
    pool: PgPool,
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The row already exists (unique violation).
    #[error("{0} already exists")]
    Conflict(String),
    /// A tenant names a tier that does not exist (foreign-key violation).
    #[error("tier {0} does not exist")]
    UnknownTier(String),
    /// PostgreSQL cannot be reached or the pool has no connection to give.
    #[error("PostgreSQL unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("PostgreSQL query failed")]
    Query(#[source] sqlx::Error),
    /// A stored row breaks an invariant the schema should have kept.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for RepoError {
    fn from(error: sqlx::Error) -> RepoError {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => RepoError::Unavailable(error),
            other => RepoError::Query(other),
        }
    }
}

impl QuotaRepo {
    /// Queries over `pool`.
    pub fn new(pool: PgPool) -> QuotaRepo {
        QuotaRepo { pool }
    }

    /// The pool, for migrations and readiness.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `SELECT 1`, for `/ready`.
    pub async fn ping(&self) -> Result<(), RepoError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The columns of one `limits` row.
pub(crate) type LimitRow = (String, String, i64, i64, i32, bool);

/// A `limits` row as the model holds it.
pub(crate) fn limit_from_row(
    (resource, period, quota, overage, warn_at_ppm, unlimited): LimitRow,
) -> Result<LimitDef, RepoError> {
    let corrupt = |what: &str| RepoError::Corrupt(format!("limit {resource}/{period}: {what}"));
    let period_value: Period = period.parse().map_err(|_| corrupt("period"))?;
    let warn_at = u32::try_from(warn_at_ppm)
        .ok()
        .and_then(WarnAt::from_ppm)
        .ok_or_else(|| corrupt("warn_at_ppm"))?;
    Ok(LimitDef {
        limit: Limit {
            quota: u64::try_from(quota).map_err(|_| corrupt("quota"))?,
            overage: u64::try_from(overage).map_err(|_| corrupt("overage"))?,
            warn_at,
            unlimited,
        },
        period: period_value,
        resource,
    })
}
