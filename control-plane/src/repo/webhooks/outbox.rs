//! `webhook_outbox` and `webhook_attempts`: claiming due deliveries so that control
//! planes share them and never send one twice at once, finishing an attempt (delivered,
//! retried later, or given up), giving up what no attempt will finish, the pending
//! figures for metrics, pruning, and the delivery log of the admin API.
//!
//! A claim moves the row's `next_attempt_at` past the attempt — a lease: a control plane
//! that dies mid-attempt leaves the row due again once the lease runs out, and another
//! (or its restart) sends it. `attempts` fences: an attempt is finished only by the
//! claim that counted it, so a late answer cannot overwrite a newer claim's.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::Row;

use super::event::{CrossingEvent, EVENT_COLUMNS};
use crate::repo::connection::QuotaRepo;
use crate::repo::error::RepoError;
use crate::repo::page::{Page, Paging};

/// A delivery claimed for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The outbox row: `msg_<id>` is the `webhook-id`, the same for every attempt.
    pub id: i64,
    /// This attempt's number (1 for the first), which fences its finish.
    pub attempt: i32,
    /// The subscription.
    pub webhook: String,
    /// Where to send it, as the subscription says now.
    pub url: String,
    /// The subscription's signing secret.
    pub secret: SecretString,
    /// What to send.
    pub event: CrossingEvent,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The outbox row.
    pub id: i64,
    /// The attempt's number, as claimed.
    pub attempt: i32,
    /// How long it took.
    pub took: Duration,
    /// The receiver's status, if it answered.
    pub status_code: Option<u16>,
    /// Why it failed without an answer (refused, timed out, …).
    pub error: Option<String>,
    /// Whether the receiver took it (a 2xx).
    pub delivered: bool,
}

/// What finishing an attempt did to its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Delivered: done.
    Delivered,
    /// Due again later.
    Retrying,
    /// Given up: no attempt is due before the retry span runs out.
    Failed,
    /// Another claim holds it now (this one's lease ran out), or it is gone: only the
    /// attempt was logged.
    Superseded,
}

/// The deliveries waiting, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pending {
    /// How many.
    pub count: i64,
    /// The age of the oldest, in seconds.
    pub oldest_s: f64,
}

/// One attempt in the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// Its number.
    pub attempt: i32,
    /// When it started.
    pub at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: i32,
    /// The receiver's status.
    pub status_code: Option<i32>,
    /// Why it failed without an answer.
    pub error: Option<String>,
}

