//! The threshold event's schema in the OpenAPI document: the body every webhook delivery
//! POSTs, which the delivery log shows too. `CrossingEvent::payload` (repo) writes that
//! JSON; these types only describe it, and a test holds the two to the same fields.

use serde::Serialize;
use utoipa::ToSchema;

/// A threshold event: the JSON body every delivery POSTs to its subscription's `url`,
/// with the Standard Webhooks headers `webhook-id` (`msg_<n>`, the same on every
/// attempt: drop repeats by it), `webhook-timestamp` (Unix seconds) and
/// `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
/// `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the secret's decoded bytes).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // A description only: never built.
pub struct ThresholdEvent {
    /// `evt_<n>`: the event, the same for every subscription told of it.
    id: String,
    /// Always `quota.threshold.crossed`.
    #[serde(rename = "type")]
    #[schema(example = "quota.threshold.crossed")]
    kind: String,
    /// When the crossing was seen (RFC 3339, milliseconds, UTC).
    timestamp: String,
    /// What was crossed.
    data: ThresholdEventData,
}

/// What a threshold event tells.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // A description only: never built.
pub struct ThresholdEventData {
    /// Whose request moved the usage.
    tenant: String,
    /// Whose limit it is: the tenant or one of its ancestors.
    level: String,
    /// The tier that applies to the level, if any.
    tier: Option<String>,
    /// The limit's resource.
    resource: String,
    /// The limit's policy name (`monthly`, `rolling-hour`).
    policy: String,
    /// The limit's period (`minute` … `month`).
    period: String,
    /// `calendar` or `rolling`.
    window: String,
    /// The counter's window: a calendar window, or the bucket (1/60 of the period) of a
    /// rolling limit the crossing happened in.
    window_start: String,
    /// Its end.
    window_end: String,
    /// When the usage counted at the crossing stops counting: the calendar window's
    /// end, or when it slides out of a rolling period.
    resets_at: String,
    /// The threshold crossed.
    threshold: EventThreshold,
    /// The usage seen with the crossing.
    used: i64,
    /// The limit's quota.
    quota: i64,
    /// Its hard limit (quota + overage).
    hard_limit: i64,
    /// What saw it: `check`, `lease`, `settle`, or `flush` (the history flusher's
    /// safety net).
    found_by: String,
}

/// A threshold: a percentage of the quota, or the hard limit.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // A description only: never built.
pub struct EventThreshold {
    /// `percent` or `hard`.
    kind: String,
    /// The percentage (`percent` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    percent: Option<u16>,
    /// The usage at which it is reached: ⌈percent × quota / 100⌉, or the hard limit.
    units: i64,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::{TimeZone, Utc};
    use serde_json::Value;

    use crate::model::webhook::Threshold;
    use crate::repo::webhooks::CrossingEvent;

    /// The property names of schema `name` in the served document.
    fn properties(document: &Value, name: &str) -> BTreeSet<String> {
        let schema = &document["components"]["schemas"][name];
        let properties = schema["properties"].as_object();
        properties
            .unwrap_or_else(|| panic!("no schema {name}: {schema}"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    fn event(threshold: Threshold) -> CrossingEvent {
        let at = Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap();
        CrossingEvent {
            id: 1,
            threshold,
            tenant: "acme".into(),
            level: "acme".into(),
            tier: None,
            resource: "requests".into(),
            policy: "monthly".into(),
            period: "month".into(),
            window_kind: "calendar".into(),
            window_start: at,
            window_end: at,
            resets_at: at,
            units: 8,
            quota: 10,
            hard_limit: 10,
            used: 8,
            at,
            found_by: "check".into(),
        }
    }

    #[test]
    fn the_documented_event_has_every_field_a_delivery_sends_and_no_other() {
        let document = serde_json::to_value(crate::http::openapi()).unwrap();
        let deliveries = &document["components"]["schemas"]["DeliveryView"];
        assert_eq!(
            deliveries["properties"]["event"]["$ref"],
            "#/components/schemas/ThresholdEvent"
        );
        let mut thresholds = BTreeSet::new();
        for threshold in [Threshold::Percent(80), Threshold::Hard] {
            let payload = event(threshold).payload();
            assert_eq!(keys(&payload), properties(&document, "ThresholdEvent"));
            let data = &payload["data"];
            assert_eq!(keys(data), properties(&document, "ThresholdEventData"));
            thresholds.extend(keys(&data["threshold"]));
        }
        assert_eq!(thresholds, properties(&document, "EventThreshold"));
    }
}
