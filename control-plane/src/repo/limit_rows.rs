//! A `limits` row and the model's limit, both ways: every query that reads or writes
//! limits goes through here.

use sqlx::postgres::PgRow;
use sqlx::Row;
use tollgate_protocol::{Limit, WarnAt};

use super::error::RepoError;
use crate::model::window::{Period, Series, WindowKind};
use crate::model::{LimitDef, LimitOwner, Span, StoredLimit};

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
    let span = span_of(period, window_kind)?;
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

/// The span a row's `period` (NULL for a gauge) and `window_kind` name; `Err` names the
/// column that is out of range. Grants name theirs the same way.
pub(crate) fn span_of(period: Option<String>, window_kind: &str) -> Result<Span, &'static str> {
    let kind: WindowKind = window_kind.parse().map_err(|_| "window_kind")?;
    Ok(match period {
        None => Span::Gauge,
        Some(period) => Span::Window(Series {
            period: period.parse::<Period>().map_err(|_| "period")?,
            kind,
        }),
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
