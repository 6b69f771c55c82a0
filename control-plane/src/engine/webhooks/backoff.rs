//! When a failed delivery is tried again: exponential backoff, capped.

use std::time::Duration;

/// The wait after failed attempt `attempt` (1 for the first) of delivery `id`:
/// `min × 2^(attempt − 1)`, at most `max`, less up to 9 % chosen by the id, so that
/// deliveries that failed together (one receiver down) do not all come back together.
pub fn retry_in(attempt: i32, min: Duration, max: Duration, id: i64) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(32);
    let full = min.saturating_mul(1u32 << doublings.min(31)).min(max);
    let spread = u32::try_from(id.rem_euclid(10)).unwrap_or(0);
    full - full * spread / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(600);

    #[test]
    fn waits_double_from_a_second_up_to_ten_minutes() {
        let waits: Vec<u64> = (1..=12)
            .map(|n| retry_in(n, MIN, MAX, 10).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(retry_in(1_000, MIN, MAX, 0), MAX);
        assert_eq!(retry_in(0, MIN, MAX, 0), MIN);
        assert_eq!(retry_in(-3, MIN, MAX, 0), MIN);
    }

    #[test]
    fn deliveries_are_spread_by_up_to_nine_percent_less() {
        assert_eq!(retry_in(11, MIN, MAX, 19), Duration::from_secs(546));
        let spread: Vec<Duration> = (0..10).map(|id| retry_in(5, MIN, MAX, id)).collect();
        assert!(spread
            .iter()
            .all(|d| (14_560..=16_000).contains(&d.as_millis())));
        assert_eq!(retry_in(5, MIN, MAX, -1), retry_in(5, MIN, MAX, 9));
    }

    #[test]
    fn a_day_of_retries_is_about_a_hundred_and_fifty_attempts() {
        let mut elapsed = Duration::ZERO;
        let mut attempts = 0;
        while elapsed < Duration::from_secs(86_400) {
            attempts += 1;
            elapsed += retry_in(attempts, MIN, MAX, 0);
        }
        assert!((140..=160).contains(&attempts), "{attempts}");
    }
}
