//! The only module that talks to Envoy: proxy-wasm contexts around [`RequestFlow`].
//!
//! Host calls go through `hostcalls::*`, which return `Result`s, never through the SDK
//! helpers that unwrap.
//!
//! The SDK hands a callout's answer to the context whose callback dispatched it (not
//! the effective context), and drops it if that context is gone. So a callout that
//! must outlive the request it is made in (settlements, lease returns) or is made for
//! another request (one woken when the refill it waited for ended) is dispatched from
//! the root context, in its tick, and the root routes the answer by token. Every `RefCell` is borrowed with `try_borrow*`: a re-entrant
//! callback must be skipped and logged, never turned into a panic that traps the VM.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use tollgate_protocol::check::{RELEASE_PATH, SETTLE_PATH};
use tollgate_protocol::lease::LEASES_PATH;
use tollgate_protocol::{FilterConfig, LeaseReturn};

use crate::budget::RefillEnd;
use crate::budget::{self, Owner, TakenLease};
use crate::deadlines::Deadlines;
use crate::flow::{Next, RequestFlow, Woken};
use crate::host::{Callout, Host, Metric};
use crate::settlements::{Outcome, Outgoing, Pending, Settlements};

/// A request's flow, shared between its context and the deadline registry.
type SharedFlow = Rc<RefCell<RequestFlow>>;

/// Envoy's timeout for a settlement callout (nothing waits on it).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing VM waits for the answers to its last settlements and lease
/// returns.
const CLOSING_GRACE: Duration = Duration::from_secs(2);
/// Expired leases taken back per tick at most, so thousands expiring together do not
/// stall the worker in one tick (the rest wait for the next ones).
const RETURNS_PER_TICK: usize = 256;

/// A lease this worker took, ordered by when it expires.
struct Taken {
    expires_ms: u64,
    owner: Owner,
    id: String,
}

impl PartialEq for Taken {
    fn eq(&self, other: &Self) -> bool {
        self.expires_ms == other.expires_ms
    }
}
impl Eq for Taken {}
impl PartialOrd for Taken {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Taken {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.expires_ms.cmp(&other.expires_ms)
    }
}

/// Ids unique across VMs and Envoys: a random prefix per VM and a counter.
struct Ids {
    prefix: u64,
    next: Cell<u64>,
}

thread_local! {
    // std seeds `RandomState` from the host's randomness (WASI `random_get`).
    static IDS: Ids = Ids {
        prefix: RandomState::new().hash_one(0_u8),
        next: Cell::new(0),
    };
}

fn unique_id() -> String {
    IDS.with(|ids| {
        let n = ids.next.get().wrapping_add(1);
        ids.next.set(n);
        format!("{:016x}-{n}", ids.prefix)
    })
}

fn gateway_id() -> String {
    IDS.with(|ids| format!("{:016x}", ids.prefix))
}

/// Registers the root context; called once per VM by `proxy_wasm::main!`.
pub fn start() {
    proxy_wasm::set_log_level(LogLevel::Info);
    // A panic is a bug; it traps the VM (Envoy reloads it, `failure_policy`), and this
    // line in Envoy's log says where.
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(LogLevel::Critical, &format!("tollgate: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|context_id| {
        Box::new(Root {
            context_id,
            ..Root::default()
        })
    });
}

/// `Host` over the real hostcalls of whichever context is current.
#[derive(Debug, Clone, Copy, Default)]
struct ProxyHost {
    /// Metric ids in the order of [`Metric::ALL`]; `None` where definition failed.
    metric_ids: [Option<u32>; Metric::ALL.len()],
}

impl ProxyHost {
    fn with_metrics() -> ProxyHost {
        ProxyHost {
            metric_ids: Metric::ALL
                .map(|m| hostcalls::define_metric(MetricType::Counter, m.name()).ok()),
        }
    }
}

