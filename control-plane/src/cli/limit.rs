//! A limit as the CLI and `apply` hold it: validated, comparable, and written back as the
//! API's `LimitInput`. On the command line a limit is a SPEC,
//! `resource:period:quota[:overage[:warn_at]]` (`requests:rolling-hour:500`).

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};
use tollgate_protocol::WarnAt;

use crate::model::names::is_valid_resource;
use crate::model::window::{Period, WindowKind};
use crate::store::COUNTER_MAX;

/// What identifies a limit among a tier's or a tenant's: resource, period (`None` for a
/// gauge) and window.
pub type LimitKey = (String, Option<Period>, WindowKind);

/// One limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSpec {
    /// The resource (`requests`, `request_bytes`, …).
    pub resource: String,
    /// The period, or `None` for a gauge (`period: none`).
    pub period: Option<Period>,
    /// Calendar or rolling (gauges are calendar).
    pub window: WindowKind,
    /// The included amount per window.
    pub quota: u64,
    /// How far past the quota usage may go.
    pub overage: u64,
    /// From which fraction of the quota the status is a warning.
    pub warn_at: WarnAt,
    /// Always allow, still count.
    pub unlimited: bool,
}

/// A wrong part of a limit: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// `resource`, `period`, `window`, `quota`, `overage` or `warn_at`.
    pub part: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.part, self.message)
    }
}

impl std::error::Error for SpecError {}

fn wrong(part: &'static str, message: impl Into<String>) -> SpecError {
    SpecError {
        part,
        message: message.into(),
    }
}

const PERIODS: &str = "second, minute, hour, day, week, month, none or rolling-<period>";

/// A period as the CLI writes it: `minute`, `none` (a gauge) or `rolling-hour`.
pub fn parse_period(text: &str) -> Result<(Option<Period>, WindowKind), SpecError> {
    let (name, window) = match text.strip_prefix("rolling-") {
        Some(name) => (name, WindowKind::Rolling),
        None => (text, WindowKind::Calendar),
    };
    period_and_window(name, window).map_err(|e| wrong("period", format!("{text:?}: {}", e.message)))
}

/// A period name (`none` for a gauge) and window kind, checked together.
pub(crate) fn period_and_window(
    period: &str,
    window: WindowKind,
) -> Result<(Option<Period>, WindowKind), SpecError> {
    if period == "none" {
        if window == WindowKind::Rolling {
            return Err(wrong(
                "window",
                "a gauge (period none) has no rolling window",
            ));
        }
        return Ok((None, window));
    }
    let parsed: Period = period
        .parse()
        .map_err(|_| wrong("period", format!("expected {PERIODS}")))?;
    if window == WindowKind::Rolling && parsed == Period::Second {
        return Err(wrong(
            "window",
            "rolling windows need a period of a minute or longer",
        ));
    }
    Ok((Some(parsed), window))
}

/// The fields of a limit before they are checked, as a file or the API writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct RawLimit<'a> {
    /// The resource.
    pub resource: &'a str,
    /// A period name or `none`.
    pub period: &'a str,
    /// `calendar` or `rolling`.
    pub window: &'a str,
    /// The quota.
    pub quota: u64,
    /// The overage.
    pub overage: u64,
    /// The warning threshold as a fraction.
    pub warn_at: f64,
    /// The unlimited flag.
    pub unlimited: bool,
}

impl LimitSpec {
    /// The limit `raw` describes, checked as the server checks it.
    pub fn from_raw(raw: &RawLimit<'_>) -> Result<LimitSpec, SpecError> {
        if !is_valid_resource(raw.resource) {
            return Err(wrong("resource", "1-64 characters of a-z, 0-9, _, . and -"));
        }
        let window: WindowKind = raw
            .window
            .parse()
            .map_err(|e: crate::model::window::UnknownWindowKind| wrong("window", e.to_string()))?;
        let (period, window) = period_and_window(raw.period, window)?;
        LimitSpec {
            resource: raw.resource.to_string(),
            period,
            window,
            quota: raw.quota,
            overage: raw.overage,
            warn_at: warn_at(raw.warn_at)?,
            unlimited: raw.unlimited,
        }
        .checked()
    }

