//! The quota model in PostgreSQL, through runtime-checked `sqlx` queries (no database is
//! needed to build; the queries are covered by the tests that run against a real one).
//!
//! Every admin write runs in one transaction that first takes a transaction-scoped
//! advisory lock: admin writes are rare, and serializing them makes the cross-row rules
//! (overcommit, depth) exact without row-lock puzzles. The transaction also appends the
//! write's event, with actor and before/after, so the audit log cannot miss a change.
//!
//! # Layout
//! - `catalog` — what the check path caches: the catalog and a tenant's chain.
//! - `tiers`, `limits`, `tenants`, `assignments` — one table family each.
//! - `rules` — the hierarchy rules checked inside write transactions.
//! - `events` — the audit log; `history` — persisted usage; `fallback` — counters kept
//!   here while Redis is unreachable.

mod assignments;
mod catalog;
mod events;
mod fallback;
mod history;
mod limits;
mod rules;
mod tenants;
mod tiers;

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use tollgate_protocol::{Limit, WarnAt};

use crate::model::window::{Period, Series, WindowKind};
use crate::model::{LimitDef, LimitOwner, Span, StoredLimit};

pub use self::assignments::{AssignmentFilter, AssignmentPatch, NewAssignment};
pub use self::events::{EventFilter, NewEvent, StoredEvent};
pub use self::fallback::{FallbackOp, FallbackOutcome, Pending};
pub use self::history::{HistoryFilter, HistoryRow};
pub use self::limits::{LimitFilter, LimitPatch};
pub use self::tenants::{NewTenant, TenantFilter, TenantPatch};
pub use self::tiers::{NewTier, TierPatch};

/// The queries over the quota model; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct QuotaRepo {
    pool: PgPool,
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The write would break a rule or a uniqueness (409).
    #[error("{0}")]
    Conflict(String),
    /// What the write refers to does not exist (404 for the addressed object).
    #[error("{0} not found")]
    NotFound(String),
    /// A value the write refers to is invalid, e.g. an unknown tier (422).
    #[error("{field}: {message}")]
    Invalid {
        /// The request field.
        field: String,
        /// What is wrong.
        message: String,
    },
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

impl RepoError {
    /// An invalid value of `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> RepoError {
        RepoError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
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

/// A page of a listing and the cursor of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Where the next page starts: the sort key of the last item, if there may be more.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// A page from `limit + 1` fetched rows: the extra row only tells that more exist.
    pub(crate) fn from_rows(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(key) } else { None };
        Page { items, next }
    }
}

/// The first rows of a listing after a cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paging {
    /// The sort key of the last row already seen.
    pub after: Option<String>,
    /// How many rows at most.
    pub limit: usize,
}

/// The admin transaction: one at a time, and the actor whose change it records.
pub struct AdminTx<'a> {
    tx: Transaction<'a, Postgres>,
    actor: String,
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

    /// Begins an admin write on behalf of `actor`, after every earlier one committed.
    pub(crate) async fn admin_tx(&self, actor: &str) -> Result<AdminTx<'static>, RepoError> {
        let mut tx = self.pool.begin().await?;
        // One key for all admin writes: "tollgate" in ASCII.
        sqlx::query("SELECT pg_advisory_xact_lock(8390891062553440613)")
            .execute(&mut *tx)
            .await?;
        Ok(AdminTx {
            tx,
            actor: actor.to_string(),
        })
    }
}

impl QuotaRepo {
    /// Records an admin action that changed no definition (a usage reset or adjustment).
    pub async fn record(&self, actor: &str, event: NewEvent) -> Result<(), RepoError> {
        self.admin_tx(actor).await?.commit(event).await
    }
}

impl AdminTx<'_> {
    /// Records the change and commits it.
    pub(crate) async fn commit(mut self, event: NewEvent) -> Result<(), RepoError> {
        let event = NewEvent {
            actor: Some(self.actor.clone()),
            ..event
        };
        events::insert(&mut self.tx, &event).await?;
        self.tx.commit().await?;
        Ok(())
    }
}

/// The columns of a `limits` row, in the order [`limit_from_row`] reads them.
pub(crate) const LIMIT_COLUMNS: &str = "id, tier, tenant_id, resource, period, window_kind, \
     quota, overage, warn_at_ppm, unlimited, created_at, updated_at";

/// A `limits` row as the model holds it.
pub(crate) fn limit_from_row(row: &PgRow) -> Result<StoredLimit, RepoError> {
    let id: i64 = row.try_get("id")?;
    let tier: Option<String> = row.try_get("tier")?;
    let tenant: Option<String> = row.try_get("tenant_id")?;
    let owner = match (tier, tenant) {
        (Some(tier), None) => LimitOwner::Tier(tier),
        (None, Some(tenant)) => LimitOwner::Tenant(tenant),
        _ => {
            return Err(RepoError::Corrupt(format!(
                "limit {id} has no single owner"
            )))
        }
    };
    let def = limit_def(
        row.try_get("resource")?,
        row.try_get("period")?,
        &row.try_get::<String, _>("window_kind")?,
        row.try_get("quota")?,
        row.try_get("overage")?,
        row.try_get("warn_at_ppm")?,
        row.try_get("unlimited")?,
    )
    .map_err(|what| RepoError::Corrupt(format!("limit {id}: {what}")))?;
    Ok(StoredLimit {
        id,
        owner,
        def,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A limit from its stored columns; `Err` names the column that is out of range.
pub(crate) fn limit_def(
    resource: String,
    period: Option<String>,
    window_kind: &str,
    quota: i64,
    overage: i64,
    warn_at_ppm: i32,
    unlimited: bool,
) -> Result<LimitDef, &'static str> {
    let kind: WindowKind = window_kind.parse().map_err(|_| "window_kind")?;
    let span = match period {
        None => Span::Gauge,
        Some(period) => Span::Window(Series {
            period: period.parse::<Period>().map_err(|_| "period")?,
            kind,
        }),
    };
    let warn_at = u32::try_from(warn_at_ppm)
        .ok()
        .and_then(WarnAt::from_ppm)
        .ok_or("warn_at_ppm")?;
    Ok(LimitDef {
        resource,
        span,
        limit: Limit {
            quota: u64::try_from(quota).map_err(|_| "quota")?,
            overage: u64::try_from(overage).map_err(|_| "overage")?,
            warn_at,
            unlimited,
        },
    })
}

/// The values of a limit's stored columns: period (NULL for gauges), window kind,
/// quota, overage and warning threshold.
pub(crate) fn limit_columns(
    def: &LimitDef,
) -> Result<(Option<&'static str>, String, i64, i64, i32), RepoError> {
    let bigint = |value: u64, what: &str| {
        i64::try_from(value).map_err(|_| RepoError::invalid(what, "at most 2^63 - 1"))
    };
    Ok((
        def.span.period().map(Period::as_str),
        def.span.window_kind().to_string(),
        bigint(def.limit.quota, "quota")?,
        bigint(def.limit.overage, "overage")?,
        i32::try_from(def.limit.warn_at.ppm())
            .map_err(|_| RepoError::invalid("warn_at", "0 to 1"))?,
    ))
}

/// A unique violation as a conflict on `what`; other errors as they are.
pub(crate) fn unique_as_conflict(error: sqlx::Error, what: &str) -> RepoError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            RepoError::Conflict(format!("{what} already exists"))
        }
        _ => RepoError::from(error),
    }
}