impl Host for ProxyHost {
    fn request_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
    }

    fn set_request_header(&self, name: &str, value: &str) {
        if let Err(e) = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)) {
            self.warn(&format!("tollgate: setting {name} failed: {e:?}"));
        }
    }

    fn response_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpResponseHeaders, name)
            .ok()
            .flatten()
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn dispatch(&self, callout: Callout<'_>) -> Option<u32> {
        let result = hostcalls::dispatch_http_call(
            callout.cluster,
            callout.headers,
            Some(callout.body),
            Vec::new(),
            callout.timeout,
        );
        match result {
            Ok(token) => Some(token),
            Err(status) => {
                self.warn(&format!("tollgate: dispatch_http_call refused: {status:?}"));
                None
            }
        }
    }

    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        if let Err(e) = hostcalls::send_http_response(status, headers.to_vec(), Some(body)) {
            self.warn(&format!("tollgate: local reply failed: {e:?}"));
        }
    }

    fn resume_request(&self) {
        if let Err(e) = hostcalls::resume_http_request() {
            self.warn(&format!("tollgate: resume failed: {e:?}"));
        }
    }

    fn add_response_header(&self, name: &str, value: &str) {
        if let Err(e) = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value) {
            self.warn(&format!("tollgate: adding {name} failed: {e:?}"));
        }
    }

    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn count(&self, metric: Metric) {
        if let Some(Some(id)) = self.metric_ids.get(metric as usize) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }

    fn warn(&self, message: &str) {
        let _ = hostcalls::log(LogLevel::Warn, message);
    }

    fn shared_get(&self, key: &str) -> Option<Vec<u8>> {
        hostcalls::get_shared_data(key).ok().and_then(|(v, _)| v)
    }

    fn shared_set(&self, key: &str, value: &[u8]) {
        if let Err(e) = hostcalls::set_shared_data(key, Some(value), None) {
            self.warn(&format!("tollgate: shared data {key}: {e:?}"));
        }
    }

    fn unique_id(&self) -> String {
        unique_id()
    }

    fn gateway_id(&self) -> String {
        gateway_id()
    }

    fn shared_get_cas(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn shared_set_cas(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        hostcalls::set_shared_data(key, Some(value), cas).is_ok()
    }
}

/// What the root context and the requests of one worker (VM) share.
#[derive(Default)]
struct Worker {
    /// Requests waiting for an answer, by context id.
    deadlines: RefCell<Deadlines<SharedFlow>>,
    /// Settlements and lease returns, sent as the root's callouts.
    settlements: RefCell<Settlements>,
    /// Leases this worker took, to return when they expire.
    leases: RefCell<BinaryHeap<Reverse<Taken>>>,
    /// Requests waiting for a refill another request of this worker has in flight, by
    /// budget slot key.
    waiters: RefCell<HashMap<String, Vec<(u32, SharedFlow)>>>,
    /// Woken requests that need a callout, to be decided in the root's next tick.
    deferred: RefCell<Vec<(u32, SharedFlow)>>,
    /// Callouts the root dispatched for a request: token → that request.
    routed: RefCell<HashMap<u32, (u32, SharedFlow)>>,
}

