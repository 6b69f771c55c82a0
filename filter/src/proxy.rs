//! The only module that talks to Envoy: proxy-wasm contexts around [`RequestFlow`].
//!
//! Host calls go through `hostcalls::*`, which return `Result`s, never through the SDK
//! helpers that unwrap. Every `RefCell` is borrowed with `try_borrow*`: a re-entrant
//! callback must be skipped and logged, never turned into a panic that traps the VM.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use tollgate_protocol::FilterConfig;

use crate::deadlines::Deadlines;
use crate::flow::{Next, RequestFlow};
use crate::host::{Callout, Host, Metric};

/// A request's flow, shared between its context and the deadline registry.
type SharedFlow = Rc<RefCell<RequestFlow>>;

/// Registers the root context; called once per VM by `proxy_wasm::main!`.
pub fn start() {
    // Also installs a panic hook that logs the panic to Envoy before the VM traps.
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
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
}

/// One per VM: holds the parsed config and enforces callout deadlines on its tick.
#[derive(Default)]
struct Root {
    config: Option<Rc<FilterConfig>>,
    host: ProxyHost,
    deadlines: Rc<RefCell<Deadlines<SharedFlow>>>,
}

impl Context for Root {}

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
        // A quarter of the timeout keeps a stuck request's overshoot small, within
        // 10–50 ms so an idle gateway does not spin.
        let tick = Duration::from_millis((config.control_plane.timeout_ms / 4).clamp(10, 50));
        if let Err(e) = hostcalls::set_tick_period(tick) {
            let _ = hostcalls::log(LogLevel::Error, &format!("tollgate: no tick: {e:?}"));
            return false;
        }
        self.host = ProxyHost::with_metrics();
        self.config = Some(Rc::new(config));
        true
    }

    fn on_tick(&mut self) {
        let Ok(mut deadlines) = self.deadlines.try_borrow_mut() else {
            return;
        };
        if deadlines.is_empty() {
            return;
        }
        let expired = deadlines.take_expired(self.host.now_ms());
        drop(deadlines);
        for (context_id, flow) in expired {
            // Host calls act on the effective context: make it the waiting request's.
            if hostcalls::set_effective_context(context_id).is_err() {
                continue; // the request is gone
            }
            if let Ok(mut flow) = flow.try_borrow_mut() {
                flow.on_deadline(&self.host);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            context_id,
            flow: self
                .config
                .as_ref()
                .map(|config| Rc::new(RefCell::new(RequestFlow::new(config.clone())))),
            host: self.host,
            deadlines: self.deadlines.clone(),
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
    deadlines: Rc<RefCell<Deadlines<SharedFlow>>>,
}

impl Request {
    fn forget_deadline(&self) {
        if let Ok(mut deadlines) = self.deadlines.try_borrow_mut() {
            deadlines.remove(self.context_id);
        }
    }
}

impl Context for Request {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        self.forget_deadline();
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        if let Some(Ok(mut flow)) = self.flow.as_ref().map(|f| f.try_borrow_mut()) {
            flow.on_check_response(&self.host, status, &body);
        }
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(Ok(mut flow)) = self.flow.as_ref().map(|f| f.try_borrow_mut()) else {
            return Action::Continue;
        };
        let next = flow.on_request_headers(&self.host);
        if let (Some(deadline), Some(shared)) = (flow.awaiting_until(), self.flow.as_ref()) {
            if let Ok(mut deadlines) = self.deadlines.try_borrow_mut() {
                deadlines.insert(self.context_id, deadline, shared.clone());
            }
        }
        match next {
            Next::Continue => Action::Continue,
            Next::Pause => Action::Pause,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(Ok(mut flow)) = self.flow.as_ref().map(|f| f.try_borrow_mut()) {
            flow.on_response_headers(&self.host);
        }
        Action::Continue
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.forget_deadline();
    }
}
