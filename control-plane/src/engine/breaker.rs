//! A circuit breaker in front of Redis. When Redis stops answering, every check would
//! otherwise wait for its own connection attempt or timeout: a storm of connects, and
//! a deadline spent waiting. After a few failures in a row the breaker opens: decisions
//! skip Redis at once (to the PostgreSQL fallback, or the filter's failure mode), and
//! one call per cool-down probes whether Redis is back; its success closes the breaker.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Failures in a row that open the breaker.
const FAILURES_TO_OPEN: u32 = 3;

/// Whether the breaker lets calls through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go to Redis.
    Closed,
    /// Calls skip Redis; now and then one probes it.
    Open,
}

/// The breaker; shared by every request of the process.
#[derive(Debug)]
pub struct Breaker {
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which calls skip Redis; 0 while closed.
    open_until_ms: AtomicI64,
    cooldown: Duration,
    epoch: Instant,
}

impl Breaker {
    /// A closed breaker that, once open, lets one probe through every `cooldown`.
    pub fn new(cooldown: Duration) -> Breaker {
        Breaker {
            failures: AtomicU32::new(0),
            open_until_ms: AtomicI64::new(0),
            cooldown,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> i64 {
        // Never 0, which means "closed".
        i64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    fn cooldown_ms(&self) -> i64 {
        i64::try_from(self.cooldown.as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether a call may go to Redis now: always while closed; while open, only the
    /// first caller after each cool-down (the probe).
    pub fn allow(&self) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        now >= until
            && self
                .open_until_ms
                .compare_exchange(
                    until,
                    now.saturating_add(self.cooldown_ms()),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Redis answered: close. Answers the state before.
    pub fn succeeded(&self) -> State {
        self.failures.store(0, Ordering::Release);
        match self.open_until_ms.swap(0, Ordering::AcqRel) {
            0 => State::Closed,
            _ => State::Open,
        }
    }

    /// Redis did not answer (unreachable, or not within the deadline): open after
    /// enough failures in a row. Answers the state after.
    pub fn failed(&self) -> State {
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if failures >= FAILURES_TO_OPEN {
            let until = self.now_ms().saturating_add(self.cooldown_ms());
            // Keep a later probe time than an earlier failure set.
            self.open_until_ms.fetch_max(until, Ordering::AcqRel);
            return State::Open;
        }
        if self.open_until_ms.load(Ordering::Acquire) == 0 {
            State::Closed
        } else {
            State::Open
        }
    }

    /// The state now.
    pub fn state(&self) -> State {
        if self.open_until_ms.load(Ordering::Acquire) == 0 {
            State::Closed
        } else {
            State::Open
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_after_failures_in_a_row_and_one_probe_closes_it() {
        let breaker = Breaker::new(Duration::from_millis(500));
        assert!(breaker.allow());
        assert_eq!(breaker.failed(), State::Closed);
        assert_eq!(
            breaker.succeeded(),
            State::Closed,
            "a success resets the count"
        );
        for _ in 0..2 {
            breaker.failed();
        }
        assert!(breaker.allow(), "two in a row keep it closed");
        assert_eq!(breaker.failed(), State::Open);
        assert!(!breaker.allow(), "open: calls skip Redis");

        tokio::time::advance(Duration::from_millis(501)).await;
        assert!(breaker.allow(), "one probe after the cool-down");
        assert!(!breaker.allow(), "and only one");
        assert_eq!(
            breaker.failed(),
            State::Open,
            "a failed probe keeps it open"
        );
        assert!(!breaker.allow());

        tokio::time::advance(Duration::from_millis(501)).await;
        assert!(breaker.allow());
        assert_eq!(breaker.succeeded(), State::Open, "it was open");
        assert_eq!(breaker.state(), State::Closed);
        assert!(breaker.allow() && breaker.allow(), "closed: every call");
    }
}
