//! The key of every kind of value the stores keep, and how long each lives.
//!
//! Every key of one tenant tree shares the hash tag `{root}`, so that one tree lives on
//! one Redis Cluster slot and one script can touch all of its keys:
//! - `tollgate:{root}:c:<tenant>:<resource>:<series>:<window start>` — a window counter,
//!   a hash: `u` usage, `e` epoch (bumped by resets and adjustments);
//! - `tollgate:{root}:g:<tenant>:<resource>` / `…:h:…` — a gauge's holds (request id →
//!   expiry) and what each holds;
//! - `tollgate:{root}:s:<tenant>` — the tenant's seed marker;
//! - `tollgate:{root}:l:<request id>` — the hold record: the gauges one request holds;
//! - `tollgate:{root}:k:<request id>` — what one request's check counted, line by line
//!   (`<counter key>\t<amount>`), so a check the filter refused after all can be taken
//!   back;
//! - `tollgate:{root}:d:<settlement id>` — a settlement applied lately (a retry of it is
//!   a duplicate);
//! - `tollgate:{root}:b:<lease id>` — a lease's budget granted by `POST /v1/leases` and
//!   not yet returned (a hash: `g` granted, `w` gateway, `x` expiry, `k` the counters
//!   charged);
//! - `tollgate:{root}:p:<tenant>:<resource>` — the lease holders at one level of the
//!   tree: every gateway and tenant at or below `<tenant>` holding a lease of the
//!   resource (a sorted set of [`lease_holder`] ids by lease expiry);
//! - `tollgate:{root}:r:<tenant>:<resource>:<series>:<window start>` — usage samples of
//!   the counter of the same name (`samples.rs`): a sorted set of `<at ms>:<used>:<epoch>`
//!   by `<at ms>`, the last ten minutes.
//!
//! The one-letter kind right after the hash tag keeps the kinds apart even though tenant
//! ids may contain `:`; resource names and series cannot.

use chrono::DateTime;

use crate::model::window::{Series, Window};

/// How long a seed marker lives without a check refreshing it: longer than any window.
pub const MARKER_TTL_S: i64 = 40 * 86_400;

/// How long the id of an applied settlement is remembered, so that a retry of it
/// changes nothing: longer than the filter's whole retry span (at most 5 attempts, each
/// answered within 10 s — about a minute), with room for a slow queue, and short enough
/// that the keys of busy tenants do not pile up.
pub const SETTLEMENT_ID_TTL_S: i64 = 3_600;

/// The key of a window counter.
pub fn counter_key(root: &str, tenant: &str, resource: &str, series: &str, start: i64) -> String {
    format!("tollgate:{{{root}}}:c:{tenant}:{resource}:{series}:{start}")
}

/// The key of the usage samples of the counter `counter_key` names: beside it, in the
/// same hash tag; `None` when it names no counter.
pub fn samples_key(counter_key: &str) -> Option<String> {
    let (tag, rest) = counter_key.split_once('}')?;
    let rest = rest.strip_prefix(":c:")?;
    tag.starts_with("tollgate:{")
        .then(|| format!("{tag}}}:r:{rest}"))
}

/// The key of a gauge's leases.
pub fn gauge_key(root: &str, tenant: &str, resource: &str) -> String {
    format!("tollgate:{{{root}}}:g:{tenant}:{resource}")
}

/// The key of a tenant's seed marker.
pub fn marker_key(root: &str, tenant: &str) -> String {
    format!("tollgate:{{{root}}}:s:{tenant}")
}

/// The key of the record of the gauges a request holds.
pub fn hold_record_key(root: &str, request_id: &str) -> String {
    format!("tollgate:{{{root}}}:l:{request_id}")
}

/// The key of the record of what request `request_id`'s check counted.
pub fn check_record_key(root: &str, request_id: &str) -> String {
    format!("tollgate:{{{root}}}:k:{request_id}")
}

/// How long a check's record is kept: longer than the filter retries a take-back (about
/// half a minute), with room for a control plane that restarts meanwhile.
pub const CHECK_RECORD_TTL_MS: i64 = 120_000;

/// The key remembering that the settlement `id` of the tree `root` was applied.
pub fn settlement_key(root: &str, id: &str) -> String {
    format!("tollgate:{{{root}}}:d:{id}")
}

/// The key of the record of the budget granted under lease `id` in the tree `root`.
pub fn lease_key(root: &str, id: &str) -> String {
    format!("tollgate:{{{root}}}:b:{id}")
}

/// The key of the lease holders of `resource` at the level of `tenant`: the gateways
/// holding budgets of it for `tenant` or any tenant below it, one member per gateway and
/// tenant ([`lease_holder`]).
pub fn lease_holders_key(root: &str, tenant: &str, resource: &str) -> String {
    format!("tollgate:{{{root}}}:p:{tenant}:{resource}")
}

/// A lease holder's member in the sets of [`lease_holders_key`]: `gateway|tenant`.
/// Neither gateway ids nor tenant ids may contain `|`, so it is unambiguous.
pub fn lease_holder(gateway: &str, tenant: &str) -> String {
    format!("{gateway}|{tenant}")
}

/// A window counter, as its key names it: what the history persists, and what a
/// settlement or a take-back moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The counter key.
    pub key: String,
    /// Whose counter it is.
    pub tenant: String,
    /// The resource it counts.
    pub resource: String,
    /// Its series.
    pub series: Series,
    /// Its window (or rolling bucket).
    pub window: Window,
}

impl Counter {
    /// The counter a [`counter_key`] names; `None` when it names none.
    pub fn from_key(key: &str) -> Option<Counter> {
        // The root has no braces; tenant ids may hold `:`, resources and series cannot.
        let (_, rest) = key.strip_prefix("tollgate:{")?.split_once('}')?;
        let mut parts = rest.strip_prefix(":c:")?.rsplitn(4, ':');
        let start: i64 = parts.next()?.parse().ok()?;
        let series = Series::parse(parts.next()?)?;
        let resource = parts.next()?.to_string();
        let tenant = parts.next()?.to_string();
        let window = *series
            .windows_at(DateTime::from_timestamp(start, 0)?)?
            .first()?;
        (window.start.timestamp() == start).then(|| Counter {
            key: key.to_string(),
            tenant,
            resource,
            series,
            window,
        })
    }
}
