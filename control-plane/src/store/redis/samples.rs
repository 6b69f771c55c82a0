//! Usage samples in sorted sets beside the counters (`ZADD`, trimmed by time and count,
//! `PEXPIRE`), written and read pipelined per hash tag, several trees at a time.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::replies::{hash_tag, parse_count, CounterFields};
use super::store::RedisStore;
use crate::store::call::Snapshot;
use crate::store::error::StoreError;
use crate::store::samples::{samples_keys, Sample, Sampled, MAX_SAMPLES, SAMPLES_KEPT_MS};

/// How many tenant trees are written or read at once.
const CONCURRENCY: usize = 16;

/// The indices of `keys` grouped by hash tag: a cluster refuses pipelines across slots.
fn by_tag<'k>(keys: impl Iterator<Item = &'k str>) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, key) in keys.enumerate() {
        groups.entry(hash_tag(key)).or_default().push(i);
    }
    groups.into_values().collect()
}

impl RedisStore {
    pub(super) async fn record_counter_samples(
        &self,
        at_ms: i64,
        counters: &[(String, Snapshot)],
    ) -> Result<(), StoreError> {
        let keys = samples_keys(counters.iter().map(|(key, _)| key))?;
        let keyed: Vec<(String, String)> = keys
            .into_iter()
            .zip(counters)
            .map(|(key, (_, snapshot))| (key, Sample::of(at_ms, *snapshot).member()))
            .collect();
        let oldest_kept = format!("({}", at_ms.saturating_sub(SAMPLES_KEPT_MS));
        let newest_kept = -(MAX_SAMPLES as i64) - 1;
        stream::iter(by_tag(keyed.iter().map(|(key, _)| key.as_str())))
            .map(|indices| {
                let mut pipeline = redis::pipe();
                for &i in &indices {
                    let (key, member) = &keyed[i];
                    pipeline
                        .cmd("ZADD")
                        .arg(key)
                        .arg(at_ms)
                        .arg(member)
                        .ignore();
                    pipeline
                        .cmd("ZREMRANGEBYSCORE")
                        .arg(key)
                        .arg("-inf")
                        .arg(&oldest_kept)
                        .ignore();
                    pipeline
                        .cmd("ZREMRANGEBYRANK")
                        .arg(key)
                        .arg(0)
                        .arg(newest_kept)
                        .ignore();
                    pipeline
                        .cmd("PEXPIRE")
                        .arg(key)
                        .arg(SAMPLES_KEPT_MS)
                        .ignore();
                }
                let mut conn = self.conn.clone();
                async move {
                    pipeline.query_async::<()>(&mut conn).await?;
                    Ok::<_, StoreError>(())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    pub(super) async fn read_samples(&self, keys: &[String]) -> Result<Vec<Sampled>, StoreError> {
        let samples_keys = samples_keys(keys.iter())?;
        let answers: Vec<(Vec<usize>, Vec<redis::Value>)> =
            stream::iter(by_tag(keys.iter().map(String::as_str)))
                .map(|indices| {
                    let mut pipeline = redis::pipe();
                    for &i in &indices {
                        pipeline.cmd("HMGET").arg(&keys[i]).arg("u").arg("e");
                        pipeline.cmd("ZRANGE").arg(&samples_keys[i]).arg(0).arg(-1);
                    }
                    let mut conn = self.conn.clone();
                    async move {
                        // Values, parsed pair by pair below: a flat list of pairs read
                        // as tuples is ambiguous when every reply has two elements.
                        let values: Vec<redis::Value> = pipeline.query_async(&mut conn).await?;
                        Ok::<_, StoreError>((indices, values))
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
        let mut out = vec![Sampled::default(); keys.len()];
        for (indices, values) in answers {
            if values.len() != 2 * indices.len() {
                return Err(StoreError::Protocol(format!(
                    "{} replies to {} sample reads",
                    values.len(),
                    indices.len()
                )));
            }
            for (i, pair) in indices.into_iter().zip(values.chunks(2)) {
                let [fields, members] = pair else { continue };
                let parse = |e: redis::ParsingError| StoreError::Protocol(e.to_string());
                let (used, epoch): CounterFields =
                    redis::from_redis_value_ref(fields).map_err(parse)?;
                let members: Vec<String> = redis::from_redis_value_ref(members).map_err(parse)?;
                let now = match used {
                    Some(used) => Some(Snapshot {
                        used: parse_count(&used)?,
                        epoch: epoch.as_deref().map_or(Ok(0), parse_count)?,
                    }),
                    None => None,
                };
                let samples = members
                    .iter()
                    .map(|m| {
                        Sample::parse(m)
                            .ok_or_else(|| StoreError::Protocol(format!("usage sample {m:?}")))
                    })
                    .collect::<Result<_, _>>()?;
                out[i] = Sampled { now, samples };
            }
        }
        Ok(out)
    }
}
