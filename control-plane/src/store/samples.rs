//! Usage samples: what the history flusher read of a counter, and when, kept beside the
//! counter for ten minutes. A tenant's view of its quota tells from them how fast usage
//! grew lately, so the check path does nothing more than it did.
//!
//! Only counters of windows longer than the burn rate's lookback are sampled (calendar
//! hours, days, weeks and months; the buckets of rolling days, weeks and months): for
//! shorter windows, the start of a window within the lookback is a point where usage
//! was known (zero), and the windows themselves tell the rate.

use chrono::Duration;
use tollgate_protocol::quota::RATE_LOOKBACK_MS;

use super::call::Snapshot;
use super::error::StoreError;
use super::keys::samples_key;
use crate::model::window::Window;

/// How long samples are kept, in milliseconds: twice the lookback, so that a sample
/// from just before it is still there.
pub const SAMPLES_KEPT_MS: i64 = 2 * RATE_LOOKBACK_MS as i64;

/// At most this many samples are kept per counter (the newest): enough for one every
/// 2.5 s over the ten minutes; a control plane flushing more often than that keeps
/// a shorter stretch.
pub const MAX_SAMPLES: usize = 240;

/// Whether counters of `window` are sampled: it is longer than the lookback.
pub fn is_sampled(window: &Window) -> bool {
    window.end - window.start > Duration::milliseconds(RATE_LOOKBACK_MS as i64)
}

/// The samples key of each of `keys`, which must all be counter keys.
pub fn samples_keys<'k>(keys: impl Iterator<Item = &'k String>) -> Result<Vec<String>, StoreError> {
    keys.map(|key| {
        samples_key(key).ok_or_else(|| StoreError::Invalid(format!("{key} is no counter key")))
    })
    .collect()
}

/// One counter's usage and epoch at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was read: unix milliseconds, on the control plane's clock.
    pub at_ms: i64,
    /// Its usage then.
    pub used: u64,
    /// Its epoch then: a sample of another epoch than the counter's now came before a
    /// reset, an adjustment or a take-back, and says nothing of how usage grew since.
    pub epoch: u64,
}

impl Sample {
    /// The sample of `snapshot` read at `at_ms`.
    pub fn of(at_ms: i64, snapshot: Snapshot) -> Sample {
        Sample {
            at_ms,
            used: snapshot.used,
            epoch: snapshot.epoch,
        }
    }

    /// How a sample is stored: `<at ms>:<used>:<epoch>` (a member of the Redis sorted
    /// set, scored by `at ms`).
    pub fn member(&self) -> String {
        format!("{}:{}:{}", self.at_ms, self.used, self.epoch)
    }

    /// The sample stored as `member`; `None` when it is not one.
    pub fn parse(member: &str) -> Option<Sample> {
        let mut parts = member.split(':');
        let sample = Sample {
            at_ms: parts.next()?.parse().ok()?,
            used: parts.next()?.parse().ok()?,
            epoch: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(sample)
    }
}

/// A counter now, and its samples, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sampled {
    /// Its usage and epoch now; `None` when it does not exist.
    pub now: Option<Snapshot>,
    /// Its samples of the last [`SAMPLES_KEPT_MS`], oldest first.
    pub samples: Vec<Sample>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_sample_is_stored_as_a_member_and_read_back() {
        let sample = Sample {
            at_ms: 1_763_380_800_123,
            used: u64::MAX,
            epoch: 3,
        };
        assert_eq!(sample.member(), "1763380800123:18446744073709551615:3");
        assert_eq!(Sample::parse(&sample.member()), Some(sample));
        for bad in ["", "1:2", "1:2:3:4", "x:1:1", "1:-1:0"] {
            assert_eq!(Sample::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn samples_live_beside_their_counter_in_its_hash_tag() {
        let counter = crate::store::counter_key("acme", "acme/web", "requests", "month", 0);
        assert_eq!(
            samples_key(&counter).as_deref(),
            Some("tollgate:{acme}:r:acme/web:requests:month:0")
        );
        assert_eq!(samples_key("tollgate:{acme}:s:acme"), None);
    }

    #[test]
    fn only_windows_longer_than_the_lookback_are_sampled() {
        let start = Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap();
        let window = |minutes| Window {
            start,
            end: start + Duration::minutes(minutes),
        };
        assert!(!is_sampled(&window(1)));
        assert!(!is_sampled(&window(5)));
        assert!(is_sampled(&window(24)));
        assert!(is_sampled(&window(60)));
    }
}
