//! Priced costs (`costs.priced`) through a request's whole flow against the fake host:
//! the reserve at the headers, parts summed at each model's weights, parts counted on
//! their own, unknown models, the `include_usage` rewrite of a streaming request's body
//! (and its `content-length`), and what an interrupted answer is charged.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Value};
use tollgate_filter::flow::{Next, RequestFlow};
use tollgate_filter::host::{Host, Metric};
use tollgate_filter::testing::{FakeHost, REQUEST};
use tollgate_protocol::FilterConfig;

/// An OpenAI-style price table in micro-USD per million tokens: the prompt count
/// includes the cached tokens, which cost half, hence the negative weight.
fn openai_prices() -> Value {
    json!({
        "gpt-4o": {"prompt": 2_500_000, "completion": 10_000_000, "cached": -1_250_000},
        "gpt-4o-mini*": {"prompt": 150_000, "completion": 600_000, "cached": -75_000}
    })
}

fn priced(extra: Value) -> Value {
    let mut priced = json!({
        "resource": "cost_microusd",
        "parts": [
            {"name": "prompt", "pointer": "/usage/prompt_tokens",
             "resource": "prompt_tokens", "reserve": 1000},
            {"name": "completion", "pointer": "/usage/completion_tokens",
             "resource": "completion_tokens", "reserve": 500},
            {"name": "cached", "pointer": "/usage/prompt_tokens_details/cached_tokens"}
        ],
        "model": {"pointer": "/model"},
        "prices": openai_prices(),
        "divisor": 1_000_000
    });
    for (key, value) in extra.as_object().unwrap() {
        priced[key] = value.clone();
    }
    priced
}

fn config(priced: Value) -> Rc<FilterConfig> {
    let json = json!({
        "control_plane": {"cluster": "cp", "timeout_ms": 150},
        "costs": {"request_bytes": true, "priced": priced}
    });
    Rc::new(FilterConfig::from_json(json.to_string().as_bytes()).unwrap())
}

fn allow() -> Vec<u8> {
    serde_json::to_vec(&json!({"decision": "allow", "tenant": "acme"})).unwrap()
}

/// A `POST /v1/chat/completions` of `body` (JSON, with its `content-length`), admitted.
fn admitted(cfg: &Rc<FilterConfig>, body: &[u8]) -> (FakeHost, RequestFlow) {
    let length = body.len().to_string();
    let host = FakeHost::request(&[
        (":path", "/v1/chat/completions"),
        (":method", "POST"),
        ("x-tenant-id", "acme"),
        ("content-type", "application/json"),
        ("content-length", &length),
    ]);
    let mut flow = RequestFlow::new(cfg.clone());
    assert_eq!(flow.on_request_headers(&host, false), Next::Pause);
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(host.resumed(), 1, "admitted");
    (host, flow)
}

/// The whole body arrives in one callback.
fn send_body(host: &FakeHost, flow: &mut RequestFlow, body: &[u8]) -> Next {
    host.set_request_buffer(body);
    flow.on_request_body(host, body.len() as u64, true)
}

/// The upstream answers `status` with `content_type` and `chunks`.
fn respond(
    host: &FakeHost,
    flow: &mut RequestFlow,
    status: &str,
    content_type: &str,
    chunks: &[&str],
) {
    host.with_request(REQUEST, |r| {
        r.response_headers.insert(":status".into(), status.into());
        r.response_headers
            .insert("content-type".into(), content_type.into());
    });
    flow.on_response_headers(host);
    for chunk in chunks {
        host.set_response_chunk(chunk.as_bytes());
        flow.on_response_body(host, chunk.len());
    }
}

/// The settlement's corrections of the priced resources.
fn corrections(host: &FakeHost, flow: &RequestFlow) -> BTreeMap<String, i64> {
    let mut amounts = flow.settlement(host).map(|s| s.amounts).unwrap_or_default();
    amounts.remove("request_bytes");
    amounts
}

fn usage_json(model: &str, prompt: u64, completion: u64, cached: u64) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": cached}}
    })
    .to_string()
}

