//! The only module that talks to Envoy: proxy-wasm contexts that translate the SDK's
//! callbacks into calls on the [`Worker`] (and, through it, each request's flow), and
//! [`Host`] over the real hostcalls.
//!
//! Host calls go through `hostcalls::*`, which return `Result`s, never through the SDK
//! helpers that unwrap.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use tollgate_protocol::FilterConfig;

use crate::flow::{Next, RequestFlow};
use crate::gateway::agreed_gateway_id;
use crate::host::{Callout, Host, Level, Metric};
use crate::worker::{SharedFlow, Worker};

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
    /// This Envoy's gateway id, once this VM has read it from shared data.
    static GATEWAY: RefCell<Option<String>> = const { RefCell::new(None) };
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
            host: ProxyHost::default(),
            worker: Rc::new(Worker::new(context_id)),
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

    fn remove_request_header(&self, name: &str) {
        if let Err(e) = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None) {
            self.warn(&format!("tollgate: removing {name} failed: {e:?}"));
        }
    }

    fn request_body(&self, start: usize, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, start, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn set_request_body(&self, body: &[u8]) -> bool {
        // From 0, over at least everything buffered: Envoy replaces the whole body.
        match hostcalls::set_buffer(BufferType::HttpRequestBody, 0, usize::MAX, body) {
            Ok(()) => true,
            Err(e) => {
                self.warn(&format!(
                    "tollgate: replacing the request body failed: {e:?}"
                ));
                false
            }
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

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let _ = hostcalls::log(level, message);
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
        IDS.with(|ids| {
            let n = ids.next.get().wrapping_add(1);
            ids.next.set(n);
            format!("{:016x}-{n}", ids.prefix)
        })
    }

    fn worker_id(&self) -> String {
        IDS.with(|ids| format!("{:016x}", ids.prefix))
    }

    fn gateway_id(&self) -> String {
        if let Some(agreed) = GATEWAY.with(|gateway| gateway.borrow().clone()) {
            return agreed;
        }
        let agreed = agreed_gateway_id(self, &self.worker_id());
        GATEWAY.with(|gateway| *gateway.borrow_mut() = Some(agreed.clone()));
        agreed
    }

    fn shared_get_cas(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn shared_set_cas(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        hostcalls::set_shared_data(key, Some(value), cas).is_ok()
    }

    fn set_effective_context(&self, context_id: u32) -> bool {
        hostcalls::set_effective_context(context_id).is_ok()
    }

    fn callout_status(&self) -> Option<u32> {
        hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok())
    }

    fn callout_body(&self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn done(&self) {
        // Envoy answers Ok for a root context whose `on_done` said false (the SDK
        // would panic on anything else); the worker calls this only then.
        let _ = hostcalls::done();
    }
}

/// One per VM (one Envoy worker): the config, and the worker its requests share.
struct Root {
    host: ProxyHost,
    worker: Rc<Worker>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        self.worker.on_root_answer(&self.host, token, body);
    }

    fn on_done(&mut self) -> bool {
        self.worker.on_done(&self.host)
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
        self.worker.configure(Rc::new(config));
        true
    }

    fn on_tick(&mut self) {
        self.worker.on_tick(&self.host);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            context_id,
            flow: self.worker.new_flow(),
            host: self.host,
            worker: self.worker.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
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
    /// Runs `step` on the request's flow through the worker.
    fn step<T>(&self, fallback: T, step: impl FnOnce(&mut RequestFlow) -> T) -> T {
        (self.worker).step(
            &self.host,
            self.context_id,
            self.flow.as_ref(),
            fallback,
            step,
        )
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
        (self.worker).on_answer(&self.host, self.context_id, self.flow.as_ref(), body);
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
        let host = self.host;
        action(self.step(Next::Continue, |flow| flow.on_request_trailers(&host)))
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
        (self.worker).on_log(&self.host, self.context_id, self.flow.as_ref());
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.worker.forget(self.context_id);
    }
}
