//! The per-request logic against a fake host that records every host call.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the fake host beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use tollgate_filter::flow::{Next, RequestFlow};
use tollgate_filter::host::{Callout, Host, Metric};
use tollgate_protocol::problem;
use tollgate_protocol::{CheckRequest, FilterConfig, PolicyStatus};

type Headers = Vec<(String, String)>;
/// A callout or local reply as recorded: cluster or status, headers, body.
type Sent<T> = (T, Headers, Vec<u8>);

/// Records every host call; answers header look-ups from a map.
#[derive(Default)]
struct FakeHost {
    request_headers: HashMap<String, String>,
    refuse_dispatch: bool,
    now_ms: u64,
    dispatched: RefCell<Vec<Sent<String>>>,
    local_response: RefCell<Option<Sent<u32>>>,
    resumed: RefCell<u32>,
    response_headers: RefCell<Vec<(String, String)>>,
    counted: RefCell<Vec<Metric>>,
}

impl FakeHost {
    fn request(headers: &[(&str, &str)]) -> FakeHost {
        FakeHost {
            request_headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            now_ms: 1_000,
            ..FakeHost::default()
        }
    }

    fn upload(tenant: &str, bytes: u64) -> FakeHost {
        FakeHost::request(&[
            (":path", "/upload"),
            (":method", "POST"),
            ("x-tenant-id", tenant),
            ("content-length", &bytes.to_string()),
        ])
    }

    fn local(&self) -> (u32, Headers, serde_json::Value) {
        let (status, headers, body) = self.local_response.borrow().clone().expect("a local reply");
        (
            status,
            headers,
            serde_json::from_slice(&body).expect("a JSON body"),
        )
    }

    fn response_header(&self, name: &str) -> Option<String> {
        self.response_headers
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn counted(&self, metric: Metric) -> usize {
        self.counted
            .borrow()
            .iter()
            .filter(|m| **m == metric)
            .count()
    }
}

impl Host for FakeHost {
    fn request_header(&self, name: &str) -> Option<String> {
        self.request_headers.get(name).cloned()
    }
    fn dispatch(&self, callout: Callout<'_>) -> Option<u32> {
        if self.refuse_dispatch {
            return None;
        }
        let headers = callout
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.dispatched.borrow_mut().push((
            callout.cluster.to_string(),
            headers,
            callout.body.to_vec(),
        ));
        Some(7)
    }
    fn send_local_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        *self.local_response.borrow_mut() = Some((status, headers, body.to_vec()));
    }
    fn resume_request(&self) {
        *self.resumed.borrow_mut() += 1;
    }
    fn add_response_header(&self, name: &str, value: &str) {
        self.response_headers
            .borrow_mut()
            .push((name.to_string(), value.to_string()));
    }
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
    fn count(&self, metric: Metric) {
        self.counted.borrow_mut().push(metric);
    }
    fn warn(&self, _message: &str) {}
}

fn config(failure_mode: &str) -> Rc<FilterConfig> {
    let json = format!(
        r#"{{"control_plane":{{"cluster":"cp","timeout_ms":150}},"failure_mode":"{failure_mode}"}}"#
    );
    Rc::new(FilterConfig::from_json(json.as_bytes()).unwrap())
}

fn policy(used: u64, remaining: u64) -> PolicyStatus {
    PolicyStatus {
        name: "monthly".into(),
        tenant: None,
        resource: "request_bytes".into(),
        quota: 1000,
        limit: 1200,
        used,
        remaining,
        reset_after_s: 3600,
        window_s: None,
    }
}

fn answer(decision: &str, reason: Option<&str>, policy: PolicyStatus) -> Vec<u8> {
    let mut json = serde_json::json!({
        "decision": decision, "tenant": "acme", "policy": policy, "cache_reject_for_s": 0
    });
    if let Some(reason) = reason {
        json["reason"] = reason.into();
    }
    serde_json::to_vec(&json).unwrap()
}