/// One delivery in the log, with its attempts, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The outbox row.
    pub id: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was delivered or given up.
    pub finished_at: Option<DateTime<Utc>>,
    /// What it sends.
    pub event: CrossingEvent,
    /// Its attempts.
    pub log: Vec<AttemptRow>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl QuotaRepo {
    /// Claims up to `limit` due deliveries of enabled subscriptions, oldest due first,
    /// each for `lease`: rows another control plane is claiming are skipped.
    pub async fn claim_deliveries(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Claimed>, RepoError> {
        let rows = sqlx::query(&format!(
            "WITH due AS ( \
               SELECT o.id FROM webhook_outbox o \
               JOIN webhook_subscriptions s ON s.id = o.subscription_id \
               WHERE o.status = 'pending' AND o.next_attempt_at <= now() AND s.enabled \
               ORDER BY o.next_attempt_at LIMIT $1 \
               FOR UPDATE OF o SKIP LOCKED) \
             UPDATE webhook_outbox o \
             SET attempts = o.attempts + 1, \
                 next_attempt_at = now() + $2 * interval '1 millisecond' \
             FROM due, webhook_subscriptions s, threshold_crossings c \
             WHERE o.id = due.id AND s.id = o.subscription_id AND c.id = o.crossing_id \
             RETURNING o.id, o.attempts, s.id AS webhook, s.url, s.secret, {EVENT_COLUMNS}"
        ))
        .bind(limit)
        .bind(millis(lease))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let secret: String = row.try_get("secret")?;
                Ok(Claimed {
                    id: row.try_get("id")?,
                    attempt: row.try_get("attempts")?,
                    webhook: row.try_get("webhook")?,
                    url: row.try_get("url")?,
                    secret: SecretString::from(secret),
                    event: CrossingEvent::from_row(row)?,
                })
            })
            .collect()
    }

    /// Logs `attempt` and finishes its delivery: delivered, or due again after
    /// `retry_in` — or failed, when that is past `give_up_after` from its creation.
    pub async fn finish_attempt(
        &self,
        attempt: &Attempt,
        retry_in: Duration,
        give_up_after: Duration,
    ) -> Result<Finished, RepoError> {
        let status: Option<String> = sqlx::query_scalar(
            "WITH logged AS ( \
               INSERT INTO webhook_attempts (outbox_id, attempt, at, duration_ms, status_code, error) \
               SELECT $1, $2, now() - $3 * interval '1 millisecond', $3, $4, $5 \
               WHERE EXISTS (SELECT 1 FROM webhook_outbox WHERE id = $1)) \
             UPDATE webhook_outbox SET \
               status = CASE WHEN $6 THEN 'delivered' \
                 WHEN now() + $7 * interval '1 millisecond' > created_at + $8 * interval '1 millisecond' \
                   THEN 'failed' ELSE 'pending' END, \
               next_attempt_at = CASE WHEN $6 THEN next_attempt_at \
                 ELSE now() + $7 * interval '1 millisecond' END, \
               finished_at = CASE WHEN $6 OR now() + $7 * interval '1 millisecond' \
                 > created_at + $8 * interval '1 millisecond' THEN now() END \
             WHERE id = $1 AND attempts = $2 AND status = 'pending' \
             RETURNING status",
        )
        .bind(attempt.id)
        .bind(attempt.attempt)
        .bind(millis(attempt.took).min(i64::from(i32::MAX)))
        .bind(attempt.status_code.map(i32::from))
        .bind(&attempt.error)
        .bind(attempt.delivered)
        .bind(millis(retry_in))
        .bind(millis(give_up_after))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match status.as_deref() {
            Some("delivered") => Finished::Delivered,
            Some("failed") => Finished::Failed,
            Some(_) => Finished::Retrying,
            None => Finished::Superseded,
        })
    }

    /// Gives up the deliveries of disabled subscriptions still pending `give_up_after`
    /// from their creation: they are never claimed, so no attempt gives them up (those
    /// of enabled subscriptions are given up by their last attempt). Returns how many.
    pub async fn give_up_overdue(&self, give_up_after: Duration) -> Result<u64, RepoError> {
        let given_up = sqlx::query(
            "UPDATE webhook_outbox SET status = 'failed', finished_at = now() \
             WHERE id IN ( \
               SELECT id FROM webhook_outbox WHERE status = 'pending' \
               AND created_at < now() - $1 * interval '1 millisecond' \
               AND subscription_id IN (SELECT id FROM webhook_subscriptions WHERE NOT enabled) \
               ORDER BY id LIMIT 10000 FOR UPDATE SKIP LOCKED)",
        )
        .bind(millis(give_up_after))
        .execute(&self.pool)
        .await?;
        Ok(given_up.rows_affected())
    }

    /// How many deliveries are pending, and how old the oldest is.
    pub async fn pending_deliveries(&self) -> Result<Pending, RepoError> {
        let row = sqlx::query(
            "SELECT count(*) AS count, \
               COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest \
             FROM webhook_outbox WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Pending {
            count: row.try_get("count")?,
            oldest_s: row.try_get("oldest")?,
        })
    }

    /// Deletes deliveries finished more than `keep` ago (their attempts go with them),
    /// and crossings whose window ended more than `keep` ago and that no delivery
    /// names: a window that is over cannot be crossed again. Returns the rows deleted.
    pub async fn prune_webhooks(&self, keep: Duration) -> Result<u64, RepoError> {
        let deliveries = sqlx::query(
            "DELETE FROM webhook_outbox WHERE id IN ( \
               SELECT id FROM webhook_outbox WHERE status <> 'pending' \
               AND finished_at < now() - $1 * interval '1 millisecond' LIMIT 10000)",
        )
        .bind(millis(keep))
        .execute(&self.pool)
        .await?;
        let crossings = sqlx::query(
            "DELETE FROM threshold_crossings WHERE id IN ( \
               SELECT c.id FROM threshold_crossings c \
               WHERE c.window_end < now() - $1 * interval '1 millisecond' \
               AND NOT EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.crossing_id = c.id) \
               LIMIT 10000)",
        )
        .bind(millis(keep))
        .execute(&self.pool)
        .await?;
        Ok(deliveries.rows_affected() + crossings.rows_affected())
    }

    /// The deliveries of subscription `webhook`, newest first, with their attempts;
    /// only those in `status` when given. 404 for a subscription that does not exist.
    pub async fn list_deliveries(
        &self,
        webhook: &str,
        status: Option<&str>,
        paging: &Paging,
    ) -> Result<Page<Delivery>, RepoError> {
        let before: Option<i64> = match &paging.after {
            Some(cursor) => Some(
                cursor
                    .parse()
                    .map_err(|_| RepoError::invalid("cursor", "not a cursor of this listing"))?,
            ),
            None => None,
        };
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM webhook_subscriptions WHERE id = $1")
                .bind(webhook)
                .fetch_optional(&self.pool)
                .await?;
        if exists.is_none() {
            return Err(RepoError::NotFound(format!("webhook {webhook}")));
        }
        let rows = sqlx::query(&format!(
            "SELECT o.id, o.status, o.attempts, o.created_at, o.next_attempt_at, \
               o.finished_at, {EVENT_COLUMNS} \
             FROM webhook_outbox o JOIN threshold_crossings c ON c.id = o.crossing_id \
             WHERE o.subscription_id = $1 AND ($2::text IS NULL OR o.status = $2) \
               AND ($3::bigint IS NULL OR o.id < $3) \
             ORDER BY o.id DESC LIMIT $4"
        ))
        .bind(webhook)
        .bind(status)
        .bind(before)
        .bind(paging.limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let status: String = row.try_get("status")?;
            let next: DateTime<Utc> = row.try_get("next_attempt_at")?;
            deliveries.push(Delivery {
                id: row.try_get("id")?,
                next_attempt_at: (status == "pending").then_some(next),
                status,
                attempts: row.try_get("attempts")?,
                created_at: row.try_get("created_at")?,
                finished_at: row.try_get("finished_at")?,
                event: CrossingEvent::from_row(row)?,
                log: Vec::new(),
            });
        }
        let ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
        let attempts = sqlx::query(
            "SELECT outbox_id, attempt, at, duration_ms, status_code, error \
             FROM webhook_attempts WHERE outbox_id = ANY ($1) ORDER BY id DESC",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut logs: HashMap<i64, Vec<AttemptRow>> = HashMap::new();
        for row in &attempts {
            logs.entry(row.try_get("outbox_id")?)
                .or_default()
                .push(AttemptRow {
                    attempt: row.try_get("attempt")?,
                    at: row.try_get("at")?,
                    duration_ms: row.try_get("duration_ms")?,
                    status_code: row.try_get("status_code")?,
                    error: row.try_get("error")?,
                });
        }
        for delivery in &mut deliveries {
            delivery.log = logs.remove(&delivery.id).unwrap_or_default();
        }
        Ok(Page::from_rows(deliveries, paging.limit, |d| {
            d.id.to_string()
        }))
    }
}
