//! Costs read from a response (`tollgate_filter::response_cost::ResponseMeter`): a
//! plain JSON body or a `text/event-stream`, fed in arbitrary chunk splits, with a cost
//! header beside it and body limits from tiny to large.
//!
//! Never a panic; the same body costs the same however Envoy splits it into chunks;
//! `response_bytes` is the body's length; and for bodies built of well-formed parts
//! the cost is what an independent reading of the body says. With a priced cost
//! (`costs.priced`) beside it, reading the same documents: the same parts and model
//! however the body is split, its first part what the JSON cost reads, and a charge
//! that never passes what the control plane counts.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tollgate_filter::priced::{charge, Charge};
use tollgate_filter::response_cost::ResponseMeter;
use tollgate_protocol::check::AMOUNT_MAX;
use tollgate_protocol::config::{CostsConfig, PricedCost, ResponseHeaderCost, ResponseJsonCost};

const POINTER: &str = "/usage/total_tokens";

#[derive(Arbitrary, Debug)]
enum ContentType {
    Json,
    Stream,
    /// Leading whitespace is allowed; still a stream.
    StreamSpaced,
    /// Media types are case-insensitive, but the filter reads only the lower-case one.
    StreamUpper,
    Missing,
}

/// A part of an event stream.
#[derive(Arbitrary, Debug)]
enum Part {
    /// `data: {...}` with or without usage, then a blank line.
    Event { usage: Option<u64>, crlf: bool },
    /// One JSON document over two `data:` lines.
    TwoLines(u64),
    /// `data: [DONE]`.
    Done,
    /// `: comment`.
    Comment(String),
    /// Anything.
    Raw(Vec<u8>),
}

