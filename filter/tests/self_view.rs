//! The self-view (`quota_path`) against the fake host: answered by the filter with the
//! control plane's view, for the caller's own tenant by the usual rule, never counted,
//! never cached past a second, and 503 — never a hang — without an answer.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::rc::Rc;

use base64::Engine;
use serde_json::{json, Value};
use tollgate_filter::flow::{Next, RequestFlow};
use tollgate_filter::host::Metric;
use tollgate_filter::testing::{FakeHost, REQUEST};
use tollgate_protocol::{FilterConfig, QuotaRequest};

/// A config with the self-view at `/.well-known/quota`, plus `extra` top-level members.
fn config(extra: Value) -> Rc<FilterConfig> {
    let mut json = json!({
        "control_plane": {"cluster": "cp", "timeout_ms": 150},
        "quota_path": "/.well-known/quota"
    });
    for (key, value) in extra.as_object().unwrap() {
        json[key] = value.clone();
    }
    Rc::new(FilterConfig::from_json(json.to_string().as_bytes()).unwrap())
}

/// A request for `path` with `method` and more `headers`.
fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> FakeHost {
    let mut all = vec![(":method", method), (":path", path)];
    all.extend_from_slice(headers);
    FakeHost::request(&all)
}

/// The control plane's view of `tenant`, as it writes it.
fn view_of(tenant: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "tenant": tenant, "at": "2026-11-17T12:06:00.000Z",
        "binding": null, "limits": [], "future_field": {"kept": true}
    }))
    .unwrap()
}

/// What the request asked the control plane, if it asked.
fn asked(host: &FakeHost) -> Option<QuotaRequest> {
    let dispatched = host.dispatched();
    let call = dispatched.iter().find(|d| d.path() == "/v1/quota")?;
    Some(call.json())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    (headers.iter())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_view_is_answered_by_the_filter_with_the_control_planes_body_and_counts_nothing() {
    for method in ["GET", "HEAD"] {
        let host = request(
            method,
            "/.well-known/quota?pretty=1",
            &[("x-tenant-id", "acme")],
        );
        let mut flow = RequestFlow::new(config(json!({})));
        assert_eq!(flow.on_request_headers(&host, true), Next::Pause);
        assert_eq!(flow.awaiting_until(), Some(1_150), "its own deadline");
        let call = host.last_dispatched();
        assert_eq!(call.header("x-tollgate-deadline-ms"), Some("150"));
        assert_eq!(
            asked(&host),
            Some(QuotaRequest {
                tenant: "acme".into(),
                roles: vec![]
            })
        );
        assert!(host.checks().is_empty(), "no check");

        flow.on_check_response(&host, Some(200), &view_of("acme"));
        let (status, headers, body) = host.local_reply().unwrap();
        assert_eq!(status, 200, "{method}");
        assert_eq!(header(&headers, "content-type"), Some("application/json"));
        assert_eq!(
            header(&headers, "cache-control"),
            Some("private, max-age=1")
        );
        assert_eq!(
            body,
            view_of("acme"),
            "passed on as written, unknown fields too"
        );
        assert_eq!(host.resumed(), 0, "never reaches the upstream");
        assert_eq!(flow.awaiting_until(), None);
        flow.on_response_headers(&host);
        assert!(
            host.of(REQUEST).added_headers.is_empty(),
            "no quota headers"
        );
        assert!(flow.settlement(&host).is_none(), "nothing to settle");
        assert_eq!(host.counted(Metric::QuotaViews), 1);
        for metric in [Metric::Allowed, Metric::Warned, Metric::Rejected] {
            assert_eq!(host.counted(metric), 0, "{metric:?}");
        }
        // A body arriving meanwhile is held, never passed on.
        assert_eq!(flow.on_request_body(&host, 10, true), Next::Pause);
    }
}

#[test]
fn other_methods_are_refused_without_a_callout() {
    for method in ["POST", "DELETE", "OPTIONS"] {
        let host = request(method, "/.well-known/quota", &[("x-tenant-id", "acme")]);
        let mut flow = RequestFlow::new(config(json!({})));
        assert_eq!(flow.on_request_headers(&host, true), Next::Pause);
        let (status, headers, body) = host.local();
        assert_eq!(status, 405, "{method}");
        assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/problem+json")
        );
        assert_eq!(body["status"], 405);
        assert!(host.dispatched().is_empty());
    }
}

#[test]
fn without_a_valid_tenant_the_view_gets_the_same_401_and_400_as_any_request() {
    for (tenant, status, metric) in [
        (None, 401, Metric::TenantMissing),
        (Some("a b"), 400, Metric::TenantInvalid),
    ] {
        let headers: Vec<(&str, &str)> = tenant.map(|t| ("x-tenant-id", t)).into_iter().collect();
        let host = request("GET", "/.well-known/quota", &headers);
        let mut flow = RequestFlow::new(config(json!({})));
        flow.on_request_headers(&host, true);
        let (got, _, body) = host.local();
        assert_eq!(got, status);
        assert!(body["detail"].as_str().unwrap().contains("x-tenant-id"));
        assert_eq!(host.counted(metric), 1);
        assert!(host.dispatched().is_empty());
    }
}

