//! The per-request logic against the fake host (`tollgate_filter::testing`), which
//! records every host call.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::rc::Rc;

use serde_json::{json, Value};
use tollgate_filter::budget::RefillEnd;
use tollgate_filter::flow::{Next, RequestFlow, Woken};
use tollgate_filter::host::{Host, Metric};
use tollgate_filter::testing::{Dispatched, FakeHost, REQUEST};
use tollgate_protocol::check::AMOUNT_MAX;
use tollgate_protocol::{CheckRequest, FilterConfig, PolicyStatus, ReleaseRequest, SettleRequest};

/// A config from the smallest one plus `extra` top-level members.
fn config(extra: Value) -> Rc<FilterConfig> {
    let mut json = json!({"control_plane": {"cluster": "cp", "timeout_ms": 150}});
    for (key, value) in extra.as_object().unwrap() {
        json[key] = value.clone();
    }
    Rc::new(FilterConfig::from_json(json.to_string().as_bytes()).unwrap())
}

fn policy(resource: &str, used: u64, remaining: u64) -> PolicyStatus {
    PolicyStatus {
        name: "monthly".into(),
        tenant: None,
        resource: resource.into(),
        quota: 1000,
        limit: 1200,
        used,
        remaining,
        reset_after_s: 3600,
        window_s: None,
    }
}

fn answer(decision: &str, reason: Option<&str>, policy: PolicyStatus) -> Vec<u8> {
    let mut json = json!({
        "decision": decision, "tenant": "acme", "policy": policy, "cache_reject_for_s": 30
    });
    if let Some(reason) = reason {
        json["reason"] = reason.into();
    }
    serde_json::to_vec(&json).unwrap()
}

fn allow() -> Vec<u8> {
    answer("allow", None, policy("request_bytes", 100, 1100))
}

fn reject() -> Vec<u8> {
    answer(
        "reject",
        Some("quota_exceeded"),
        policy("request_bytes", 1150, 50),
    )
}

#[test]
fn counted_request_asks_for_one_request_and_its_announced_body_and_waits() {
    let host = FakeHost::upload("acme", Some(512));
    let mut flow = RequestFlow::new(config(json!({})));
    assert_eq!(flow.on_request_headers(&host, false), Next::Pause);
    assert_eq!(flow.awaiting_until(), Some(1_150));
    let Dispatched {
        cluster, headers, ..
    } = host.dispatched()[0].clone();
    assert_eq!(cluster, "cp");
    assert!(headers.contains(&(":path".into(), "/v1/check".into())));
    assert!(headers.contains(&("x-tollgate-deadline-ms".into(), "150".into())));
    let check = host.last_check();
    assert_eq!(check.tenant, "acme");
    assert_eq!(check.amounts["request_bytes"], 512);
    assert_eq!(check.amounts["requests"], 1);
    assert!(!check.shadow);
}

#[test]
fn callouts_carry_the_gateway_token_only_when_one_is_configured() {
    let bearer = ("authorization".to_string(), "Bearer gw-secret".to_string());
    let control_plane = json!({"cluster": "cp", "timeout_ms": 150, "token": "gw-secret"});
    for (extra, expected) in [
        (json!({"control_plane": control_plane}), true),
        (json!({}), false),
    ] {
        let host = FakeHost::upload("acme", Some(512));
        let mut flow = RequestFlow::new(config(extra));
        assert_eq!(flow.on_request_headers(&host, false), Next::Pause);
        let headers = host.dispatched()[0].headers.clone();
        assert_eq!(headers.contains(&bearer), expected, "{headers:?}");
        assert!(expected || !headers.iter().any(|(name, _)| name == "authorization"));
    }
}

#[test]
fn a_content_length_past_what_the_control_plane_counts_asks_for_the_most_it_counts() {
    // Found by fuzzing: the control plane refuses an amount past 2^63 - 1 with a 422,
    // and the failure mode then let the request through uncounted.
    let host = FakeHost::upload("acme", Some(u64::MAX));
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, false);
    assert_eq!(host.last_check().amounts["request_bytes"], AMOUNT_MAX);
    flow.on_check_response(&host, Some(200), &allow());
    flow.on_request_body(&host, 100, true);
    assert_eq!(
        host.checks().len(),
        1,
        "the body is within what was counted"
    );
    let settle = flow.settlement(&host).unwrap();
    assert_eq!(settle.amounts["request_bytes"], 100 - i64::MAX);
}

