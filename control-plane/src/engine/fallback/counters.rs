//! Counters kept in PostgreSQL while Redis is unreachable (migration `0003`).
//!
//! A fallback counter stands in for one Redis counter: its usage is the persisted
//! history of that window (the last flush from Redis) plus `pending`, what was counted
//! here since. A check locks the rows of every counter it touches, in key order (so
//! concurrent checks never deadlock), decides against their caps and adds its amounts,
//! all in one transaction: all or nothing, exact under any concurrency, as the Redis
//! script is. Once Redis is back, the reconciler adds `pending` to the Redis counters
//! (one idempotent settlement per `version`) and takes it off here.
//!
//! An admitted check also leaves what it counted in `fallback_checks` (migration
//! `0004`), as it would leave a check record in Redis, so that a check the filter gave
//! up on can be taken back.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::repo::{QuotaRepo, RepoError};
use crate::store::{Counter, CHECK_RECORD_TTL_MS};

/// One limit of a fallback check.
#[derive(Debug, Clone)]
pub struct FallbackOp {
    /// The counters its usage is the sum of, current first (one calendar window, or the
    /// buckets of a rolling window); the amount is added to the first.
    pub counters: Vec<Counter>,
    /// What the request adds.
    pub amount: u64,
    /// The largest usage it may reach.
    pub cap: u64,
}

/// What a fallback check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackOutcome {
    /// Whether everything was counted.
    pub admitted: bool,
    /// The first op that would have passed its cap.
    pub violated: Option<usize>,
    /// Each op's usage: after counting when admitted, unchanged otherwise.
    pub used: Vec<u64>,
    /// Each op's oldest counter (index) that holds usage.
    pub oldest: Vec<Option<usize>>,
}

/// Usage counted in PostgreSQL that Redis does not have yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The Redis counter.
    pub counter_key: String,
    /// What to add to it (negative: to take back).
    pub pending: i64,
    /// The step this is: names the settlement that carries it to Redis.
    pub version: i64,
}

/// Locks (creating them when missing) the fallback rows of `counters`, in key order,
/// and answers each one's usage: its persisted history plus what is pending here.
async fn lock_usage(
    tx: &mut sqlx::PgConnection,
    counters: &BTreeMap<&str, &Counter>,
) -> Result<BTreeMap<String, u64>, RepoError> {
    let mut keys = Vec::with_capacity(counters.len());
    let (mut tenants, mut resources, mut series, mut starts, mut ends) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (key, counter) in counters {
        keys.push(key.to_string());
        tenants.push(counter.tenant.clone());
        resources.push(counter.resource.clone());
        series.push(counter.series.name());
        starts.push(counter.window.start);
        ends.push(counter.window.end);
    }
    sqlx::query(
        "INSERT INTO fallback_counters \
             (counter_key, tenant_id, resource, series, window_start, window_end) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                              $5::timestamptz[], $6::timestamptz[]) \
         ON CONFLICT (counter_key) DO NOTHING",
    )
    .bind(&keys)
    .bind(tenants)
    .bind(resources)
    .bind(series)
    .bind(starts)
    .bind(ends)
    .execute(&mut *tx)
    .await?;
    let rows = sqlx::query(
        "SELECT f.counter_key, f.pending, COALESCE(h.used, 0) AS base \
         FROM fallback_counters f \
         LEFT JOIN usage_history h ON h.tenant_id = f.tenant_id AND h.resource = f.resource \
              AND h.series = f.series AND h.window_start = f.window_start \
         WHERE f.counter_key = ANY($1) ORDER BY f.counter_key FOR UPDATE OF f",
    )
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await?;
    let mut usage = BTreeMap::new();
    for row in rows {
        let (pending, base): (i64, i64) = (row.try_get("pending")?, row.try_get("base")?);
        let used = u64::try_from(i128::from(base) + i128::from(pending)).unwrap_or(0);
        usage.insert(row.try_get("counter_key")?, used);
    }
    Ok(usage)
}

/// Locks the rows of `moves`' counters and adds each `(counter, change)` to its pending
/// usage; a refund never takes a counter below zero. Answers each counter's usage after.
async fn apply_moves(
    tx: &mut sqlx::PgConnection,
    moves: &[(Counter, i64)],
) -> Result<Vec<u64>, RepoError> {
    let counters: BTreeMap<&str, &Counter> =
        moves.iter().map(|(c, _)| (c.key.as_str(), c)).collect();
    let usage = lock_usage(tx, &counters).await?;
    let mut changes = BTreeMap::new();
    let mut after = Vec::with_capacity(moves.len());
    for (counter, change) in moves {
        let now = usage.get(&counter.key).copied().unwrap_or(0);
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let change = (*change).max(-now);
        changes.insert(counter.key.clone(), change);
        after.push(u64::try_from(now.saturating_add(change)).unwrap_or(0));
    }
    add_pending(tx, &changes).await?;
    Ok(after)
}