#[test]
fn the_tenant_of_a_token_is_viewed_whatever_tenant_header_comes_with_it() {
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"org": {"id": "acme"}, "roles": ["pro"]}).to_string());
    let host = request(
        "GET",
        "/.well-known/quota",
        &[("x-jwt-payload", &payload), ("x-tenant-id", "victim")],
    );
    let cfg = config(json!({"tenant": {"from": "jwt", "claim": "org.id", "roles_claim": "roles"}}));
    let mut flow = RequestFlow::new(cfg);
    flow.on_request_headers(&host, true);
    assert_eq!(
        asked(&host),
        Some(QuotaRequest {
            tenant: "acme".into(),
            roles: vec!["pro".into()]
        })
    );
    // A view of someone else is never passed on.
    flow.on_check_response(&host, Some(200), &view_of("victim"));
    assert_eq!(host.local().0, 503);
}

#[test]
fn with_the_tenant_in_the_path_the_view_is_under_the_tenants_prefix() {
    let cfg = config(json!({"tenant": {"from": "path", "path_pattern": "/tenants/{tenant}"}}));
    let host = request("GET", "/tenants/acme/.well-known/quota", &[]);
    let mut flow = RequestFlow::new(cfg.clone());
    assert_eq!(flow.on_request_headers(&host, true), Next::Pause);
    assert_eq!(asked(&host).unwrap().tenant, "acme");
    // Without the prefix it is no view, but a request like any other: no tenant here.
    let bare = request("GET", "/.well-known/quota", &[]);
    RequestFlow::new(cfg.clone()).on_request_headers(&bare, true);
    assert_eq!(bare.local().0, 401);
    assert!(asked(&bare).is_none());
    // Under the prefix but somewhere else: an ordinary counted request.
    let other = request("GET", "/tenants/acme/files/.well-known/quota", &[]);
    RequestFlow::new(cfg).on_request_headers(&other, true);
    assert_eq!(other.checks().len(), 1);
}

#[test]
fn the_quota_path_is_an_ordinary_request_when_the_view_is_off() {
    let cfg = Rc::new(FilterConfig::from_json(br#"{"control_plane":{"cluster":"cp"}}"#).unwrap());
    let host = request("GET", "/.well-known/quota", &[("x-tenant-id", "acme")]);
    RequestFlow::new(cfg).on_request_headers(&host, true);
    assert_eq!(host.checks().len(), 1);
    assert!(asked(&host).is_none());
}

#[test]
fn an_unknown_tenant_gets_403() {
    let host = request("GET", "/.well-known/quota", &[("x-tenant-id", "ghost")]);
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, true);
    let body = br#"{"tenant":"ghost","at":"2026-11-17T12:00:00.000Z","reason":"unknown_tenant","limits":[]}"#;
    flow.on_check_response(&host, Some(200), body);
    assert_eq!(host.local().0, 403);
    assert_eq!(host.counted(Metric::TenantUnknown), 1);
    assert_eq!(host.counted(Metric::QuotaViews), 0);
}

#[test]
fn without_an_answer_the_view_is_503_whatever_the_failure_mode() {
    for mode in ["open", "closed"] {
        let cfg = config(json!({"failure_mode": mode}));
        // The control plane down (Envoy's synthetic 503), a 404, garbage, no :status.
        let answers: [(Option<u32>, &[u8]); 4] = [
            (Some(503), b"upstream connect error"),
            (Some(404), b"{}"),
            (Some(200), b"not json"),
            (None, b""),
        ];
        for (status, body) in answers {
            let host = request("GET", "/.well-known/quota", &[("x-tenant-id", "acme")]);
            let mut flow = RequestFlow::new(cfg.clone());
            flow.on_request_headers(&host, true);
            flow.on_check_response(&host, status, body);
            let (got, headers, problem) = host.local();
            assert_eq!(got, 503, "{mode} {status:?}");
            assert_eq!(header(&headers, "cache-control"), Some("no-store"));
            assert_eq!(problem["status"], 503);
            assert_eq!(host.resumed(), 0, "nothing let through");
            assert_eq!(host.counted(Metric::FailedOpen), 0);
            assert_eq!(host.counted(Metric::CalloutFailures), 1);
        }
        // No answer before the deadline.
        let host = request("GET", "/.well-known/quota", &[("x-tenant-id", "acme")]);
        let mut flow = RequestFlow::new(cfg.clone());
        flow.on_request_headers(&host, true);
        flow.on_deadline(&host);
        assert_eq!(host.local().0, 503);
        assert_eq!(host.counted(Metric::CalloutTimeouts), 1);
        // A late answer changes nothing.
        flow.on_check_response(&host, Some(200), &view_of("acme"));
        assert_eq!(host.of(REQUEST).replies.len(), 1);
        // Envoy refusing the callout: 503 at once.
        let host =
            request("GET", "/.well-known/quota", &[("x-tenant-id", "acme")]).refusing_dispatch();
        let mut flow = RequestFlow::new(cfg);
        assert_eq!(flow.on_request_headers(&host, true), Next::Pause);
        assert_eq!(host.local().0, 503);
        assert_eq!(flow.awaiting_until(), None, "nothing left to wait for");
    }
}

#[test]
fn a_client_that_leaves_while_the_view_is_asked_leaves_nothing_to_take_back() {
    let host = request("GET", "/.well-known/quota", &[("x-tenant-id", "acme")]);
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, true);
    flow.abandon(&host);
    assert_eq!(flow.awaiting_until(), None);
    let follow_ups = flow.take_follow_ups();
    assert!(follow_ups.cancels.is_empty() && follow_ups.returns.is_empty());
    assert!(flow.settlement(&host).is_none());
}
