//! The root context's part of the worker: its tick (deferred decisions, deadlines,
//! expired leases, what the outbox has to send), the answers to its callouts (routed to
//! the request they were made for, or the outbox's), and closing.

use std::time::Duration;

use super::shared::Worker;
use crate::budget::{self, Taken, Unspent};
use crate::host::{Host, Level, Metric};
use crate::misconfigured::Misconfigured;

/// How long a closing VM waits for the answers to its last settlements and lease
/// returns.
const CLOSING_GRACE: Duration = Duration::from_secs(2);
/// Expired leases taken back per tick at most, so thousands expiring together do not
/// stall the worker in one tick (the rest wait for the next ones).
const RETURNS_PER_TICK: usize = 256;
/// Budget not given back yet (busy slots) kept at most; past it the oldest is dropped
/// and counted, and stays spent.
const UNSPENT_KEPT: usize = 4_096;
/// Rounds of taking a closing worker's leases out of slots other workers keep busy.
const CLOSING_ROUNDS: usize = 4;

impl Worker {
    /// The root context's periodic tick.
    pub fn on_tick(&self, host: &dyn Host) {
        if self.closing_until_ms.get().is_some() {
            self.finish_closing(host);
            return;
        }
        self.decide_deferred(host);
        self.expire_deadlines(host);
        self.return_expired_leases(host);
        self.give_back_unspent(host);
        self.outbox.expire(host);
        self.send(host);
    }

    /// The answer to callout `token` of the root context: for the request it was made
    /// for, or a settlement's.
    pub fn on_root_answer(&self, host: &dyn Host, token: u32, body_size: usize) {
        if self.route(host, token, body_size) {
            return;
        }
        let status = host.callout_status();
        let path = self.outbox.path(token);
        if let Some(answer) = path.and_then(|path| Misconfigured::of(status, path)) {
            host.count(Metric::ControlPlaneMisconfigured);
            self.log_misconfigured(host, answer);
        }
        if self.outbox.answered(host, token, status == Some(200)) {
            self.finish_closing(host);
        }
    }

    /// Envoy is done with this VM (it shuts down, or a new filter config replaced this
    /// one): return every lease this worker took, unspent part and all, and send what
    /// is still queued, at once. `false` tells Envoy to wait until [`Host::done`] is
    /// called: once their answers are in, or `CLOSING_GRACE` (2 s) passed. Without that,
    /// the budgets would stay counted until their windows reset.
    pub fn on_done(&self, host: &dyn Host) -> bool {
        let leases = match self.leases.try_borrow_mut() {
            Ok(mut leases) => leases.take_all(),
            Err(_) => Vec::new(),
        };
        host.log(
            Level::Info,
            &format!("tollgate: closing, returning {} leases", leases.len()),
        );
        let mut busy = leases;
        for _ in 0..CLOSING_ROUNDS {
            busy.retain(
                |lease| match budget::take_back(host, &lease.owner, &lease.id) {
                    Taken::Back(previous) => {
                        self.outbox
                            .give_back_lease(host, lease.owner.clone(), previous);
                        false
                    }
                    Taken::Gone => false,
                    Taken::Contended => true,
                },
            );
        }
        if !busy.is_empty() {
            // Still in their slots: a refill by another worker returns them with its
            // own; otherwise they stay counted until their windows reset.
            host.warn(&format!(
                "tollgate: closing, {} leases left in slots other workers keep busy",
                busy.len()
            ));
        }
        self.outbox.send_all_now();
        self.send(host);
        if self.outbox.is_idle() {
            return true;
        }
        let grace = u64::try_from(CLOSING_GRACE.as_millis()).unwrap_or(u64::MAX);
        let until = host.now_ms().saturating_add(grace);
        self.closing_until_ms.set(Some(until));
        false
    }

    /// Sends what the outbox has due, once there is a config to send it with.
    fn send(&self, host: &dyn Host) {
        if let Some(config) = self.config() {
            self.outbox.send(host, &config.control_plane);
        }
    }

    /// Sends what a closing VM still has queued, and tells Envoy it is done once its
    /// callouts are answered or its grace is over (what is unanswered then stays
    /// counted, as after a crash).
    fn finish_closing(&self, host: &dyn Host) {
        let Some(until_ms) = self.closing_until_ms.get() else {
            return;
        };
        // What did not fit in flight goes as answers make room.
        self.send(host);
        if self.outbox.is_idle() || host.now_ms() >= until_ms {
            self.closing_until_ms.set(None);
            host.log(Level::Info, "tollgate: closed");
            host.done();
        }
    }

