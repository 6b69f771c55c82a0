//! Whole requests through the filter's logic (`tollgate_filter::flow::RequestFlow`)
//! against the filter's fake host (`tollgate_filter::testing`), with the control plane's answers (check and lease bodies, and
//! Envoy's statuses) arbitrary: well-formed answers with any numbers, or any bytes.
//! Several requests run one after the other on one worker, sharing its data (budgets
//! and remembered rejections), with the clock anywhere up to `u64::MAX`.
//!
//! Never a panic (the filter must not trap the VM); every callout body is one the
//! control plane parses, and asks for no amount past what it counts (it would refuse
//! the call, and the failure mode decide); every header added is a valid value and the
//! draft headers parse as Structured Fields; every local reply is a problem+json with a
//! known status, or a view of the caller's own tenant; every settlement and lease
//! return serialises to a body the control plane parses. A request for the self-view
//! (`quota_path`) is never checked, counted, settled or let through to the upstream.
//! With a priced cost, a request body the filter replaced is the client's JSON asking
//! for usage (`stream_options.include_usage: true`), and only a JSON body is held.

#![no_main]

use std::collections::HashMap;
use std::rc::Rc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use sfv::{List, Parser};
use tollgate_filter::budget;
use tollgate_filter::budget::RefillEnd;
use tollgate_filter::flow::RequestFlow;
use tollgate_filter::host::Host;
use tollgate_filter::testing::{Dispatched, FakeHost};
use tollgate_protocol::check::AMOUNT_MAX;
use tollgate_protocol::quota::QUOTA_PATH;
use tollgate_protocol::{
    CheckRequest, CheckResponse, Decision, FilterConfig, LeaseRequest, LeaseResponse, PolicyStatus,
    QuotaRequest, RejectReason, SettleRequest,
};

/// Checks what the filter did through `host` since `seen`: every callout is one the
/// control plane parses and asks for no more than it counts; every header set or added
/// is a valid value (the draft headers Structured Fields); every local reply is a
/// problem+json with a known status.
fn check_host(host: &FakeHost, context: u32, seen: &mut Seen) {
    let attempted = host.attempted();
    for callout in &attempted[seen.callouts.min(attempted.len())..] {
        check_callout(callout);
    }
    seen.callouts = attempted.len();
    let request = host.of(context);
    for (name, value) in &request.set_headers[seen.set_headers.min(request.set_headers.len())..] {
        assert!(is_header_value(value), "request header {name}: {value:?}");
    }
    seen.set_headers = request.set_headers.len();
    for (name, value) in &request.added_headers[seen.added.min(request.added_headers.len())..] {
        check_header(name, value);
    }
    seen.added = request.added_headers.len();
    for (status, headers, body) in &request.replies[seen.replies.min(request.replies.len())..] {
        assert!(
            [200, 400, 401, 403, 405, 429, 503].contains(status),
            "status {status}"
        );
        for (name, value) in headers {
            check_header(name, value);
        }
        let json: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
        if *status == 200 {
            // A view, passed on as the control plane wrote it: the caller's own tenant's.
            let asked = attempted.iter().rev().find(|c| c.path() == QUOTA_PATH);
            let asked: QuotaRequest = asked.expect("a view that was asked for").json();
            assert_eq!(json["tenant"], asked.tenant.as_str());
            let cache = headers.iter().find(|(n, _)| n == "cache-control");
            assert_eq!(cache.map(|(_, v)| v.as_str()), Some("private, max-age=1"));
        } else {
            assert_eq!(json["status"], *status);
        }
    }
    seen.replies = request.replies.len();
}

/// How much of the host's recordings [`check_host`] has checked.
#[derive(Default)]
struct Seen {
    callouts: usize,
    set_headers: usize,
    added: usize,
    replies: usize,
}

