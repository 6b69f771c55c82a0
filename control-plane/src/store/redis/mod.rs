//! The Redis counter store, on one Redis or a Redis Cluster: every call is one Lua
//! script (EVALSHA, reloaded automatically after a restart flushed the script cache)
//! over keys that share one tenant tree's hash tag.
//!
//! Connections are lazy and reconnect by themselves: the control plane starts while Redis
//! is down, and recovers when it comes back. The same connection carries the
//! invalidation messages between control planes ([`bus`](self::bus)). `rediss://` URLs
//! connect over TLS, with a private CA or a client certificate from [`RedisTls`].

mod bus;
mod tls;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterConfig;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

pub use self::tls::RedisTls;

use super::{
    budget_holder, validate_budget, validate_call, validate_settlement, Adjustment, Budget,
    BudgetOutcome, BudgetReply, Budgeted, Call, CallMode, Cancelled, Change, CounterStore, Grant,
    OpKind, Outcome, Reply, Seed, SettleOutcome, SettleReply, Settled, Settlement, Snapshot,
    StoreError, StoreFuture, CHECK_RECORD_TTL_MS, COUNTER_MAX, MARKER_TTL_S, SETTLEMENT_ID_TTL_S,
};

/// How many tenant trees a snapshot reads at once.
const SNAPSHOT_CONCURRENCY: usize = 16;

/// Fail fast when Redis is down: the filter waits ~200 ms for a decision, and a check
/// that queues behind reconnect back-off helps nobody.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One Redis or a cluster, behind one connection type; both clone cheaply.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Counters in Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    accounting: Script,
    seed: Script,
    adjust: Script,
    settle: Script,
    budget: Script,
    release: Script,
    cancel: Script,
}

impl RedisStore {
    /// A store on one Redis (`redis://host:port/db`, or `rediss://` for TLS). Does not
    /// connect yet.
    pub fn new(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::with_tls(url, &RedisTls::default())
    }

