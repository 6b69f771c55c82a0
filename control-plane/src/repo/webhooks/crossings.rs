//! `threshold_crossings` and the outbox rows they cause: a batch of crossings is written
//! in one statement that inserts each crossing unless its (counter, threshold) is
//! already there, and, for the crossings it inserted only, one outbox row per enabled
//! subscription that asks for it. However many control planes report one crossing, it
//! is one event; and no crossing is recorded without its deliveries, nor the other way.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use crate::model::webhook::Threshold;
use crate::model::window::Window;
use crate::repo::connection::QuotaRepo;
use crate::repo::error::RepoError;

/// The limit a crossing is on: which counter window, whose, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossedLimit {
    /// The counter of the window (the bucket, for a rolling limit).
    pub counter_key: String,
    /// Whose request moved the usage.
    pub tenant: String,
    /// Whose limit it is (the tenant or an ancestor).
    pub level: String,
    /// The level's ancestors, parent first.
    pub ancestors: Vec<String>,
    /// The tier that applies to the level, if any.
    pub tier: Option<String>,
    /// The resource.
    pub resource: String,
    /// The policy name (`monthly`, `rolling-hour`).
    pub policy: String,
    /// The period (`month`).
    pub period: String,
    /// `calendar` or `rolling`.
    pub window_kind: String,
    /// The counter's window.
    pub window: Window,
    /// When the usage counted now stops counting: the window's end (calendar), or when
    /// it slides out of the trailing period (rolling).
    pub resets_at: DateTime<Utc>,
    /// The quota.
    pub quota: u64,
    /// The hard limit (quota + overage).
    pub hard_limit: u64,
}

/// One crossing to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCrossing {
    /// The limit.
    pub limit: Arc<CrossedLimit>,
    /// The threshold crossed.
    pub threshold: Threshold,
    /// The usage at which the threshold is reached.
    pub units: u64,
    /// The usage seen with it.
    pub used: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// What saw it: `check`, `lease`, `settle` or `flush`.
    pub found_by: &'static str,
}

impl NewCrossing {
    /// Its identity: one event per counter window and threshold.
    pub fn key(&self) -> (String, Threshold) {
        (self.limit.counter_key.clone(), self.threshold)
    }
}

/// A counter whose thresholds the history flusher checks each time it persists it: the
/// safety net for crossings whose report was lost (a full queue, a crash before the
/// sink wrote it). Calendar windows only: a rolling limit's usage is the sum of several
/// counters, which the flusher reads one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The limit.
    pub limit: Arc<CrossedLimit>,
    /// The thresholds some subscription asks for on it, with the usage that reaches each.
    pub thresholds: Vec<(Threshold, u64)>,
}

impl Watch {
    /// The crossings that usage `used`, read at `at`, has reached.
    pub fn reached(&self, used: u64, at: DateTime<Utc>) -> impl Iterator<Item = NewCrossing> + '_ {
        (self.thresholds.iter())
            .filter(move |(_, units)| *units <= used)
            .map(move |&(threshold, units)| NewCrossing {
                limit: self.limit.clone(),
                threshold,
                units,
                used,
                at,
                found_by: "flush",
            })
    }
}

/// A crossing as `jsonb_to_recordset` reads it.
#[derive(Serialize)]
struct Row<'a> {
    counter_key: &'a str,
    threshold: String,
    percent: Option<u16>,
    tenant_id: &'a str,
    level_id: &'a str,
    ancestors: &'a [String],
    tier: Option<&'a str>,
    resource: &'a str,
    policy: &'a str,
    period: &'a str,
    window_kind: &'a str,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    resets_at: DateTime<Utc>,
    units: i64,
    quota: i64,
    hard_limit: i64,
    used: i64,
    at: DateTime<Utc>,
    found_by: &'a str,
}

