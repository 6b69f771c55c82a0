//! Callouts no request waits for: settlements (`/v1/settle`), take-backs of checks
//! (`/v1/release`) and lease returns (`/v1/leases`). Queued by the worker, sent from
//! the root context (an answer to a request's context would be dropped with it), and
//! retried, then reported, by [`Settlements`].

use std::cell::RefCell;
use std::time::Duration;

use tollgate_protocol::check::{RELEASE_PATH, SETTLE_PATH};
use tollgate_protocol::config::ControlPlaneConfig;
use tollgate_protocol::lease::LEASES_PATH;
use tollgate_protocol::{LeaseRequest, LeaseReturn, ReleaseRequest, SettleRequest};

use super::settlements::{Outcome, Outgoing, Pending, Settlements};
use crate::budget::Owner;
use crate::host::{Callout, Host, Metric};

/// Envoy's timeout for a settlement callout (nothing waits on it).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// One worker's queue of callouts no request waits for.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    settlements: RefCell<Settlements>,
}

impl Outbox {
    /// Queues a request's settlement.
    pub(super) fn settle(&self, host: &dyn Host, settlement: &SettleRequest) {
        self.queue(host, Outgoing::json(SETTLE_PATH, settlement));
    }

    /// Queues the take-back of a check (`/v1/release` with `refund`).
    pub(super) fn cancel(&self, host: &dyn Host, request: &ReleaseRequest) {
        self.queue(host, Outgoing::json(RELEASE_PATH, request));
    }

    /// Queues a lease call that gives a lease back.
    pub(super) fn give_back(&self, host: &dyn Host, request: &LeaseRequest) {
        self.queue(host, Outgoing::json(LEASES_PATH, request));
    }

    /// Queues the return of `owner`'s lease `previous` (a lease call that asks for
    /// nothing more).
    pub(super) fn give_back_lease(&self, host: &dyn Host, owner: Owner, previous: LeaseReturn) {
        let request = owner.giving_back(host.unique_id(), host.gateway_id(), previous);
        self.give_back(host, &request);
    }

    /// Queues `outgoing`. Past the bound the oldest is dropped, counted and logged: the
    /// control plane keeps what it would have refunded counted.
    fn queue(&self, host: &dyn Host, outgoing: Option<Outgoing>) {
        if let (Ok(mut settlements), Some(outgoing)) = (self.settlements.try_borrow_mut(), outgoing)
        {
            if let Some(dropped) = settlements.push(outgoing) {
                host.count(Metric::ReturnsDropped);
                report(host, Outcome::Dropped(dropped));
            }
        }
    }

    /// Sends everything queued and due as callouts of the current (root) context.
    pub(super) fn send(&self, host: &dyn Host, control_plane: &ControlPlaneConfig) {
        let Ok(mut settlements) = self.settlements.try_borrow_mut() else {
            return;
        };
        for pending in settlements.take_queued(host.now_ms()) {
            let callout = Callout::post(
                control_plane,
                pending.request.path,
                &pending.request.body,
                SETTLE_TIMEOUT,
            );
            host.count(Metric::Settlements);
            match host.dispatch(callout) {
                Some(token) => settlements.sent(token, pending, host.now_ms()),
                None => {
                    let outcome = settlements.not_sent(pending, host.now_ms());
                    report(host, outcome);
                }
            }
        }
    }

    /// The answer to `token` arrived (`ok`: a 200). `false` when the queue was busy (a
    /// re-entrant callback) and nothing was done.
    pub(super) fn answered(&self, host: &dyn Host, token: u32, ok: bool) -> bool {
        let Ok(mut settlements) = self.settlements.try_borrow_mut() else {
            return false;
        };
        let outcome = settlements.answered(token, ok, host.now_ms());
        drop(settlements);
        report(host, outcome);
        true
    }

    /// The endpoint callout `token` calls, if it is one of the outbox's in flight.
    pub(super) fn path(&self, token: u32) -> Option<&'static str> {
        self.settlements.try_borrow().ok()?.path(token)
    }

    /// Counts what was sent too long ago without an answer as failed attempts.
    pub(super) fn expire(&self, host: &dyn Host) {
        if let Ok(mut settlements) = self.settlements.try_borrow_mut() {
            let outcomes = settlements.expire(host.now_ms());
            drop(settlements);
            outcomes.into_iter().for_each(|o| report(host, o));
        }
    }

    /// Makes everything queued due now (the worker is closing: there is no later).
    pub(super) fn send_all_now(&self) {
        if let Ok(mut settlements) = self.settlements.try_borrow_mut() {
            settlements.send_all_now();
        }
    }

    /// Whether nothing is queued or waiting for its answer.
    pub(super) fn is_idle(&self) -> bool {
        (self.settlements.try_borrow()).map_or(true, |settlements| settlements.is_idle())
    }
}

/// Counts a settlement's failed attempt, and logs one that is given up.
fn report(host: &dyn Host, outcome: Outcome) {
    match outcome {
        Outcome::Settled | Outcome::Unknown => {}
        Outcome::Retrying => host.count(Metric::SettlementFailures),
        Outcome::Dropped(Pending {
            request, attempts, ..
        }) => {
            host.count(Metric::SettlementFailures);
            let what = String::from_utf8_lossy(&request.body);
            host.warn(&format!(
                "tollgate: {} dropped after {attempts} attempts: {what}",
                request.path
            ));
        }
    }
}