    /// [`RedisStore::new`] trusting and presenting what `tls` says (`url` must then be
    /// `rediss://`).
    pub fn with_tls(url: &str, tls: &RedisTls) -> Result<RedisStore, StoreError> {
        let client = tls::client(url, tls)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisStore::over(Conn::Single(conn)))
    }

    /// A store on a Redis Cluster, given some of its nodes. Connects in the background.
    pub fn cluster(nodes: &[String]) -> Result<RedisStore, StoreError> {
        RedisStore::cluster_with_tls(nodes, &RedisTls::default())
    }

    /// [`RedisStore::cluster`] trusting and presenting what `tls` says (the nodes must
    /// then be `rediss://`).
    pub fn cluster_with_tls(nodes: &[String], tls: &RedisTls) -> Result<RedisStore, StoreError> {
        let client = tls::cluster_builder(nodes, tls)?
            .retries(2)
            .min_retry_wait(20)
            .max_retry_wait(200)
            .build()
            .map_err(StoreError::Command)?;
        let config = ClusterConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let conn = client.get_pending_async_connection_with_config(config);
        Ok(RedisStore::over(Conn::Cluster(conn)))
    }

    fn over(conn: Conn) -> RedisStore {
        RedisStore {
            conn,
            accounting: Script::new(concat!(
                include_str!("../decimal.lua"),
                include_str!("../window.lua"),
                include_str!("../marker.lua"),
                include_str!("../deadline.lua"),
                include_str!("../accounting.lua")
            )),
            seed: Script::new(include_str!("../seed.lua")),
            adjust: Script::new(concat!(
                include_str!("../decimal.lua"),
                include_str!("../adjust.lua")
            )),
            settle: Script::new(concat!(
                include_str!("../decimal.lua"),
                include_str!("../refund.lua"),
                include_str!("../lease.lua"),
                include_str!("../marker.lua"),
                include_str!("../settle.lua")
            )),
            budget: Script::new(concat!(
                include_str!("../decimal.lua"),
                include_str!("../window.lua"),
                include_str!("../refund.lua"),
                include_str!("../marker.lua"),
                include_str!("../deadline.lua"),
                include_str!("../budget.lua")
            )),
            release: Script::new(concat!(
                include_str!("../lease.lua"),
                include_str!("../release.lua")
            )),
            cancel: Script::new(concat!(
                include_str!("../decimal.lua"),
                include_str!("../refund.lua"),
                include_str!("../lease.lua"),
                include_str!("../cancel.lua")
            )),
        }
    }

    async fn run(&self, call: &Call) -> Result<Reply, StoreError> {
        validate_call(call)?;
        let mut script = self.accounting.prepare_invoke();
        let mut next_key = 1;
        for marker in &call.markers {
            script.key(marker);
            next_key += 1;
        }
        let mut op_args: Vec<(char, usize, usize, u64, u64, i64, usize)> = Vec::new();
        for op in &call.ops {
            let (kind, keys, ttl, marker) = match &op.kind {
                OpKind::Window {
                    keys,
                    ttl_s,
                    marker,
                } => ('w', keys.as_slice(), *ttl_s, marker.map_or(0, |m| m + 1)),
                OpKind::Gauge { key } => ('g', std::slice::from_ref(key), 0, 0),
            };
            op_args.push((
                kind,
                next_key,
                keys.len(),
                op.amount,
                op.cap,
                ttl.max(1),
                marker,
            ));
            for key in keys {
                script.key(key);
            }
            next_key += keys.len();
        }
        let record_index = match &call.lease {
            Some(lease) => {
                script.key(&lease.record_key);
                next_key += 1;
                next_key - 1
            }
            None => 0,
        };
        let check_record_index = match &call.check_record {
            Some(key) => {
                script.key(key);
                next_key
            }
            None => 0,
        };
        let mode = match call.mode {
            CallMode::Check => "check",
            CallMode::Read => "read",
        };
        script
            .arg(mode)
            .arg(call.now)
            .arg(call.markers.len())
            .arg(MARKER_TTL_S)
            .arg(call.ops.len())
            .arg(record_index)
            .arg(call.lease.as_ref().map_or("", |l| l.request_id.as_str()))
            .arg(call.lease.as_ref().map_or(1, |l| l.ttl_s.max(1)))
            .arg(call.deadline_ms.unwrap_or(0).max(0))
            .arg(check_record_index)
            .arg(CHECK_RECORD_TTL_MS);
        for (kind, first, count, amount, cap, ttl, marker) in op_args {
            script
                .arg(kind.to_string())
                .arg(first)
                .arg(count)
                .arg(amount)
                .arg(cap)
                .arg(ttl)
                .arg(marker);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = script.invoke_async(&mut conn).await?;
        parse_reply(&reply, call.ops.len())
    }

    async fn seed_counters(&self, markers: &[String], seeds: &[Seed]) -> Result<u64, StoreError> {
        if markers.is_empty() && seeds.is_empty() {
            return Ok(0);
        }
        let mut script = self.seed.prepare_invoke();
        for marker in markers {
            script.key(marker);
        }
        script.arg(markers.len()).arg(MARKER_TTL_S);
        for seed in seeds {
            script
                .key(&seed.key)
                .arg(seed.used.min(COUNTER_MAX))
                .arg(seed.epoch)
                .arg(seed.ttl_s.max(1));
        }
        let mut conn = self.conn.clone();
        Ok(script.invoke_async(&mut conn).await?)
    }

    async fn adjust_counters(
        &self,
        keys: &[String],
        adjustment: Adjustment,
        ttl_s: i64,
    ) -> Result<(u64, u64), StoreError> {
        if keys.is_empty() {
            return Ok((0, 0));
        }
        let mut script = self.adjust.prepare_invoke();
        for key in keys {
            script.key(key);
        }
        match adjustment {
            Adjustment::To(value) => script.arg("to").arg(value.min(COUNTER_MAX)),
            Adjustment::By(delta) => script.arg("by").arg(delta),
        };
        script.arg(COUNTER_MAX).arg(ttl_s.max(1));
        let mut conn = self.conn.clone();
        let reply: Vec<String> = script.invoke_async(&mut conn).await?;
        match reply.as_slice() {
            [before, after] => Ok((parse_count(before)?, parse_count(after)?)),
            other => Err(StoreError::Protocol(format!("adjust replied {other:?}"))),
        }
    }

    async fn settle_counters(&self, settlement: &Settlement) -> Result<SettleReply, StoreError> {
        validate_settlement(settlement)?;
        let Settlement {
            id_key,
            markers,
            moves,
            release,
        } = settlement;
        let mut script = self.settle.prepare_invoke();
        for marker in markers {
            script.key(marker);
        }
        for m in moves {
            script.key(&m.key);
        }
        script.key(id_key);
        if let Some(release) = release {
            script.key(&release.record_key);
        }
        script
            .arg(markers.len())
            .arg(MARKER_TTL_S)
            .arg(moves.len())
            .arg(COUNTER_MAX)
            .arg(release.as_ref().map_or("", |r| r.request_id.as_str()))
            .arg(SETTLEMENT_ID_TTL_S);
        for m in moves {
            let (sign, amount) = match m.change {
                Change::Add(amount) => ("+", amount),
                Change::Refund(amount) => ("-", amount),
            };
            script
                .arg(sign)
                .arg(amount)
                .arg(m.ttl_s.max(1))
                .arg(m.marker.map_or(0, |i| i + 1));
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = script.invoke_async(&mut conn).await?;
        parse_settle_reply(&reply, moves.len())
    }

    async fn lease_budget(&self, budget: &Budget) -> Result<BudgetReply, StoreError> {
        validate_budget(budget)?;
        let mut script = self.budget.prepare_invoke();
        for marker in &budget.markers {
            script.key(marker);
        }
        let mut op_args: Vec<(usize, usize, u64, i64, usize)> = Vec::new();
        let mut next_key = budget.markers.len() + 1;
        for op in &budget.ops {
            let OpKind::Window {
                keys,
                ttl_s,
                marker,
            } = &op.kind
            else {
                return Err(StoreError::Invalid("a gauge cannot be budgeted".into()));
            };
            op_args.push((
                next_key,
                keys.len(),
                op.cap,
                (*ttl_s).max(1),
                marker.map_or(0, |m| m + 1),
            ));
            for key in keys {
                script.key(key);
            }
            next_key += keys.len();
        }
        script.key(&budget.record_key);
        for level in &budget.levels {
            script.key(&level.holders_key);
        }
        if let Some(previous) = &budget.previous {
            script.key(&previous.record_key);
        }
        script
            .arg(budget.markers.len())
            .arg(MARKER_TTL_S)
            .arg(budget.ops.len())
            .arg(budget.now_ms)
            .arg(budget.want)
            .arg(budget.min_grant)
            .arg(budget.ttl_ms)
            .arg(budget.record_ttl_ms.max(1))
            .arg(&budget.gateway)
            .arg(
                budget
                    .previous
                    .as_ref()
                    .map(|p| p.spent.to_string())
                    .unwrap_or_default(),
            )
            .arg(budget_holder(&budget.gateway, &budget.tenant))
            .arg(budget.levels.len())
            .arg(budget.deadline_ms.unwrap_or(0).max(0));
        for (first, count, cap, ttl_s, marker) in op_args {
            script.arg(first).arg(count).arg(cap).arg(ttl_s).arg(marker);
        }
        for level in &budget.levels {
            script.arg(level.ops.len());
            for &op in &level.ops {
                script.arg(op + 1);
            }
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = script.invoke_async(&mut conn).await?;
        parse_budget_reply(&reply, budget.ops.len())
    }

    async fn cancel_check(
        &self,
        lease_record: &str,
        check_record: &str,
        request_id: &str,
    ) -> Result<Cancelled, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .cancel
            .key(lease_record)
            .key(check_record)
            .arg(request_id)
            .arg(CHECK_RECORD_TTL_MS)
            .invoke_async(&mut conn)
            .await?;
        match reply.as_slice() {
            [released, refunded, keys @ ..] => Ok(Cancelled {
                released: parse_count(released)?,
                refunded: parse_count(refunded)?,
                keys: keys.to_vec(),
            }),
            other => Err(StoreError::Protocol(format!("cancel replied {other:?}"))),
        }
    }

    async fn release_leases(&self, record_key: &str, request_id: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        Ok(self
            .release
            .key(record_key)
            .arg(request_id)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Reads counters pipelined per hash tag (a cluster refuses pipelines across slots),
    /// several trees at a time.
    async fn snapshot_counters(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Snapshot>>, StoreError> {
        let mut by_tag: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            by_tag.entry(hash_tag(key)).or_default().push(i);
        }
        let groups: Vec<Vec<usize>> = by_tag.into_values().collect();
        let answers: Vec<(Vec<usize>, Vec<CounterFields>)> = stream::iter(groups)
            .map(|indices| {
                let mut pipeline = redis::pipe();
                for &i in &indices {
                    pipeline.cmd("HMGET").arg(&keys[i]).arg("u").arg("e");
                }
                let mut conn = self.conn.clone();
                async move {
                    let values: Vec<CounterFields> = pipeline.query_async(&mut conn).await?;
                    Ok::<_, StoreError>((indices, values))
                }
            })
            .buffer_unordered(SNAPSHOT_CONCURRENCY)
            .try_collect()
            .await?;
        let mut out = vec![None; keys.len()];
        for (indices, values) in answers {
            for (i, (used, epoch)) in indices.into_iter().zip(values) {
                out[i] = match used {
                    Some(used) => Some(Snapshot {
                        used: parse_count(&used)?,
                        epoch: epoch.as_deref().map_or(Ok(0), parse_count)?,
                    }),
                    None => None,
                };
            }
        }
        Ok(out)
    }

    async fn ping_redis(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// A counter's `u` (usage) and `e` (epoch) fields as HMGET answers them.
type CounterFields = (Option<String>, Option<String>);

/// The hash tag of a key: what lies between its first `{` and the next `}`.
fn hash_tag(key: &str) -> &str {
    key.split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map_or(key, |(tag, _)| tag)
}

fn parse_count(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Protocol(format!("counter value {text:?} is not a count")))
}

/// The markers a "seed" reply names (`reseed_reply` in `marker.lua`): `count`, then as
/// many 1-based indices at the start of `rest`; zero-based. `None` when malformed.
fn missing_markers(count: &str, rest: &[String]) -> Option<Vec<usize>> {
    let count: usize = count.parse().ok()?;
    rest.get(..count)?
        .iter()
        .map(|m| m.parse::<usize>().ok()?.checked_sub(1))
        .collect()
}

/// `{status, violated, K, K marker indices, used_1..used_n, oldest_1..oldest_n}`.
fn parse_reply(reply: &[String], ops: usize) -> Result<Reply, StoreError> {
    let bad = || StoreError::Protocol(format!("unexpected script reply {reply:?}"));
    let [status, violated, missing_count, rest @ ..] = reply else {
        return Err(bad());
    };
    if status == "late" {
        return Err(StoreError::PastDeadline);
    }
    if status == "seed" {
        return missing_markers(missing_count, rest)
            .map(Reply::NeedsSeed)
            .ok_or_else(bad);
    }
    if missing_count.parse::<usize>() != Ok(0) {
        return Err(bad());
    }
    let violated: usize = violated.parse().map_err(|_| bad())?;
    let (used, oldest) = parse_usage(rest, ops).ok_or_else(bad)?;
    Ok(Reply::Done(Outcome {
        admitted: status == "ok",
        violated: violated.checked_sub(1),
        used,
        oldest,
    }))
}

/// `used_1..used_n, oldest_1..oldest_n` (oldest 1-based, `0` for none), as the counting
/// scripts end their replies; `None` when malformed.
fn parse_usage(rest: &[String], ops: usize) -> Option<(Vec<u64>, Vec<Option<usize>>)> {
    if rest.len() != 2 * ops {
        return None;
    }
    let (used, oldest) = rest.split_at(ops);
    let used = used.iter().map(|u| u.parse().ok()).collect::<Option<_>>()?;
    let oldest = oldest
        .iter()
        .map(|o| o.parse::<usize>().ok().map(|o| o.checked_sub(1)))
        .collect::<Option<_>>()?;
    Some((used, oldest))
}

/// `{"duplicate"}`, `{"seed", K, K marker indices}` or `{"ok", released, used_1..used_n}`.
fn parse_settle_reply(reply: &[String], moves: usize) -> Result<SettleReply, StoreError> {
    let bad = || StoreError::Protocol(format!("unexpected settle reply {reply:?}"));
    if let [status] = reply {
        return match status.as_str() {
            "duplicate" => Ok(SettleReply::Done(SettleOutcome::Duplicate)),
            _ => Err(bad()),
        };
    }
    let [status, count, rest @ ..] = reply else {
        return Err(bad());
    };
    match status.as_str() {
        "seed" => missing_markers(count, rest)
            .map(SettleReply::NeedsSeed)
            .ok_or_else(bad),
        "ok" if rest.len() == moves => Ok(SettleReply::Done(SettleOutcome::Applied(Settled {
            used: rest
                .iter()
                .map(|u| parse_count(u))
                .collect::<Result<_, _>>()?,
            released: parse_count(count)?,
        }))),
        _ => Err(bad()),
    }
}

/// `{"seed", K, K marker indices}`, `{"overspent", granted}` or `{status, refunded,
/// granted, ttl ms, violated, R, R refunded counters, used_1..used_n, oldest_1..oldest_n}`
/// (`budget.lua`).
fn parse_budget_reply(reply: &[String], ops: usize) -> Result<BudgetReply, StoreError> {
    let bad = || StoreError::Protocol(format!("unexpected budget reply {reply:?}"));
    match reply {
        [status, count, rest @ ..] if status == "seed" => {
            return missing_markers(count, rest)
                .map(BudgetReply::NeedsSeed)
                .ok_or_else(bad)
        }
        [status, granted] if status == "overspent" => {
            return Ok(BudgetReply::Done(BudgetOutcome::Overspent {
                granted: parse_count(granted)?,
            }))
        }
        _ => {}
    }
    let [status, refunded, granted, ttl_ms, violated, moved, rest @ ..] = reply else {
        return Err(bad());
    };
    let moved: usize = moved.parse().map_err(|_| bad())?;
    if rest.len() < moved {
        return Err(bad());
    }
    let (refunded_keys, rest) = rest.split_at(moved);
    let (used, oldest) = parse_usage(rest, ops).ok_or_else(bad)?;
    let granted = parse_count(granted)?;
    let ttl_ms: i64 = ttl_ms.parse().map_err(|_| bad())?;
    let grant = match status.as_str() {
        "ok" => Grant::Reserved { granted, ttl_ms },
        "duplicate" => Grant::Duplicate { granted, ttl_ms },
        "exhausted" => Grant::Exhausted {
            violated: violated
                .parse::<usize>()
                .ok()
                .and_then(|v| v.checked_sub(1))
                .ok_or_else(bad)?,
        },
        _ => return Err(bad()),
    };
    Ok(BudgetReply::Done(BudgetOutcome::Done(Budgeted {
        grant,
        refunded: parse_count(refunded)?,
        refunded_keys: refunded_keys.to_vec(),
        used,
        oldest,
    })))
}

impl CounterStore for RedisStore {
    fn call<'a>(&'a self, call: &'a Call) -> StoreFuture<'a, Reply> {
        Box::pin(self.run(call))
    }

    fn seed<'a>(&'a self, markers: &'a [String], seeds: &'a [Seed]) -> StoreFuture<'a, u64> {
        Box::pin(self.seed_counters(markers, seeds))
    }

    fn adjust<'a>(
        &'a self,
        keys: &'a [String],
        adjustment: Adjustment,
        ttl_s: i64,
    ) -> StoreFuture<'a, (u64, u64)> {
        Box::pin(self.adjust_counters(keys, adjustment, ttl_s))
    }

    fn settle<'a>(&'a self, settlement: &'a Settlement) -> StoreFuture<'a, SettleReply> {
        Box::pin(self.settle_counters(settlement))
    }

    fn budget<'a>(&'a self, budget: &'a Budget) -> StoreFuture<'a, BudgetReply> {
        Box::pin(self.lease_budget(budget))
    }

    fn release<'a>(&'a self, record_key: &'a str, request_id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(self.release_leases(record_key, request_id))
    }

    fn cancel<'a>(
        &'a self,
        lease_record: &'a str,
        check_record: &'a str,
        request_id: &'a str,
    ) -> StoreFuture<'a, Cancelled> {
        Box::pin(self.cancel_check(lease_record, check_record, request_id))
    }

    fn snapshot<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Snapshot>>> {
        Box::pin(self.snapshot_counters(keys))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.ping_redis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rejected_reply_names_the_violating_op_zero_based() {
        let reply = parse_reply(&strings(&["reject", "2", "0", "5", "9", "1", "0"]), 2).unwrap();
        let Reply::Done(outcome) = reply else {
            panic!("expected an outcome");
        };
        assert!(!outcome.admitted);
        assert_eq!(outcome.violated, Some(1));
        assert_eq!(outcome.used, vec![5, 9]);
        assert_eq!(outcome.oldest, vec![Some(0), None]);
    }

    #[test]
    fn seed_reply_lists_missing_markers_zero_based() {
        let reply = parse_reply(&strings(&["seed", "0", "2", "1", "3"]), 4).unwrap();
        assert_eq!(reply, Reply::NeedsSeed(vec![0, 2]));
    }

    #[test]
    fn reply_with_the_wrong_number_of_ops_is_a_protocol_error() {
        assert!(matches!(
            parse_reply(&strings(&["ok", "0", "0", "5"]), 2),
            Err(StoreError::Protocol(_))
        ));
        assert!(matches!(
            parse_reply(&strings(&["ok"]), 0),
            Err(StoreError::Protocol(_))
        ));
    }

    #[test]
    fn settle_replies_parse_into_usage_duplicates_or_missing_markers() {
        let done = parse_settle_reply(&strings(&["ok", "2", "5", "0"]), 2).unwrap();
        assert_eq!(
            done,
            SettleReply::Done(SettleOutcome::Applied(Settled {
                used: vec![5, 0],
                released: 2
            }))
        );
        let duplicate = parse_settle_reply(&strings(&["duplicate"]), 2).unwrap();
        assert_eq!(duplicate, SettleReply::Done(SettleOutcome::Duplicate));
        assert!(matches!(
            parse_settle_reply(&strings(&["ok"]), 0),
            Err(StoreError::Protocol(_))
        ));
        let seed = parse_settle_reply(&strings(&["seed", "1", "2"]), 3).unwrap();
        assert_eq!(seed, SettleReply::NeedsSeed(vec![1]));
        assert!(matches!(
            parse_settle_reply(&strings(&["ok", "0", "5"]), 2),
            Err(StoreError::Protocol(_))
        ));
    }

    #[test]
    fn budget_replies_parse_into_grants_refunds_and_usage() {
        let reply = strings(&["ok", "7", "50", "9000", "0", "1", "k1", "3", "4", "1", "0"]);
        assert_eq!(
            parse_budget_reply(&reply, 2).unwrap(),
            BudgetReply::Done(BudgetOutcome::Done(Budgeted {
                grant: Grant::Reserved {
                    granted: 50,
                    ttl_ms: 9000
                },
                refunded: 7,
                refunded_keys: strings(&["k1"]),
                used: vec![3, 4],
                oldest: vec![Some(0), None],
            }))
        );
        let exhausted = strings(&["exhausted", "0", "0", "0", "2", "0", "1", "9", "1", "1"]);
        let Ok(BudgetReply::Done(BudgetOutcome::Done(done))) = parse_budget_reply(&exhausted, 2)
        else {
            panic!("expected an outcome");
        };
        assert_eq!(done.grant, Grant::Exhausted { violated: 1 });
        assert_eq!(
            parse_budget_reply(&strings(&["overspent", "12"]), 1).unwrap(),
            BudgetReply::Done(BudgetOutcome::Overspent { granted: 12 })
        );
        assert_eq!(
            parse_budget_reply(&strings(&["seed", "1", "2"]), 1).unwrap(),
            BudgetReply::NeedsSeed(vec![1])
        );
        assert!(matches!(
            parse_budget_reply(&strings(&["ok", "0", "1", "1", "0", "0", "5"]), 2),
            Err(StoreError::Protocol(_))
        ));
    }

    #[test]
    fn hash_tag_is_the_first_braced_part() {
        assert_eq!(
            hash_tag("tollgate:{acme}:c:acme/x:requests:month:0"),
            "acme"
        );
        assert_eq!(hash_tag("plain"), "plain");
    }
}
