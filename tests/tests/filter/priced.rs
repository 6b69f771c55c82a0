//! Priced costs (`costs.priced`) end to end: real OpenAI chat-completion and Anthropic
//! message answers (JSON and event streams, `ai`) through Envoy and the real `.wasm`,
//! priced per model from a price table, and counted exactly by the control plane — the
//! sum in micro-USD and each kind of token on its own; a streaming request rewritten to
//! report its usage; and streams cut off before (OpenAI) or after (Anthropic) any usage.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::response::header;
use tollgate_e2e::Gateway;

use super::{http, start_with_tier, stat, with_filter};

/// One gateway in front of both APIs: the same three parts at the places each puts
/// them (a JSON answer, OpenAI's last chunk, Anthropic's `message_start` and
/// `message_delta`), weights in micro-USD per million tokens. OpenAI's prompt count
/// includes the cached tokens, which cost half (a negative weight); Anthropic's input
/// count does not, and cache reads cost a tenth.
fn priced_filter() -> Value {
    let openai = json!({"input": 2_500_000, "output": 10_000_000, "cached": -1_250_000});
    json!({"costs": {"priced": {
        "resource": "cost_microusd",
        "parts": [
            {"name": "input", "resource": "input_tokens", "reserve": 1000,
             "pointer": ["/usage/prompt_tokens", "/usage/input_tokens",
                         "/message/usage/input_tokens"]},
            {"name": "output", "resource": "output_tokens", "reserve": 500,
             "pointer": ["/usage/completion_tokens", "/usage/output_tokens",
                         "/message/usage/output_tokens"]},
            {"name": "cached",
             "pointer": ["/usage/prompt_tokens_details/cached_tokens",
                         "/usage/cache_read_input_tokens",
                         "/message/usage/cache_read_input_tokens"]}
        ],
        "model": {"pointer": ["/model", "/message/model"]},
        "prices": {
            "gpt-4o": openai,
            "gpt-4o-2024-*": openai,
            "gpt-4o-mini*": {"input": 150_000, "output": 600_000, "cached": -75_000},
            "claude-sonnet-4-5*": {"input": 3_000_000, "output": 15_000_000, "cached": 300_000},
            "claude-haiku-4-5*": {"input": 1_000_000, "output": 5_000_000, "cached": 100_000}
        },
        "divisor": 1_000_000,
        "include_usage": ["/v1/chat/completions"]
    }}})
}

/// What the headers hold: 1000 input tokens at the highest input price (3 µUSD) and 500
/// output tokens at the highest output price (15 µUSD).
const RESERVE_MICROUSD: u64 = 3_000 + 7_500;

async fn start(tenants: &[&str]) -> Gateway {
    let limits = json!([
        {"resource": "request_bytes", "period": "month", "quota": 1_000_000_000},
        {"resource": "cost_microusd", "period": "month", "quota": 1_000_000_000},
        {"resource": "input_tokens", "period": "month", "quota": 1_000_000_000},
        {"resource": "output_tokens", "period": "month", "quota": 1_000_000_000}
    ]);
    start_with_tier(with_filter(priced_filter()), "ai", limits, tenants).await
}

/// POSTs `body` to `path` as `tenant`, the upstream answering as `api` with `tokens`
/// (prompt or input, completion or output, cached or cache read) and `extra` headers.
async fn ask(
    envoy: &Envoy,
    path: &str,
    tenant: &str,
    api: &str,
    tokens: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = http()
        .post(format!("{}{path}", envoy.url()))
        .header("x-tenant-id", tenant)
        .header("content-type", "application/json")
        .header("x-test-ai", api)
        .header("x-test-tokens", tokens)
        .body(body.to_string());
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.expect("the gateway answers")
}

/// Waits until `tenant`'s monthly usage is exactly `cost` µUSD, `input` and `output`
/// tokens (settlements follow the response).
async fn counted(gateway: &Gateway, tenant: &str, cost: u64, input: u64, output: u64) {
    for (resource, expected) in [
        ("cost_microusd", cost),
        ("input_tokens", input),
        ("output_tokens", output),
    ] {
        gateway
            .wait_usage(tenant, resource, "month", expected)
            .await
            .unwrap();
    }
}