#[test]
fn the_headers_hold_a_typical_answer_at_the_highest_price_and_each_part_its_own() {
    let cfg = config(priced(json!({})));
    let (host, _) = admitted(&cfg, br#"{"model":"gpt-4o"}"#);
    let check = &host.checks()[0];
    // 1000 prompt tokens at 2.5 µUSD and 500 completion tokens at 10 µUSD.
    assert_eq!(check.amounts["cost_microusd"], 7_500);
    assert_eq!(check.amounts["prompt_tokens"], 1_000);
    assert_eq!(check.amounts["completion_tokens"], 500);
    assert_eq!(check.amounts["requests"], 1);
    assert!(!check.amounts.contains_key("cached"));
    assert!(
        host.of(REQUEST).removed_headers.is_empty(),
        "no rewrite asked for: content-length stays"
    );
}

#[test]
fn parts_are_summed_exactly_at_the_models_weights_and_counted_on_their_own() {
    let cfg = config(priced(json!({})));
    let cases = [
        // (model, prompt, completion, cached, µUSD): 1234×2.5 + 567×10 − 1000×1.25 =
        // 7505, exact; 1234×0.15 + 567×0.6 − 1000×0.075 = 450.3 → 451, rounded up once.
        ("gpt-4o", 1234, 567, 1000, 7_505),
        ("gpt-4o-mini-2024-07-18", 1234, 567, 1000, 451),
        ("gpt-4o", 1, 0, 0, 3),
    ];
    for (model, prompt, completion, cached, cost) in cases {
        let (host, mut flow) = admitted(&cfg, br#"{}"#);
        send_body(&host, &mut flow, br#"{}"#);
        let body = usage_json(model, prompt, completion, cached);
        let (a, b) = body.split_at(40);
        respond(&host, &mut flow, "200", "application/json", &[a, b]);
        let expected = BTreeMap::from([
            ("cost_microusd".to_string(), cost - 7_500),
            ("prompt_tokens".to_string(), prompt as i64 - 1_000),
            ("completion_tokens".to_string(), completion as i64 - 500),
        ]);
        assert_eq!(corrections(&host, &flow), expected, "{model}");
        assert_eq!(host.counted(Metric::UnknownModels), 0);
    }
}

#[test]
fn an_unknown_model_is_charged_the_highest_weights_counted_and_logged() {
    let cfg = config(priced(json!({})));
    let (host, mut flow) = admitted(&cfg, br#"{}"#);
    send_body(&host, &mut flow, br#"{}"#);
    let body = usage_json("o3-pro", 1000, 100, 0);
    respond(&host, &mut flow, "200", "application/json", &[&body]);
    // gpt-4o's weights are the highest: 2500 + 1000 µUSD.
    assert_eq!(corrections(&host, &flow)["cost_microusd"], 3_500 - 7_500);
    assert_eq!(host.counted(Metric::UnknownModels), 1);
    assert!(host.warnings().iter().any(|w| w.contains("\"o3-pro\"")));
}

#[test]
fn a_catch_all_entry_prices_every_other_model() {
    let mut prices = openai_prices();
    prices["*"] = json!({"prompt": 1_000_000, "completion": 1_000_000});
    let cfg = config(priced(json!({"prices": prices})));
    let (host, mut flow) = admitted(&cfg, br#"{}"#);
    send_body(&host, &mut flow, br#"{}"#);
    respond(
        &host,
        &mut flow,
        "200",
        "application/json",
        &[&usage_json("llama", 10, 5, 0)],
    );
    assert_eq!(corrections(&host, &flow)["cost_microusd"], 15 - 7_500);
    assert_eq!(host.counted(Metric::UnknownModels), 0);
}

#[test]
fn the_model_of_the_request_is_read_as_the_body_passes_and_prices_the_answer() {
    let cfg = config(priced(
        json!({"model": {"from": "request", "pointer": "/model"}}),
    ));
    let body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let (host, mut flow) = admitted(&cfg, body);
    // Two chunks, each let through at once: the body is read, never held.
    let (a, b) = body.split_at(20);
    host.set_request_buffer(a);
    assert_eq!(
        flow.on_request_body(&host, a.len() as u64, false),
        Next::Continue
    );
    host.set_request_buffer(b);
    assert_eq!(
        flow.on_request_body(&host, b.len() as u64, true),
        Next::Continue
    );
    assert!(host.of(REQUEST).replaced_bodies.is_empty());
    // The response names a snapshot the table does not know: the request's model counts.
    let answer = usage_json("gpt-4o-2024-08-06", 1000, 1000, 0);
    respond(&host, &mut flow, "200", "application/json", &[&answer]);
    assert_eq!(corrections(&host, &flow)["cost_microusd"], 750 - 7_500);
}

fn stream_request() -> &'static [u8] {
    br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
}

fn with_usage() -> Vec<u8> {
    let mut body = br#"{"stream_options":{"include_usage":true},"#.to_vec();
    body.extend_from_slice(&stream_request()[1..]);
    body
}

#[test]
fn a_streaming_request_is_rewritten_to_report_usage_without_its_content_length() {
    let cfg = config(priced(json!({"include_usage": ["/v1/chat/completions"]})));
    let (host, mut flow) = admitted(&cfg, stream_request());
    assert_eq!(host.of(REQUEST).removed_headers, vec!["content-length"]);
    assert_eq!(host.request_header("content-length"), None);
    // What was announced is what request_bytes reserved.
    assert_eq!(
        host.checks()[0].amounts["request_bytes"],
        stream_request().len() as u64
    );
    // The body is held whole, then replaced at its end.
    let (a, _) = stream_request().split_at(30);
    host.set_request_buffer(a);
    assert_eq!(
        flow.on_request_body(&host, a.len() as u64, false),
        Next::Pause
    );
    host.set_request_buffer(stream_request());
    assert_eq!(
        flow.on_request_body(&host, stream_request().len() as u64, true),
        Next::Continue
    );
    assert_eq!(host.of(REQUEST).replaced_bodies, vec![with_usage()]);
    assert_eq!(host.counted(Metric::StreamUsageAdded), 1);
    assert_eq!(
        host.resumed(),
        1,
        "a held body goes on by its callback, not a resume"
    );
    // request_bytes counts what the client sent, not what the filter added.
    let settle = flow
        .settlement(&host)
        .map(|s| s.amounts)
        .unwrap_or_default();
    assert_eq!(settle.get("request_bytes"), None);
}

#[test]
fn no_rewrite_when_usage_is_asked_for_the_stream_is_off_or_the_body_is_not_json() {
    let cfg = config(priced(json!({"include_usage": ["/v1/chat/completions"]})));
    for body in [
        &br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#[..],
        br#"{"model":"gpt-4o","stream":false}"#,
        br#"{"model":"gpt-4o"}"#,
        b"model=gpt-4o",
    ] {
        let (host, mut flow) = admitted(&cfg, body);
        assert_eq!(send_body(&host, &mut flow, body), Next::Continue);
        assert!(host.of(REQUEST).replaced_bodies.is_empty());
        assert_eq!(host.counted(Metric::StreamUsageAdded), 0);
    }
    // A body that says it is no JSON, or one to another API (Anthropic's refuses
    // stream_options), keeps its content-length and is never held.
    for (path, content_type) in [
        ("/v1/chat/completions", "multipart/form-data; boundary=x"),
        ("/v1/messages", "application/json"),
    ] {
        let host = FakeHost::request(&[
            (":path", path),
            (":method", "POST"),
            ("x-tenant-id", "acme"),
            ("content-type", content_type),
            ("content-length", "80"),
        ]);
        let mut flow = RequestFlow::new(cfg.clone());
        flow.on_request_headers(&host, false);
        flow.on_check_response(&host, Some(200), &allow());
        assert!(host.of(REQUEST).removed_headers.is_empty(), "{path}");
        host.set_request_buffer(stream_request());
        assert_eq!(flow.on_request_body(&host, 40, false), Next::Continue);
        assert!(host.of(REQUEST).replaced_bodies.is_empty());
    }
}

#[test]
fn a_chunked_streaming_request_is_checked_held_and_rewritten_at_its_end() {
    let cfg = config(priced(json!({"include_usage": ["/v1/chat/completions"]})));
    let host = FakeHost::request(&[
        (":path", "/v1/chat/completions"),
        (":method", "POST"),
        ("x-tenant-id", "acme"),
        ("content-type", "application/json"),
    ]);
    let mut flow = RequestFlow::new(cfg);
    flow.on_request_headers(&host, false);
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(
        host.resumed(),
        1,
        "resumed for the body to come, not held at the headers"
    );
    // The first reservation is asked for ahead; the first chunk arrives before its answer.
    let (a, b) = stream_request().split_at(30);
    host.set_request_buffer(a);
    assert_eq!(
        flow.on_request_body(&host, a.len() as u64, false),
        Next::Pause
    );
    flow.on_check_response(&host, Some(200), &allow());
    assert_eq!(host.resumed(), 1, "the answer leaves the body held");
    host.set_request_buffer(stream_request());
    let whole = stream_request().len() as u64;
    assert_eq!(flow.on_request_body(&host, whole, true), Next::Continue);
    assert_eq!(host.of(REQUEST).replaced_bodies, vec![with_usage()]);
    assert_eq!(b.len() as u64, whole - 30);
}

#[test]
fn a_body_that_partly_went_on_is_never_rewritten() {
    let cfg = config(priced(
        json!({"include_usage": ["/v1/chat/completions"], "max_request_bytes": 40}),
    ));
    let (host, mut flow) = admitted(&cfg, stream_request());
    let (a, _) = stream_request().split_at(30);
    host.set_request_buffer(a);
    assert_eq!(flow.on_request_body(&host, 30, false), Next::Pause);
    // Past max_request_bytes: let go as it is, and not held again.
    host.set_request_buffer(&stream_request()[..50]);
    assert_eq!(flow.on_request_body(&host, 50, false), Next::Continue);
    host.set_request_buffer(&stream_request()[50..]);
    let rest = stream_request().len() as u64 - 50;
    assert_eq!(flow.on_request_body(&host, rest, true), Next::Continue);
    assert!(host.of(REQUEST).replaced_bodies.is_empty());
    assert!(host
        .warnings()
        .iter()
        .any(|w| w.contains("max_request_bytes")));
}

#[test]
fn trailers_end_a_held_body_which_goes_on_unchanged() {
    let cfg = config(priced(json!({"include_usage": ["/v1/chat/completions"]})));
    let (host, mut flow) = admitted(&cfg, stream_request());
    host.set_request_buffer(stream_request());
    let whole = stream_request().len() as u64;
    assert_eq!(flow.on_request_body(&host, whole, false), Next::Pause);
    assert_eq!(flow.on_request_trailers(&host), Next::Continue);
    assert!(host.of(REQUEST).replaced_bodies.is_empty());
    assert_eq!(host.resumed(), 1);
}

/// OpenAI's stream with usage asked for: content chunks, then the usage chunk.
fn openai_events(usage: bool) -> Vec<String> {
    let chunk = |delta: &str| {
        format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-2024-08-06\",\
             \"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{delta}\"}}}}],\"usage\":null}}\n\n"
        )
    };
    let mut events = vec![chunk("Hel"), chunk("lo")];
    if usage {
        events.push(
            "data: {\"id\":\"c\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":\
             {\"prompt_tokens\":20,\"completion_tokens\":2,\"total_tokens\":22,\
             \"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n"
                .into(),
        );
        events.push("data: [DONE]\n\n".into());
    }
    events
}

#[test]
fn an_interrupted_stream_with_nothing_reported_keeps_the_reserve() {
    let mut prices = openai_prices();
    prices["gpt-4o-2024-*"] = prices["gpt-4o"].clone();
    let cfg = config(priced(json!({"prices": prices})));
    let (host, mut flow) = admitted(&cfg, br#"{}"#);
    send_body(&host, &mut flow, br#"{}"#);
    let events = openai_events(false);
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    respond(&host, &mut flow, "200", "text/event-stream", &events);
    // The client went away: nothing was reported, the reserve stands.
    assert_eq!(corrections(&host, &flow), BTreeMap::new());
    // The same stream to its end: what it reported.
    let (host, mut flow) = admitted(&cfg, br#"{}"#);
    send_body(&host, &mut flow, br#"{}"#);
    let events = openai_events(true);
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    respond(&host, &mut flow, "200", "text/event-stream", &events);
    let amounts = corrections(&host, &flow);
    assert_eq!(amounts["cost_microusd"], 70 - 7_500);
    assert_eq!(amounts["prompt_tokens"], 20 - 1_000);
}

#[test]
fn an_interrupted_anthropic_stream_is_charged_what_it_reported() {
    let parts = json!([
        {"name": "input", "pointer": ["/usage/input_tokens", "/message/usage/input_tokens"],
         "resource": "input_tokens", "reserve": 1000},
        {"name": "output", "pointer": ["/usage/output_tokens", "/message/usage/output_tokens"],
         "resource": "output_tokens", "reserve": 1000},
        {"name": "cache_read", "pointer": ["/usage/cache_read_input_tokens",
                                           "/message/usage/cache_read_input_tokens"]}
    ]);
    let cfg = config(priced(json!({
        "parts": parts,
        "model": {"pointer": ["/model", "/message/model"]},
        "prices": {"claude-sonnet-4-5": {"input": 3, "output": 15, "cache_read": 0}},
        "divisor": 1
    })));
    let (host, mut flow) = admitted(&cfg, br#"{}"#);
    assert_eq!(host.checks()[0].amounts["cost_microusd"], 18_000);
    send_body(&host, &mut flow, br#"{}"#);
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\
                 \"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":10,\
                 \"output_tokens\":1}}}\n\n";
    let delta = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\
                 \"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n";
    respond(
        &host,
        &mut flow,
        "200",
        "text/event-stream",
        &[start, delta],
    );
    let amounts = corrections(&host, &flow);
    assert_eq!(amounts["cost_microusd"], 25 * 3 + 15 - 18_000);
    assert_eq!(amounts["input_tokens"], 25 - 1_000);
    assert_eq!(amounts["output_tokens"], 1 - 1_000);
}

#[test]
fn a_failed_answer_that_reported_nothing_is_refunded() {
    let cfg = config(priced(json!({})));
    for status in ["400", "503"] {
        let (host, mut flow) = admitted(&cfg, br#"{}"#);
        send_body(&host, &mut flow, br#"{}"#);
        let error = r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#;
        respond(&host, &mut flow, status, "application/json", &[error]);
        let expected = BTreeMap::from([
            ("cost_microusd".to_string(), -7_500),
            ("prompt_tokens".to_string(), -1_000),
            ("completion_tokens".to_string(), -500),
        ]);
        assert_eq!(corrections(&host, &flow), expected, "{status}");
    }
}

#[test]
fn a_request_the_filter_answered_itself_is_refunded_its_priced_reserve() {
    let cfg = config(priced(json!({"include_usage": ["/v1/chat/completions"]})));
    let (host, mut flow) = admitted(&cfg, stream_request());
    // The body runs past its content-length and the check of the rest is refused.
    host.set_request_buffer(&[b'{'; 200]);
    assert_eq!(flow.on_request_body(&host, 200, false), Next::Pause);
    let reject = json!({"decision": "reject", "reason": "quota_exceeded", "tenant": "acme",
        "policy": {"name": "monthly", "resource": "request_bytes", "quota": 1, "limit": 1,
                   "used": 1, "remaining": 0, "reset_after_s": 60}});
    let reject = serde_json::to_vec(&reject).unwrap();
    // Asked ahead first, then exactly what was seen: refused both times.
    flow.on_check_response(&host, Some(200), &reject);
    flow.on_check_response(&host, Some(200), &reject);
    assert_eq!(host.local_status(), Some(429));
    let amounts = corrections(&host, &flow);
    assert_eq!(amounts["cost_microusd"], -7_500);
}

#[test]
fn without_a_priced_cost_nothing_of_this_happens() {
    let json = json!({"control_plane": {"cluster": "cp"}});
    let cfg = Rc::new(FilterConfig::from_json(json.to_string().as_bytes()).unwrap());
    let (host, mut flow) = admitted(&cfg, stream_request());
    assert!(host.of(REQUEST).removed_headers.is_empty());
    assert_eq!(
        send_body(&host, &mut flow, stream_request()),
        Next::Continue
    );
    assert!(host.of(REQUEST).replaced_bodies.is_empty());
    respond(
        &host,
        &mut flow,
        "200",
        "application/json",
        &[&usage_json("gpt-4o", 9, 9, 0)],
    );
    assert!(flow.settlement(&host).is_none());
}

#[test]
fn a_cut_off_stream_refunds_a_json_costs_reserve_but_keeps_a_priced_ones() {
    // What the filter did before priced costs, and still does for response_json: a
    // cost the stream never reported counts 0, so its reserve is refunded.
    let json = json!({
        "control_plane": {"cluster": "cp", "timeout_ms": 150},
        "costs": {
            "response_json": {"pointer": "/usage/total_tokens", "resource": "tokens"},
            "response_reserve": 5,
            "priced": priced(json!({}))
        }
    });
    let cfg = Rc::new(FilterConfig::from_json(json.to_string().as_bytes()).unwrap());
    let (host, mut flow) = admitted(&cfg, br#"{}"#);
    assert_eq!(host.checks()[0].amounts["tokens"], 5);
    send_body(&host, &mut flow, br#"{}"#);
    let events = openai_events(false);
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    respond(&host, &mut flow, "200", "text/event-stream", &events);
    assert_eq!(
        corrections(&host, &flow),
        BTreeMap::from([("tokens".to_string(), -5)])
    );
}