#[test]
fn allowed_request_resumes_with_quota_headers_and_tells_the_upstream() {
    let host = FakeHost::upload("acme", Some(100));
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, false);
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(host.resumed(), 1);
    assert_eq!(host.request_header("x-quota-status").as_deref(), Some("ok"));
    flow.on_response_headers(&host);
    assert_eq!(host.added_header("x-quota-used").as_deref(), Some("100"));
    assert_eq!(
        host.added_header("ratelimit").as_deref(),
        Some(r#""monthly";r=1100;t=3600"#)
    );
    assert_eq!(host.counted(Metric::Allowed), 1);
}

#[test]
fn body_arriving_while_the_decision_is_pending_is_buffered_then_let_through() {
    let host = FakeHost::upload("acme", Some(100));
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, false);
    assert_eq!(flow.on_request_body(&host, 100, true), Next::Pause);
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(host.resumed(), 1);
    assert_eq!(
        host.checks().len(),
        1,
        "the announced body needs no second check"
    );
    assert!(flow.settlement(&host).is_none(), "nothing to correct");
}

#[test]
fn rejected_request_gets_429_and_the_next_one_is_answered_from_shared_data() {
    let cfg = config(json!({}));
    let host = FakeHost::upload("acme", Some(100));
    let mut flow = RequestFlow::new(cfg.clone());
    flow.on_request_headers(&host, false);
    flow.on_check_response(&host, Some(200), &reject());
    let (status, headers, body) = host.local();
    assert_eq!(status, 429);
    assert!(headers.contains(&("retry-after".into(), "3600".into())));
    assert_eq!(
        body["type"],
        tollgate_protocol::problem::QUOTA_EXCEEDED_TYPE
    );

    // Another worker: same shared data, no callout for a body that does not fit.
    let next = FakeHost::upload("acme", Some(60)).sharing(&host);
    let mut flow = RequestFlow::new(cfg.clone());
    assert_eq!(flow.on_request_headers(&next, false), Next::Pause);
    assert!(next.dispatched().is_empty());
    assert_eq!(next.local().0, 429);
    assert_eq!(next.counted(Metric::RejectCacheHits), 1);

    // A request that fits what is left still asks; so does another tenant.
    for (tenant, bytes) in [("acme", 50), ("other", 60)] {
        let fits = FakeHost::upload(tenant, Some(bytes)).sharing(&host);
        RequestFlow::new(cfg.clone()).on_request_headers(&fits, false);
        assert_eq!(fits.checks().len(), 1, "{tenant} {bytes}");
    }
}

#[test]
fn remembered_rejection_expires() {
    let cfg = config(json!({"reject_cache_max_s": 5}));
    let host = FakeHost::upload("acme", Some(100));
    let mut flow = RequestFlow::new(cfg.clone());
    flow.on_request_headers(&host, false);
    flow.on_check_response(&host, Some(200), &reject());
    let later = FakeHost::upload("acme", Some(100))
        .sharing(&host)
        .at(1_000 + 5_000);
    RequestFlow::new(cfg).on_request_headers(&later, false);
    assert_eq!(later.checks().len(), 1);
}

#[test]
fn unknown_tenant_is_forbidden() {
    let host = FakeHost::upload("ghost", Some(1));
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, false);
    let body = answer("reject", Some("unknown_tenant"), policy("requests", 0, 0));
    flow.on_check_response(&host, Some(200), &body);
    assert_eq!(host.local().0, 403);
    assert_eq!(host.counted(Metric::TenantUnknown), 1);
}

#[test]
fn missing_and_invalid_tenants_are_answered_without_a_callout() {
    let cases = [
        (None, 401, Metric::TenantMissing),
        (Some("a b"), 400, Metric::TenantInvalid),
    ];
    for (tenant, status, metric) in cases {
        let mut headers = vec![(":path", "/x"), (":method", "GET")];
        headers.extend(tenant.map(|t| ("x-tenant-id", t)));
        let host = FakeHost::request(&headers);
        let mut flow = RequestFlow::new(config(json!({})));
        assert_eq!(flow.on_request_headers(&host, true), Next::Pause);
        let (got, headers, body) = host.local();
        assert_eq!(got, status);
        assert!(headers.contains(&("content-type".into(), "application/problem+json".into())));
        assert!(body["detail"].as_str().unwrap().contains("x-tenant-id"));
        assert!(host.dispatched().is_empty());
        assert_eq!(host.counted(metric), 1);
    }
}

#[test]
fn default_tenant_stands_in_for_a_missing_one() {
    let host = FakeHost::request(&[(":path", "/x"), (":method", "GET")]);
    let mut flow = RequestFlow::new(config(json!({"tenant": {"default": "anonymous"}})));
    flow.on_request_headers(&host, true);
    assert_eq!(host.last_check().tenant, "anonymous");
}

