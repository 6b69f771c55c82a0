//! Counters in process memory with the semantics of the Redis scripts: the store of the
//! handler unit tests, and the reference the Redis store is contract-tested against.
//!
//! Key lifetimes run on the real clock, as Redis TTLs do; gauge leases run on the call's
//! `now`, as in the script.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::Utc;

use super::{
    budget_holder, validate_budget, validate_call, validate_settlement, Adjustment, Budget,
    BudgetOutcome, BudgetReply, Budgeted, Call, CallMode, Cancelled, Change, CounterStore, Grant,
    Op, OpKind, Outcome, Reply, Seed, SettleOutcome, SettleReply, Settled, Settlement, Snapshot,
    StoreError, StoreFuture, CHECK_RECORD_TTL_MS, COUNTER_MAX, MARKER_TTL_S, SETTLEMENT_ID_TTL_S,
};

/// One stored value and the unix second it expires at.
#[derive(Debug, Clone)]
enum Value {
    Counter {
        used: u64,
        epoch: u64,
    },
    Gauge {
        leases: BTreeMap<String, (u64, i64)>,
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
    Budget {
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
}

type Entries = HashMap<String, (Value, i64)>;

/// Counters in a map behind a std mutex (never held across an `.await`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
}

fn wall_clock() -> i64 {
    Utc::now().timestamp()
}

/// Whether a call's deadline (unix ms) has passed, on the real clock as in the scripts.
fn past(deadline_ms: Option<i64>) -> bool {
    deadline_ms.is_some_and(|deadline| Utc::now().timestamp_millis() > deadline)
}

fn live<'e>(entries: &'e Entries, key: &str) -> Option<&'e Value> {
    entries
        .get(key)
        .filter(|(_, expires_at)| *expires_at > wall_clock())
        .map(|(value, _)| value)
}

fn counter(entries: &Entries, key: &str) -> (u64, u64) {
    match live(entries, key) {
        Some(Value::Counter { used, epoch }) => (*used, *epoch),
        _ => (0, 0),
    }
}