#[test]
fn counted_request_asks_the_control_plane_for_one_request_and_its_body_size_and_waits() {
    let host = FakeHost::upload("acme", 512);
    let mut flow = RequestFlow::new(config("open"));
    assert_eq!(flow.on_request_headers(&host), Next::Pause);
    assert_eq!(flow.awaiting_until(), Some(1_150));
    let calls = host.dispatched.borrow();
    let (cluster, headers, body) = &calls[0];
    assert_eq!(cluster, "cp");
    assert!(headers.contains(&(":path".into(), "/v1/check".into())));
    assert!(headers.contains(&(":method".into(), "POST".into())));
    assert!(headers.iter().any(|(n, _)| n == ":authority"));
    let request: CheckRequest = serde_json::from_slice(body).unwrap();
    assert_eq!(request.tenant, "acme");
    assert_eq!(request.amounts.get("request_bytes"), Some(&512));
    assert_eq!(request.amounts.get("requests"), Some(&1));
    assert_eq!(request.path, "/upload");
}

#[test]
fn request_without_content_length_costs_one_request_and_zero_bytes() {
    let host = FakeHost::request(&[(":path", "/"), ("x-tenant-id", "acme")]);
    RequestFlow::new(config("open")).on_request_headers(&host);
    let request: CheckRequest = serde_json::from_slice(&host.dispatched.borrow()[0].2).unwrap();
    assert_eq!(request.amounts.get("request_bytes"), Some(&0));
    assert_eq!(request.amounts.get("requests"), Some(&1));
}