#[test]
fn unmatched_requests_pass_untouched() {
    let cfg = config(json!({"match": {"methods": ["POST"], "exclude_paths": ["/health"]}}));
    for (method, path) in [("GET", "/x"), ("POST", "/health/live")] {
        let host = FakeHost::request(&[(":path", path), (":method", method)]);
        let mut flow = RequestFlow::new(cfg.clone());
        assert_eq!(flow.on_request_headers(&host, true), Next::Continue);
        flow.on_response_headers(&host);
        assert!(host.dispatched().is_empty() && host.of(REQUEST).added_headers.is_empty());
    }
}

#[test]
fn failure_modes_on_a_bad_answer_a_refused_dispatch_and_the_deadline() {
    for (mode, status) in [("open", None), ("closed", Some(503))] {
        let cfg = config(json!({"failure_mode": mode}));
        // A 503 from Envoy.
        let host = FakeHost::upload("acme", Some(1));
        let mut flow = RequestFlow::new(cfg.clone());
        flow.on_request_headers(&host, false);
        flow.on_check_response(&host, Some(503), b"");
        assert_eq!(host.local_status(), status);
        assert_eq!(host.counted(Metric::CalloutFailures), 1);
        // Refused at once: decided inside the headers callback.
        let host = FakeHost::upload("acme", Some(1)).refusing_dispatch();
        let next = RequestFlow::new(cfg.clone()).on_request_headers(&host, false);
        let expected = if mode == "open" {
            Next::Continue
        } else {
            Next::Pause
        };
        assert_eq!(next, expected);
        assert_eq!(host.resumed(), 0);
        // No answer in time; a late answer is ignored.
        let host = FakeHost::upload("acme", Some(1));
        let mut flow = RequestFlow::new(cfg.clone());
        flow.on_request_headers(&host, false);
        flow.on_deadline(&host);
        flow.on_check_response(&host, Some(200), &reject());
        assert_eq!(host.counted(Metric::CalloutTimeouts), 1);
        assert_eq!(host.local_status(), status);
        if mode == "open" {
            assert_eq!(host.resumed(), 1);
            flow.on_response_headers(&host);
            assert_eq!(
                host.added_header("x-quota-status").as_deref(),
                Some("unknown")
            );
            assert!(flow.settlement(&host).is_none(), "nothing was counted");
        }
    }
}

#[test]
fn a_check_answered_404_or_401_is_counted_as_misconfigured_and_gets_the_failure_mode() {
    for (status, misconfigured) in [(404, 1), (401, 1), (503, 0)] {
        let host = FakeHost::upload("acme", Some(1));
        let mut flow = RequestFlow::new(config(json!({"failure_mode": "closed"})));
        flow.on_request_headers(&host, false);
        flow.on_check_response(&host, Some(status), b"{}");
        assert_eq!(host.local_status(), Some(503), "{status}");
        assert_eq!(host.counted(Metric::CalloutFailures), 1);
        assert_eq!(
            host.counted(Metric::ControlPlaneMisconfigured),
            misconfigured,
            "{status}"
        );
        let reported = flow.take_follow_ups().misconfigured;
        assert_eq!(
            reported.map(|m| (m.status, m.path)),
            (misconfigured == 1).then_some((status, "/v1/check"))
        );
    }
}

fn request_bytes(check: &CheckRequest) -> u64 {
    check.amounts["request_bytes"]
}

#[test]
fn chunked_body_asks_ahead_while_it_flows_then_exactly_and_is_refused_past_the_limit() {
    let cfg = config(json!({"costs": {"stream_reserve_bytes": 1000}}));
    let host = FakeHost::upload("acme", None);
    let mut flow = RequestFlow::new(cfg);
    flow.on_request_headers(&host, false);
    assert_eq!(request_bytes(&host.last_check()), 0);

    // Admitted: the first reservation is asked for ahead, without holding anything.
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(host.checks().len(), 2);
    assert_eq!(
        host.last_check().amounts,
        [("request_bytes".into(), 1000)].into()
    );
    assert!(!host.last_check().amounts.contains_key("requests"));

    // A chunk before that answer is buffered; the answer lets it go. 600 of the 1000 are
    // left: the next reservation is not due yet.
    assert_eq!(flow.on_request_body(&host, 400, false), Next::Pause);
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(host.resumed(), 2);
    assert_eq!(host.checks().len(), 2);

    // Within what is counted the body flows; with less than half left, the next
    // reservation, twice as large, is asked for ahead.
    assert_eq!(flow.on_request_body(&host, 500, false), Next::Continue);
    assert_eq!(request_bytes(&host.last_check()), 2000);
    // Ahead does not fit: from now on only exactly what was seen is asked for.
    flow.on_check_response(&host, Some(200), &reject());
    assert!(host.local_reply().is_none());
    assert_eq!(flow.on_request_body(&host, 300, false), Next::Pause);
    assert_eq!(request_bytes(&host.last_check()), 200);
    flow.on_check_response(&host, Some(200), &reject());
    assert_eq!(host.local().0, 429);
    assert_eq!(host.checks().len(), 4);

    // 900 bytes went upstream, 1000 were counted: 100 are refunded.
    let settle = flow.settlement(&host).unwrap();
    assert_eq!(settle.amounts, [("request_bytes".into(), -100)].into());
    assert_eq!(settle.checked_at_ms, 1_000);
}