/// Live leases of a gauge at `now`: request id → amount.
fn leases(entries: &Entries, key: &str, now: i64) -> BTreeMap<String, u64> {
    match live(entries, key) {
        Some(Value::Gauge { leases }) => leases
            .iter()
            .filter(|(_, (_, expiry))| *expiry > now)
            .map(|(id, (amount, _))| (id.clone(), *amount))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Usage of a window op, and the position of its oldest counter that holds usage.
fn window_usage(entries: &Entries, keys: &[String]) -> (u64, Option<usize>) {
    let values: Vec<u64> = keys.iter().map(|k| counter(entries, k).0).collect();
    (values.iter().sum(), values.iter().rposition(|&v| v > 0))
}

/// Takes `amount` back from the live counter `key`, never below zero, bumping its epoch
/// and keeping its expiry, as `take_back` in `refund.lua` does. A counter that does not
/// exist, or holds nothing, is left alone. Returns its usage afterwards.
fn take_back(entries: &mut Entries, key: &str, amount: u64) -> u64 {
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
fn count_in(entries: &mut Entries, op: &Op, markers: &[String], amount: u64, now_wall: i64) {
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
fn missing_markers(entries: &Entries, markers: &[String]) -> Vec<usize> {
    markers
        .iter()
        .enumerate()
        .filter(|(_, key)| live(entries, key).is_none())
        .map(|(i, _)| i)
        .collect()
}

/// The live budget holders stored at `key`, and the unix second the set expires at
/// (`None`: there is none).
fn holders_at(entries: &Entries, key: &str, now_wall: i64) -> (BTreeMap<String, i64>, Option<i64>) {
    match entries.get(key) {
        Some((Value::Holders { until }, at)) if *at > now_wall => (until.clone(), Some(*at)),
        _ => (BTreeMap::new(), None),
    }
}

/// Stores budget holders at `key`, to expire at unix second `at`; a set that ends up
/// empty is gone, as in Redis.
fn keep_holders(entries: &mut Entries, key: &str, holders: BTreeMap<String, i64>, at: i64) {
    if holders.is_empty() {
        entries.remove(key);
    } else {
        entries.insert(key.to_string(), (Value::Holders { until: holders }, at));
    }
}

/// Removes `holder` from the budget holders at `key`, keeping the set's expiry.
fn let_go(entries: &mut Entries, key: &str, holder: &str, now_wall: i64) {
    let (mut holders, at) = holders_at(entries, key, now_wall);
    holders.remove(holder);
    keep_holders(entries, key, holders, at.unwrap_or(now_wall));
}

/// Gives back every gauge slot the request recorded at `record_key` holds, as
/// `lease.lua` does. Returns how many gauges it released.
fn release_held(entries: &mut Entries, record_key: &str, request_id: &str) -> u64 {
    let gauges = match live(entries, record_key) {
        Some(Value::Record { gauges }) => gauges.clone(),
        _ => BTreeSet::new(),
    };
    let mut released = 0;
    for key in gauges {
        if let Some((Value::Gauge { leases }, _)) = entries.get_mut(&key) {
            if leases.remove(request_id).is_some() {
                released += 1;
            }
        }
    }
    entries.remove(record_key);
    released
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Forgets everything, as a Redis restart without persistence does.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Every update runs to completion under the lock; a poisoned map is consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self, call: &Call) -> Result<Reply, StoreError> {
        let mut entries = self.lock();
        // Under the same lock as the count: a take-back that got here first leaves a
        // record, and its check then counts nothing (accounting.lua's "late").
        let taken_back = |record: &String| live(&entries, record).is_some();
        if call.mode == CallMode::Check && call.check_record.as_ref().is_some_and(taken_back) {
            return Err(StoreError::PastDeadline);
        }
        let missing = missing_markers(&entries, &call.markers);
        if !missing.is_empty() {
            return Ok(Reply::NeedsSeed(missing));
        }
        let request_id = call.lease.as_ref().map(|l| l.request_id.as_str());
        let mut used = Vec::with_capacity(call.ops.len());
        let mut oldest = Vec::with_capacity(call.ops.len());
        let mut held = Vec::with_capacity(call.ops.len());
        for op in &call.ops {
            match &op.kind {
                OpKind::Window { keys, .. } => {
                    let (sum, first) = window_usage(&entries, keys);
                    used.push(sum);
                    oldest.push(first);
                    held.push(0);
                }
                OpKind::Gauge { key } => {
                    let live_leases = leases(&entries, key, call.now);
                    used.push(live_leases.values().sum::<u64>());
                    oldest.push(None);
                    held.push(
                        request_id
                            .and_then(|id| live_leases.get(id).copied())
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
        let violated = call.ops.iter().enumerate().position(|(i, op)| {
            u128::from(used[i] - held[i]) + u128::from(op.amount) > u128::from(op.cap)
        });
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
                    count_in(&mut entries, op, &call.markers, op.amount, now_wall);
                    used[i] += op.amount;
                    if oldest[i].is_none() {
                        oldest[i] = Some(0);
                    }
                }
                OpKind::Gauge { key } => {
                    let Some(lease) = &call.lease else { continue };
                    let mut kept: BTreeMap<String, (u64, i64)> = match live(&entries, key) {
                        Some(Value::Gauge { leases }) => leases
                            .iter()
                            .filter(|(_, (_, expiry))| *expiry > call.now)
                            .map(|(id, v)| (id.clone(), *v))
                            .collect(),
                        _ => BTreeMap::new(),
                    };
                    kept.insert(
                        lease.request_id.clone(),
                        (op.amount, call.now + lease.ttl_s),
                    );
                    entries.insert(
                        key.clone(),
                        (Value::Gauge { leases: kept }, now_wall + lease.ttl_s),
                    );
                    used[i] = used[i] - held[i] + op.amount;
                    let mut gauges = match live(&entries, &lease.record_key) {
                        Some(Value::Record { gauges }) => gauges.clone(),
                        _ => BTreeSet::new(),
                    };
                    gauges.insert(key.clone());
                    entries.insert(
                        lease.record_key.clone(),
                        (Value::Record { gauges }, now_wall + lease.ttl_s),
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

    fn seed_now(&self, markers: &[String], seeds: &[Seed]) -> u64 {
        let mut entries = self.lock();
        let now = wall_clock();
        let mut created = 0;
        for seed in seeds {
            if live(&entries, &seed.key).is_none() {
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

    fn adjust_now(&self, keys: &[String], adjustment: Adjustment, ttl_s: i64) -> (u64, u64) {
        let mut entries = self.lock();
        let now = wall_clock();
        let mut values: Vec<u64> = keys.iter().map(|k| counter(&entries, k).0).collect();
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
                Some((_, at)) if live(&entries, key).is_some() => *at,
                _ if value == 0 => continue,
                _ => now + ttl_s,
            };
            let (_, epoch) = counter(&entries, key);
            let counter = Value::Counter {
                used: value,
                epoch: epoch + 1,
            };
            entries.insert(key.clone(), (counter, expires_at));
            values[i] = value;
        }
        (before, values.iter().sum())
    }

    fn settle_now(&self, settlement: &Settlement) -> SettleReply {
        let mut entries = self.lock();
        // In the script's order: a duplicate first, then lost counters — and the id is
        // remembered only when the settlement is applied, never with a "seed" answer.
        if live(&entries, &settlement.id_key).is_some() {
            return SettleReply::Done(SettleOutcome::Duplicate);
        }
        let missing = missing_markers(&entries, &settlement.markers);
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
            let (value, epoch) = counter(&entries, &m.key);
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
                Change::Refund(amount) => take_back(&mut entries, &m.key, amount),
            };
            used.push(after);
        }
        let released = match &settlement.release {
            Some(r) => release_held(&mut entries, &r.record_key, &r.request_id),
            None => 0,
        };
        SettleReply::Done(SettleOutcome::Applied(Settled { used, released }))
    }

    fn budget_now(&self, budget: &Budget) -> BudgetReply {
        let mut entries = self.lock();
        let missing = missing_markers(&entries, &budget.markers);
        if !missing.is_empty() {
            return BudgetReply::NeedsSeed(missing);
        }
        let now_wall = wall_clock();
        // 1. The previous lease: its unspent part back to the counters it charged, once.
        let (mut refunded, mut refunded_keys) = (0, Vec::new());
        if let Some(previous) = &budget.previous {
            if let Some(Value::Budget { granted, keys, .. }) = live(&entries, &previous.record_key)
            {
                if previous.spent > *granted {
                    return BudgetReply::Done(BudgetOutcome::Overspent { granted: *granted });
                }
                refunded = granted - previous.spent;
                let keys = keys.clone();
                if refunded > 0 {
                    for key in keys {
                        if counter(&entries, &key).0 > 0 {
                            take_back(&mut entries, &key, refunded);
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
            .map(|op| window_usage(&entries, &window_keys(op)))
            .unzip();
        let done = |grant, used, oldest, refunded_keys| {
            BudgetReply::Done(BudgetOutcome::Done(Budgeted {
                grant,
                refunded,
                refunded_keys,
                used,
                oldest,
            }))
        };
        // 2. A lease returned before it was granted: nothing to reserve.
        if let Some(Value::Returned) = live(&entries, &budget.record_key) {
            let holder = budget_holder(&budget.gateway, &budget.tenant);
            for level in &budget.levels {
                let_go(&mut entries, &level.holders_key, &holder, now_wall);
            }
            let grant = Grant::Reserved {
                granted: 0,
                ttl_ms: budget.ttl_ms,
            };
            return done(grant, used, oldest, refunded_keys);
        }
        // A retry of a lease granted before: the same answer, nothing reserved again.
        if let Some(Value::Budget {
            granted,
            expires_ms,
            keys,
        }) = live(&entries, &budget.record_key)
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
        let holder = budget_holder(&budget.gateway, &budget.tenant);
        let let_go_everywhere = |entries: &mut Entries| {
            for level in &budget.levels {
                let_go(entries, &level.holders_key, &holder, now_wall);
            }
        };
        if let Some((0, violated)) = headroom {
            let_go_everywhere(&mut entries);
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
            let (mut holders, at) = holders_at(&entries, &level.holders_key, now_wall);
            holders.retain(|_, until| *until > budget.now_ms);
            let count = holders.len() as u64 + u64::from(!holders.contains_key(&holder));
            keep_holders(
                &mut entries,
                &level.holders_key,
                holders,
                at.unwrap_or(now_wall),
            );
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
            let_go_everywhere(&mut entries);
            let grant = Grant::Reserved {
                granted: 0,
                ttl_ms: budget.ttl_ms,
            };
            return done(grant, used, oldest, refunded_keys);
        }
        // 5. The reservation, at every level, and its record.
        let mut charged = Vec::with_capacity(budget.ops.len());
        for op in &budget.ops {
            count_in(&mut entries, op, &budget.markers, granted, now_wall);
            charged.extend(window_keys(op).into_iter().next());
        }
        let expires_ms = budget.now_ms + budget.ttl_ms;
        let record = Value::Budget {
            granted,
            expires_ms,
            keys: charged,
        };
        let record_s = (budget.record_ttl_ms.max(1) + 999) / 1000;
        entries.insert(budget.record_key.clone(), (record, now_wall + record_s));
        let ttl_s = (budget.ttl_ms.max(1) + 999) / 1000;
        for level in &budget.levels {
            let (mut holders, at) = holders_at(&entries, &level.holders_key, now_wall);
            holders.insert(holder.clone(), expires_ms);
            let at = at.map_or(now_wall + ttl_s, |at| at.max(now_wall + ttl_s));
            keep_holders(&mut entries, &level.holders_key, holders, at);
        }
        let grant = Grant::Reserved {
            granted,
            ttl_ms: budget.ttl_ms,
        };
        done(grant, used, oldest, refunded_keys)
    }

    fn release_now(&self, record_key: &str, request_id: &str) -> u64 {
        release_held(&mut self.lock(), record_key, request_id)
    }

    fn cancel_now(&self, lease_record: &str, check_record: &str, request_id: &str) -> Cancelled {
        let mut entries = self.lock();
        let mut cancelled = Cancelled {
            released: release_held(&mut entries, lease_record, request_id),
            ..Cancelled::default()
        };
        let counted = match live(&entries, check_record) {
            Some(Value::CheckRecord { counted }) => counted.clone(),
            _ => Vec::new(),
        };
        let mark = Value::CheckRecord {
            counted: Vec::new(),
        };
        let expires = wall_clock() + CHECK_RECORD_TTL_MS / 1_000;
        entries.insert(check_record.to_string(), (mark, expires));
        for (key, amount) in counted {
            if counter(&entries, &key).0 > 0 {
                take_back(&mut entries, &key, amount);
                cancelled.keys.push(key);
            }
            cancelled.refunded = cancelled.refunded.saturating_add(amount);
        }
        cancelled
    }

    fn snapshot_now(&self, keys: &[String]) -> Vec<Option<Snapshot>> {
        let entries = self.lock();
        keys.iter()
            .map(|key| match live(&entries, key) {
                Some(Value::Counter { used, epoch }) => Some(Snapshot {
                    used: *used,
                    epoch: *epoch,
                }),
                _ => None,
            })
            .collect()
    }
}

impl CounterStore for MemoryStore {
    fn call<'a>(&'a self, call: &'a Call) -> StoreFuture<'a, Reply> {
        Box::pin(async move {
            validate_call(call)?;
            if call.mode == CallMode::Check && past(call.deadline_ms) {
                return Err(StoreError::PastDeadline);
            }
            self.run(call)
        })
    }

    fn seed<'a>(&'a self, markers: &'a [String], seeds: &'a [Seed]) -> StoreFuture<'a, u64> {
        Box::pin(async move { Ok(self.seed_now(markers, seeds)) })
    }

    fn adjust<'a>(
        &'a self,
        keys: &'a [String],
        adjustment: Adjustment,
        ttl_s: i64,
    ) -> StoreFuture<'a, (u64, u64)> {
        Box::pin(async move { Ok(self.adjust_now(keys, adjustment, ttl_s)) })
    }

    fn settle<'a>(&'a self, settlement: &'a Settlement) -> StoreFuture<'a, SettleReply> {
        Box::pin(async move {
            validate_settlement(settlement)?;
            Ok(self.settle_now(settlement))
        })
    }

    fn budget<'a>(&'a self, budget: &'a Budget) -> StoreFuture<'a, BudgetReply> {
        Box::pin(async move {
            validate_budget(budget)?;
            Ok(self.budget_now(budget))
        })
    }

    fn release<'a>(&'a self, record_key: &'a str, request_id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move { Ok(self.release_now(record_key, request_id)) })
    }

    fn cancel<'a>(
        &'a self,
        lease_record: &'a str,
        check_record: &'a str,
        request_id: &'a str,
    ) -> StoreFuture<'a, Cancelled> {
        Box::pin(async move { Ok(self.cancel_now(lease_record, check_record, request_id)) })
    }

    fn snapshot<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Snapshot>>> {
        Box::pin(async move { Ok(self.snapshot_now(keys)) })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}
