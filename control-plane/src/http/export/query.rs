//! What an export asks for: its query string, checked, as the repository's filter and
//! a format. Every refusal is a 422 naming its parameter.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::http::json::instant;
use crate::http::names::TenantId;
use crate::model::names::{is_valid_resource, is_valid_tenant_id, RESOURCE_RULE, TENANT_RULE};
use crate::model::window::Series;
use crate::repo::{ExportFilter, TenantScope};

/// The longest range of window starts one export covers: a year, leap or not. Longer
/// periods are exported in several requests.
pub const MAX_RANGE_DAYS: i64 = 366;

/// The shape of an export's body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    #[default]
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// A JSON array of CloudEvents 1.0, one per closed window (OpenMeter's batch
    /// ingest).
    Cloudevents,
}

/// The export's query string.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Windows starting at or after this instant (RFC 3339).
    #[serde(deserialize_with = "required_instant")]
    #[param(example = "2026-05-01T00:00:00Z")]
    from: DateTime<Utc>,
    /// Windows starting before this instant: after `from`, and at most 366 days after it.
    #[serde(deserialize_with = "required_instant")]
    #[param(example = "2026-06-01T00:00:00Z")]
    to: DateTime<Utc>,
    /// Only this tenant's windows.
    #[param(value_type = Option<TenantId>)]
    tenant: Option<String>,
    /// With `tenant`: its descendants' windows too (the tenants below it now).
    subtree: Option<bool>,
    /// Only this resource.
    #[param(pattern = "^[a-z0-9_.-]{1,64}$")]
    resource: Option<String>,
    /// Only this series: a period (`month`), or `rolling-<period>` for a rolling limit's
    /// buckets. A resource with several limits has one row per series and window.
    #[param(pattern = "^(rolling-)?(second|minute|hour|day|week|month)$")]
    series: Option<String>,
    /// `csv` (the default), `ndjson` or `cloudevents`.
    #[param(inline, example = "cloudevents")]
    format: Option<Format>,
}

/// An instant that must be given (see [`instant`] for the years allowed).
fn required_instant<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    instant(deserializer)?.ok_or_else(|| serde::de::Error::custom("an RFC 3339 instant"))
}

impl ExportQuery {
    /// The repository's filter and the format this query asks for, or the 422 of the
    /// first parameter that is wrong.
    pub fn checked(self) -> Result<(ExportFilter, Format), ApiError> {
        if self.to <= self.from {
            return Err(ApiError::field("to", "must be after from"));
        }
        if self.to - self.from > Duration::days(MAX_RANGE_DAYS) {
            return Err(ApiError::field(
                "to",
                format!("at most {MAX_RANGE_DAYS} days after from: export longer periods in parts"),
            ));
        }
        let tenants = match (self.tenant, self.subtree.unwrap_or(false)) {
            (Some(tenant), _) if !is_valid_tenant_id(&tenant) => {
                return Err(ApiError::field("tenant", TENANT_RULE));
            }
            (Some(tenant), false) => TenantScope::One(tenant),
            (Some(tenant), true) => TenantScope::Subtree(tenant),
            (None, true) => {
                return Err(ApiError::field("subtree", "needs tenant: whose subtree?"));
            }
            (None, false) => TenantScope::All,
        };
        if self
            .resource
            .as_deref()
            .is_some_and(|r| !is_valid_resource(r))
        {
            return Err(ApiError::field("resource", RESOURCE_RULE));
        }
        if self
            .series
            .as_deref()
            .is_some_and(|s| Series::parse(s).is_none())
        {
            return Err(ApiError::field(
                "series",
                "a period (second, minute, hour, day, week, month), or rolling-<period>",
            ));
        }
        let filter = ExportFilter {
            from: self.from,
            to: self.to,
            tenants,
            resource: self.resource,
            series: self.series,
        };
        Ok((filter, self.format.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &str) -> Result<(ExportFilter, Format), ApiError> {
        let parsed: ExportQuery =
            serde_urlencoded::from_str(pairs).map_err(|e| ApiError::Validation {
                field: None,
                message: e.to_string(),
            })?;
        parsed.checked()
    }

    fn refused_field(pairs: &str) -> Option<String> {
        match query(pairs) {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("{pairs}: not refused: {other:?}"),
        }
    }

    const MAY: &str = "from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:00Z";

    #[test]
    fn a_month_of_every_tenant_is_csv_by_default() {
        let (filter, format) = query(MAY).unwrap();
        assert_eq!(format, Format::Csv);
        assert_eq!(filter.tenants, TenantScope::All);
        assert_eq!(filter.from.to_rfc3339(), "2026-05-01T00:00:00+00:00");
        assert_eq!(filter.to.to_rfc3339(), "2026-06-01T00:00:00+00:00");
    }

    #[test]
    fn a_tenant_with_subtree_selects_its_descendants() {
        let (filter, format) = query(&format!(
            "{MAY}&tenant=acme&subtree=true&format=cloudevents"
        ))
        .unwrap();
        assert_eq!(filter.tenants, TenantScope::Subtree("acme".into()));
        assert_eq!(format, Format::Cloudevents);
        let (filter, _) = query(&format!("{MAY}&tenant=acme%2Fweb&resource=requests")).unwrap();
        assert_eq!(filter.tenants, TenantScope::One("acme/web".into()));
        assert_eq!(filter.resource.as_deref(), Some("requests"));
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let day = "from=2026-05-02T00:00:00Z";
        assert_eq!(
            refused_field(&format!("{day}&to=2026-05-02T00:00:00Z")),
            Some("to".into())
        );
        assert_eq!(
            refused_field(&format!("{day}&to=2026-05-01T00:00:00Z")),
            Some("to".into())
        );
        assert_eq!(
            refused_field("from=2026-01-01T00:00:00Z&to=2027-01-02T00:00:01Z"),
            Some("to".into())
        );
        assert_eq!(
            refused_field(&format!("{MAY}&subtree=true")),
            Some("subtree".into())
        );
        assert_eq!(
            refused_field(&format!("{MAY}&tenant=..")),
            Some("tenant".into())
        );
        assert_eq!(
            refused_field(&format!("{MAY}&resource=Requests")),
            Some("resource".into())
        );
        assert_eq!(
            refused_field(&format!("{MAY}&series=fortnight")),
            Some("series".into())
        );
    }

    #[test]
    fn a_leap_year_fits_in_one_export() {
        assert!(query("from=2028-01-01T00:00:00Z&to=2029-01-01T00:00:00Z").is_ok());
    }
}
