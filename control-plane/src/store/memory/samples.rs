//! Usage samples kept beside counters, as the Redis store keeps them in sorted sets.

use super::entries::{counter, live, wall_clock, Entries, Value};
use crate::store::call::Snapshot;
use crate::store::error::StoreError;
use crate::store::samples::{samples_keys, Sample, Sampled, MAX_SAMPLES, SAMPLES_KEPT_MS};

/// Adds a sample of each counter at `at_ms`, drops those older than the samples kept
/// and all but the newest [`MAX_SAMPLES`], and keeps the rest [`SAMPLES_KEPT_MS`] on
/// the real clock, as Redis' `PEXPIRE` does.
pub(super) fn record(
    entries: &mut Entries,
    at_ms: i64,
    counters: &[(String, Snapshot)],
) -> Result<(), StoreError> {
    let keys = samples_keys(counters.iter().map(|(key, _)| key))?;
    let expires_at = wall_clock() + SAMPLES_KEPT_MS.div_euclid(1_000);
    for (key, (_, snapshot)) in keys.into_iter().zip(counters) {
        let mut samples = match live(entries, &key) {
            Some(Value::Samples { samples }) => samples.clone(),
            _ => Vec::new(),
        };
        let sample = Sample::of(at_ms, *snapshot);
        if !samples.contains(&sample) {
            samples.push(sample);
        }
        // A sorted set orders by score, then by member.
        samples.sort_by_key(|s| (s.at_ms, s.member()));
        samples.retain(|s| s.at_ms >= at_ms.saturating_sub(SAMPLES_KEPT_MS));
        let surplus = samples.len().saturating_sub(MAX_SAMPLES);
        samples.drain(..surplus);
        entries.insert(key, (Value::Samples { samples }, expires_at));
    }
    Ok(())
}

/// Each counter now, with its samples.
pub(super) fn read(entries: &Entries, keys: &[String]) -> Result<Vec<Sampled>, StoreError> {
    let samples_keys = samples_keys(keys.iter())?;
    let read = keys
        .iter()
        .zip(samples_keys)
        .map(|(key, samples_key)| {
            let now = match live(entries, key) {
                Some(Value::Counter { .. }) => {
                    let (used, epoch) = counter(entries, key);
                    Some(Snapshot { used, epoch })
                }
                _ => None,
            };
            let samples = match live(entries, &samples_key) {
                Some(Value::Samples { samples }) => samples.clone(),
                _ => Vec::new(),
            };
            Sampled { now, samples }
        })
        .collect();
    Ok(read)
}
