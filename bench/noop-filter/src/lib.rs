//! The benchmark's floor: the least a proxy-wasm filter in Envoy can do per request.
//! It reads the tenant header of the request and echoes it in one response header, so
//! what the benchmark compares Tollgate against is the cost of running a wasm filter
//! at all (VM calls, header copies) without any decision.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

/// The request header read (the one Tollgate's default config reads the tenant from).
const TENANT_HEADER: &str = "x-tenant-id";
/// The response header added.
const ECHO_HEADER: &str = "x-bench-tenant";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot) });
}}

struct NoopRoot;

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Noop { tenant: None }))
    }
}

struct Noop {
    tenant: Option<String>,
}

impl Context for Noop {}

impl HttpContext for Noop {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.tenant = self.get_http_request_header(TENANT_HEADER);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let value = self.tenant.as_deref().unwrap_or("-");
        self.add_http_response_header(ECHO_HEADER, value);
        Action::Continue
    }
}