#[test]
fn the_end_of_a_chunked_body_waits_for_the_ask_ahead_in_flight() {
    let host = FakeHost::upload("acme", None);
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, false);
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(flow.on_request_body(&host, 10, true), Next::Pause);
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(host.resumed(), 2);
    let settle = flow.settlement(&host).unwrap();
    assert_eq!(settle.amounts["request_bytes"], 10 - 65_536);
}

#[test]
fn a_failed_ask_ahead_pauses_nothing_and_the_next_needed_check_decides() {
    let cfg = config(json!({"failure_mode": "closed"}));
    let host = FakeHost::upload("acme", None);
    let mut flow = RequestFlow::new(cfg);
    flow.on_request_headers(&host, false);
    flow.on_check_response(&host, Some(200), &allow());
    flow.on_check_response(&host, Some(503), b"");
    assert!(host.local_reply().is_none(), "nothing was waiting on it");
    assert_eq!(flow.on_request_body(&host, 10, false), Next::Pause);
    flow.on_check_response(&host, Some(503), b"");
    assert_eq!(host.local().0, 503);
}

#[test]
fn body_longer_than_announced_is_checked_before_it_goes_on() {
    let host = FakeHost::upload("acme", Some(10));
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, false);
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(flow.on_request_body(&host, 25, true), Next::Pause);
    assert_eq!(
        host.last_check().amounts["request_bytes"],
        15,
        "exact at the end"
    );
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(host.resumed(), 2);
    assert!(flow.settlement(&host).is_none());
}

#[test]
fn body_shorter_than_announced_is_refunded() {
    let host = FakeHost::upload("acme", Some(1000));
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, false);
    flow.on_check_response(&host, Some(200), &allow());
    flow.on_request_body(&host, 300, false);
    // The client went away.
    let settle = flow.settlement(&host).unwrap();
    assert_eq!(settle.amounts, [("request_bytes".into(), -700)].into());
}

#[test]
fn response_costs_are_reserved_then_settled_to_what_the_upstream_reported() {
    let cfg = config(json!({"costs": {
        "response_bytes": true,
        "response_json": {"pointer": "/usage/total_tokens", "resource": "tokens"},
        "response_reserve": 2
    }}));
    let host = FakeHost::upload("acme", Some(0))
        .with_response_headers(&[("content-type", "application/json")]);
    let mut flow = RequestFlow::new(cfg);
    flow.on_request_headers(&host, false);
    let check = host.last_check();
    assert_eq!(
        (check.amounts["tokens"], check.amounts["response_bytes"]),
        (2, 2)
    );
    flow.on_check_response(&host, Some(200), &allow());
    flow.on_response_headers(&host);
    let body = br#"{"usage":{"total_tokens":40}}"#;
    host.set_response_chunk(body);
    flow.on_response_body(&host, body.len());
    let settle: SettleRequest = flow.settlement(&host).unwrap();
    // An id of the host's own (the check had the first): a retry is recognised by it.
    assert_eq!(settle.id, host.id(2));
    assert_eq!(settle.amounts["tokens"], 38);
    assert_eq!(settle.amounts["response_bytes"], body.len() as i64 - 2);
}

#[test]
fn shadow_mode_asks_to_count_regardless_and_never_rejects() {
    let cfg = config(json!({"shadow": true}));
    let host = FakeHost::upload("acme", Some(100));
    let mut flow = RequestFlow::new(cfg.clone());
    flow.on_request_headers(&host, false);
    assert!(host.last_check().shadow);
    let mut warn: Value =
        serde_json::from_slice(&answer("warn", None, policy("request_bytes", 1300, 0))).unwrap();
    warn["shadow_reject"] = true.into();
    flow.on_check_response(&host, Some(200), &serde_json::to_vec(&warn).unwrap());
    assert_eq!(host.resumed(), 1);
    assert_eq!(host.counted(Metric::ShadowRejected), 1);
    // Even a plain REJECT is let through.
    let host = FakeHost::upload("acme", Some(100));
    let mut flow = RequestFlow::new(cfg);
    flow.on_request_headers(&host, false);
    flow.on_check_response(&host, Some(200), &reject());
    assert!(host.local_reply().is_none());
    assert_eq!(host.resumed(), 1);
}