impl Worker {
    /// Files what a request's flow left after a callback: its deadline, leases it took,
    /// returns to send, the refill it now waits for, and (`in_root`: the root context
    /// made them) its callouts to route. Answers the refills that ended.
    fn file(
        &self,
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
            leases.extend(follow_ups.leases.into_iter().map(
                |TakenLease {
                     owner,
                     id,
                     expires_ms,
                 }| {
                    Reverse(Taken {
                        expires_ms,
                        owner,
                        id,
                    })
                },
            ));
        }
        for request in follow_ups.returns {
            queue(&self.settlements, Outgoing::json(LEASES_PATH, &request));
        }
        for request in follow_ups.cancels {
            queue(&self.settlements, Outgoing::json(RELEASE_PATH, &request));
        }
        if let (Some(key), Ok(mut waiters)) = (follow_ups.waits_for, self.waiters.try_borrow_mut())
        {
            waiters
                .entry(key)
                .or_default()
                .push((context_id, shared.clone()));
        }
        follow_ups.refills_ended
    }

    /// Wakes the requests that wait for the refills that `ended` (and, in turn, for
    /// any refill that ends while they decide), each as the effective context; then
    /// makes `current` the effective context again. Outside the root (`in_root`), one
    /// that needs a callout is deferred to the root's tick.
    fn wake(&self, host: &ProxyHost, ended: Vec<(String, RefillEnd)>, current: u32, in_root: bool) {
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
                if hostcalls::set_effective_context(context_id).is_err() {
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
                ended.extend(self.file(context_id, &shared, &mut flow, in_root));
            }
        }
        let _ = hostcalls::set_effective_context(current);
    }

    /// Decides the deferred requests (called in the root's tick).
    fn decide_deferred(&self, host: &ProxyHost, root_id: u32) {
        let Ok(mut deferred) = self.deferred.try_borrow_mut() else {
            return;
        };
        let deferred = std::mem::take(&mut *deferred);
        for (context_id, shared) in deferred {
            if hostcalls::set_effective_context(context_id).is_err() {
                continue; // the request is gone
            }
            let Ok(mut flow) = shared.try_borrow_mut() else {
                continue;
            };
            flow.decide_deferred(host);
            let ended = self.file(context_id, &shared, &mut flow, true);
            drop(flow);
            self.wake(host, ended, context_id, true);
        }
        let _ = hostcalls::set_effective_context(root_id);
    }

    /// The answer to a callout the root made for a request, handed to that request.
    /// `false` if `token` is not one.
    fn route(&self, host: &ProxyHost, token: u32, body_size: usize, root_id: u32) -> bool {
        let routed = match self.routed.try_borrow_mut() {
            Ok(mut routed) => routed.remove(&token),
            Err(_) => None,
        };
        let Some((context_id, shared)) = routed else {
            return false;
        };
        // Read while the root is the effective context, which the answer belongs to.
        let (status, body) = call_answer(body_size);
        if hostcalls::set_effective_context(context_id).is_err() {
            return true; // the request is gone
        }
        if let Ok(mut flow) = shared.try_borrow_mut() {
            flow.on_check_response(host, status, &body);
            let ended = self.file(context_id, &shared, &mut flow, true);
            drop(flow);
            self.wake(host, ended, context_id, true);
        }
        let _ = hostcalls::set_effective_context(root_id);
        true
    }

    /// Forgets a request that is gone.
    fn forget(&self, context_id: u32) {
        if let Ok(mut deadlines) = self.deadlines.try_borrow_mut() {
            deadlines.remove(context_id);
        }
        if let Ok(mut routed) = self.routed.try_borrow_mut() {
            if !routed.is_empty() {
                routed.retain(|_, (owner, _)| *owner != context_id);
            }
        }
    }
}

/// The status and body of the callout answer being delivered.
fn call_answer(body_size: usize) -> (Option<u32>, Vec<u8>) {
    let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| s.parse::<u32>().ok());
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    (status, body)
}

