//! [`Worker`]: what the root context and the requests of one Envoy worker (one VM)
//! share.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use tollgate_protocol::FilterConfig;

use super::deadlines::Deadlines;
use super::outbox::Outbox;
use super::taken::TakenLeases;
use crate::budget::Unspent;
use crate::flow::RequestFlow;

/// A request's flow, shared between its context and the worker, which acts on it from
/// other contexts' callbacks (deadlines, wakes, routed answers).
pub type SharedFlow = Rc<RefCell<RequestFlow>>;

/// What the root context and the requests of one worker (VM) share. The root context
/// calls it from its own callbacks (`root`), each request from its callbacks
/// (`requests`).
#[derive(Debug)]
pub struct Worker {
    /// The root context's id: callouts that outlive a request are its own.
    pub(super) root_id: u32,
    /// The parsed filter config every new request's flow runs under.
    pub(super) config: RefCell<Option<Rc<FilterConfig>>>,
    /// Requests waiting for an answer, by context id.
    pub(super) deadlines: RefCell<Deadlines<SharedFlow>>,
    /// Settlements, take-backs and lease returns, sent as the root's callouts.
    pub(super) outbox: Outbox,
    /// Leases this worker took, to return when they expire.
    pub(super) leases: RefCell<TakenLeases>,
    /// Budget spent for requests that were not admitted, whose slots were too busy to
    /// take it back at once: given back in the root's tick.
    pub(super) unspent: RefCell<Vec<Unspent>>,
    /// Requests waiting for a refill another request of this worker has in flight, by
    /// budget slot key.
    pub(super) waiters: RefCell<HashMap<String, Vec<(u32, SharedFlow)>>>,
    /// Woken requests that need a callout, to be decided in the root's next tick.
    pub(super) deferred: RefCell<Vec<(u32, SharedFlow)>>,
    /// Callouts the root dispatched for a request: token → that request.
    pub(super) routed: RefCell<HashMap<u32, (u32, SharedFlow)>>,
    /// Envoy is done with this VM (shutdown, or a config that replaced it): until when
    /// its last settlements and lease returns may still be answered.
    pub(super) closing_until_ms: Cell<Option<u64>>,
    /// Whether an answer saying the filter is misconfigured was logged (once per
    /// worker, so once per config on each worker, not once per request).
    pub(super) misconfigured_logged: Cell<bool>,
}

impl Worker {
    /// The worker of the VM whose root context is `root_id`, not configured yet.
    pub fn new(root_id: u32) -> Worker {
        Worker {
            root_id,
            config: RefCell::new(None),
            deadlines: RefCell::default(),
            outbox: Outbox::default(),
            leases: RefCell::default(),
            unspent: RefCell::default(),
            waiters: RefCell::default(),
            deferred: RefCell::default(),
            routed: RefCell::default(),
            closing_until_ms: Cell::new(None),
            misconfigured_logged: Cell::new(false),
        }
    }

    /// Runs new requests under `config` from now on.
    pub fn configure(&self, config: Rc<FilterConfig>) {
        if let Ok(mut current) = self.config.try_borrow_mut() {
            *current = Some(config);
        }
    }

    /// The flow of a new request; `None` without a config (Envoy then refuses the
    /// filter, so this is belt and braces: the request passes untouched).
    pub fn new_flow(&self) -> Option<SharedFlow> {
        let config = self.config.try_borrow().ok()?.clone()?;
        Some(Rc::new(RefCell::new(RequestFlow::new(config))))
    }

    /// The config, once there is one.
    pub(super) fn config(&self) -> Option<Rc<FilterConfig>> {
        self.config.try_borrow().ok()?.clone()
    }
}