fn bigint(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn row(crossing: &NewCrossing) -> Row<'_> {
    let limit = &crossing.limit;
    Row {
        counter_key: &limit.counter_key,
        threshold: crossing.threshold.key(),
        percent: match crossing.threshold {
            Threshold::Percent(percent) => Some(percent),
            Threshold::Hard => None,
        },
        tenant_id: &limit.tenant,
        level_id: &limit.level,
        ancestors: &limit.ancestors,
        tier: limit.tier.as_deref(),
        resource: &limit.resource,
        policy: &limit.policy,
        period: &limit.period,
        window_kind: &limit.window_kind,
        window_start: limit.window.start,
        window_end: limit.window.end,
        resets_at: limit.resets_at,
        units: bigint(crossing.units),
        quota: bigint(limit.quota),
        hard_limit: bigint(limit.hard_limit),
        used: bigint(crossing.used),
        at: crossing.at,
        found_by: crossing.found_by,
    }
}

/// What recording a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Crossings new to the table (the others were recorded before, here or elsewhere).
    pub crossings: u64,
    /// Outbox rows queued for them.
    pub deliveries: u64,
}

/// The statement: the batch as rows, the crossings not recorded yet, and their outbox
/// rows for every enabled subscription that asks for them (the rule of
/// `WebhookFilter::covers` and `wants` in `model/webhook.rs`).
const RECORD: &str = "
WITH input AS (
    SELECT * FROM jsonb_to_recordset($1) AS x(
        counter_key text, threshold text, percent integer, tenant_id text, level_id text,
        ancestors text[], tier text, resource text, policy text, period text,
        window_kind text, window_start timestamptz, window_end timestamptz,
        resets_at timestamptz, units bigint, quota bigint, hard_limit bigint, used bigint,
        at timestamptz, found_by text)
), inserted AS (
    INSERT INTO threshold_crossings (counter_key, threshold, percent, tenant_id, level_id,
        ancestors, tier, resource, policy, period, window_kind, window_start, window_end,
        resets_at, units, quota, hard_limit, used, at, found_by)
    SELECT counter_key, threshold, percent, tenant_id, level_id, ancestors, tier, resource,
        policy, period, window_kind, window_start, window_end, resets_at, units, quota,
        hard_limit, used, at, found_by
    FROM input
    ON CONFLICT (counter_key, threshold) DO NOTHING
    RETURNING id, threshold, percent, level_id, ancestors, tier, resource
), queued AS (
    INSERT INTO webhook_outbox (subscription_id, crossing_id)
    SELECT s.id, c.id
    FROM inserted c JOIN webhook_subscriptions s ON s.enabled
        AND (s.tenant_id IS NULL OR s.tenant_id = c.level_id
             OR (s.subtree AND s.tenant_id = ANY (c.ancestors)))
        AND (cardinality(s.resources) = 0 OR c.resource = ANY (s.resources))
        AND (cardinality(s.tiers) = 0 OR c.tier = ANY (s.tiers))
        AND (CASE WHEN c.threshold = 'hard' THEN s.hard ELSE c.percent = ANY (s.percents) END)
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS crossings, (SELECT count(*) FROM queued) AS deliveries
";

impl QuotaRepo {
    /// Records `crossings` and queues their deliveries, in one statement (so in one
    /// transaction): a crossing already recorded is skipped with its deliveries.
    pub async fn record_crossings(&self, crossings: &[NewCrossing]) -> Result<Recorded, RepoError> {
        if crossings.is_empty() {
            return Ok(Recorded::default());
        }
        let rows: Vec<Row<'_>> = crossings.iter().map(row).collect();
        let batch = serde_json::to_value(&rows)
            .map_err(|e| RepoError::Corrupt(format!("a crossing as JSON: {e}")))?;
        let (inserted, queued): (i64, i64) = sqlx::query_as(RECORD)
            .bind(Json::<Value>(batch))
            .fetch_one(&self.pool)
            .await?;
        Ok(Recorded {
            crossings: u64::try_from(inserted).unwrap_or(0),
            deliveries: u64::try_from(queued).unwrap_or(0),
        })
    }
}