/// The JSON of every `data:` event of an event stream (not `[DONE]`).
fn events(text: &str) -> Vec<Value> {
    (text.lines())
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_and_anthropic_answers_json_or_streamed_are_priced_per_model_exactly() {
    let tenants = [
        "oa-json",
        "oa-mini",
        "oa-stream",
        "an-json",
        "an-stream",
        "other",
    ];
    let gateway = start(&tenants).await;
    let envoy = &gateway.envoy;
    let chat = |model: &str, stream: bool| {
        json!({"model": model, "stream": stream,
               "messages": [{"role": "user", "content": "Say hello"}]})
    };

    // OpenAI, JSON: 1200 prompt tokens (1000 of them cached) and 300 completion tokens
    // at gpt-4o's prices: 1200×2.5 + 300×10 − 1000×1.25 = 4750 µUSD.
    let answer = ask(
        envoy,
        "/v1/chat/completions",
        "oa-json",
        "openai",
        "1200,300,1000",
        &chat("gpt-4o", false),
        &[],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], 1200, "passed on unchanged");
    counted(&gateway, "oa-json", 4_750, 1_200, 300).await;

    // gpt-4o-mini, a fraction of a micro-dollar: 0.15 + 0.6 = 0.75, rounded up to 1.
    ask(
        envoy,
        "/v1/chat/completions",
        "oa-mini",
        "openai",
        "1,1,0",
        &chat("gpt-4o-mini", false),
        &[],
    )
    .await;
    counted(&gateway, "oa-mini", 1, 1, 1).await;

    // OpenAI, streamed by a client that did not ask for usage: the filter asks for it,
    // the answer names a dated snapshot (priced by the gpt-4o-2024-* entry).
    let request = chat("gpt-4o", true);
    let answer = ask(
        envoy,
        "/v1/chat/completions",
        "oa-stream",
        "openai",
        "2000,150,0",
        &request,
        &[("x-test-response-model", "gpt-4o-2024-08-06")],
    )
    .await;
    assert_eq!(header(&answer, "content-type"), "text/event-stream");
    let text = answer.text().await.unwrap();
    let chunks = events(&text);
    let last = chunks.last().unwrap();
    assert_eq!(
        last["choices"],
        json!([]),
        "the usage chunk the client now gets: {text}"
    );
    assert_eq!(last["usage"]["prompt_tokens"], 2000);
    assert!(text.ends_with("data: [DONE]\n\n"));
    counted(&gateway, "oa-stream", 5_000 + 1_500, 2_000, 150).await;
    // What reached the upstream: the client's body with stream_options added, framed
    // by Envoy (its content-length dropped), and counted as the client sent it.
    let sent = request.to_string();
    let received = gateway.upstream.last_body("oa-stream").unwrap();
    let expected = format!(
        r#"{{"stream_options":{{"include_usage":true}},{}"#,
        &sent[1..]
    );
    assert_eq!(String::from_utf8(received).unwrap(), expected);
    assert_eq!(
        gateway.upstream.last_header("oa-stream", "content-length"),
        None
    );
    assert_eq!(
        gateway
            .upstream
            .last_header("oa-stream", "transfer-encoding")
            .as_deref(),
        Some("chunked")
    );
    gateway
        .wait_usage("oa-stream", "request_bytes", "month", sent.len() as u64)
        .await
        .unwrap();
    assert_eq!(stat(envoy, "stream_usage_added").await, 1);

    // Anthropic, JSON: 25 input, 15 output and 10 cache-read tokens at Sonnet 4.5's
    // prices: 75 + 225 + 3 = 303 µUSD.
    let answer = ask(
        envoy,
        "/v1/messages",
        "an-json",
        "anthropic",
        "25,15,10",
        &chat("claude-sonnet-4-5-20250929", false),
        &[],
    )
    .await;
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["usage"]["cache_read_input_tokens"], 10);
    counted(&gateway, "an-json", 303, 25, 15).await;

    // Anthropic, streamed: message_start has the input and cache tokens, message_delta
    // the final output count. Nothing to rewrite (no stream_options there).
    let request = chat("claude-haiku-4-5", true);
    let answer = ask(
        envoy,
        "/v1/messages",
        "an-stream",
        "anthropic",
        "1000,200,5000",
        &request,
        &[],
    )
    .await;
    let text = answer.text().await.unwrap();
    assert!(text.contains("event: message_delta"), "{text}");
    counted(&gateway, "an-stream", 1_000 + 1_000 + 500, 1_000, 200).await;
    let received = gateway.upstream.last_body("an-stream").unwrap();
    assert_eq!(received, request.to_string().into_bytes(), "unchanged");

    // A model the table does not price: every part at the table's highest weight,
    // 100×3 + 10×15 = 450 µUSD, and counted in its stat.
    ask(
        envoy,
        "/v1/chat/completions",
        "other",
        "openai",
        "100,10,0",
        &chat("mistral-large", false),
        &[],
    )
    .await;
    counted(&gateway, "other", 450, 100, 10).await;
    assert_eq!(stat(envoy, "unknown_models").await, 1);
    assert_eq!(stat(envoy, "settlements").await, 6);
}

