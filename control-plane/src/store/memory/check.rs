//! Checks and reads (`check.lua`), seeding lost counters (`seed.lua`), adjustments
//! (`adjust.lua`) and snapshots for the history, over the memory store's map.

use std::collections::{BTreeMap, BTreeSet};

use tollgate_protocol::decision::fits;

use super::entries::{
    count_in, counter, holds, live, missing_markers, wall_clock, window_usage, Entries, Value,
};
use crate::store::call::{
    Adjustment, Call, CallMode, OpKind, Outcome, Reply, Seed, Snapshot, COUNTER_MAX,
};
use crate::store::error::StoreError;
use crate::store::keys::{CHECK_RECORD_TTL_MS, MARKER_TTL_S};

pub(super) fn run(entries: &mut Entries, call: &Call) -> Result<Reply, StoreError> {
    // Under the same lock as the count: a take-back that got here first leaves a
    // record, and its check then counts nothing (check.lua's "late").
    let taken_back = |record: &String| live(entries, record).is_some();
    if call.mode == CallMode::Check && call.check_record.as_ref().is_some_and(taken_back) {
        return Err(StoreError::PastDeadline);
    }
    let missing = missing_markers(entries, &call.markers);
    if !missing.is_empty() {
        return Ok(Reply::NeedsSeed(missing));
    }
    let request_id = call.hold.as_ref().map(|l| l.request_id.as_str());
    let mut used = Vec::with_capacity(call.ops.len());
    let mut oldest = Vec::with_capacity(call.ops.len());
    let mut held = Vec::with_capacity(call.ops.len());
    for op in &call.ops {
        match &op.kind {
            OpKind::Window { keys, .. } => {
                let (sum, first) = window_usage(entries, keys);
                used.push(sum);
                oldest.push(first);
                held.push(0);
            }
            OpKind::Gauge { key } => {
                let live_holds = holds(entries, key, call.now);
                used.push(live_holds.values().sum::<u64>());
                oldest.push(None);
                held.push(
                    request_id
                        .and_then(|id| live_holds.get(id).copied())
                        .unwrap_or(0),
                );
            }
        }
    }
    let done = |admitted, violated, used, oldest| {
        Ok(Reply::Done(Outcome {
            admitted,
            violated,
            used,
            oldest,
        }))
    };
    if call.mode == CallMode::Read {
        return done(true, None, used, oldest);
    }
    let now_wall = wall_clock();
    let violated = (call.ops.iter().enumerate())
        .position(|(i, op)| !fits(used[i] - held[i], op.amount, op.cap));
    if violated.is_some() {
        return done(false, violated, used, oldest);
    }
    for (i, op) in call.ops.iter().enumerate() {
        if op.amount == 0 {
            continue;
        }
        match &op.kind {
            OpKind::Window { .. } => {
                // Cannot overflow: used + amount <= cap <= COUNTER_MAX was checked.
                count_in(entries, op, &call.markers, op.amount, now_wall);
                used[i] += op.amount;
                if oldest[i].is_none() {
                    oldest[i] = Some(0);
                }
            }
            OpKind::Gauge { key } => {
                let Some(hold) = &call.hold else { continue };
                let mut kept: BTreeMap<String, (u64, i64)> = match live(entries, key) {
                    Some(Value::Gauge { holds }) => holds
                        .iter()
                        .filter(|(_, (_, expiry))| *expiry > call.now)
                        .map(|(id, v)| (id.clone(), *v))
                        .collect(),
                    _ => BTreeMap::new(),
                };
                kept.insert(hold.request_id.clone(), (op.amount, call.now + hold.ttl_s));
                entries.insert(
                    key.clone(),
                    (Value::Gauge { holds: kept }, now_wall + hold.ttl_s),
                );
                used[i] = used[i] - held[i] + op.amount;
                let mut gauges = match live(entries, &hold.record_key) {
                    Some(Value::Record { gauges }) => gauges.clone(),
                    _ => BTreeSet::new(),
                };
                gauges.insert(key.clone());
                entries.insert(
                    hold.record_key.clone(),
                    (Value::Record { gauges }, now_wall + hold.ttl_s),
                );
            }
        }
    }
    if let Some(record) = &call.check_record {
        let counted: Vec<(String, u64)> = (call.ops.iter())
            .filter_map(|op| match &op.kind {
                OpKind::Window { keys, .. } if op.amount > 0 => {
                    Some((keys.first()?.clone(), op.amount))
                }
                _ => None,
            })
            .collect();
        if !counted.is_empty() {
            let expires = now_wall + CHECK_RECORD_TTL_MS / 1_000;
            entries.insert(record.clone(), (Value::CheckRecord { counted }, expires));
        }
    }
    done(true, None, used, oldest)
}

pub(super) fn seed(entries: &mut Entries, markers: &[String], seeds: &[Seed]) -> u64 {
    let now = wall_clock();
    let mut created = 0;
    for seed in seeds {
        if live(entries, &seed.key).is_none() {
            let value = Value::Counter {
                used: seed.used,
                epoch: seed.epoch,
            };
            entries.insert(seed.key.clone(), (value, now + seed.ttl_s));
            created += 1;
        }
    }
    for marker in markers {
        entries.insert(marker.clone(), (Value::Marker, now + MARKER_TTL_S));
    }
    created
}

pub(super) fn adjust(
    entries: &mut Entries,
    keys: &[String],
    adjustment: Adjustment,
    ttl_s: i64,
) -> (u64, u64) {
    let now = wall_clock();
    let mut values: Vec<u64> = keys.iter().map(|k| counter(entries, k).0).collect();
    let before: u64 = values.iter().sum();
    // The counters the script writes, with their new usage.
    let mut writes: Vec<(usize, u64)> = Vec::new();
    match adjustment {
        Adjustment::To(value) => {
            writes.extend((0..keys.len()).map(|i| (i, if i == 0 { value } else { 0 })));
        }
        Adjustment::By(delta) if delta < 0 => {
            let mut left = delta.unsigned_abs();
            for (i, &v) in values.iter().enumerate() {
                if left == 0 {
                    break;
                }
                let taken = left.min(v);
                left -= taken;
                writes.push((i, v - taken));
            }
        }
        Adjustment::By(delta) => {
            if let Some(&first) = values.first() {
                let sum = first.saturating_add(delta.unsigned_abs()).min(COUNTER_MAX);
                writes.push((0, sum));
            }
        }
    }
    for (i, value) in writes {
        let key = &keys[i];
        let expires_at = match entries.get(key) {
            Some((_, at)) if live(entries, key).is_some() => *at,
            _ if value == 0 => continue,
            _ => now + ttl_s,
        };
        let (_, epoch) = counter(entries, key);
        let counter = Value::Counter {
            used: value,
            epoch: epoch + 1,
        };
        entries.insert(key.clone(), (counter, expires_at));
        values[i] = value;
    }
    (before, values.iter().sum())
}

pub(super) fn snapshot(entries: &mut Entries, keys: &[String]) -> Vec<Option<Snapshot>> {
    keys.iter()
        .map(|key| match live(entries, key) {
            Some(Value::Counter { used, epoch }) => Some(Snapshot {
                used: *used,
                epoch: *epoch,
            }),
            _ => None,
        })
        .collect()
}
