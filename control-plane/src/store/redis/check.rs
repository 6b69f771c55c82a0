//! Checks and reads (`check.lua`), seeding lost counters (`seed.lua`), adjustments
//! (`adjust.lua`), and snapshots for the history (pipelined `HMGET`s).

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::replies::{hash_tag, parse_count, parse_reply, CounterFields};
use super::store::RedisStore;
use crate::store::call::{Adjustment, Call, CallMode, OpKind, Reply, Seed, Snapshot, COUNTER_MAX};
use crate::store::error::StoreError;
use crate::store::keys::{CHECK_RECORD_TTL_MS, MARKER_TTL_S};
use crate::store::validate::validate_call;

/// How many tenant trees a snapshot reads at once.
const SNAPSHOT_CONCURRENCY: usize = 16;

impl RedisStore {
    pub(super) async fn check(&self, call: &Call) -> Result<Reply, StoreError> {
        validate_call(call)?;
        let mut script = self.scripts.check.prepare_invoke();
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
        let record_index = match &call.hold {
            Some(hold) => {
                script.key(&hold.record_key);
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
            .arg(call.hold.as_ref().map_or("", |l| l.request_id.as_str()))
            .arg(call.hold.as_ref().map_or(1, |l| l.ttl_s.max(1)))
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

    pub(super) async fn seed_counters(
        &self,
        markers: &[String],
        seeds: &[Seed],
    ) -> Result<u64, StoreError> {
        if markers.is_empty() && seeds.is_empty() {
            return Ok(0);
        }
        let mut script = self.scripts.seed.prepare_invoke();
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

    pub(super) async fn adjust_counters(
        &self,
        keys: &[String],
        adjustment: Adjustment,
        ttl_s: i64,
    ) -> Result<(u64, u64), StoreError> {
        if keys.is_empty() {
            return Ok((0, 0));
        }
        let mut script = self.scripts.adjust.prepare_invoke();
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

    /// Reads counters pipelined per hash tag (a cluster refuses pipelines across slots),
    /// several trees at a time.
    pub(super) async fn snapshot_counters(
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
}