/// Reads `response` until its text contains `until`, then drops the connection.
async fn read_until_and_leave(response: reqwest::Response, until: &str) {
    let mut response = response;
    let mut text = String::new();
    while !text.contains(until) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("the stream goes on")
            .unwrap()
            .expect("the stream is not over");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_off_is_charged_what_it_reported_or_else_the_reserve() {
    let gateway = start(&["openai", "anthropic", "asked"]).await;
    let envoy = &gateway.envoy;
    let chat = |model: &str| {
        json!({"model": model, "stream": true,
               "messages": [{"role": "user", "content": "Tell me a long story"}]})
    };

    // The reserve is held at the headers, before anything is known.
    let answer = ask(
        envoy,
        "/v1/chat/completions",
        "openai",
        "openai",
        "900,800,0",
        &chat("gpt-4o"),
        &[("x-test-stall-after", "2")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    counted(&gateway, "openai", RESERVE_MICROUSD, 1_000, 500).await;
    // OpenAI reports usage only in its last chunk: a client that leaves after two chunks
    // leaves nothing reported, and the reserve stands.
    read_until_and_leave(answer, "Hel").await;

    // Anthropic reports input and cache tokens in message_start, and one output token
    // so far: a client that leaves after the first words is charged that,
    // 25×3 + 1×15 + 10×0.3 = 93 µUSD.
    let answer = ask(
        envoy,
        "/v1/messages",
        "anthropic",
        "anthropic",
        "25,400,10",
        &chat("claude-sonnet-4-5"),
        &[("x-test-stall-after", "4")],
    )
    .await;
    read_until_and_leave(answer, "Hel").await;
    counted(&gateway, "anthropic", 93, 25, 1).await;

    // A client that asks for usage itself gets its body through byte for byte.
    let mut request = chat("gpt-4o");
    request["stream_options"] = json!({"include_usage": true});
    let answer = ask(
        envoy,
        "/v1/chat/completions",
        "asked",
        "openai",
        "10,1,0",
        &request,
        &[],
    )
    .await;
    assert!(answer
        .text()
        .await
        .unwrap()
        .contains("\"prompt_tokens\":10"));
    counted(&gateway, "asked", 25 + 10, 10, 1).await;
    let received = gateway.upstream.last_body("asked").unwrap();
    assert_eq!(received, request.to_string().into_bytes());
    assert_eq!(
        stat(envoy, "stream_usage_added").await,
        1,
        "the first OpenAI stream only"
    );
    // Long after the OpenAI stream was cut off, its reserve still stands: nothing was
    // settled for it (the other two were).
    counted(&gateway, "openai", RESERVE_MICROUSD, 1_000, 500).await;
    assert_eq!(stat(envoy, "settlements").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_request_without_content_length_is_rewritten_once_its_bytes_are_counted() {
    let gateway = start(&["h2"]).await;
    // HTTP/2 without content-length: the body is counted as it streams (a reservation
    // asked for ahead), and its end may come while that check is in flight, so the
    // rewrite happens when the answer lets the held body go.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", gateway.envoy.port))
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://127.0.0.1:{}/v1/chat/completions",
            gateway.envoy.port
        ))
        .header("x-tenant-id", "h2")
        .header("content-type", "application/json")
        .header("x-test-ai", "openai")
        .header("x-test-tokens", "40,4,0")
        .body(())
        .unwrap();
    let body = json!({"model": "gpt-4o", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let (response, mut stream) = client.send_request(request, false).unwrap();
    let (first, second) = body.split_at(20);
    stream
        .send_data(bytes::Bytes::from(first.to_string()), false)
        .unwrap();
    stream
        .send_data(bytes::Bytes::from(second.to_string()), true)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut text = Vec::new();
    let mut answer = response.into_body();
    while let Some(chunk) = answer.data().await {
        let chunk = chunk.unwrap();
        let _ = answer.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("\"prompt_tokens\":40"), "{text}");
    counted(&gateway, "h2", 100 + 40, 40, 4).await;
    let received = gateway.upstream.last_body("h2").unwrap();
    let expected = format!(
        r#"{{"stream_options":{{"include_usage":true}},{}"#,
        &body[1..]
    );
    assert_eq!(String::from_utf8(received).unwrap(), expected);
    gateway
        .wait_usage("h2", "request_bytes", "month", body.len() as u64)
        .await
        .unwrap();
}