#[test]
fn allowed_request_resumes_and_gets_quota_headers() {
    let host = FakeHost::upload("acme", 100);
    let mut flow = RequestFlow::new(config("open"));
    flow.on_request_headers(&host);
    flow.on_check_response(&host, Some(200), &answer("allow", None, policy(100, 1100)));
    assert_eq!(*host.resumed.borrow(), 1);
    flow.on_response_headers(&host);
    assert_eq!(
        host.response_header("x-quota-status").as_deref(),
        Some("ok")
    );
    assert_eq!(host.response_header("x-quota-used").as_deref(), Some("100"));
    assert_eq!(
        host.response_header("x-quota-remaining").as_deref(),
        Some("1100")
    );
    assert_eq!(
        host.response_header("ratelimit").as_deref(),
        Some(r#""monthly";r=1100;t=3600"#)
    );
    assert_eq!(host.counted(Metric::Allowed), 1);
}

#[test]
fn warned_request_is_admitted_with_warning_status() {
    let host = FakeHost::upload("acme", 100);
    let mut flow = RequestFlow::new(config("open"));
    flow.on_request_headers(&host);
    flow.on_check_response(&host, Some(200), &answer("warn", None, policy(900, 300)));
    flow.on_response_headers(&host);
    assert_eq!(
        host.response_header("x-quota-status").as_deref(),
        Some("warning")
    );
    assert_eq!(host.counted(Metric::Warned), 1);
}

#[test]
fn rejected_request_gets_a_429_problem_with_retry_after_and_never_resumes() {
    let host = FakeHost::upload("acme", 500);
    let mut flow = RequestFlow::new(config("open"));
    flow.on_request_headers(&host);
    flow.on_check_response(
        &host,
        Some(200),
        &answer("reject", Some("quota_exceeded"), policy(1000, 200)),
    );
    assert_eq!(*host.resumed.borrow(), 0);
    let (status, headers, body) = host.local();
    assert_eq!(status, 429);
    assert!(headers.contains(&("retry-after".into(), "3600".into())));
    assert!(headers.contains(&("content-type".into(), "application/problem+json".into())));
    assert!(headers.contains(&("x-quota-status".into(), "exceeded".into())));
    assert_eq!(body["type"], problem::QUOTA_EXCEEDED_TYPE);
    assert_eq!(body["used"], 1000);
    // The local reply passes through the response callback too; no second set of headers.
    flow.on_response_headers(&host);
    assert!(host.response_headers.borrow().is_empty());
}

#[test]
fn unknown_tenant_is_forbidden() {
    let host = FakeHost::upload("ghost", 1);
    let mut flow = RequestFlow::new(config("open"));
    flow.on_request_headers(&host);
    let body = br#"{"decision":"reject","reason":"unknown_tenant","tenant":"ghost","cache_reject_for_s":0}"#;
    flow.on_check_response(&host, Some(200), body);
    assert_eq!(host.local().0, 403);
}

#[test]
fn missing_tenant_is_401_and_asks_nobody() {
    let host = FakeHost::request(&[(":path", "/upload"), ("content-length", "5")]);
    let mut flow = RequestFlow::new(config("open"));
    assert_eq!(flow.on_request_headers(&host), Next::Pause);
    let (status, headers, body) = host.local();
    assert_eq!(status, 401);
    assert!(headers.contains(&("content-type".into(), "application/problem+json".into())));
    assert!(body["detail"].as_str().unwrap().contains("x-tenant-id"));
    assert!(host.dispatched.borrow().is_empty());
}

#[test]
fn malformed_tenant_is_400() {
    let host = FakeHost::request(&[(":path", "/upload"), ("x-tenant-id", "a b")]);
    RequestFlow::new(config("open")).on_request_headers(&host);
    assert_eq!(host.local().0, 400);
}

#[test]
fn excluded_path_passes_without_a_callout_or_headers() {
    let host = FakeHost::request(&[(":path", "/health"), ("x-tenant-id", "acme")]);
    let mut flow = RequestFlow::new(config("open"));
    assert_eq!(flow.on_request_headers(&host), Next::Continue);
    flow.on_response_headers(&host);
    assert!(host.dispatched.borrow().is_empty());
    assert!(host.response_headers.borrow().is_empty());
}

#[test]
fn control_plane_error_fails_open_with_unknown_status() {
    let host = FakeHost::upload("acme", 1);
    let mut flow = RequestFlow::new(config("open"));
    flow.on_request_headers(&host);
    flow.on_check_response(&host, Some(503), b"upstream connect error");
    assert_eq!(*host.resumed.borrow(), 1);
    flow.on_response_headers(&host);
    assert_eq!(
        host.response_header("x-quota-status").as_deref(),
        Some("unknown")
    );
    assert_eq!(host.counted(Metric::FailedOpen), 1);
}

#[test]
fn garbage_answer_fails_closed_with_503() {
    let host = FakeHost::upload("acme", 1);
    let mut flow = RequestFlow::new(config("closed"));
    flow.on_request_headers(&host);
    flow.on_check_response(&host, Some(200), b"{not json");
    assert_eq!(host.local().0, 503);
    assert_eq!(*host.resumed.borrow(), 0);
}

#[test]
fn refused_dispatch_fails_open_without_pausing() {
    let host = FakeHost {
        refuse_dispatch: true,
        ..FakeHost::upload("acme", 1)
    };
    let mut flow = RequestFlow::new(config("open"));
    assert_eq!(flow.on_request_headers(&host), Next::Continue);
    assert_eq!(
        *host.resumed.borrow(),
        0,
        "nothing was paused, nothing to resume"
    );
    flow.on_response_headers(&host);
    assert_eq!(
        host.response_header("x-quota-status").as_deref(),
        Some("unknown")
    );
}

#[test]
fn deadline_decides_first_and_a_late_answer_is_ignored() {
    let host = FakeHost::upload("acme", 1);
    let mut flow = RequestFlow::new(config("closed"));
    flow.on_request_headers(&host);
    flow.on_deadline(&host);
    assert_eq!(host.local().0, 503);
    flow.on_check_response(&host, Some(200), &answer("allow", None, policy(1, 1199)));
    assert_eq!(*host.resumed.borrow(), 0);
    assert_eq!(flow.awaiting_until(), None);
}

#[test]
fn deadline_after_the_answer_changes_nothing() {
    let host = FakeHost::upload("acme", 1);
    let mut flow = RequestFlow::new(config("open"));
    flow.on_request_headers(&host);
    flow.on_check_response(&host, Some(200), &answer("allow", None, policy(1, 1199)));
    flow.on_deadline(&host);
    assert_eq!(*host.resumed.borrow(), 1);
    assert_eq!(host.counted(Metric::CalloutFailures), 0);
}