fn check_callout(callout: &Dispatched) {
    let path = callout.header(":path").expect("a callout has a :path");
    for name in [":method", ":authority"] {
        assert!(callout.header(name).is_some(), "a callout has {name}");
    }
    match path {
        "/v1/check" => {
            let check: CheckRequest = serde_json::from_slice(&callout.body).unwrap();
            assert!(tollgate_protocol::is_valid_tenant_id(&check.tenant));
            for (resource, amount) in &check.amounts {
                assert!(
                    *amount <= AMOUNT_MAX,
                    "{resource}: {amount} is more than is counted"
                );
            }
        }
        QUOTA_PATH => {
            let view: QuotaRequest = serde_json::from_slice(&callout.body).unwrap();
            assert!(tollgate_protocol::is_valid_tenant_id(&view.tenant));
        }
        "/v1/leases" => {
            let lease: LeaseRequest = serde_json::from_slice(&callout.body).unwrap();
            assert!(
                lease.want <= AMOUNT_MAX,
                "want {} is more than is counted",
                lease.want
            );
        }
        other => panic!("a callout to {other}"),
    }
}

fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

fn check_header(name: &str, value: &str) {
    assert!(is_header_value(value), "header {name}: {value:?}");
    if name == "ratelimit" || name == "ratelimit-policy" {
        Parser::new(value)
            .parse::<List>()
            .unwrap_or_else(|e| panic!("{name}: {value:?}: {e:?}"));
    }
}

#[derive(Arbitrary, Debug)]
struct Knobs {
    from_path: bool,
    requests: bool,
    request_bytes: bool,
    stream_reserve_bytes: u64,
    response_bytes: bool,
    response_header: bool,
    response_json: Option<u16>,
    response_reserve: u64,
    concurrent_requests: bool,
    budgets: Option<u64>,
    /// A priced cost: its model read from the request (else the response), whether
    /// `include_usage` rewrites `/tenants/acme/upload`, and each part's reserve.
    priced: Option<(bool, bool, u16)>,
    closed: bool,
    shadow: bool,
    reject_cache_max_s: u64,
    timeout_ms: u16,
    draft: bool,
    cache_quota_names: bool,
    quota_path: bool,
}

impl Knobs {
    fn config(&self) -> Option<FilterConfig> {
        let mut costs = json!({
            "requests": self.requests,
            "request_bytes": self.request_bytes,
            "stream_reserve_bytes": self.stream_reserve_bytes.max(1),
            "response_bytes": self.response_bytes,
            "response_reserve": self.response_reserve,
            "concurrent_requests": self.concurrent_requests,
        });
        if self.response_header {
            costs["response_header"] = json!({"header": "x-usage-tokens", "resource": "tokens"});
        }
        if let Some(max) = self.response_json {
            costs["response_json"] = json!({
                "pointer": "/usage/total_tokens", "resource": "tokens",
                "max_body_bytes": u64::from(max).max(1),
            });
        }
        if let Some((from_request, include_usage, reserve)) = self.priced {
            costs["priced"] = json!({
                "resource": "cost",
                "parts": [
                    {"name": "input", "pointer": ["/usage/prompt_tokens", "/message/usage/input_tokens"],
                     "resource": "input_tokens", "reserve": reserve},
                    {"name": "output", "pointer": "/usage/completion_tokens", "reserve": reserve}
                ],
                "model": {"from": if from_request { "request" } else { "response" },
                          "pointer": ["/model", "/message/model"]},
                "prices": {"gpt-4o": {"input": 3, "output": -1}, "gpt*": {"input": 1}},
                "include_usage": if include_usage { vec!["/tenants"] } else { vec![] },
                "max_request_bytes": 256,
                "max_body_bytes": 256,
            });
        }
        let tenant = if self.from_path {
            json!({"from": "path", "path_pattern": "/tenants/{tenant}"})
        } else {
            json!({"from": "header"})
        };
        let config = json!({
            "control_plane": {"cluster": "cp", "timeout_ms": u64::from(self.timeout_ms).clamp(1, 60_000)},
            "tenant": tenant,
            "costs": costs,
            "headers": {"draft": self.draft, "cache_quota_names": self.cache_quota_names},
            "failure_mode": if self.closed { "closed" } else { "open" },
            "shadow": self.shadow,
            "reject_cache_max_s": self.reject_cache_max_s,
            "budgets": {"enabled": self.budgets.is_some(), "want": self.budgets.unwrap_or(1).max(1)},
            "quota_path": self.quota_path.then_some("/.well-known/quota"),
        });
        FilterConfig::from_json(config.to_string().as_bytes()).ok()
    }
}