    /// The limit of an API answer (a `LimitView` or `LimitSpecView`).
    pub fn from_view(view: &Value) -> Result<LimitSpec, String> {
        let text = |name: &str| view.get(name).and_then(Value::as_str).unwrap_or("");
        let number = |name: &str| view.get(name).and_then(Value::as_u64).unwrap_or(0);
        LimitSpec::from_raw(&RawLimit {
            resource: text("resource"),
            period: text("period"),
            window: text("window"),
            quota: number("quota"),
            overage: number("overage"),
            warn_at: view
                .get("warn_at")
                .and_then(Value::as_f64)
                .unwrap_or(WarnAt::DEFAULT.fraction()),
            unlimited: view
                .get("unlimited")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
        .map_err(|e| format!("the server answered a limit the CLI cannot read: {e}"))
    }

    fn checked(self) -> Result<LimitSpec, SpecError> {
        if self.quota > COUNTER_MAX {
            return Err(wrong("quota", format!("at most {COUNTER_MAX}")));
        }
        if self
            .quota
            .checked_add(self.overage)
            .is_none_or(|hard| hard > COUNTER_MAX)
        {
            return Err(wrong(
                "overage",
                format!("quota + overage must be at most {COUNTER_MAX}"),
            ));
        }
        Ok(self)
    }

    /// What identifies it among its owner's limits.
    pub fn key(&self) -> LimitKey {
        (self.resource.clone(), self.period, self.window)
    }

    /// The period as the API writes it (`none` for a gauge).
    pub fn period_name(&self) -> &'static str {
        self.period.map_or("none", Period::as_str)
    }

    /// `requests/minute/calendar`, or `concurrent_requests/none` for a gauge.
    pub fn key_text(&self) -> String {
        match self.period {
            Some(period) => format!("{}/{period}/{}", self.resource, self.window),
            None => format!("{}/none", self.resource),
        }
    }

    /// `quota 600`, then what differs from the defaults (`overage 10`, `warn_at 0.9`,
    /// `unlimited`).
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("quota {}", self.quota)];
        if self.overage != 0 {
            parts.push(format!("overage {}", self.overage));
        }
        if self.warn_at != WarnAt::DEFAULT {
            parts.push(format!("warn_at {}", self.warn_at.fraction()));
        }
        if self.unlimited {
            parts.push("unlimited".to_string());
        }
        parts.join(", ")
    }

    /// What changes from `self` to `new` (same key): `quota 500 -> 600`, …
    pub fn changes_to(&self, new: &LimitSpec) -> Vec<String> {
        let mut changes = Vec::new();
        if self.quota != new.quota {
            changes.push(format!("quota {} -> {}", self.quota, new.quota));
        }
        if self.overage != new.overage {
            changes.push(format!("overage {} -> {}", self.overage, new.overage));
        }
        if self.warn_at != new.warn_at {
            changes.push(format!(
                "warn_at {} -> {}",
                self.warn_at.fraction(),
                new.warn_at.fraction()
            ));
        }
        if self.unlimited != new.unlimited {
            changes.push(format!("unlimited {} -> {}", self.unlimited, new.unlimited));
        }
        changes
    }

    /// The API's `LimitInput`.
    pub fn to_input(&self) -> Value {
        json!({
            "resource": self.resource,
            "period": self.period_name(),
            "window": self.window.to_string(),
            "quota": self.quota,
            "overage": self.overage,
            "warn_at": self.warn_at.fraction(),
            "unlimited": self.unlimited,
        })
    }
}

fn warn_at(fraction: f64) -> Result<WarnAt, SpecError> {
    WarnAt::from_fraction(fraction).ok_or_else(|| wrong("warn_at", "a fraction from 0 to 1"))
}

fn whole(part: &'static str, text: &str) -> Result<u64, SpecError> {
    text.parse()
        .map_err(|_| wrong(part, format!("{text:?} is not a whole number")))
}