/// Remembers what an admitted check counted (`changes`) under its check `record` key;
/// a record already there is replaced, as Redis replaces its own.
async fn remember_check(
    tx: &mut sqlx::PgConnection,
    record: &str,
    changes: &BTreeMap<String, i64>,
) -> Result<(), RepoError> {
    let (keys, amounts): (Vec<&String>, Vec<i64>) = changes.iter().map(|(k, v)| (k, *v)).unzip();
    sqlx::query(
        "INSERT INTO fallback_checks (record_key, counter_keys, amounts) VALUES ($1, $2, $3) \
         ON CONFLICT (record_key) DO UPDATE SET counter_keys = EXCLUDED.counter_keys, \
             amounts = EXCLUDED.amounts, created_at = now()",
    )
    .bind(record)
    .bind(keys)
    .bind(amounts)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds `changes` (counter key → signed amount) to the pending usage of locked rows.
async fn add_pending(
    tx: &mut sqlx::PgConnection,
    changes: &BTreeMap<String, i64>,
) -> Result<(), RepoError> {
    let (keys, amounts): (Vec<&String>, Vec<i64>) = changes.iter().map(|(k, v)| (k, *v)).unzip();
    sqlx::query(
        "UPDATE fallback_counters f SET pending = f.pending + u.amount, updated_at = now() \
         FROM UNNEST($1::text[], $2::bigint[]) AS u(key, amount) WHERE f.counter_key = u.key",
    )
    .bind(keys)
    .bind(amounts)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The fallback counters' tables, over the repository's pool.
#[derive(Debug, Clone)]
pub struct FallbackCounters {
    repo: QuotaRepo,
}

impl FallbackCounters {
    /// The tables in `repo`'s database (migrations `0003` and `0004`).
    pub fn new(repo: QuotaRepo) -> FallbackCounters {
        FallbackCounters { repo }
    }

    /// Checks and counts `ops` in one transaction: either every op stays within its
    /// cap and all are counted, or nothing changes. An admitted check with a `record`
    /// (the key of its check record in Redis) also remembers what it counted there, for
    /// [`FallbackCounters::cancel`].
    pub async fn check(
        &self,
        ops: &[FallbackOp],
        record: Option<&str>,
    ) -> Result<FallbackOutcome, RepoError> {
        let counters: BTreeMap<&str, &Counter> = ops
            .iter()
            .flat_map(|op| op.counters.iter().map(|c| (c.key.as_str(), c)))
            .collect();
        let mut tx = self.repo.pool().begin().await?;
        let usage = lock_usage(&mut tx, &counters).await?;
        let value = |c: &Counter| usage.get(&c.key).copied().unwrap_or(0);
        let mut used: Vec<u64> = Vec::with_capacity(ops.len());
        let mut oldest = Vec::with_capacity(ops.len());
        for op in ops {
            let values: Vec<u64> = op.counters.iter().map(value).collect();
            used.push(values.iter().fold(0u64, |sum, v| sum.saturating_add(*v)));
            oldest.push(values.iter().rposition(|&v| v > 0));
        }
        let violated = (ops.iter().zip(&used))
            .position(|(op, &u)| u128::from(u) + u128::from(op.amount) > u128::from(op.cap));
        if violated.is_some() {
            tx.commit().await?;
            return Ok(FallbackOutcome {
                admitted: false,
                violated,
                used,
                oldest,
            });
        }
        let mut changes: BTreeMap<String, i64> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            let Some(current) = op.counters.first() else {
                continue;
            };
            if op.amount == 0 {
                continue;
            }
            let amount = i64::try_from(op.amount)
                .map_err(|_| RepoError::invalid("amounts", "at most 2^63 - 1"))?;
            let change = changes.entry(current.key.clone()).or_default();
            *change = change.saturating_add(amount);
            used[i] = used[i].saturating_add(op.amount);
            if oldest[i].is_none() {
                oldest[i] = Some(0);
            }
        }
        add_pending(&mut tx, &changes).await?;
        if let Some(record) = record.filter(|_| !changes.is_empty()) {
            remember_check(&mut tx, record, &changes).await?;
        }
        tx.commit().await?;
        Ok(FallbackOutcome {
            admitted: true,
            violated: None,
            used,
            oldest,
        })
    }

    /// Applies settlement `id` to fallback counters, once: each `(counter, change)`
    /// adds `change` (a refund never takes a counter below zero). Answers each
    /// counter's usage afterwards, or `None` when `id` was applied before.
    pub async fn settle(
        &self,
        id: &str,
        moves: &[(Counter, i64)],
    ) -> Result<Option<Vec<u64>>, RepoError> {
        let mut tx = self.repo.pool().begin().await?;
        let first = sqlx::query(
            "INSERT INTO fallback_settlements (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !first {
            return Ok(None);
        }
        let after = apply_moves(&mut tx, moves).await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    /// Takes back what the check recorded at `record` counted here, once (the filter
    /// refused that request after all): answers the units taken back, or `None` when no
    /// check of that record was counted here (or it was taken back before).
    pub async fn cancel(&self, record: &str) -> Result<Option<u64>, RepoError> {
        let mut tx = self.repo.pool().begin().await?;
        let Some(row) = sqlx::query(
            "DELETE FROM fallback_checks WHERE record_key = $1 RETURNING counter_keys, amounts",
        )
        .bind(record)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let (keys, amounts): (Vec<String>, Vec<i64>) =
            (row.try_get("counter_keys")?, row.try_get("amounts")?);
        let moves: Vec<(Counter, i64)> = (keys.iter().zip(&amounts))
            .filter_map(|(key, &amount)| Some((Counter::from_key(key)?, amount.saturating_neg())))
            .collect();
        apply_moves(&mut tx, &moves).await?;
        tx.commit().await?;
        let refunded = amounts.iter().map(|&a| u64::try_from(a).unwrap_or(0)).sum();
        Ok(Some(refunded))
    }

    /// Up to `limit` fallback counters whose usage Redis does not have yet, oldest
    /// first.
    pub async fn pending(&self, limit: i64) -> Result<Vec<Pending>, RepoError> {
        let rows = sqlx::query(
            "SELECT counter_key, pending, version FROM fallback_counters \
             WHERE pending <> 0 ORDER BY updated_at LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.repo.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Pending {
                    counter_key: row.try_get("counter_key")?,
                    pending: row.try_get("pending")?,
                    version: row.try_get("version")?,
                })
            })
            .collect()
    }

    /// Takes `applied` off the pending usage of `counter_key` once step `version` has
    /// reached Redis, and starts the next step. `false` when another instance took it
    /// off first (nothing changed).
    pub async fn reconciled(
        &self,
        counter_key: &str,
        version: i64,
        applied: i64,
    ) -> Result<bool, RepoError> {
        let done = sqlx::query(
            "UPDATE fallback_counters SET pending = pending - $3, version = version + 1, \
                 updated_at = now() \
             WHERE counter_key = $1 AND version = $2",
        )
        .bind(counter_key)
        .bind(version)
        .bind(applied)
        .execute(self.repo.pool())
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Remembers a budget given back while Redis was down, to refund once it is back.
    pub async fn remember_return(&self, record_key: &str, spent: u64) -> Result<(), RepoError> {
        sqlx::query(
            "INSERT INTO fallback_returns (record_key, spent) VALUES ($1, $2) \
             ON CONFLICT (record_key) DO NOTHING",
        )
        .bind(record_key)
        .bind(i64::try_from(spent).unwrap_or(i64::MAX))
        .execute(self.repo.pool())
        .await?;
        Ok(())
    }

    /// Up to `limit` budgets given back during an outage: (record key, spent).
    pub async fn returns(&self, limit: i64) -> Result<Vec<(String, u64)>, RepoError> {
        let rows = sqlx::query(
            "SELECT record_key, spent FROM fallback_returns ORDER BY created_at LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.repo.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let spent: i64 = row.try_get("spent")?;
                Ok((
                    row.try_get("record_key")?,
                    u64::try_from(spent).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// Forgets a budget return that reached Redis.
    pub async fn returned(&self, record_key: &str) -> Result<(), RepoError> {
        sqlx::query("DELETE FROM fallback_returns WHERE record_key = $1")
            .bind(record_key)
            .execute(self.repo.pool())
            .await?;
        Ok(())
    }

    /// Forgets check records older than Redis keeps its own, and answers whether any
    /// is left (a take-back may then find its check here).
    pub async fn checks_left(&self) -> Result<bool, RepoError> {
        sqlx::query(
            "DELETE FROM fallback_checks \
             WHERE created_at < now() - make_interval(secs => $1::double precision / 1000)",
        )
        .bind(CHECK_RECORD_TTL_MS)
        .execute(self.repo.pool())
        .await?;
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM fallback_checks) AS present")
            .fetch_one(self.repo.pool())
            .await?;
        Ok(row.try_get("present")?)
    }

    /// Forgets fallback rows with nothing pending and settlement ids older than an hour.
    pub async fn forget(&self) -> Result<(), RepoError> {
        sqlx::query(
            "DELETE FROM fallback_counters \
             WHERE pending = 0 AND updated_at < now() - interval '1 hour'",
        )
        .execute(self.repo.pool())
        .await?;
        sqlx::query(
            "DELETE FROM fallback_settlements WHERE created_at < now() - interval '1 hour'",
        )
        .execute(self.repo.pool())
        .await?;
        Ok(())
    }
}
