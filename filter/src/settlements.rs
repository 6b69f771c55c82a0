//! Settlements (and lease returns) waiting to be sent, sent and waiting for an answer,
//! or to be retried.
//!
//! A request's context is gone by the time its settlement could be answered, and Envoy
//! cancels a gone context's callouts, so settlements are sent from the root context of
//! the worker. A failed one is retried on the next ticks, a few times; then it is logged
//! (with its content, so an operator can reconcile) and dropped. The queue is bounded
//! so a control plane that is down for long cannot grow a worker's memory.

use std::collections::{HashMap, VecDeque};

/// A callout to the control plane that no request waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The endpoint (`/v1/settle`, `/v1/leases`).
    pub path: &'static str,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl Outgoing {
    /// `request` as JSON to `path`; `None` if it cannot be encoded.
    pub fn json(path: &'static str, request: &impl serde::Serialize) -> Option<Outgoing> {
        let body = serde_json::to_vec(request).ok()?;
        Some(Outgoing { path, body })
    }
}

/// Attempts per settlement before it is dropped.
pub const MAX_ATTEMPTS: u32 = 5;
/// Settlements one worker holds at most; the oldest is dropped past it.
pub const MAX_QUEUED: usize = 10_000;
/// How long an answer may take before the settlement is tried again.
pub const ANSWER_WITHIN_MS: u64 = 10_000;
/// Settlements one worker has in flight at most. Thousands of leases expiring at once
/// would otherwise be returned in one burst, overflow the control-plane cluster's
/// circuit breaker (Envoy then refuses every callout, the requests' own included) and
/// be dropped after their retries. Answers come back within milliseconds, so each tick
/// sends the next ones.
pub const MAX_IN_FLIGHT: usize = 64;

/// A settlement and how often it was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// What to send.
    pub request: Outgoing,
    /// Attempts so far.
    pub attempts: u32,
}

/// One worker's settlements.
#[derive(Debug, Default)]
pub struct Settlements {
    queue: VecDeque<Pending>,
    in_flight: HashMap<u32, (u64, Pending)>,
}

/// What became of a settlement after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Settled,
    /// Failed; queued again.
    Retrying,
    /// Failed for the last time.
    Dropped(Pending),
    /// Not ours (an unknown token).
    Unknown,
}

impl Settlements {
    /// Queues a new settlement; returns one dropped to keep the bound, if any.
    pub fn push(&mut self, request: Outgoing) -> Option<Pending> {
        self.queue.push_back(Pending {
            request,
            attempts: 0,
        });
        if self.queue.len() > MAX_QUEUED {
            return self.queue.pop_front();
        }
        None
    }

    /// Takes the queued settlements to send now: as many as fit in flight.
    pub fn take_queued(&mut self) -> Vec<Pending> {
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight.len());
        let n = room.min(self.queue.len());
        self.queue.drain(..n).collect()
    }

    /// Whether anything waits to be sent.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// `pending` was dispatched under `token` at `now_ms`.
    pub fn sent(&mut self, token: u32, mut pending: Pending, now_ms: u64) {
        pending.attempts += 1;
        self.in_flight.insert(token, (now_ms, pending));
    }

    /// `pending` could not be dispatched at all.
    pub fn not_sent(&mut self, mut pending: Pending) -> Outcome {
        pending.attempts += 1;
        self.retry(pending)
    }

    /// The answer to `token` arrived; `ok` when it was a 200.
    pub fn answered(&mut self, token: u32, ok: bool) -> Outcome {
        match self.in_flight.remove(&token) {
            None => Outcome::Unknown,
            Some(_) if ok => Outcome::Settled,
            Some((_, pending)) => self.retry(pending),
        }
    }

    /// Settlements with no answer for too long count as failed attempts.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Outcome> {
        let late: Vec<u32> = self
            .in_flight
            .iter()
            .filter(|(_, (sent, _))| now_ms.saturating_sub(*sent) >= ANSWER_WITHIN_MS)
            .map(|(token, _)| *token)
            .collect();
        late.into_iter()
            .map(|token| self.answered(token, false))
            .collect()
    }

    fn retry(&mut self, pending: Pending) -> Outcome {
        if pending.attempts >= MAX_ATTEMPTS {
            return Outcome::Dropped(pending);
        }
        self.queue.push_back(pending);
        Outcome::Retrying
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tollgate_protocol::SettleRequest;

    fn settle(tenant: &str) -> Outgoing {
        let request = SettleRequest {
            id: format!("{tenant}-1"),
            tenant: tenant.into(),
            roles: Vec::new(),
            amounts: BTreeMap::from([("request_bytes".to_string(), -5)]),
            checked_at_ms: 1,
            release_request_id: None,
        };
        Outgoing::json("/v1/settle", &request).unwrap()
    }

    #[test]
    fn a_failed_settlement_is_retried_then_dropped() {
        let mut s = Settlements::default();
        s.push(settle("a"));
        for attempt in 1..=MAX_ATTEMPTS {
            let pending = s.take_queued().pop().unwrap();
            s.sent(attempt, pending, 0);
            let outcome = s.answered(attempt, false);
            if attempt < MAX_ATTEMPTS {
                assert_eq!(outcome, Outcome::Retrying);
            } else {
                assert!(matches!(outcome, Outcome::Dropped(p) if p.attempts == MAX_ATTEMPTS));
            }
        }
        assert!(!s.has_queued());
    }

    #[test]
    fn an_answered_settlement_is_done_and_unknown_tokens_are_ignored() {
        let mut s = Settlements::default();
        s.push(settle("a"));
        let pending = s.take_queued().pop().unwrap();
        s.sent(9, pending, 0);
        assert_eq!(s.answered(9, true), Outcome::Settled);
        assert_eq!(s.answered(9, true), Outcome::Unknown);
    }

    #[test]
    fn an_unanswered_settlement_is_tried_again_after_a_while() {
        let mut s = Settlements::default();
        s.push(settle("a"));
        let pending = s.take_queued().pop().unwrap();
        s.sent(1, pending, 1_000);
        assert!(s.expire(1_000 + ANSWER_WITHIN_MS - 1).is_empty());
        assert_eq!(s.expire(1_000 + ANSWER_WITHIN_MS), vec![Outcome::Retrying]);
        assert!(s.has_queued());
    }

    #[test]
    fn a_burst_is_sent_as_answers_make_room() {
        let mut s = Settlements::default();
        for _ in 0..MAX_IN_FLIGHT + 10 {
            s.push(settle("a"));
        }
        let first = s.take_queued();
        assert_eq!(first.len(), MAX_IN_FLIGHT);
        for (token, pending) in (0..).zip(first) {
            s.sent(token, pending, 0);
        }
        assert!(
            s.take_queued().is_empty(),
            "nothing more while all are in flight"
        );
        assert_eq!(s.answered(0, true), Outcome::Settled);
        assert_eq!(s.answered(1, true), Outcome::Settled);
        assert_eq!(s.take_queued().len(), 2);
        assert!(s.has_queued());
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut s = Settlements::default();
        for _ in 0..MAX_QUEUED {
            assert!(s.push(settle("a")).is_none());
        }
        let dropped = s.push(settle("b")).unwrap();
        assert_eq!(dropped.request, settle("a"), "the oldest goes");
        assert_eq!(s.queue.len(), MAX_QUEUED);
    }
}
