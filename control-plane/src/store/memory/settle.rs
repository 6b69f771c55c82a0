//! Settlements (`settle.lua`) and take-backs of a refused request's check
//! (`cancel.lua`), over the memory store's map.

use super::entries::{
    counter, live, missing_markers, release_held, take_back, wall_clock, Entries, Value,
};
use crate::store::call::COUNTER_MAX;
use crate::store::keys::{CHECK_RECORD_TTL_MS, MARKER_TTL_S, SETTLEMENT_ID_TTL_S};
use crate::store::settlement::{
    Cancelled, Change, SettleOutcome, SettleReply, Settled, Settlement,
};

pub(super) fn settle(entries: &mut Entries, settlement: &Settlement) -> SettleReply {
    // In the script's order: a duplicate first, then lost counters — and the id is
    // remembered only when the settlement is applied, never with a "seed" answer.
    if live(entries, &settlement.id_key).is_some() {
        return SettleReply::Done(SettleOutcome::Duplicate);
    }
    let missing = missing_markers(entries, &settlement.markers);
    if !missing.is_empty() {
        return SettleReply::NeedsSeed(missing);
    }
    let now = wall_clock();
    entries.insert(
        settlement.id_key.clone(),
        (Value::Applied, now + SETTLEMENT_ID_TTL_S),
    );
    let mut used = Vec::with_capacity(settlement.moves.len());
    for m in &settlement.moves {
        let (value, epoch) = counter(entries, &m.key);
        let after = match m.change {
            Change::Add(0) => value,
            Change::Add(amount) => {
                // A new counter refreshes its tenant's marker, as in the script.
                if let Some(marker) = m.marker.and_then(|i| settlement.markers.get(i)) {
                    if value == 0 {
                        entries.insert(marker.clone(), (Value::Marker, now + MARKER_TTL_S));
                    }
                }
                let sum = value.saturating_add(amount).min(COUNTER_MAX);
                let counter = Value::Counter { used: sum, epoch };
                entries.insert(m.key.clone(), (counter, now + m.ttl_s));
                sum
            }
            Change::Refund(amount) => take_back(entries, &m.key, amount),
        };
        used.push(after);
    }
    let released = match &settlement.release {
        Some(r) => release_held(entries, &r.record_key, &r.request_id),
        None => 0,
    };
    SettleReply::Done(SettleOutcome::Applied(Settled { used, released }))
}

pub(super) fn cancel(
    entries: &mut Entries,
    lease_record: &str,
    check_record: &str,
    request_id: &str,
) -> Cancelled {
    let mut cancelled = Cancelled {
        released: release_held(entries, lease_record, request_id),
        ..Cancelled::default()
    };
    let counted = match live(entries, check_record) {
        Some(Value::CheckRecord { counted }) => counted.clone(),
        _ => Vec::new(),
    };
    let mark = Value::CheckRecord {
        counted: Vec::new(),
    };
    let expires = wall_clock() + CHECK_RECORD_TTL_MS / 1_000;
    entries.insert(check_record.to_string(), (mark, expires));
    for (key, amount) in counted {
        if counter(entries, &key).0 > 0 {
            take_back(entries, &key, amount);
            cancelled.keys.push(key);
        }
        cancelled.refunded = cancelled.refunded.saturating_add(amount);
    }
    cancelled
}