#[test]
fn a_hold_is_taken_under_an_id_of_the_filters_own_and_released_at_the_end() {
    // The request carries `x-request-id: req-1`, which a client may choose: not used.
    let host = FakeHost::upload("acme", Some(0));
    let mut flow = RequestFlow::new(config(json!({"costs": {"concurrent_requests": true}})));
    flow.on_request_headers(&host, false);
    let check = host.last_check();
    assert_eq!(check.amounts["concurrent_requests"], 1);
    assert_eq!(check.request_id, Some(host.id(1)));
    flow.on_check_response(&host, Some(200), &allow());
    let settle = flow.settlement(&host).unwrap();
    assert_eq!(settle.release_request_id, Some(host.id(1)));
    assert!(settle.amounts.is_empty(), "nothing to correct but the hold");
}

#[test]
fn jwt_tenant_and_roles_reach_the_check() {
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"org":{"id":"acme"},"roles":["gold"]}"#);
    let host = FakeHost::request(&[
        (":path", "/x"),
        (":method", "GET"),
        ("x-jwt-payload", &payload),
        ("x-tenant-id", "someone-else"),
    ]);
    let cfg = config(json!({"tenant": {"from": "jwt", "claim": "org.id", "roles_claim": "roles"}}));
    RequestFlow::new(cfg).on_request_headers(&host, true);
    let check = host.last_check();
    assert_eq!(
        (check.tenant.as_str(), check.roles),
        ("acme", vec!["gold".to_string()])
    );
}

fn lease(granted: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "decision": "allow", "tenant": "acme", "granted": granted, "ttl_ms": 10_000,
        "policy": policy("requests", 10, 90), "warn_after": 80
    }))
    .unwrap()
}

#[test]
fn with_budgets_the_first_request_refills_and_the_next_ones_need_no_callout() {
    let cfg = config(json!({"budgets": {"enabled": true, "want": 50}}));
    let first = FakeHost::get("acme");
    let mut flow = RequestFlow::new(cfg.clone());
    assert_eq!(flow.on_request_headers(&first, true), Next::Pause);
    let refill = first.dispatched()[0].clone();
    assert!(refill
        .headers
        .contains(&(":path".into(), "/v1/leases".into())));
    let ask: Value = refill.json();
    assert_eq!(
        (ask["resource"].as_str(), ask["want"].as_u64()),
        (Some("requests"), Some(50))
    );
    flow.on_check_response(&first, Some(200), &lease(2));
    assert_eq!(first.resumed(), 1);
    let taken = flow.take_follow_ups().leases;
    assert_eq!(taken.len(), 1, "the worker returns it when it expires");

    // The second request is paid from the budget; the third finds it spent and refills,
    // returning the first lease with both requests spent.
    let second = FakeHost::get("acme").sharing(&first);
    let mut flow = RequestFlow::new(cfg.clone());
    assert_eq!(flow.on_request_headers(&second, true), Next::Continue);
    assert!(second.dispatched().is_empty());
    assert_eq!(second.counted(Metric::BudgetHits), 1);
    flow.on_response_headers(&second);
    assert_eq!(second.added_header("x-quota-used").as_deref(), Some("12"));
    let third = FakeHost::get("acme").sharing(&first);
    RequestFlow::new(cfg).on_request_headers(&third, true);
    let ask: Value = third.dispatched()[0].json();
    assert_eq!(ask["previous"]["spent"], 2);
}

#[test]
fn a_lease_for_the_largest_body_wants_no_more_than_the_control_plane_counts() {
    let cfg = config(json!({"budgets": {"enabled": true}}));
    let host = FakeHost::upload("acme", Some(AMOUNT_MAX));
    RequestFlow::new(cfg).on_request_headers(&host, false);
    let ask: Value = host.dispatched()[0].json();
    assert_eq!(
        (ask["resource"].as_str(), ask["want"].as_u64()),
        (Some("request_bytes"), Some(AMOUNT_MAX))
    );
}

#[test]
fn a_failed_refill_applies_the_failure_mode_and_resends_the_return() {
    let cfg = config(json!({"budgets": {"enabled": true}, "failure_mode": "closed"}));
    let get = || FakeHost::get("acme");
    let host = get();
    let mut flow = RequestFlow::new(cfg.clone());
    flow.on_request_headers(&host, true);
    flow.on_check_response(&host, Some(200), &lease(1)); // and spends it
    let next = get().sharing(&host);
    let mut flow = RequestFlow::new(cfg);
    flow.on_request_headers(&next, true); // refills, returning the first lease
    flow.on_deadline(&next);
    assert_eq!(next.local().0, 503);
    let refill: Value = next.dispatched()[0].json();
    let returns = flow.take_follow_ups().returns;
    let given_back: Vec<_> = (returns.iter())
        .map(|r| {
            let previous = r.previous.as_ref().unwrap();
            (r.want, previous.id.clone(), previous.spent)
        })
        .collect();
    // The spent lease, and the refill's own, which may have been granted unseen.
    let first = refill["previous"]["id"].as_str().unwrap().to_string();
    let new = refill["id"].as_str().unwrap().to_string();
    assert_eq!(given_back, vec![(0, first, 1), (0, new, 0)]);
}

