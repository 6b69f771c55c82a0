//! What a request's callbacks leave with the worker: its deadline, the leases it took,
//! the returns and take-backs to send, the refill it now waits for, its callouts the
//! root is to route; and the requests woken when a refill they waited for ends.

use std::collections::VecDeque;

use super::shared::{SharedFlow, Worker};
use crate::budget::RefillEnd;
use crate::flow::{RequestFlow, Woken};
use crate::host::{Host, Level};
use crate::misconfigured::Misconfigured;

impl Worker {
    /// Runs `step` on the flow of request `context_id` (the effective context), files
    /// what it left for the worker, and wakes the requests that waited for a refill it
    /// ended. `fallback` without a flow, or when the flow is busy (a re-entrant
    /// callback).
    pub fn step<T>(
        &self,
        host: &dyn Host,
        context_id: u32,
        flow: Option<&SharedFlow>,
        fallback: T,
        step: impl FnOnce(&mut RequestFlow) -> T,
    ) -> T {
        let Some(shared) = flow else {
            return fallback;
        };
        let Ok(mut flow) = shared.try_borrow_mut() else {
            return fallback;
        };
        let result = step(&mut flow);
        let ended = self.file(host, context_id, shared, &mut flow, false);
        drop(flow);
        self.wake(host, ended, context_id, false);
        result
    }

    /// The answer to a callout request `context_id` made, delivered to its own context.
    pub fn on_answer(
        &self,
        host: &dyn Host,
        context_id: u32,
        flow: Option<&SharedFlow>,
        body_size: usize,
    ) {
        let (status, body) = (host.callout_status(), host.callout_body(body_size));
        self.step(host, context_id, flow, (), |flow| {
            flow.on_check_response(host, status, &body)
        });
    }

    /// Request `context_id` is over (Envoy's `on_log`): what was in flight for it is
    /// given up, and its settlement queued. The root's next tick sends it: dispatched
    /// here, its answer would be handed to this context, which is about to go.
    pub fn on_log(&self, host: &dyn Host, context_id: u32, flow: Option<&SharedFlow>) {
        let settlement = self.step(host, context_id, flow, None, |flow| {
            flow.abandon(host);
            flow.settlement(host)
        });
        if let Some(settlement) = settlement {
            self.outbox.settle(host, &settlement);
        }
    }

    /// Forgets request `context_id`, which is gone.
    pub fn forget(&self, context_id: u32) {
        if let Ok(mut deadlines) = self.deadlines.try_borrow_mut() {
            deadlines.remove(context_id);
        }
        if let Ok(mut routed) = self.routed.try_borrow_mut() {
            if !routed.is_empty() {
                routed.retain(|_, (owner, _)| *owner != context_id);
            }
        }
    }

    /// Files what a request's flow left after a callback: its deadline, leases it took,
    /// returns and take-backs to send, the refill it now waits for, and (`in_root`: the
    /// root context made them) its callouts to route. Answers the refills that ended.
    pub(super) fn file(
        &self,
        host: &dyn Host,
        context_id: u32,
        shared: &SharedFlow,
        flow: &mut RequestFlow,
        in_root: bool,
    ) -> Vec<(String, RefillEnd)> {
        let awaiting = flow.awaiting_until();
        let follow_ups = flow.take_follow_ups();
        if in_root && !follow_ups.dispatched.is_empty() {
            if let Ok(mut routed) = self.routed.try_borrow_mut() {
                for token in follow_ups.dispatched {
                    routed.insert(token, (context_id, shared.clone()));
                }
            }
        }
        if let Ok(mut deadlines) = self.deadlines.try_borrow_mut() {
            match awaiting {
                Some(deadline) => deadlines.insert(context_id, deadline, shared.clone()),
                None => deadlines.remove(context_id),
            }
        }
        if let Ok(mut leases) = self.leases.try_borrow_mut() {
            leases.add(follow_ups.leases);
        }
        for request in &follow_ups.returns {
            self.outbox.give_back(host, request);
        }
        for request in &follow_ups.cancels {
            self.outbox.cancel(host, request);
        }
        self.keep_unspent(host, follow_ups.unspent);
        if let (Some(key), Ok(mut waiters)) = (follow_ups.waits_for, self.waiters.try_borrow_mut())
        {
            waiters
                .entry(key)
                .or_default()
                .push((context_id, shared.clone()));
        }
        if let Some(answer) = follow_ups.misconfigured {
            self.log_misconfigured(host, answer);
        }
        follow_ups.refills_ended
    }

    /// Logs, once per worker (per config), the first answer that says the filter is
    /// misconfigured.
    pub(super) fn log_misconfigured(&self, host: &dyn Host, answer: Misconfigured) {
        if self.misconfigured_logged.replace(true) {
            return;
        }
        let token_set = (self.config()).is_some_and(|c| c.control_plane.token.is_some());
        host.log(Level::Error, &answer.message(token_set));
    }

    /// Wakes the requests that wait for the refills that `ended` (and, in turn, for
    /// any refill that ends while they decide), each as the effective context; then
    /// makes `current` the effective context again. Outside the root (`in_root`), one
    /// that needs a callout is deferred to the root's tick.
    pub(super) fn wake(
        &self,
        host: &dyn Host,
        ended: Vec<(String, RefillEnd)>,
        current: u32,
        in_root: bool,
    ) {
        if ended.is_empty() {
            return;
        }
        let mut ended = VecDeque::from(ended);
        while let Some((key, end)) = ended.pop_front() {
            let waiting = match self.waiters.try_borrow_mut() {
                Ok(mut waiters) => waiters.remove(&key).unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            for (context_id, shared) in waiting {
                if !host.set_effective_context(context_id) {
                    continue; // the request is gone
                }
                let Ok(mut flow) = shared.try_borrow_mut() else {
                    continue;
                };
                if flow.on_refill_ended(host, end, in_root) == Woken::Deferred {
                    if let Ok(mut deferred) = self.deferred.try_borrow_mut() {
                        deferred.push((context_id, shared.clone()));
                    }
                }
                ended.extend(self.file(host, context_id, &shared, &mut flow, in_root));
            }
        }
        host.set_effective_context(current);
    }
}
