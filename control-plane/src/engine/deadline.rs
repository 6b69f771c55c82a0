//! When the caller of a decision stops waiting, and what the control plane does about
//! it: nothing it starts may still count once the filter has given up (and applied its
//! failure mode), or counted usage would exceed what was admitted.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

/// The latest moment an answer is still of use to the caller: the filter's wait, less a
/// margin for the answer's way back. It bounds every wait of the decision path (cached
/// definitions, the usage history, the store call), and it travels into the store call
/// itself as a wall-clock instant, so that a call Redis gets to only after it (a slow or
/// blocked Redis) counts nothing.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    unix_ms: i64,
}

impl Deadline {
    /// The deadline of a caller that waits `wait` from now. The margin is a tenth of the
    /// wait, between 1 and 20 ms: enough for an answer on a local network, small against
    /// the filter's default 200 ms.
    pub fn after(wait: Duration) -> Deadline {
        let margin = (wait / 10).clamp(Duration::from_millis(1), Duration::from_millis(20));
        let usable = wait.saturating_sub(margin);
        let usable_ms = i64::try_from(usable.as_millis()).unwrap_or(i64::MAX);
        Deadline {
            at: Instant::now() + usable,
            unix_ms: Utc::now().timestamp_millis().saturating_add(usable_ms),
        }
    }

    /// How long is left (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The deadline as Unix milliseconds on this host's clock, for the store to compare
    /// with its own (the stores of one deployment keep the same time, e.g. with NTP).
    pub fn unix_ms(&self) -> i64 {
        self.unix_ms
    }

    /// The instant halfway between now and this deadline: how long a step may wait
    /// before leaving the rest of the time to a fallback and what follows it.
    pub fn halfway(&self) -> Deadline {
        let half = self.remaining() / 2;
        let half_ms = i64::try_from(half.as_millis()).unwrap_or(i64::MAX);
        Deadline {
            at: Instant::now() + half,
            unix_ms: Utc::now().timestamp_millis().saturating_add(half_ms),
        }
    }

    /// Awaits `work` until the deadline; `None` when it did not finish in time.
    pub async fn bound<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::time::timeout_at(self.at, work).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_plane_keeps_a_margin_for_the_answers_way_back() {
        let before = Utc::now().timestamp_millis();
        let deadline = Deadline::after(Duration::from_millis(200));
        let after = Utc::now().timestamp_millis();
        assert!(deadline.remaining() <= Duration::from_millis(180));
        assert!(deadline.remaining() > Duration::from_millis(100));
        assert!((before + 180..=after + 180).contains(&deadline.unix_ms()));
    }

    #[test]
    fn a_tiny_wait_still_leaves_a_millisecond_of_margin() {
        let deadline = Deadline::after(Duration::from_millis(5));
        assert!(deadline.remaining() <= Duration::from_millis(4));
        assert_eq!(Deadline::after(Duration::ZERO).remaining(), Duration::ZERO);
    }

    #[test]
    fn halfway_leaves_half_of_what_remains() {
        let deadline = Deadline::after(Duration::from_millis(200));
        let half = deadline.halfway();
        // 200 ms less the 20 ms margin, halved; only ever less as time passes.
        assert!(half.remaining() <= Duration::from_millis(90));
        assert!(half.unix_ms() <= deadline.unix_ms());
        assert_eq!(
            Deadline::after(Duration::ZERO).halfway().remaining(),
            Duration::ZERO
        );
    }

    #[tokio::test]
    async fn work_past_the_deadline_is_abandoned() {
        let deadline = Deadline::after(Duration::from_millis(20));
        assert_eq!(deadline.bound(async { 7 }).await, Some(7));
        let slow = tokio::time::sleep(Duration::from_millis(200));
        assert_eq!(deadline.bound(slow).await, None);
    }
}