#[test]
fn a_check_whose_client_went_away_before_its_answer_is_taken_back() {
    let host = FakeHost::upload("acme", Some(10));
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, false);
    let id = host.last_check().request_id.unwrap();
    flow.abandon(&host);
    let cancels = flow.take_follow_ups().cancels;
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        (cancels[0].request_id.as_str(), cancels[0].refund),
        (id.as_str(), true)
    );
    // Answered before the client went: admitted, nothing to take back.
    let host = FakeHost::upload("acme", Some(10));
    let mut flow = RequestFlow::new(config(json!({})));
    flow.on_request_headers(&host, false);
    flow.on_check_response(&host, Some(200), &allow());
    flow.abandon(&host);
    assert!(flow.take_follow_ups().cancels.is_empty());
}

#[test]
fn a_check_refused_by_the_failure_mode_is_taken_back_and_one_let_through_is_not() {
    for (mode, taken_back) in [("closed", true), ("open", false)] {
        let host = FakeHost::upload("acme", Some(10));
        let mut flow = RequestFlow::new(config(json!({"failure_mode": mode})));
        flow.on_request_headers(&host, false);
        let check = host.last_check();
        let id = check.request_id.clone().expect("every check carries an id");
        flow.on_deadline(&host);
        let cancels = flow.take_follow_ups().cancels;
        let expected: Vec<_> = taken_back
            .then(|| ReleaseRequest {
                tenant: "acme".into(),
                request_id: id,
                refund: true,
            })
            .into_iter()
            .collect();
        assert_eq!(cancels, expected, "failure mode {mode}");
        // A late answer changes nothing any more.
        flow.on_check_response(&host, Some(200), &allow());
        assert!(flow.take_follow_ups().cancels.is_empty(), "{mode}");
    }
}

#[test]
fn a_lease_refused_at_the_limit_answers_429_and_is_remembered() {
    let cfg = config(json!({"budgets": {"enabled": true}}));
    let host = FakeHost::get("acme");
    let mut flow = RequestFlow::new(cfg);
    flow.on_request_headers(&host, true);
    let refused = json!({
        "decision": "reject", "reason": "quota_exceeded", "tenant": "acme", "granted": 0,
        "ttl_ms": 0, "policy": policy("requests", 100, 0), "cache_reject_for_s": 30
    });
    flow.on_check_response(&host, Some(200), &serde_json::to_vec(&refused).unwrap());
    assert_eq!(host.local().0, 429);
    assert_eq!(host.counted(Metric::Rejected), 1);
    assert!(!host
        .shared_keys()
        .iter()
        .all(|k| k.starts_with("tollgate.budget")));
}

#[test]
fn a_request_that_ends_during_its_refill_returns_both_leases() {
    let cfg = config(json!({"budgets": {"enabled": true}}));
    let get = || FakeHost::get("acme");
    let host = get();
    let mut flow = RequestFlow::new(cfg.clone());
    flow.on_request_headers(&host, true);
    flow.on_check_response(&host, Some(200), &lease(1));
    let gone = get().sharing(&host);
    let mut flow = RequestFlow::new(cfg);
    flow.on_request_headers(&gone, true); // refills; the client leaves before the answer
    flow.abandon(&gone);
    let returns = flow.take_follow_ups().returns;
    let spent: Vec<Option<u64>> = returns
        .iter()
        .map(|r| r.previous.as_ref().map(|p| p.spent))
        .collect();
    assert_eq!(
        spent,
        vec![Some(1), Some(0)],
        "the old lease, then the new one unspent"
    );
    // The budget's slot is free for the next request to refill.
    let next = get().sharing(&host);
    RequestFlow::new(config(json!({"budgets": {"enabled": true}}))).on_request_headers(&next, true);
    let ask: Value = next.dispatched()[0].json();
    assert_eq!(ask["previous"], Value::Null, "nothing left to return");
}

/// A request for `acme` on `worker`, sharing `first`'s shared data.
fn sharing(first: &FakeHost, worker: &str) -> FakeHost {
    FakeHost::get("acme").sharing(first).on_worker(worker)
}

