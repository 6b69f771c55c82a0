//! Settlements (and lease returns) waiting to be sent, sent and waiting for an answer,
//! or to be retried.
//!
//! A request's context is gone by the time its settlement could be answered, and Envoy
//! cancels a gone context's callouts, so settlements are sent from the root context of
//! the worker. A failed one is retried with a growing pause (a control plane that is
//! restarting answers every attempt of a burst at once with 503), for about half a
//! minute; then it is logged (with its content, so an operator can reconcile) and
//! dropped. The queue is bounded so a control plane that is down for long cannot grow a
//! worker's memory.

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

/// Attempts per settlement before it is dropped: with [`retry_after_ms`], the last one
/// goes about 23 s after the first.
pub const MAX_ATTEMPTS: u32 = 8;
/// Settlements one worker keeps at most; the oldest is dropped past it.
pub const MAX_QUEUED: usize = 10_000;
/// How long an answer may take before the settlement is tried again.
pub const ANSWER_WITHIN_MS: u64 = 10_000;
/// Settlements one worker has in flight at most. Thousands of leases expiring at once
/// would otherwise be returned in one burst, overflow the control-plane cluster's
/// circuit breaker (Envoy then refuses every callout, the requests' own included) and
/// be dropped after their retries. Answers come back within milliseconds, so each tick
/// sends the next ones.
pub const MAX_IN_FLIGHT: usize = 64;

/// How long to wait before attempt `attempts + 1`, after `attempts` failed: 200 ms,
/// doubling, at most 10 s.
pub fn retry_after_ms(attempts: u32) -> u64 {
    200u64
        .saturating_mul(1 << attempts.saturating_sub(1).min(16))
        .min(10_000)
}

/// A settlement and how often it was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// What to send.
    pub request: Outgoing,
    /// Attempts so far.
    pub attempts: u32,
    /// Not sent again before this (ms, the host's clock).
    pub not_before_ms: u64,
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
            not_before_ms: 0,
        });
        if self.queue.len() > MAX_QUEUED {
            return self.queue.pop_front();
        }
        None
    }

    /// Takes the queued settlements due at `now_ms`: as many as fit in flight, oldest
    /// first.
    pub fn take_queued(&mut self, now_ms: u64) -> Vec<Pending> {
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight.len());
        let mut due = Vec::new();
        let mut later = VecDeque::new();
        while let Some(pending) = self.queue.pop_front() {
            if due.len() < room && pending.not_before_ms <= now_ms {
                due.push(pending);
            } else {
                later.push_back(pending);
            }
        }
        self.queue = later;
        due
    }

    /// Whether anything waits to be sent.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Makes every queued settlement due now, whatever its back-off (the VM is
    /// closing: there is no later).
    pub fn send_all_now(&mut self) {
        for pending in &mut self.queue {
            pending.not_before_ms = 0;
        }
    }

    /// Whether nothing is queued or waiting for its answer.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty()
    }

    /// `pending` was dispatched under `token` at `now_ms`.
    pub fn sent(&mut self, token: u32, mut pending: Pending, now_ms: u64) {
        pending.attempts += 1;
        self.in_flight.insert(token, (now_ms, pending));
    }

    /// `pending` could not be dispatched at all, at `now_ms`.
    pub fn not_sent(&mut self, mut pending: Pending, now_ms: u64) -> Outcome {
        pending.attempts += 1;
        self.retry(pending, now_ms)
    }

    /// The answer to `token` arrived at `now_ms`; `ok` when it was a 200.
    pub fn answered(&mut self, token: u32, ok: bool, now_ms: u64) -> Outcome {
        match self.in_flight.remove(&token) {
            None => Outcome::Unknown,
            Some(_) if ok => Outcome::Settled,
            Some((_, pending)) => self.retry(pending, now_ms),
        }
    }

    /// The endpoint of the settlement in flight under `token`.
    pub fn path(&self, token: u32) -> Option<&'static str> {
        self.in_flight
            .get(&token)
            .map(|(_, pending)| pending.request.path)
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
            .map(|token| self.answered(token, false, now_ms))
            .collect()
    }

    fn retry(&mut self, mut pending: Pending, now_ms: u64) -> Outcome {
        if pending.attempts >= MAX_ATTEMPTS {
            return Outcome::Dropped(pending);
        }
        pending.not_before_ms = now_ms.saturating_add(retry_after_ms(pending.attempts));
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
    fn a_failed_settlement_is_retried_later_and_later_then_dropped() {
        let mut s = Settlements::default();
        s.push(settle("a"));
        let mut now = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            let pending = s.take_queued(now).pop().unwrap();
            s.sent(attempt, pending, now);
            let outcome = s.answered(attempt, false, now);
            if attempt < MAX_ATTEMPTS {
                let wait = retry_after_ms(attempt);
                assert!(
                    s.take_queued(now + wait - 1).is_empty(),
                    "not before {wait} ms"
                );
                now += wait;
            }
            if attempt < MAX_ATTEMPTS {
                assert_eq!(outcome, Outcome::Retrying);
            } else {
                assert!(matches!(outcome, Outcome::Dropped(p) if p.attempts == MAX_ATTEMPTS));
            }
        }
        assert!(!s.has_queued());
    }

    #[test]
    fn a_closing_worker_sends_what_waits_for_its_back_off_at_once() {
        let mut s = Settlements::default();
        s.push(settle("a"));
        let pending = s.take_queued(0).pop().unwrap();
        s.sent(1, pending, 0);
        assert!(!s.is_idle(), "in flight");
        assert_eq!(s.answered(1, false, 0), Outcome::Retrying);
        assert!(s.take_queued(0).is_empty(), "backing off");
        s.send_all_now();
        let pending = s.take_queued(0).pop().unwrap();
        s.sent(2, pending, 0);
        assert_eq!(s.answered(2, true, 0), Outcome::Settled);
        assert!(s.is_idle());
    }

    #[test]
    fn an_answered_settlement_is_done_and_unknown_tokens_are_ignored() {
        let mut s = Settlements::default();
        s.push(settle("a"));
        let pending = s.take_queued(0).pop().unwrap();
        s.sent(9, pending, 0);
        assert_eq!(s.answered(9, true, 0), Outcome::Settled);
        assert_eq!(s.answered(9, true, 0), Outcome::Unknown);
    }

    #[test]
    fn an_unanswered_settlement_is_tried_again_after_a_while() {
        let mut s = Settlements::default();
        s.push(settle("a"));
        let pending = s.take_queued(0).pop().unwrap();
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
        let first = s.take_queued(0);
        assert_eq!(first.len(), MAX_IN_FLIGHT);
        for (token, pending) in (0..).zip(first) {
            s.sent(token, pending, 0);
        }
        assert!(
            s.take_queued(0).is_empty(),
            "nothing more while all are in flight"
        );
        assert_eq!(s.answered(0, true, 0), Outcome::Settled);
        assert_eq!(s.answered(1, true, 0), Outcome::Settled);
        assert_eq!(s.take_queued(0).len(), 2);
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