#[derive(Arbitrary, Debug)]
struct Policy {
    name: String,
    owner: Option<String>,
    resource: u8,
    quota: u64,
    limit: u64,
    used: u64,
    remaining: u64,
    reset_after_s: u64,
    window_s: Option<u64>,
}

impl Policy {
    fn status(&self) -> PolicyStatus {
        let resources = ["requests", "request_bytes", "tokens", "response_bytes", "x"];
        PolicyStatus {
            name: self.name.clone(),
            tenant: self.owner.clone(),
            resource: resources[usize::from(self.resource) % resources.len()].into(),
            quota: self.quota,
            limit: self.limit,
            used: self.used,
            remaining: self.remaining,
            reset_after_s: self.reset_after_s,
            window_s: self.window_s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Body {
    Check {
        decision: u8,
        reason: Option<bool>,
        policy: Option<Policy>,
        cache_reject_for_s: u64,
        shadow_reject: bool,
    },
    Lease {
        decision: u8,
        reason: Option<bool>,
        granted: u64,
        ttl_ms: u64,
        policy: Option<Policy>,
        warn_after: Option<u64>,
        cache_reject_for_s: u64,
        refunded: u64,
    },
    /// A view of the caller's tenant (or of `other`), known or not, with more fields.
    View {
        other: Option<String>,
        unknown: bool,
        extra: Option<String>,
    },
    Raw(Vec<u8>),
}

fn decision(n: u8) -> Decision {
    [Decision::Allow, Decision::Warn, Decision::Reject][usize::from(n) % 3]
}

fn reason(r: Option<bool>) -> Option<RejectReason> {
    r.map(|unknown| {
        if unknown {
            RejectReason::UnknownTenant
        } else {
            RejectReason::QuotaExceeded
        }
    })
}

impl Body {
    fn bytes(&self, tenant: &str) -> Vec<u8> {
        match self {
            Body::Check {
                decision: d,
                reason: r,
                policy,
                cache_reject_for_s,
                shadow_reject,
            } => serde_json::to_vec(&CheckResponse {
                decision: decision(*d),
                reason: reason(*r),
                tenant: tenant.into(),
                policy: policy.as_ref().map(Policy::status),
                cache_reject_for_s: *cache_reject_for_s,
                shadow_reject: *shadow_reject,
            })
            .unwrap(),
            Body::Lease {
                decision: d,
                reason: r,
                granted,
                ttl_ms,
                policy,
                warn_after,
                cache_reject_for_s,
                refunded,
            } => serde_json::to_vec(&LeaseResponse {
                decision: decision(*d),
                reason: reason(*r),
                tenant: tenant.into(),
                granted: *granted,
                ttl_ms: *ttl_ms,
                policy: policy.as_ref().map(Policy::status),
                warn_after: *warn_after,
                cache_reject_for_s: *cache_reject_for_s,
                refunded: *refunded,
            })
            .unwrap(),
            Body::View {
                other,
                unknown,
                extra,
            } => {
                let mut view = json!({
                    "tenant": other.as_deref().unwrap_or(tenant),
                    "at": "2026-11-17T12:00:00.000Z", "binding": null, "limits": [],
                    "extra": extra,
                });
                if *unknown {
                    view["reason"] = json!("unknown_tenant");
                }
                serde_json::to_vec(&view).unwrap()
            }
            Body::Raw(bytes) => bytes.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Event {
    Body {
        buffered: u64,
        end: bool,
    },
    /// A body callback showing `part`/128 of the request's body (all of it from 128
    /// on), as Envoy buffers it when the filter holds it.
    BodyPart {
        part: u8,
        end: bool,
    },
    Trailers,
    /// The control plane allows (a 200 with a well-formed ALLOW): the usual answer,
    /// made easy to reach so the steps after an admission are fuzzed deeply.
    Allow,
    /// Envoy's status (`None`: no `:status`) and the body.
    Answer {
        status: Option<u16>,
        body: Body,
    },
    Deadline,
    RefillEnded {
        failed: bool,
        may_call_out: bool,
    },
    DecideDeferred,
    Abandon,
    Later(u32),
    Clock(u64),
    ResponseHeaders {
        stream: bool,
        cost: Option<String>,
        status: u16,
    },
    ResponseBody(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Request {
    method: u8,
    /// `None`: `/tenants/acme/upload`.
    path: Option<String>,
    /// Ask for the self-view instead (under the tenant's prefix when it comes from the
    /// path), with this query.
    view: Option<String>,
    /// `None`: `acme`.
    tenant: Option<Option<String>>,
    content_length: Option<Result<u64, String>>,
    request_id: Option<String>,
    /// What Envoy buffers of the body when the filter reads it (a chat request comes
    /// with `content-type: application/json`).
    body: RequestBody,
    end_of_stream: bool,
    refuse_dispatch: bool,
    events: Vec<Event>,
}

/// A request body: a chat request (streaming or not, asking for usage or not), or bytes.
#[derive(Arbitrary, Debug)]
enum RequestBody {
    Chat {
        model: String,
        stream: Option<bool>,
        options: Option<Option<bool>>,
    },
    Raw(Vec<u8>),
}

impl RequestBody {
    fn bytes(&self) -> Vec<u8> {
        match self {
            RequestBody::Chat {
                model,
                stream,
                options,
            } => {
                let mut chat =
                    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
                if let Some(stream) = stream {
                    chat["stream"] = json!(stream);
                }
                match options {
                    Some(Some(usage)) => chat["stream_options"] = json!({"include_usage": usage}),
                    Some(None) => chat["stream_options"] = json!({}),
                    None => {}
                }
                serde_json::to_vec(&chat).unwrap()
            }
            RequestBody::Raw(bytes) => bytes.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    knobs: Knobs,
    start_ms: u64,
    requests: Vec<Request>,
}

fuzz_target!(|input: Input| {
    let Some(config) = input.knobs.config() else {
        return;
    };
    let config = Rc::new(config);
    let host = FakeHost::default().at(input.start_ms);
    for (n, request) in (2..).zip(input.requests.iter().take(8)) {
        let methods = ["GET", "POST", "PUT", "OPTIONS"];
        let mut headers = HashMap::from([
            (
                ":method".to_string(),
                methods[usize::from(request.method) % 4].to_string(),
            ),
            (
                ":path".to_string(),
                match (&request.view, input.knobs.from_path) {
                    (Some(query), true) => format!("/tenants/acme/.well-known/quota?{query}"),
                    (Some(query), false) => format!("/.well-known/quota?{query}"),
                    (None, _) => request
                        .path
                        .clone()
                        .unwrap_or_else(|| "/tenants/acme/upload".into()),
                },
            ),
        ]);
        match &request.tenant {
            None => drop(headers.insert("x-tenant-id".into(), "acme".into())),
            Some(Some(tenant)) => drop(headers.insert("x-tenant-id".into(), tenant.clone())),
            Some(None) => {}
        }
        match &request.content_length {
            Some(Ok(n)) => drop(headers.insert("content-length".into(), n.to_string())),
            Some(Err(text)) => drop(headers.insert("content-length".into(), text.clone())),
            None => {}
        }
        if let Some(id) = &request.request_id {
            headers.insert("x-request-id".into(), id.clone());
        }
        let json = matches!(request.body, RequestBody::Chat { .. });
        if json {
            headers.insert("content-type".into(), "application/json".into());
        }
        let headers: Vec<(&str, &str)> = (headers.iter())
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        // Each request in a context of its own, on the same worker.
        let context = n;
        host.open(context, &headers);
        let body = request.body.bytes();
        host.with_request(context, |r| r.request_buffer = body.clone());
        host.set_refuse_dispatch(request.refuse_dispatch);
        let mut seen = Seen {
            callouts: host.attempted().len(),
            ..Seen::default()
        };

        let mut flow = RequestFlow::new(config.clone());
        flow.on_request_headers(&host, request.end_of_stream);
        check_host(&host, context, &mut seen);
        for event in request.events.iter().take(64) {
            match event {
                Event::Body { buffered, end } => drop(flow.on_request_body(&host, *buffered, *end)),
                Event::BodyPart { part, end } => {
                    let shown = body.len() * usize::from((*part).min(128)) / 128;
                    let _ = flow.on_request_body(&host, shown as u64, *end);
                }
                Event::Trailers => drop(flow.on_request_trailers(&host)),
                Event::Allow => {
                    let tenant = host.request_header("x-tenant-id").unwrap_or_default();
                    let allow = serde_json::to_vec(&json!({"decision": "allow", "tenant": tenant}));
                    flow.on_check_response(&host, Some(200), &allow.unwrap());
                }
                Event::Answer { status, body } => {
                    let tenant = host.request_header("x-tenant-id").unwrap_or_default();
                    let body = body.bytes(&tenant);
                    flow.on_check_response(&host, status.map(u32::from), &body);
                }
                Event::Deadline => flow.on_deadline(&host),
                Event::RefillEnded {
                    failed,
                    may_call_out,
                } => {
                    let end = if *failed {
                        RefillEnd::Failed
                    } else {
                        RefillEnd::Answered
                    };
                    flow.on_refill_ended(&host, end, *may_call_out);
                }
                Event::DecideDeferred => flow.decide_deferred(&host),
                Event::Abandon => flow.abandon(&host),
                Event::Later(ms) => host.advance(u64::from(*ms)),
                Event::Clock(ms) => host.set_now(*ms),
                Event::ResponseHeaders {
                    stream,
                    cost,
                    status,
                } => {
                    host.with_request(context, |r| {
                        let content_type = if *stream {
                            "text/event-stream"
                        } else {
                            "application/json"
                        };
                        let response = &mut r.response_headers;
                        response.insert(":status".into(), status.to_string());
                        response.insert("content-type".into(), content_type.into());
                        if let Some(cost) = cost {
                            response.insert("x-usage-tokens".into(), cost.clone());
                        }
                    });
                    flow.on_response_headers(&host);
                }
                Event::ResponseBody(chunk) => {
                    host.with_request(context, |r| r.response_chunk = chunk.clone());
                    flow.on_response_body(&host, chunk.len());
                }
            }
            check_host(&host, context, &mut seen);
            flow.awaiting_until();
            // What the worker does with what the request left it.
            let follow_ups = flow.take_follow_ups();
            for lease in &follow_ups.returns {
                let json = serde_json::to_vec(lease).unwrap();
                serde_json::from_slice::<LeaseRequest>(&json).unwrap();
            }
            for lease in &follow_ups.leases {
                budget::take_expired(&host, &lease.owner, &lease.id, host.now_ms());
            }
        }
        // A view (asked for, or refused for its method) was never checked nor let on.
        let mine: Vec<Dispatched> = (host.attempted().into_iter())
            .filter(|c| c.effective == context)
            .collect();
        let replies = host.of(context).replies;
        let was_view = mine.iter().any(|c| c.path() == QUOTA_PATH)
            || replies
                .iter()
                .any(|(status, _, _)| *status == 405 || *status == 200);
        if was_view {
            assert!(mine.iter().all(|c| c.path() == QUOTA_PATH), "{mine:?}");
            assert_eq!(host.of(context).resumed, 0, "a view never goes upstream");
            assert!(flow.settlement(&host).is_none(), "a view is never settled");
        }
        // A body replaced is the client's own JSON document, now asking for usage; and
        // only a JSON request's body is ever replaced, or has its length dropped.
        let seen = host.of(context);
        for replaced in &seen.replaced_bodies {
            let mut document: serde_json::Value = serde_json::from_slice(replaced).unwrap();
            assert_eq!(document["stream_options"]["include_usage"], json!(true));
            assert_eq!(document["stream"], json!(true));
            let mut client: serde_json::Value = serde_json::from_slice(&body).unwrap();
            document["stream_options"]["include_usage"] = json!(null);
            client["stream_options"]["include_usage"] = json!(null);
            if client["stream_options"] == json!({"include_usage": null}) {
                client["stream_options"] = json!(null);
            }
            if document["stream_options"] == json!({"include_usage": null}) {
                document["stream_options"] = json!(null);
            }
            assert_eq!(document, client, "only include_usage changed");
        }
        if !seen.replaced_bodies.is_empty() || !seen.removed_headers.is_empty() {
            assert!(json, "a body that is not JSON is left alone");
            assert_eq!(seen.removed_headers, ["content-length"]);
        }
        if let Some(settle) = flow.settlement(&host) {
            let json = serde_json::to_vec(&settle).unwrap();
            let parsed: SettleRequest = serde_json::from_slice(&json).unwrap();
            assert_eq!(parsed, settle);
        }
    }
});