/// A request of worker `w` (the fake host's own) that refills acme's budget under `cfg`, and another of the
/// same worker that waits for that refill; both are paused.
fn a_refill_and_its_waiter(
    cfg: &Rc<FilterConfig>,
) -> (FakeHost, RequestFlow, FakeHost, RequestFlow) {
    let refiller = FakeHost::get("acme");
    let mut refilling = RequestFlow::new(cfg.clone());
    assert_eq!(refilling.on_request_headers(&refiller, true), Next::Pause);
    let waiter = sharing(&refiller, "w");
    let mut waiting = RequestFlow::new(cfg.clone());
    assert_eq!(waiting.on_request_headers(&waiter, true), Next::Pause);
    (refiller, refilling, waiter, waiting)
}

#[test]
fn requests_of_the_refilling_worker_wait_for_its_answer_and_are_paid_from_the_new_budget() {
    let cfg = config(json!({"budgets": {"enabled": true}}));
    let (refiller, mut refilling, waiter, mut waiting) = a_refill_and_its_waiter(&cfg);
    // Same worker: waits, no callout of its own.
    assert!(waiter.dispatched().is_empty());
    assert_eq!(waiter.counted(Metric::BudgetWaits), 1);
    let key = waiting
        .take_follow_ups()
        .waits_for
        .expect("waits for the refill");
    assert!(
        waiting.awaiting_until().is_some(),
        "within its own deadline"
    );

    // Another worker cannot be woken from here: it is checked.
    let elsewhere = sharing(&refiller, "h");
    assert_eq!(
        RequestFlow::new(cfg).on_request_headers(&elsewhere, true),
        Next::Pause
    );
    let headers = elsewhere.dispatched()[0].headers.clone();
    assert!(headers.contains(&(":path".into(), "/v1/check".into())));

    refilling.on_check_response(&refiller, Some(200), &lease(5));
    let ended = refilling.take_follow_ups().refills_ended;
    assert_eq!(ended, vec![(key, RefillEnd::Answered)]);
    assert_eq!(
        waiting.on_refill_ended(&waiter, RefillEnd::Answered, false),
        Woken::Done
    );
    assert_eq!(waiter.resumed(), 1);
    assert_eq!(waiter.counted(Metric::BudgetHits), 1);
    assert!(waiter.dispatched().is_empty());
    assert_eq!(waiting.awaiting_until(), None);
}

#[test]
fn waiters_of_a_refill_that_failed_apply_the_failure_mode_and_a_late_wake_is_ignored() {
    let cfg = config(json!({"budgets": {"enabled": true}, "failure_mode": "closed"}));
    let (refiller, mut refilling, waiter, mut waiting) = a_refill_and_its_waiter(&cfg);
    let impatient = sharing(&refiller, "w");
    let mut first_to_give_up = RequestFlow::new(cfg);
    first_to_give_up.on_request_headers(&impatient, true);

    // Its own deadline decides first: the failure mode, not counted as a callout.
    first_to_give_up.on_deadline(&impatient);
    assert_eq!(impatient.local().0, 503);
    assert_eq!(impatient.counted(Metric::CalloutTimeouts), 0);

    refilling.on_deadline(&refiller);
    assert_eq!(
        refilling.take_follow_ups().refills_ended.len(),
        1,
        "the failure wakes the waiters"
    );
    waiting.on_refill_ended(&waiter, RefillEnd::Failed, false);
    assert_eq!(waiter.local().0, 503);
    assert_eq!(waiter.counted(Metric::FailedClosed), 1);

    // Woken late, the request that gave up does nothing more.
    first_to_give_up.on_refill_ended(&impatient, RefillEnd::Failed, false);
    assert_eq!(impatient.counted(Metric::FailedClosed), 1);
    assert!(impatient.dispatched().is_empty());
}

#[test]
fn a_waiter_the_new_budget_cannot_pay_is_deferred_to_the_root_and_then_refills() {
    let cfg = config(json!({"budgets": {"enabled": true}}));
    let (refiller, mut refilling, waiter, mut waiting) = a_refill_and_its_waiter(&cfg);
    waiting.take_follow_ups();

    // One unit granted, and the refilling request spends it.
    refilling.on_check_response(&refiller, Some(200), &lease(1));
    // Woken in the refilling request's callback, it may not call out from there.
    assert_eq!(
        waiting.on_refill_ended(&waiter, RefillEnd::Answered, false),
        Woken::Deferred
    );
    assert!(waiter.dispatched().is_empty());
    assert!(
        waiting.awaiting_until().is_some(),
        "its deadline still runs"
    );
    // The root decides it: a refill of its own, its token handed to the root to route.
    waiting.decide_deferred(&waiter);
    let headers = waiter.dispatched()[0].headers.clone();
    assert!(headers.contains(&(":path".into(), "/v1/leases".into())));
    assert_eq!(waiting.take_follow_ups().dispatched.len(), 1);
}

