//! What the upstream answers as an AI back end (`x-test-ai`): OpenAI chat completions or
//! Anthropic messages, as a JSON body or an event stream, with the shapes those APIs
//! send (usage where each puts it), so a priced cost is read from real-looking answers.
//!
//! # What the test chooses (request headers)
//! - `x-test-ai: openai` or `anthropic`;
//! - `x-test-tokens: P,C,K` — prompt (input), completion (output) and cached (cache
//!   read) tokens the answer reports;
//! - `x-test-response-model: M` — the model the answer names (else the request's);
//! - `x-test-stall-after: N` — a stream sends N events, then nothing for a minute.
//!
//! # What the request body decides, as the real APIs do
//! `model`; `stream: true` for an event stream; for OpenAI, usage is in a stream only
//! with `stream_options.include_usage: true` (its last chunk, with no choices); and
//! Anthropic refuses a `stream_options` member (400), as its API refuses extra inputs.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// Which API the answer imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    OpenAi,
    Anthropic,
}

/// The tokens an answer reports.
#[derive(Debug, Clone, Copy, Default)]
struct Tokens {
    prompt: u64,
    completion: u64,
    cached: u64,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The answer to a request with `x-test-ai`, if it has that header.
pub fn answer(headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let api = match header(headers, "x-test-ai")? {
        "anthropic" => Api::Anthropic,
        _ => Api::OpenAi,
    };
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let numbers: Vec<u64> = header(headers, "x-test-tokens")
        .unwrap_or("0,0,0")
        .split(',')
        .map(|n| n.trim().parse().unwrap_or(0))
        .collect();
    let tokens = Tokens {
        prompt: numbers.first().copied().unwrap_or(0),
        completion: numbers.get(1).copied().unwrap_or(0),
        cached: numbers.get(2).copied().unwrap_or(0),
    };
    let model = header(headers, "x-test-response-model")
        .or_else(|| request["model"].as_str())
        .unwrap_or("unknown")
        .to_string();
    let stall = header(headers, "x-test-stall-after").and_then(|n| n.parse().ok());
    let streamed = request["stream"] == json!(true);
    if api == Api::Anthropic && request.get("stream_options").is_some() {
        let error = json!({"type": "error", "error": {"type": "invalid_request_error",
            "message": "stream_options: Extra inputs are not permitted"}});
        return Some((StatusCode::BAD_REQUEST, axum::Json(error)).into_response());
    }
    Some(match (api, streamed) {
        (Api::OpenAi, false) => axum::Json(openai_json(&model, tokens)).into_response(),
        (Api::OpenAi, true) => {
            let usage = request["stream_options"]["include_usage"] == json!(true);
            event_stream(openai_events(&model, tokens, usage), stall)
        }
        (Api::Anthropic, false) => axum::Json(anthropic_json(&model, tokens)).into_response(),
        (Api::Anthropic, true) => event_stream(anthropic_events(&model, tokens), stall),
    })
}

fn openai_usage(tokens: Tokens) -> Value {
    json!({
        "prompt_tokens": tokens.prompt,
        "completion_tokens": tokens.completion,
        "total_tokens": tokens.prompt + tokens.completion,
        "prompt_tokens_details": {"cached_tokens": tokens.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
    })
}

fn openai_json(model: &str, tokens: Tokens) -> Value {
    json!({
        "id": "chatcmpl-e2e", "object": "chat.completion", "created": 1_767_225_600,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": openai_usage(tokens),
        "system_fingerprint": "fp_e2e"
    })
}

/// OpenAI's stream: a role chunk, content chunks, the finish chunk, then (if asked) the
/// usage chunk with no choices, then `[DONE]`. Without usage asked for, no chunk has a
/// `usage` member at all.
fn openai_events(model: &str, tokens: Tokens, usage: bool) -> Vec<String> {
    let chunk = |choices: Value| {
        let mut chunk = json!({
            "id": "chatcmpl-e2e", "object": "chat.completion.chunk",
            "created": 1_767_225_600, "model": model, "system_fingerprint": "fp_e2e",
            "choices": choices
        });
        if usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let mut events = vec![
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        ),
        chunk(json!([{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}])),
        chunk(json!([{"index": 0, "delta": {"content": "lo!"}, "finish_reason": null}])),
        chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
    ];
    if usage {
        let mut last = chunk(json!([]));
        last["usage"] = openai_usage(tokens);
        events.push(last);
    }
    let mut lines: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    lines.push("data: [DONE]\n\n".into());
    lines
}

fn anthropic_usage(tokens: Tokens, output: u64) -> Value {
    json!({
        "input_tokens": tokens.prompt,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": tokens.cached,
        "output_tokens": output
    })
}

fn anthropic_json(model: &str, tokens: Tokens) -> Value {
    json!({
        "id": "msg_e2e", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": anthropic_usage(tokens, tokens.completion)
    })
}

/// Anthropic's stream: `message_start` (the model, input and cache tokens, one output
/// token so far), the content block, pings, then `message_delta` with the cumulative
/// output tokens and `message_stop`.
fn anthropic_events(model: &str, tokens: Tokens) -> Vec<String> {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_e2e", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": anthropic_usage(tokens, 1)}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": "Hel"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": "lo!"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": tokens.completion}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    (events.iter())
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// `events` as a `text/event-stream`, each event split in two writes a little apart
/// (so Envoy sees events cut across chunks); with `stall`, the stream stops after that
/// many events and stays open for a minute.
fn event_stream(events: Vec<String>, stall: Option<usize>) -> Response {
    let kept = stall.unwrap_or(events.len()).min(events.len());
    let mut pieces: Vec<String> = Vec::new();
    for event in events.into_iter().take(kept) {
        let (first, second) = event.split_at(event.len() / 2);
        pieces.push(first.to_string());
        pieces.push(second.to_string());
    }
    let stalls = stall.is_some();
    let stream = futures_util::stream::iter(pieces)
        .then(|piece| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, Infallible>(Bytes::from(piece))
        })
        .chain(futures_util::stream::once(async move {
            if stalls {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok::<_, Infallible>(Bytes::new())
        }));
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
