//! A lease's return and the next budget (`lease.lua`), over the memory store's map.

use super::entries::{
    count_in, counter, holders_at, keep_holders, let_go, live, missing_markers, past, take_back,
    wall_clock, window_usage, Entries, Value,
};
use crate::store::call::{Op, OpKind, COUNTER_MAX};
use crate::store::keys::lease_holder;
use crate::store::lease::{Grant, LeaseCall, LeaseOutcome, LeaseReply, Leased};

pub(super) fn lease(entries: &mut Entries, budget: &LeaseCall) -> LeaseReply {
    let missing = missing_markers(entries, &budget.markers);
    if !missing.is_empty() {
        return LeaseReply::NeedsSeed(missing);
    }
    let now_wall = wall_clock();
    // 1. The previous lease: its unspent part back to the counters it charged, once.
    let (mut refunded, mut refunded_keys) = (0, Vec::new());
    if let Some(previous) = &budget.previous {
        if let Some(Value::Lease { granted, keys, .. }) = live(entries, &previous.record_key) {
            if previous.spent > *granted {
                return LeaseReply::Done(LeaseOutcome::Overspent { granted: *granted });
            }
            refunded = granted - previous.spent;
            let keys = keys.clone();
            if refunded > 0 {
                for key in keys {
                    if counter(entries, &key).0 > 0 {
                        take_back(entries, &key, refunded);
                        refunded_keys.push(key);
                    }
                }
            }
        }
        let record_s = (budget.record_ttl_ms.max(1) + 999) / 1000;
        let mark = (Value::Returned, now_wall + record_s);
        entries.insert(previous.record_key.clone(), mark);
    }
    let window_keys = |op: &Op| match &op.kind {
        OpKind::Window { keys, .. } => keys.clone(),
        OpKind::Gauge { .. } => Vec::new(),
    };
    let (mut used, oldest): (Vec<u64>, Vec<Option<usize>>) = budget
        .ops
        .iter()
        .map(|op| window_usage(entries, &window_keys(op)))
        .unzip();
    let done = |grant, used, oldest, refunded_keys| {
        LeaseReply::Done(LeaseOutcome::Done(Leased {
            grant,
            refunded,
            refunded_keys,
            used,
            oldest,
        }))
    };
    // 2. A lease returned before it was granted: nothing to reserve.
    if let Some(Value::Returned) = live(entries, &budget.record_key) {
        let holder = lease_holder(&budget.gateway, &budget.tenant);
        for level in &budget.levels {
            let_go(entries, &level.holders_key, &holder, now_wall);
        }
        let grant = Grant::Reserved {
            granted: 0,
            ttl_ms: budget.ttl_ms,
        };
        return done(grant, used, oldest, refunded_keys);
    }
    // A retry of a lease granted before: the same answer, nothing reserved again.
    if let Some(Value::Lease {
        granted,
        expires_ms,
        keys,
    }) = live(entries, &budget.record_key)
    {
        for (i, op) in budget.ops.iter().enumerate() {
            if window_keys(op).first().is_some_and(|k| keys.contains(k)) {
                used[i] = used[i].saturating_sub(*granted);
            }
        }
        let grant = Grant::Duplicate {
            granted: *granted,
            ttl_ms: (expires_ms - budget.now_ms).max(0),
        };
        return done(grant, used, oldest, refunded_keys);
    }
    // 3. The headroom: the least room any op has left under its cap.
    let rooms: Vec<u64> = (budget.ops.iter().zip(&used))
        .map(|(op, &used)| op.cap.saturating_sub(used))
        .collect();
    let mut headroom: Option<(u64, usize)> = None;
    for (i, &room) in rooms.iter().enumerate() {
        if headroom.is_none_or(|(least, _)| room < least) {
            headroom = Some((room, i));
        }
    }
    let holder = lease_holder(&budget.gateway, &budget.tenant);
    let let_go_everywhere = |entries: &mut Entries| {
        for level in &budget.levels {
            let_go(entries, &level.holders_key, &holder, now_wall);
        }
    };
    if let Some((0, violated)) = headroom {
        let_go_everywhere(entries);
        return done(Grant::Exhausted { violated }, used, oldest, refunded_keys);
    }
    // 4. The grant: at each level, a share of the level's headroom for each budget
    // held at or below it (the asker's included); never more than the headroom of an
    // op in no level.
    let mut granted = if past(budget.deadline_ms) {
        0
    } else {
        budget.want
    };
    if let Some((room, _)) = headroom {
        granted = granted.min(room);
    }
    for level in &budget.levels {
        let (mut holders, at) = holders_at(entries, &level.holders_key, now_wall);
        holders.retain(|_, until| *until > budget.now_ms);
        let count = holders.len() as u64 + u64::from(!holders.contains_key(&holder));
        keep_holders(entries, &level.holders_key, holders, at.unwrap_or(now_wall));
        let room = (level.ops.iter())
            .filter_map(|&i| rooms.get(i).copied())
            .min()
            .unwrap_or(COUNTER_MAX);
        granted = granted.min(room / (2 * count));
    }
    if granted < budget.min_grant {
        granted = 0;
    }
    if granted == 0 {
        let_go_everywhere(entries);
        let grant = Grant::Reserved {
            granted: 0,
            ttl_ms: budget.ttl_ms,
        };
        return done(grant, used, oldest, refunded_keys);
    }
    // 5. The reservation, at every level, and its record.
    let mut charged = Vec::with_capacity(budget.ops.len());
    for op in &budget.ops {
        count_in(entries, op, &budget.markers, granted, now_wall);
        charged.extend(window_keys(op).into_iter().next());
    }
    let expires_ms = budget.now_ms + budget.ttl_ms;
    let record = Value::Lease {
        granted,
        expires_ms,
        keys: charged,
    };
    let record_s = (budget.record_ttl_ms.max(1) + 999) / 1000;
    entries.insert(budget.record_key.clone(), (record, now_wall + record_s));
    let ttl_s = (budget.ttl_ms.max(1) + 999) / 1000;
    for level in &budget.levels {
        let (mut holders, at) = holders_at(entries, &level.holders_key, now_wall);
        holders.insert(holder.clone(), expires_ms);
        let at = at.map_or(now_wall + ttl_s, |at| at.max(now_wall + ttl_s));
        keep_holders(entries, &level.holders_key, holders, at);
    }
    let grant = Grant::Reserved {
        granted,
        ttl_ms: budget.ttl_ms,
    };
    done(grant, used, oldest, refunded_keys)
}