fn deadline_header(host: &FakeHost) -> Option<String> {
    let last = host.dispatched().pop()?;
    last.header("x-tollgate-deadline-ms").map(str::to_string)
}

#[test]
fn a_refill_then_a_check_share_one_deadline() {
    let cfg = config(json!({"budgets": {"enabled": true}, "failure_mode": "closed"}));
    let start = FakeHost::get("acme");
    let mut flow = RequestFlow::new(cfg.clone());
    flow.on_request_headers(&start, true);
    assert_eq!(deadline_header(&start).as_deref(), Some("150"));
    assert_eq!(flow.awaiting_until(), Some(1_150));

    // The lease comes 100 ms later with nothing granted: the check gets what is left.
    let answered = start.later(100);
    flow.on_check_response(&answered, Some(200), &lease(0));
    let headers = answered.dispatched()[0].headers.clone();
    assert!(headers.contains(&(":path".into(), "/v1/check".into())));
    assert_eq!(deadline_header(&answered).as_deref(), Some("50"));
    assert_eq!(flow.awaiting_until(), Some(1_150), "the same deadline");

    // Answered at the deadline itself, no check is sent: the failure mode decides.
    let mut flow = RequestFlow::new(cfg);
    let start = FakeHost::get("acme");
    flow.on_request_headers(&start, true);
    assert_eq!(deadline_header(&start).as_deref(), Some("150"));
    let too_late = start.later(150);
    flow.on_check_response(&too_late, Some(200), &lease(0));
    assert!(too_late.dispatched().is_empty());
    assert_eq!(too_late.local().0, 503);
}

#[test]
fn a_waiter_decided_by_the_root_calls_out_within_what_is_left_of_its_deadline() {
    let cfg = config(json!({"budgets": {"enabled": true}}));
    let (refiller, mut refilling, waiter, mut waiting) = a_refill_and_its_waiter(&cfg);
    assert_eq!(waiting.awaiting_until(), Some(1_150));

    // The refill is answered 120 ms later with one unit, which its own request spends.
    refilling.on_check_response(&refiller.later(120), Some(200), &lease(1));
    let woken = waiter.later(120);
    assert_eq!(
        waiting.on_refill_ended(&woken, RefillEnd::Answered, false),
        Woken::Deferred
    );
    let decided = waiter.later(125);
    waiting.decide_deferred(&decided);
    assert_eq!(deadline_header(&decided).as_deref(), Some("25"));
    assert_eq!(waiting.awaiting_until(), Some(1_150));
}

#[test]
fn with_budgets_a_remembered_rejection_is_read_only_when_no_budget_pays() {
    let cfg = config(json!({"budgets": {"enabled": true, "want": 50}}));
    // A budget is leased and paying.
    let first = FakeHost::get("acme");
    let mut flow = RequestFlow::new(cfg.clone());
    flow.on_request_headers(&first, true);
    flow.on_check_response(&first, Some(200), &lease(5));
    // A rejection of acme's requests is remembered meanwhile (another gateway's check).
    let refused = FakeHost::get("acme").sharing(&first);
    let mut check = RequestFlow::new(config(json!({})));
    check.on_request_headers(&refused, true);
    let rejection = answer("reject", Some("quota_exceeded"), policy("requests", 100, 0));
    check.on_check_response(&refused, Some(200), &rejection);
    assert_eq!(refused.local().0, 429);

    // The budget the control plane reserved still pays: admitted, nothing read back.
    let paid = FakeHost::get("acme").sharing(&first);
    let mut flow = RequestFlow::new(cfg.clone());
    assert_eq!(flow.on_request_headers(&paid, true), Next::Continue);
    assert_eq!(paid.counted(Metric::BudgetHits), 1);
    assert_eq!(paid.counted(Metric::RejectCacheHits), 0);

    // Once it is spent, the remembered rejection answers: no refill is asked for.
    for _ in 0..3 {
        let host = FakeHost::get("acme").sharing(&first);
        RequestFlow::new(cfg.clone()).on_request_headers(&host, true);
    }
    let exhausted = FakeHost::get("acme").sharing(&first);
    let mut flow = RequestFlow::new(cfg);
    assert_eq!(flow.on_request_headers(&exhausted, true), Next::Pause);
    assert_eq!(exhausted.local().0, 429);
    assert_eq!(exhausted.counted(Metric::RejectCacheHits), 1);
    assert!(exhausted.dispatched().is_empty(), "no lease asked for");
}
