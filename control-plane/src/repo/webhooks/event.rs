//! A recorded crossing as subscribers see it: the payload every delivery of it sends,
//! and the same shape in the delivery log.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::model::webhook::Threshold;
use crate::repo::error::RepoError;

/// The columns of `threshold_crossings` (as `c`) an event is read from.
pub(super) const EVENT_COLUMNS: &str = "c.id AS crossing_id, c.threshold, c.tenant_id, \
    c.level_id, c.tier, c.resource, c.policy, c.period, c.window_kind, c.window_start, \
    c.window_end, c.resets_at, c.units, c.quota, c.hard_limit, c.used, c.at, c.found_by";

/// The payload's `type`.
pub const EVENT_TYPE: &str = "quota.threshold.crossed";

/// One recorded crossing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossingEvent {
    /// Its id: `evt_<id>` in the payload, the same for every subscriber.
    pub id: i64,
    /// The threshold.
    pub threshold: Threshold,
    /// Whose request crossed it.
    pub tenant: String,
    /// Whose limit it is.
    pub level: String,
    /// The tier that applies to the level.
    pub tier: Option<String>,
    /// The resource.
    pub resource: String,
    /// The policy name.
    pub policy: String,
    /// The period.
    pub period: String,
    /// `calendar` or `rolling`.
    pub window_kind: String,
    /// The counter's window (a rolling limit's bucket).
    pub window_start: DateTime<Utc>,
    /// Its end.
    pub window_end: DateTime<Utc>,
    /// When the usage counted at the crossing stops counting.
    pub resets_at: DateTime<Utc>,
    /// The usage at which the threshold is reached.
    pub units: i64,
    /// The quota.
    pub quota: i64,
    /// The hard limit.
    pub hard_limit: i64,
    /// The usage seen with it.
    pub used: i64,
    /// When it was crossed (seen).
    pub at: DateTime<Utc>,
    /// What saw it.
    pub found_by: String,
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl CrossingEvent {
    /// Reads the [`EVENT_COLUMNS`] of `row`.
    pub(super) fn from_row(row: &PgRow) -> Result<CrossingEvent, RepoError> {
        let threshold: String = row.try_get("threshold")?;
        Ok(CrossingEvent {
            id: row.try_get("crossing_id")?,
            threshold: Threshold::parse(&threshold)
                .ok_or_else(|| RepoError::Corrupt(format!("threshold {threshold:?}")))?,
            tenant: row.try_get("tenant_id")?,
            level: row.try_get("level_id")?,
            tier: row.try_get("tier")?,
            resource: row.try_get("resource")?,
            policy: row.try_get("policy")?,
            period: row.try_get("period")?,
            window_kind: row.try_get("window_kind")?,
            window_start: row.try_get("window_start")?,
            window_end: row.try_get("window_end")?,
            resets_at: row.try_get("resets_at")?,
            units: row.try_get("units")?,
            quota: row.try_get("quota")?,
            hard_limit: row.try_get("hard_limit")?,
            used: row.try_get("used")?,
            at: row.try_get("at")?,
            found_by: row.try_get("found_by")?,
        })
    }

    /// The JSON body of its deliveries (Standard Webhooks' `type`, `timestamp`, `data`).
    pub fn payload(&self) -> Value {
        let threshold = match self.threshold {
            Threshold::Percent(percent) => {
                json!({"kind": "percent", "percent": percent, "units": self.units})
            }
            Threshold::Hard => json!({"kind": "hard", "units": self.units}),
        };
        json!({
            "id": format!("evt_{}", self.id),
            "type": EVENT_TYPE,
            "timestamp": instant(self.at),
            "data": {
                "tenant": self.tenant,
                "level": self.level,
                "tier": self.tier,
                "resource": self.resource,
                "policy": self.policy,
                "period": self.period,
                "window": self.window_kind,
                "window_start": instant(self.window_start),
                "window_end": instant(self.window_end),
                "resets_at": instant(self.resets_at),
                "threshold": threshold,
                "used": self.used,
                "quota": self.quota,
                "hard_limit": self.hard_limit,
                "found_by": self.found_by,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_payload_names_whose_request_whose_limit_the_threshold_and_the_window() {
        let at = Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap();
        let event = CrossingEvent {
            id: 42,
            threshold: Threshold::Percent(80),
            tenant: "acme/web".into(),
            level: "acme".into(),
            tier: Some("pro".into()),
            resource: "requests".into(),
            policy: "monthly".into(),
            period: "month".into(),
            window_kind: "calendar".into(),
            window_start: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            window_end: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            resets_at: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            units: 800,
            quota: 1000,
            hard_limit: 1100,
            used: 801,
            at,
            found_by: "check".into(),
        };
        let payload = event.payload();
        assert_eq!(payload["id"], "evt_42");
        assert_eq!(payload["type"], EVENT_TYPE);
        assert_eq!(payload["timestamp"], "2026-11-17T12:00:00.000Z");
        let data = &payload["data"];
        assert_eq!(
            (data["tenant"].as_str(), data["level"].as_str()),
            (Some("acme/web"), Some("acme"))
        );
        assert_eq!(
            data["threshold"],
            json!({"kind": "percent", "percent": 80, "units": 800})
        );
        assert_eq!(
            (
                data["used"].as_i64(),
                data["quota"].as_i64(),
                data["hard_limit"].as_i64()
            ),
            (Some(801), Some(1000), Some(1100))
        );
        assert_eq!(data["resets_at"], "2026-12-01T00:00:00.000Z");
    }
}
