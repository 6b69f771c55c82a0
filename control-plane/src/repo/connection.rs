//! [`QuotaRepo`]: the pool, and the admin transaction every write runs in.
//!
//! Every admin write runs in one transaction that first takes a transaction-scoped
//! advisory lock: admin writes are rare, and serializing them makes the cross-row rules
//! (overcommit, depth) exact without row-lock puzzles. The transaction also appends the
//! write's event, with actor and before/after, so the audit log cannot miss a change.

use sqlx::{PgPool, Postgres, Transaction};

use super::error::RepoError;
use super::events::event::{insert, NewEvent};

/// The migrations in `control-plane/migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The queries over the quota model; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct QuotaRepo {
    pub(super) pool: PgPool,
}

/// The admin transaction: one at a time, and the actor whose change it records.
pub struct AdminTx<'a> {
    pub(super) tx: Transaction<'a, Postgres>,
    pub(super) actor: String,
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
        insert(&mut self.tx, &event).await?;
        self.tx.commit().await?;
        Ok(())
    }
}
