//! The memory store's map of keys to values, each with the unix second it expires at,
//! and the small steps the calls are made of — each the twin of a Lua function.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Utc;

use crate::store::call::{Op, OpKind, COUNTER_MAX};
use crate::store::keys::MARKER_TTL_S;
use crate::store::samples::Sample;

/// One stored value and the unix second it expires at.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Counter {
        used: u64,
        epoch: u64,
    },
    Gauge {
        holds: BTreeMap<String, (u64, i64)>,
    },
    Marker,
    Record {
        gauges: BTreeSet<String>,
    },
    /// The id key of an applied settlement.
    Applied,
    /// What an admitted check counted: (counter key, amount) per window op; nothing
    /// once it was taken back (the mark that makes a check arriving after its
    /// take-back count nothing).
    CheckRecord {
        counted: Vec<(String, u64)>,
    },
    /// The mark of a lease returned: a grant of that id that comes after reserves
    /// nothing.
    Returned,
    /// A budget granted under a lease id.
    Lease {
        granted: u64,
        /// Unix milliseconds, on the budget calls' clock.
        expires_ms: i64,
        /// The counters it charged.
        keys: Vec<String>,
    },
    /// The budget holders at one level: `gateway|tenant` → lease expiry (unix ms, calls'
    /// clock).
    Holders {
        until: BTreeMap<String, i64>,
    },
    /// A counter's usage samples, oldest first.
    Samples {
        samples: Vec<Sample>,
    },
}

pub(super) type Entries = HashMap<String, (Value, i64)>;

pub(super) fn wall_clock() -> i64 {
    Utc::now().timestamp()
}

/// Whether a call's deadline (unix ms) has passed, on the real clock as in the scripts.
pub(super) fn past(deadline_ms: Option<i64>) -> bool {
    deadline_ms.is_some_and(|deadline| Utc::now().timestamp_millis() > deadline)
}

pub(super) fn live<'e>(entries: &'e Entries, key: &str) -> Option<&'e Value> {
    entries
        .get(key)
        .filter(|(_, expires_at)| *expires_at > wall_clock())
        .map(|(value, _)| value)
}

pub(super) fn counter(entries: &Entries, key: &str) -> (u64, u64) {
    match live(entries, key) {
        Some(Value::Counter { used, epoch }) => (*used, *epoch),
        _ => (0, 0),
    }
}

/// Live holds of a gauge at `now`: request id → amount.
pub(super) fn holds(entries: &Entries, key: &str, now: i64) -> BTreeMap<String, u64> {
    match live(entries, key) {
        Some(Value::Gauge { holds }) => holds
            .iter()
            .filter(|(_, (_, expiry))| *expiry > now)
            .map(|(id, (amount, _))| (id.clone(), *amount))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Usage of a window op, and the position of its oldest counter that holds usage.
pub(super) fn window_usage(entries: &Entries, keys: &[String]) -> (u64, Option<usize>) {
    let values: Vec<u64> = keys.iter().map(|k| counter(entries, k).0).collect();
    (values.iter().sum(), values.iter().rposition(|&v| v > 0))
}

/// Takes `amount` back from the live counter `key`, never below zero, bumping its epoch
/// and keeping its expiry, as `take_back` in `refund.lua` does. A counter that does not
/// exist, or holds nothing, is left alone. Returns its usage afterwards.
pub(super) fn take_back(entries: &mut Entries, key: &str, amount: u64) -> u64 {
    let (value, epoch) = counter(entries, key);
    match entries.get(key) {
        Some((Value::Counter { .. }, at))
            if value > 0 && amount > 0 && live(entries, key).is_some() =>
        {
            let at = *at;
            let rest = value.saturating_sub(amount);
            let counter = Value::Counter {
                used: rest,
                epoch: epoch + 1,
            };
            entries.insert(key.to_string(), (counter, at));
            rest
        }
        _ => value,
    }
}

/// Adds `amount` to the current counter of a window op, which then lives its `ttl_s`;
/// a new counter refreshes its tenant's marker among `markers`, as in the scripts.
pub(super) fn count_in(
    entries: &mut Entries,
    op: &Op,
    markers: &[String],
    amount: u64,
    now_wall: i64,
) {
    let OpKind::Window {
        keys,
        ttl_s,
        marker,
    } = &op.kind
    else {
        return;
    };
    let Some(key) = keys.first() else { return };
    let (value, epoch) = counter(entries, key);
    if let Some(marker) = marker.and_then(|m| markers.get(m)) {
        if value == 0 {
            entries.insert(marker.clone(), (Value::Marker, now_wall + MARKER_TTL_S));
        }
    }
    let counter = Value::Counter {
        used: value.saturating_add(amount).min(COUNTER_MAX),
        epoch,
    };
    entries.insert(key.clone(), (counter, now_wall + ttl_s));
}

/// Indices of the markers of `markers` that do not exist.
pub(super) fn missing_markers(entries: &Entries, markers: &[String]) -> Vec<usize> {
    markers
        .iter()
        .enumerate()
        .filter(|(_, key)| live(entries, key).is_none())
        .map(|(i, _)| i)
        .collect()
}

/// The live budget holders stored at `key`, and the unix second the set expires at
/// (`None`: there is none).
pub(super) fn holders_at(
    entries: &Entries,
    key: &str,
    now_wall: i64,
) -> (BTreeMap<String, i64>, Option<i64>) {
    match entries.get(key) {
        Some((Value::Holders { until }, at)) if *at > now_wall => (until.clone(), Some(*at)),
        _ => (BTreeMap::new(), None),
    }
}

/// Stores budget holders at `key`, to expire at unix second `at`; a set that ends up
/// empty is gone, as in Redis.
pub(super) fn keep_holders(
    entries: &mut Entries,
    key: &str,
    holders: BTreeMap<String, i64>,
    at: i64,
) {
    if holders.is_empty() {
        entries.remove(key);
    } else {
        entries.insert(key.to_string(), (Value::Holders { until: holders }, at));
    }
}

/// Removes `holder` from the budget holders at `key`, keeping the set's expiry.
pub(super) fn let_go(entries: &mut Entries, key: &str, holder: &str, now_wall: i64) {
    let (mut holders, at) = holders_at(entries, key, now_wall);
    holders.remove(holder);
    keep_holders(entries, key, holders, at.unwrap_or(now_wall));
}

/// Gives back every gauge slot the request recorded at `record_key` holds, as
/// `hold.lua` does. Returns how many gauges it released.
pub(super) fn release_held(entries: &mut Entries, record_key: &str, request_id: &str) -> u64 {
    let gauges = match live(entries, record_key) {
        Some(Value::Record { gauges }) => gauges.clone(),
        _ => BTreeSet::new(),
    };
    let mut released = 0;
    for key in gauges {
        if let Some((Value::Gauge { holds }, _)) = entries.get_mut(&key) {
            if holds.remove(request_id).is_some() {
                released += 1;
            }
        }
    }
    entries.remove(record_key);
    released
}