/// One per VM (one Envoy worker): the parsed config and what its requests share.
#[derive(Default)]
struct Root {
    context_id: u32,
    config: Option<Rc<FilterConfig>>,
    host: ProxyHost,
    worker: Rc<Worker>,
    /// Envoy is done with this VM (shutdown, or a config that replaced it): until when
    /// its last settlements and lease returns may still be answered.
    closing_until_ms: Option<u64>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        if self.worker.route(&self.host, token, body, self.context_id) {
            return;
        }
        let ok = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .is_some_and(|status| status == "200");
        let Ok(mut settlements) = self.worker.settlements.try_borrow_mut() else {
            return;
        };
        let outcome = settlements.answered(token, ok, self.host.now_ms());
        drop(settlements);
        report(&self.host, outcome);
        self.finish_closing();
    }

    /// Envoy is done with this VM (it shuts down, or a new filter config replaced this
    /// one): return every lease this worker took, unspent part and all, and send what
    /// is still queued, at once. Envoy waits for `done` until their answers are in or
    /// [`CLOSING_GRACE`] passed; without that, the budgets would stay counted until
    /// their windows reset.
    fn on_done(&mut self) -> bool {
        let leases = match self.worker.leases.try_borrow_mut() {
            Ok(mut leases) => std::mem::take(&mut *leases).into_vec(),
            Err(_) => Vec::new(),
        };
        let _ = hostcalls::log(
            LogLevel::Info,
            &format!("tollgate: closing, returning {} leases", leases.len()),
        );
        for Reverse(Taken { owner, id, .. }) in leases {
            if let Some(previous) = budget::take_back(&self.host, &owner, &id) {
                queue_return(&self.worker.settlements, owner, previous);
            }
        }
        if let Ok(mut settlements) = self.worker.settlements.try_borrow_mut() {
            settlements.send_all_now();
        }
        self.send_settlements();
        if self.idle() {
            return true;
        }
        let grace = u64::try_from(CLOSING_GRACE.as_millis()).unwrap_or(u64::MAX);
        self.closing_until_ms = Some(self.host.now_ms().saturating_add(grace));
        false
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let config = match FilterConfig::from_json(&bytes) {
            Ok(config) => config,
            Err(e) => {
                let _ = hostcalls::log(LogLevel::Error, &format!("tollgate: {e}"));
                return false;
            }
        };
        // Deadlines are kept on the tick: a tenth of the timeout, within 5–20 ms, keeps
        // a stuck request's overshoot small, and an idle worker wakes at most 200
        // times a second to find nothing to do.
        let tick = Duration::from_millis((config.control_plane.timeout_ms / 10).clamp(5, 20));
        if let Err(e) = hostcalls::set_tick_period(tick) {
            let _ = hostcalls::log(LogLevel::Error, &format!("tollgate: no tick: {e:?}"));
            return false;
        }
        self.host = ProxyHost::with_metrics();
        self.config = Some(Rc::new(config));
        true
    }

    fn on_tick(&mut self) {
        if self.closing_until_ms.is_some() {
            self.finish_closing();
            return;
        }
        self.worker.decide_deferred(&self.host, self.context_id);
        self.expire_deadlines();
        self.return_expired_leases();
        if let Ok(mut settlements) = self.worker.settlements.try_borrow_mut() {
            let outcomes = settlements.expire(self.host.now_ms());
            drop(settlements);
            outcomes.into_iter().for_each(|o| report(&self.host, o));
        }
        self.send_settlements();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            context_id,
            flow: self
                .config
                .as_ref()
                .map(|config| Rc::new(RefCell::new(RequestFlow::new(config.clone())))),
            host: self.host,
            worker: self.worker.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Root {
    fn send_settlements(&self) {
        if let Some(config) = &self.config {
            send_settlements(&self.host, config, &self.worker.settlements);
        }
    }

    fn idle(&self) -> bool {
        self.worker
            .settlements
            .try_borrow()
            .map_or(true, |settlements| settlements.is_idle())
    }

    /// Sends what a closing VM still has queued, and tells Envoy it is done once its
    /// callouts are answered or its grace is over (what is unanswered then stays
    /// counted, as after a crash).
    fn finish_closing(&mut self) {
        let Some(until_ms) = self.closing_until_ms else {
            return;
        };
        // What did not fit in flight goes as answers make room.
        self.send_settlements();
        if self.idle() || self.host.now_ms() >= until_ms {
            self.closing_until_ms = None;
            let _ = hostcalls::log(LogLevel::Info, "tollgate: closed");
            // Envoy answers Ok for a root context whose `on_done` said false (the SDK
            // would panic on anything else); this is the only call, and only then.
            let _ = hostcalls::done();
        }
    }

    fn expire_deadlines(&self) {
        let Ok(mut deadlines) = self.worker.deadlines.try_borrow_mut() else {
            return;
        };
        if deadlines.is_empty() {
            return;
        }
        let expired = deadlines.take_expired(self.host.now_ms());
        drop(deadlines);
        for (context_id, shared) in expired {
            // Host calls act on the effective context: make it the waiting request's.
            if hostcalls::set_effective_context(context_id).is_err() {
                continue; // the request is gone
            }
            let Ok(mut flow) = shared.try_borrow_mut() else {
                continue;
            };
            flow.on_deadline(&self.host);
            let ended = self.worker.file(context_id, &shared, &mut flow, true);
            drop(flow);
            self.worker.wake(&self.host, ended, context_id, true);
        }
        // The settlements this tick sends are the root's callouts.
        let _ = hostcalls::set_effective_context(self.context_id);
    }

    /// Takes this worker's expired leases out of their slots and queues their return,
    /// so the control plane refunds what was not spent.
    fn return_expired_leases(&self) {
        let now = self.host.now_ms();
        let Ok(mut leases) = self.worker.leases.try_borrow_mut() else {
            return;
        };
        let mut expired = Vec::new();
        while expired.len() < RETURNS_PER_TICK {
            match leases.peek() {
                Some(Reverse(next)) if next.expires_ms <= now => {}
                _ => break,
            }
            if let Some(Reverse(taken)) = leases.pop() {
                expired.push(taken);
            }
        }
        drop(leases);
        for Taken { owner, id, .. } in expired {
            // `None`: a refill already returned it with the next lease.
            if let Some(previous) = budget::take_expired(&self.host, &owner, &id, now) {
                queue_return(&self.worker.settlements, owner, previous);
            }
        }
    }
}

/// Queues a lease's return (a lease call that asks for nothing more).
fn queue_return(settlements: &RefCell<Settlements>, owner: Owner, previous: LeaseReturn) {
    let request = owner.giving_back(unique_id(), gateway_id(), previous);
    queue(settlements, Outgoing::json(LEASES_PATH, &request));
}

fn queue(settlements: &RefCell<Settlements>, outgoing: Option<Outgoing>) {
    if let (Ok(mut settlements), Some(outgoing)) = (settlements.try_borrow_mut(), outgoing) {
        // Past the bound the oldest is dropped; the control plane keeps it counted.
        let _ = settlements.push(outgoing);
    }
}

/// Sends every queued settlement and lease return as a callout of the current (root)
/// context.
fn send_settlements(host: &ProxyHost, config: &FilterConfig, settlements: &RefCell<Settlements>) {
    let Ok(mut settlements) = settlements.try_borrow_mut() else {
        return;
    };
    let cp = &config.control_plane;
    for pending in settlements.take_queued(host.now_ms()) {
        let callout = Callout::post(
            cp,
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

/// Counts a settlement's failed attempt, and logs one that is given up.
fn report(host: &ProxyHost, outcome: Outcome) {
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

/// One per HTTP request.
struct Request {
    context_id: u32,
    /// `None` only if the VM has no valid config (Envoy then refuses the filter, so
    /// this is belt and braces): the request passes untouched.
    flow: Option<SharedFlow>,
    host: ProxyHost,
    worker: Rc<Worker>,
}

impl Request {
    /// Runs `step` on the flow, files what it left for the worker, and wakes the
    /// requests that waited for a refill it ended.
    fn step<T>(&self, fallback: T, step: impl FnOnce(&mut RequestFlow) -> T) -> T {
        let Some(shared) = self.flow.as_ref() else {
            return fallback;
        };
        let Ok(mut flow) = shared.try_borrow_mut() else {
            return fallback;
        };
        let result = step(&mut flow);
        let ended = self.worker.file(self.context_id, shared, &mut flow, false);
        drop(flow);
        self.worker.wake(&self.host, ended, self.context_id, false);
        result
    }
}

fn action(next: Next) -> Action {
    match next {
        Next::Continue => Action::Continue,
        Next::Pause => Action::Pause,
    }
}

impl Context for Request {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        let (status, body) = call_answer(body);
        let host = self.host;
        self.step((), |flow| flow.on_check_response(&host, status, &body));
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let host = self.host;
        action(self.step(Next::Continue, |flow| {
            flow.on_request_headers(&host, end_of_stream)
        }))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let host = self.host;
        let buffered = u64::try_from(body_size).unwrap_or(u64::MAX);
        action(self.step(Next::Continue, |flow| {
            flow.on_request_body(&host, buffered, end_of_stream)
        }))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.step(Next::Continue, |flow| flow.on_request_trailers()))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let host = self.host;
        self.step((), |flow| flow.on_response_headers(&host));
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        let host = self.host;
        self.step((), |flow| flow.on_response_body(&host, body_size));
        Action::Continue
    }

    fn on_log(&mut self) {
        let host = self.host;
        let settlement = self.step(None, |flow| {
            flow.abandon(&host);
            flow.settlement(&host)
        });
        let Some(settlement) = settlement else {
            return;
        };
        let outgoing = Outgoing::json(SETTLE_PATH, &settlement);
        let settlements = &self.worker.settlements;
        if let (Ok(mut settlements), Some(outgoing)) = (settlements.try_borrow_mut(), outgoing) {
            if let Some(dropped) = settlements.push(outgoing) {
                report(&host, Outcome::Dropped(dropped));
            }
        }
        // The root's next tick sends it: dispatched here, its answer would be handed to
        // this context, which is about to go.
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.worker.forget(self.context_id);
    }
}