/// A plain JSON body.
#[derive(Arbitrary, Debug)]
enum Plain {
    Usage(u64),
    Signed(i64),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Max {
    Tiny(u8),
    Large,
    Any(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    content_type: ContentType,
    /// `None`: `/usage/total_tokens`.
    pointer: Option<String>,
    max: Max,
    response_bytes: bool,
    /// The cost header's value, when the upstream sent one.
    header: Option<String>,
    /// Whether the header counts the same resource as the body.
    same_resource: bool,
    plain: Plain,
    parts: Vec<Part>,
    /// A priced cost beside the JSON cost: its weights, and the response's `:status`.
    priced: Option<([i64; 3], u64, u16)>,
    /// Chunk lengths, used in turn.
    cuts: Vec<u16>,
}

fn meter(
    costs: &CostsConfig,
    status: u16,
    content_type: Option<&str>,
    header: Option<&str>,
    chunks: &mut dyn Iterator<Item = &[u8]>,
) -> ResponseMeter {
    let mut meter = ResponseMeter::default();
    meter.on_headers(costs, |name| match name {
        ":status" => Some(status.to_string()),
        "content-type" => content_type.map(String::from),
        "x-usage-tokens" => header.map(String::from),
        _ => None,
    });
    assert!(meter.reads_body());
    for chunk in chunks {
        meter.on_body(costs, chunk.len() as u64, chunk);
    }
    meter
}

fn pointer_value(json: &[u8], pointer: &str) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(json)
        .ok()?
        .pointer(pointer)?
        .as_u64()
}

/// A priced cost with three parts: the JSON cost's number (at `pointer`) and two of
/// OpenAI's, priced at `weights` (clamped to the bounds the config allows) for every
/// model, read from the response.
fn priced(pointer: String, weights: [i64; 3], divisor: u64, max: u64) -> PricedCost {
    let bound = tollgate_protocol::price::WEIGHT_MAX;
    let [a, b, c] = weights.map(|w| w.clamp(-bound, bound));
    serde_json::from_value(serde_json::json!({
        "resource": "cost",
        "parts": [
            {"name": "total", "pointer": pointer, "resource": "total_tokens", "reserve": 10},
            {"name": "prompt", "pointer": ["/usage/prompt_tokens", "/usage/input_tokens"]},
            {"name": "cached", "pointer": "/usage/prompt_tokens_details/cached_tokens"}
        ],
        "model": {"pointer": ["/model", "/message/model"]},
        "prices": {"*": {"total": a, "prompt": b, "cached": c}},
        "divisor": divisor.clamp(1, tollgate_protocol::price::DIVISOR_MAX),
        "max_body_bytes": max
    }))
    .expect("a priced cost")
}

fuzz_target!(|input: Input| {
    let header_resource = if input.same_resource {
        "tokens"
    } else {
        "credits"
    };
    let pointer = input.pointer.clone().unwrap_or_else(|| POINTER.to_string());
    let max = match input.max {
        Max::Tiny(n) => u64::from(n) + 1,
        Max::Large => 1 << 20,
        Max::Any(n) => n.max(1),
    };
    let costs = CostsConfig {
        response_bytes: input.response_bytes,
        response_header: Some(ResponseHeaderCost {
            header: "x-usage-tokens".into(),
            resource: header_resource.into(),
        }),
        response_json: Some(ResponseJsonCost {
            pointer: pointer.clone(),
            resource: "tokens".into(),
            max_body_bytes: max,
        }),
        priced: input
            .priced
            .map(|(weights, divisor, _)| priced(pointer.clone(), weights, divisor, max)),
        ..CostsConfig::default()
    };
    let status = input.priced.map_or(200, |(_, _, status)| status);
    let (content_type, streamed) = match input.content_type {
        ContentType::Json => (Some("application/json"), false),
        ContentType::Stream => (Some("text/event-stream; charset=utf-8"), true),
        ContentType::StreamSpaced => (Some(" text/event-stream"), true),
        ContentType::StreamUpper => (Some("Text/Event-Stream"), false),
        ContentType::Missing => (None, false),
    };

    // The body, and its cost as read independently where the body is well formed.
    let mut body = Vec::new();
    let expected_body_cost: Option<Option<u64>> = if streamed {
        let mut last = None;
        let mut clean = true;
        for part in &input.parts {
            match part {
                Part::Event { usage, crlf } => {
                    let json = match usage {
                        Some(n) => format!(r#"{{"usage":{{"total_tokens":{n}}}}}"#),
                        None => r#"{"choices":[]}"#.to_string(),
                    };
                    let end = if *crlf { "\r\n\r\n" } else { "\n\n" };
                    body.extend_from_slice(format!("data: {json}{end}").as_bytes());
                    last = usage.or(last);
                }
                Part::TwoLines(n) => {
                    let event = format!("data: {{\"usage\":\ndata: {{\"total_tokens\":{n}}}}}\n\n");
                    body.extend_from_slice(event.as_bytes());
                    last = Some(*n);
                }
                Part::Done => body.extend_from_slice(b"data: [DONE]\n\n"),
                Part::Comment(text) => {
                    let text = text.replace(['\n', '\r'], " ");
                    body.extend_from_slice(format!(": {text}\n").as_bytes());
                }
                Part::Raw(bytes) => {
                    body.extend_from_slice(bytes);
                    clean = false;
                }
            }
        }
        let fits = body.len() as u64 <= max;
        (clean && fits && pointer == POINTER).then_some(last)
    } else {
        match &input.plain {
            Plain::Usage(n) => body.extend_from_slice(
                format!(r#"{{"id":"x","usage":{{"prompt_tokens":3,"total_tokens":{n}}}}}"#)
                    .as_bytes(),
            ),
            Plain::Signed(n) => {
                body.extend_from_slice(format!(r#"{{"usage":{{"total_tokens":{n}}}}}"#).as_bytes())
            }
            Plain::Raw(bytes) => body.extend_from_slice(bytes),
        }
        // A whole body is parsed only when it fits.
        Some(if body.len() as u64 > max {
            None
        } else {
            pointer_value(&body, &pointer)
        })
    };

    let header = input.header.as_deref();
    let whole = meter(
        &costs,
        status,
        content_type,
        header,
        &mut std::iter::once(&body[..]),
    );
    let mut cuts = input.cuts.iter().map(|&n| usize::from(n).max(1)).cycle();
    let mut rest = &body[..];
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        let n = if input.cuts.is_empty() {
            rest.len()
        } else {
            cuts.next().unwrap().min(rest.len())
        };
        let (chunk, tail) = rest.split_at(n);
        chunks.push(chunk);
        rest = tail;
    }
    let split = meter(
        &costs,
        status,
        content_type,
        header,
        &mut chunks.into_iter(),
    );

    let found = split.costs(&costs);
    assert_eq!(
        found,
        whole.costs(&costs),
        "the chunk split changed the cost"
    );
    assert_eq!(split.too_large(), whole.too_large());

    if let Some(priced) = &costs.priced {
        let finished = split.finish(&costs);
        assert_eq!(
            finished,
            whole.finish(&costs),
            "the chunk split changed the report"
        );
        let reported = finished.priced.expect("a priced cost reads the response");
        assert_eq!(reported.status, Some(u32::from(status)));
        if let Some(body_cost) = expected_body_cost {
            assert_eq!(
                reported.parts[0], body_cost,
                "its part reads as the JSON cost"
            );
        }
        match charge(priced, &reported, reported.model.as_deref()) {
            Charge::Reported { amounts, .. } => {
                assert!(reported.anything());
                assert!(amounts.iter().all(|(_, amount)| *amount <= AMOUNT_MAX));
            }
            Charge::Reserve => assert!(!reported.anything() && (200..300).contains(&status)),
            Charge::Nothing => assert!(!reported.anything() && !(200..300).contains(&status)),
        }
    }

    let mut expected = Vec::new();
    if input.response_bytes {
        expected.push(("response_bytes".to_string(), body.len() as u64));
    }
    let header_cost = header.and_then(|v| v.trim().parse::<u64>().ok());
    expected.push((header_resource.to_string(), header_cost.unwrap_or(0)));
    if let Some(body_cost) = expected_body_cost {
        if !input.same_resource {
            expected.push(("tokens".to_string(), body_cost.unwrap_or(0)));
        } else if header_cost.is_none() {
            expected.last_mut().unwrap().1 = body_cost.unwrap_or(0);
        }
        assert_eq!(found, expected);
    } else {
        assert_eq!(
            found.len(),
            expected.len() + usize::from(!input.same_resource)
        );
        assert_eq!(found[..expected.len() - 1], expected[..expected.len() - 1]);
    }
});