    /// Decides the requests deferred to the root (woken in another request's callback,
    /// they need a callout), each as the effective context.
    fn decide_deferred(&self, host: &dyn Host) {
        let deferred = match self.deferred.try_borrow_mut() {
            Ok(mut deferred) => std::mem::take(&mut *deferred),
            Err(_) => return,
        };
        for (context_id, shared) in deferred {
            if !host.set_effective_context(context_id) {
                continue; // the request is gone
            }
            let Ok(mut flow) = shared.try_borrow_mut() else {
                continue;
            };
            flow.decide_deferred(host);
            let ended = self.file(host, context_id, &shared, &mut flow, true);
            drop(flow);
            self.wake(host, ended, context_id, true);
        }
        host.set_effective_context(self.root_id);
    }

    /// Applies the failure mode to the requests whose deadline passed, each as the
    /// effective context.
    fn expire_deadlines(&self, host: &dyn Host) {
        let Ok(mut deadlines) = self.deadlines.try_borrow_mut() else {
            return;
        };
        if deadlines.is_empty() {
            return;
        }
        let expired = deadlines.take_expired(host.now_ms());
        drop(deadlines);
        for (context_id, shared) in expired {
            // Host calls act on the effective context: make it the waiting request's.
            if !host.set_effective_context(context_id) {
                continue; // the request is gone
            }
            let Ok(mut flow) = shared.try_borrow_mut() else {
                continue;
            };
            flow.on_deadline(host);
            let ended = self.file(host, context_id, &shared, &mut flow, true);
            drop(flow);
            self.wake(host, ended, context_id, true);
        }
        // The settlements this tick sends are the root's callouts.
        host.set_effective_context(self.root_id);
    }

    /// Takes this worker's expired leases out of their slots and queues their return,
    /// so the control plane refunds what was not spent.
    fn return_expired_leases(&self, host: &dyn Host) {
        let now = host.now_ms();
        let expired = match self.leases.try_borrow_mut() {
            Ok(mut leases) => leases.take_expired(now, RETURNS_PER_TICK),
            Err(_) => return,
        };
        let mut busy = Vec::new();
        for lease in expired {
            match budget::take_expired(host, &lease.owner, &lease.id, now) {
                Taken::Back(previous) => self.outbox.give_back_lease(host, lease.owner, previous),
                // A refill already returned it with the next lease.
                Taken::Gone => {}
                // Still in its slot: the next tick tries again.
                Taken::Contended => busy.push(lease),
            }
        }
        if let (false, Ok(mut leases)) = (busy.is_empty(), self.leases.try_borrow_mut()) {
            leases.add(busy);
        }
    }

    /// Gives back what requests spent and could not give back themselves.
    fn give_back_unspent(&self, host: &dyn Host) {
        let Ok(mut unspent) = self.unspent.try_borrow_mut() else {
            return;
        };
        if unspent.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut *unspent);
        unspent.extend(pending.into_iter().filter_map(|u| u.give_back(host).err()));
    }

    /// Keeps what a request spent and could not give back, for the tick.
    pub(super) fn keep_unspent(&self, host: &dyn Host, more: Vec<Unspent>) {
        if more.is_empty() {
            return;
        }
        let Ok(mut unspent) = self.unspent.try_borrow_mut() else {
            return;
        };
        unspent.extend(more);
        let over = unspent.len().saturating_sub(UNSPENT_KEPT);
        for _ in unspent.drain(..over) {
            host.count(Metric::ReturnsDropped);
        }
    }

    /// The answer to a callout the root made for a request, handed to that request.
    /// `false` if `token` is not one.
    fn route(&self, host: &dyn Host, token: u32, body_size: usize) -> bool {
        let routed = match self.routed.try_borrow_mut() {
            Ok(mut routed) => routed.remove(&token),
            Err(_) => None,
        };
        let Some((context_id, shared)) = routed else {
            return false;
        };
        // Read while the root is the effective context, which the answer belongs to.
        let (status, body) = (host.callout_status(), host.callout_body(body_size));
        if !host.set_effective_context(context_id) {
            return true; // the request is gone
        }
        if let Ok(mut flow) = shared.try_borrow_mut() {
            flow.on_check_response(host, status, &body);
            let ended = self.file(host, context_id, &shared, &mut flow, true);
            drop(flow);
            self.wake(host, ended, context_id, true);
        }
        host.set_effective_context(self.root_id);
        true
    }
}