impl FromStr for LimitSpec {
    type Err = SpecError;

    /// `resource:period:quota[:overage[:warn_at]]`.
    fn from_str(text: &str) -> Result<LimitSpec, SpecError> {
        let parts: Vec<&str> = text.split(':').collect();
        if !(3..=5).contains(&parts.len()) {
            return Err(wrong(
                "spec",
                "expected resource:period:quota[:overage[:warn_at]]",
            ));
        }
        let resource = parts[0];
        if !is_valid_resource(resource) {
            return Err(wrong(
                "resource",
                format!("{resource:?}: 1-64 characters of a-z, 0-9, _, . and -"),
            ));
        }
        let (period, window) = parse_period(parts[1])?;
        let quota = whole("quota", parts[2])?;
        let overage = parts.get(3).map_or(Ok(0), |t| whole("overage", t))?;
        let warn_at = match parts.get(4) {
            Some(text) => {
                let fraction: f64 = text
                    .parse()
                    .map_err(|_| wrong("warn_at", format!("{text:?} is not a number")))?;
                self::warn_at(fraction)?
            }
            None => WarnAt::DEFAULT,
        };
        LimitSpec {
            resource: resource.to_string(),
            period,
            window,
            quota,
            overage,
            warn_at,
            unlimited: false,
        }
        .checked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> LimitSpec {
        text.parse().unwrap()
    }

    fn part_of(text: &str) -> &'static str {
        text.parse::<LimitSpec>().unwrap_err().part
    }

    #[test]
    fn specs_name_resource_period_quota_and_optionally_overage_and_warn_at() {
        let minute = spec("requests:minute:100");
        assert_eq!(minute.key_text(), "requests/minute/calendar");
        assert_eq!((minute.quota, minute.overage), (100, 0));
        assert_eq!(minute.warn_at, WarnAt::DEFAULT);
        let month = spec("request_bytes:month:1000000:200000:0.9");
        assert_eq!((month.quota, month.overage), (1_000_000, 200_000));
        assert_eq!(month.warn_at.ppm(), 900_000);
        assert_eq!(
            spec("requests:rolling-hour:500").key_text(),
            "requests/hour/rolling"
        );
        let gauge = spec("concurrent_requests:none:10");
        assert_eq!(
            (gauge.period, gauge.key_text().as_str()),
            (None, "concurrent_requests/none")
        );
    }

    #[test]
    fn bad_specs_name_the_wrong_part() {
        assert_eq!(part_of("requests:minute"), "spec");
        assert_eq!(part_of("a:b:c:d:e:f"), "spec");
        assert_eq!(part_of("Requests:minute:1"), "resource");
        assert_eq!(part_of("requests:fortnight:1"), "period");
        assert_eq!(part_of("requests:rolling-second:1"), "period");
        assert_eq!(part_of("requests:rolling-none:1"), "period");
        assert_eq!(part_of("requests:minute:many"), "quota");
        assert_eq!(part_of("requests:minute:-1"), "quota");
        assert_eq!(part_of("requests:minute:1:x"), "overage");
        assert_eq!(part_of("requests:minute:1:0:1.5"), "warn_at");
        assert_eq!(part_of("requests:minute:9223372036854775807:1"), "overage");
        let message = "requests:fortnight:1"
            .parse::<LimitSpec>()
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("period: \"fortnight\""), "{message}");
    }

    #[test]
    fn a_limit_round_trips_through_the_api_shape() {
        let limit = spec("request_bytes:rolling-day:5:1:0.5");
        assert_eq!(LimitSpec::from_view(&limit.to_input()).unwrap(), limit);
    }

    #[test]
    fn changes_name_each_differing_field() {
        let old = spec("requests:minute:500");
        let new = spec("requests:minute:600:10");
        assert_eq!(
            old.changes_to(&new),
            ["quota 500 -> 600", "overage 0 -> 10"]
        );
        assert!(new.changes_to(&new).is_empty());
        assert_eq!(new.summary(), "quota 600, overage 10");
    }
}
