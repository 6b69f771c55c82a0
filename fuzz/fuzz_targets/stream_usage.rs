//! The `include_usage` rewrite of a streaming request's body
//! (`tollgate_filter::stream_usage::with_include_usage`), on JSON objects built of the
//! members that matter (`stream`, `stream_options`, duplicates, escaped keys, any
//! spacing) and on any bytes.
//!
//! Never a panic; a body is rewritten exactly when it is a JSON object with
//! `"stream": true` whose `stream_options` (absent, null or an object) lacks
//! `include_usage: true`; the result parses to the client's document with that one
//! member set; and where that member is added (not replaced), the edit is a single
//! insertion: every byte the client sent is there, in order and unchanged.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tollgate_filter::stream_usage::with_include_usage;

#[derive(Arbitrary, Debug)]
enum Key {
    Stream,
    StreamOptions,
    /// `stream_options`, written with an escape.
    EscapedOptions,
    IncludeUsage,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Member {
    /// A key, spacing around the colon, and a value.
    Plain(Key, u8, Scalar),
    /// A key whose value is an object of these members.
    Object(Key, u8, Vec<(Key, Scalar)>),
}

#[derive(Arbitrary, Debug)]
enum Scalar {
    True,
    False,
    Null,
    Number(i64),
    Big,
    Text(String),
    Array(u8),
}

fn key(key: &Key) -> String {
    match key {
        Key::Stream => r#""stream""#.into(),
        Key::StreamOptions => r#""stream_options""#.into(),
        Key::EscapedOptions => r#""stream\u005foptions""#.into(),
        Key::IncludeUsage => r#""include_usage""#.into(),
        Key::Other(name) => Value::String(name.clone()).to_string(),
    }
}

fn scalar(value: &Scalar) -> String {
    match value {
        Scalar::True => "true".into(),
        Scalar::False => "false".into(),
        Scalar::Null => "null".into(),
        Scalar::Number(n) => n.to_string(),
        Scalar::Big => "123456789012345678901234567890".into(),
        Scalar::Text(text) => Value::String(text.clone()).to_string(),
        Scalar::Array(n) => format!("[{}]", vec!["{\"a\":[1]}"; usize::from(*n % 4)].join(",")),
    }
}

fn spacing(n: u8) -> &'static str {
    ["", " ", "\n  ", "\t", "\r\n"][usize::from(n) % 5]
}

#[derive(Arbitrary, Debug)]
enum Input {
    Members(u8, Vec<Member>),
    Raw(Vec<u8>),
}

fn body(input: &Input) -> Vec<u8> {
    match input {
        Input::Raw(bytes) => bytes.clone(),
        Input::Members(space, members) => {
            let members: Vec<String> = (members.iter().take(12))
                .map(|member| match member {
                    Member::Plain(k, s, v) => {
                        format!("{}{}:{}{}", key(k), spacing(*s), spacing(*s), scalar(v))
                    }
                    Member::Object(k, s, inner) => {
                        let inner: Vec<String> = (inner.iter().take(6))
                            .map(|(k, v)| format!("{}:{}", key(k), scalar(v)))
                            .collect();
                        format!(
                            "{}:{}{{{}{}}}",
                            key(k),
                            spacing(*s),
                            spacing(*s),
                            inner.join(",")
                        )
                    }
                })
                .collect();
            let gap = spacing(*space);
            format!(
                "{gap}{{{gap}{}{gap}}}{gap}",
                members.join(&format!(",{gap}"))
            )
            .into_bytes()
        }
    }
}

/// What the rewrite should do, read independently: the document it should produce, and
/// whether `include_usage` is added (rather than replacing a value).
fn expected(body: &[u8]) -> Option<(Value, bool)> {
    let mut document: Value = serde_json::from_slice(body).ok()?;
    let object = document.as_object()?;
    if object.get("stream") != Some(&json!(true)) {
        return None;
    }
    let added = match object.get("stream_options") {
        None => true,
        Some(Value::Null) => false,
        Some(Value::Object(o)) if o.get("include_usage") == Some(&json!(true)) => return None,
        Some(Value::Object(o)) => !o.contains_key("include_usage"),
        Some(_) => return None,
    };
    document["stream_options"]["include_usage"] = json!(true);
    Some((document, added))
}

fuzz_target!(|input: Input| {
    let body = body(&input);
    let rewritten = with_include_usage(&body);
    match (expected(&body), &rewritten) {
        (Some((document, added)), Some(edited)) => {
            let parsed: Value = serde_json::from_slice(edited).expect("the edit parses");
            assert_eq!(parsed, document);
            let prefix = body.iter().zip(edited).take_while(|(a, b)| a == b).count();
            let suffix = (body.iter().rev())
                .zip(edited.iter().rev())
                .take_while(|(a, b)| a == b)
                .count();
            assert!(
                !added || (edited.len() > body.len() && prefix + suffix >= body.len()),
                "not one insertion: {:?} → {:?}",
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(edited)
            );
        }
        (None, None) => {}
        // The edit is refused only where the textual reading cannot follow the
        // document (none is expected of well-formed JSON).
        (Some(_), None) => panic!("not rewritten: {:?}", String::from_utf8_lossy(&body)),
        (None, Some(edited)) => panic!(
            "rewritten with nothing to do: {:?} → {:?}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(edited)
        ),
    }
});
