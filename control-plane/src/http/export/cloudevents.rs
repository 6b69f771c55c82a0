//! A closed window as a CloudEvent 1.0 in its JSON form, the shape OpenMeter ingests:
//! `POST /api/v1/events` takes one event as `application/cloudevents+json` or a JSON
//! array of them as `application/cloudevents-batch+json`, matches an event to a meter
//! by its `type`, meters it for the customer its `subject` names, reads the value and
//! any group-by properties from `data` with JSON paths, and counts an event once per
//! `source` and `id`.
//!
//! The mapping:
//!
//! - `specversion`: `1.0`; `source`: `tollgate`; `type`: `tollgate.usage`;
//!   `datacontenttype`: `application/json`.
//! - `id`: `tenant|resource|series|window start|epoch`. The same window exported again
//!   has the same id, so it is not counted twice (no tenant id, resource or series
//!   holds `|`).
//! - `subject`: the tenant.
//! - `time`: the window's start, so that a window is metered in the period it belongs
//!   to (a day that ends at midnight on the 1st belongs to the month before).
//! - `data`: `resource`, `series`, `used` (the value to meter: `$.used`),
//!   `window_start`, `window_end`, `epoch`.
//!
//! Only closed windows become events: a window's event is counted once, so it must
//! carry the window's final value.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::repo::HistoryRow;

/// The `source` of every event.
pub const SOURCE: &str = "tollgate";
/// The `type` of every event: what an OpenMeter meter's event type names.
pub const TYPE: &str = "tollgate.usage";

/// One closed window of usage as a CloudEvent 1.0.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageEvent {
    /// Always `1.0`.
    #[schema(pattern = "^1\\.0$")]
    pub specversion: &'static str,
    /// `tenant|resource|series|window_start|epoch`: stable, so a window exported again
    /// is the same event.
    pub id: String,
    /// Always `tollgate`.
    #[schema(pattern = "^tollgate$")]
    pub source: &'static str,
    /// Always `tollgate.usage`.
    #[schema(pattern = "^tollgate\\.usage$")]
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The tenant: the customer the usage is metered for.
    pub subject: String,
    /// The window's start.
    pub time: DateTime<Utc>,
    /// Always `application/json`.
    #[schema(pattern = "^application/json$")]
    pub datacontenttype: &'static str,
    /// The window and its usage.
    pub data: UsageData,
}

/// The `data` of a [`UsageEvent`].
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageData {
    /// The resource.
    pub resource: String,
    /// The series (`month`, `day`, `rolling-hour`).
    pub series: String,
    /// Usage counted in the window: its final value.
    pub used: u64,
    /// The window's start.
    pub window_start: DateTime<Utc>,
    /// The window's end (the next window's start).
    pub window_end: DateTime<Utc>,
    /// Resets and adjustments of the window's counter.
    pub epoch: u64,
}

/// The id of `row`'s event: the window and its epoch.
pub fn event_id(row: &HistoryRow) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        row.tenant_id,
        row.resource,
        row.series,
        row.window_start
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        row.epoch
    )
}

impl From<&HistoryRow> for UsageEvent {
    fn from(row: &HistoryRow) -> UsageEvent {
        UsageEvent {
            specversion: "1.0",
            id: event_id(row),
            source: SOURCE,
            kind: TYPE,
            subject: row.tenant_id.clone(),
            time: row.window_start,
            datacontenttype: "application/json",
            data: UsageData {
                resource: row.resource.clone(),
                series: row.series.clone(),
                used: row.used,
                window_start: row.window_start,
                window_end: row.window_end,
                epoch: row.epoch,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn row(epoch: u64) -> HistoryRow {
        HistoryRow {
            tenant_id: "acme/web".into(),
            resource: "request_bytes".into(),
            series: "day".into(),
            window_start: Utc.with_ymd_and_hms(2026, 5, 31, 0, 0, 0).unwrap(),
            window_end: Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
            used: 18_446_744_073_709_551_615,
            epoch,
        }
    }

    #[test]
    fn a_window_becomes_an_event_openmeter_meters_for_its_tenant() {
        let event = serde_json::to_value(UsageEvent::from(&row(2))).unwrap();
        assert_eq!(
            event,
            json!({
                "specversion": "1.0",
                "id": "acme/web|request_bytes|day|2026-05-31T00:00:00Z|2",
                "source": "tollgate",
                "type": "tollgate.usage",
                "subject": "acme/web",
                "time": "2026-05-31T00:00:00Z",
                "datacontenttype": "application/json",
                "data": {
                    "resource": "request_bytes",
                    "series": "day",
                    "used": 18_446_744_073_709_551_615_u64,
                    "window_start": "2026-05-31T00:00:00Z",
                    "window_end": "2026-06-01T00:00:00Z",
                    "epoch": 2
                }
            })
        );
    }

    #[test]
    fn the_id_is_the_same_for_the_same_window_and_epoch_only() {
        assert_eq!(event_id(&row(0)), event_id(&row(0)));
        assert_ne!(event_id(&row(0)), event_id(&row(1)));
        let mut other = row(0);
        other.series = "month".into();
        assert_ne!(event_id(&row(0)), event_id(&other));
    }
}
