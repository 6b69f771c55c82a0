//! The opt-in rewrite of an OpenAI-style streaming request (`"stream": true`) that does
//! not ask for usage: `"stream_options": {"include_usage": true}` is added (or set in the
//! `stream_options` it has), so its event stream ends with a chunk that reports the
//! tokens — OpenAI-style back ends report usage in a stream only when asked.
//!
//! The body is edited as text, never re-serialised: everything else stays as the client
//! wrote it (key order, spacing, escapes, numbers past 64 bits). The edit is checked: the
//! result must parse to the client's document with `stream_options.include_usage: true`
//! and nothing else changed, or the body is left alone.

use std::ops::Range;

use serde_json::{json, Value};

/// The member added to a request's top-level object that has no `stream_options`.
const MEMBER: &[u8] = br#""stream_options":{"include_usage":true},"#;

/// The body with `stream_options.include_usage: true`, if it is a streaming request's
/// JSON object that lacks it; `None` when there is nothing to do (or nothing safe to do:
/// not JSON, not `"stream": true`, usage already asked for, `stream_options` not an
/// object or null).
pub fn with_include_usage(body: &[u8]) -> Option<Vec<u8>> {
    let document: Value = serde_json::from_slice(body).ok()?;
    let object = document.as_object()?;
    if object.get("stream") != Some(&Value::Bool(true)) {
        return None;
    }
    let options = object.get("stream_options");
    let mut expected = document.clone();
    match options {
        None | Some(Value::Null) => expected["stream_options"] = json!({"include_usage": true}),
        Some(Value::Object(o)) if o.get("include_usage") == Some(&Value::Bool(true)) => {
            return None;
        }
        Some(Value::Object(_)) => expected["stream_options"]["include_usage"] = json!(true),
        Some(_) => return None,
    }
    let edited = edit(body)?;
    let parsed: Value = serde_json::from_slice(&edited).ok()?;
    (parsed == expected).then_some(edited)
}

/// The textual edit of a body already known to be a streaming request's JSON object.
fn edit(body: &[u8]) -> Option<Vec<u8>> {
    let open = skip_whitespace(body, 0);
    let (top, _) = members(body, open)?;
    // serde_json keeps the last of duplicate keys: edit that one.
    let Some(options) = top.iter().rev().find(|m| m.key == "stream_options") else {
        return Some(splice(body, open + 1..open + 1, MEMBER));
    };
    let value = options.value.clone();
    if body.get(value.start) == Some(&b'n') {
        return Some(splice(body, value, br#"{"include_usage":true}"#));
    }
    let (inner, close) = members(body, value.start)?;
    match inner.iter().rev().find(|m| m.key == "include_usage") {
        Some(usage) => Some(splice(body, usage.value.clone(), b"true")),
        None if inner.is_empty() => Some(splice(body, close..close, br#""include_usage":true"#)),
        None => {
            let at = value.start + 1;
            Some(splice(body, at..at, br#""include_usage":true,"#))
        }
    }
}

/// `body` with `range` replaced by `with`.
fn splice(body: &[u8], range: Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut edited = Vec::with_capacity(body.len() + with.len());
    edited.extend_from_slice(body.get(..range.start).unwrap_or_default());
    edited.extend_from_slice(with);
    edited.extend_from_slice(body.get(range.end..).unwrap_or_default());
    edited
}

/// One member of an object: its key (unescaped) and where its value is.
#[derive(Debug)]
struct Member {
    key: String,
    value: Range<usize>,
}

/// The members of the object whose `{` is at `open`, and where its `}` is.
fn members(body: &[u8], open: usize) -> Option<(Vec<Member>, usize)> {
    if body.get(open) != Some(&b'{') {
        return None;
    }
    let mut members = Vec::new();
    let mut at = skip_whitespace(body, open + 1);
    if body.get(at) == Some(&b'}') {
        return Some((members, at));
    }
    loop {
        let key_end = value_end(body, at)?;
        let key: String = serde_json::from_slice(body.get(at..key_end)?).ok()?;
        at = skip_whitespace(body, key_end);
        if body.get(at) != Some(&b':') {
            return None;
        }
        let start = skip_whitespace(body, at + 1);
        let end = value_end(body, start)?;
        members.push(Member {
            key,
            value: start..end,
        });
        at = skip_whitespace(body, end);
        match body.get(at) {
            Some(b',') => at = skip_whitespace(body, at + 1),
            Some(b'}') => return Some((members, at)),
            _ => return None,
        }
    }
}

/// Where the JSON value starting at `start` ends (one past its last byte). Nesting is
/// counted, not recursed into, so a deep body cannot exhaust the stack.
fn value_end(body: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0_usize;
    let mut at = start;
    loop {
        match *body.get(at)? {
            b'"' => at = string_end(body, at)?,
            b'{' | b'[' => {
                depth += 1;
                at += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                at += 1;
            }
            _ if depth == 0 => {
                // A number or a literal: up to the next delimiter.
                let rest = body.get(at..)?;
                let len = rest
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(rest.len());
                return Some(at + len);
            }
            _ => at += 1,
        }
        if depth == 0 {
            return Some(at);
        }
    }
}

/// One past the closing quote of the string whose opening quote is at `start`.
fn string_end(body: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        match *body.get(at)? {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
}

fn skip_whitespace(body: &[u8], from: usize) -> usize {
    let rest = body.get(from..).unwrap_or_default();
    from + rest
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .unwrap_or(rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(body: &str) -> Option<String> {
        with_include_usage(body.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn a_streaming_request_without_stream_options_gets_them_first_and_nothing_else_moves() {
        let body = r#"{"model":"gpt-4o","stream":true,"seed":123456789012345678901234567890,"messages":[{"role":"user","content":"h\u00e9 \"q\""}]}"#;
        let edited = rewritten(body).unwrap();
        assert_eq!(
            edited,
            format!(
                "{{\"stream_options\":{{\"include_usage\":true}},{}",
                &body[1..]
            )
        );
        let pretty = "\n {\n  \"stream\": true\n}\n";
        assert_eq!(
            rewritten(pretty).unwrap(),
            "\n {\"stream_options\":{\"include_usage\":true},\n  \"stream\": true\n}\n"
        );
    }

    #[test]
    fn stream_options_without_usage_or_null_get_it_set() {
        assert_eq!(
            rewritten(r#"{"stream":true,"stream_options":{"include_obfuscation":false}}"#).unwrap(),
            r#"{"stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}"#
        );
        assert_eq!(
            rewritten(r#"{"stream":true,"stream_options":{ }}"#).unwrap(),
            r#"{"stream":true,"stream_options":{ "include_usage":true}}"#
        );
        assert_eq!(
            rewritten(r#"{"stream":true,"stream_options": {"include_usage" : false }}"#).unwrap(),
            r#"{"stream":true,"stream_options": {"include_usage" : true }}"#
        );
        assert_eq!(
            rewritten(r#"{"stream_options":null,"stream":true}"#).unwrap(),
            r#"{"stream_options":{"include_usage":true},"stream":true}"#
        );
    }

    #[test]
    fn nothing_to_do_or_nothing_safe_to_do_leaves_the_body_alone() {
        for body in [
            r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"stream":false}"#,
            r#"{"model":"gpt-4o"}"#,
            r#"{"stream":"true"}"#,
            r#"{"stream":true,"stream_options":"usage"}"#,
            r#"[{"stream":true}]"#,
            r#"{"stream":true"#,
            "",
            "not json",
        ] {
            assert_eq!(rewritten(body), None, "{body}");
        }
    }

    #[test]
    fn the_last_of_duplicate_keys_is_the_one_that_counts() {
        // serde_json (and most parsers) keep the last: the edit follows it.
        let body = r#"{"stream_options":{"include_usage":true},"stream":true,"stream_options":{}}"#;
        assert_eq!(
            rewritten(body).unwrap(),
            r#"{"stream_options":{"include_usage":true},"stream":true,"stream_options":{"include_usage":true}}"#
        );
        let escaped = r#"{"stream":true,"stream\u005foptions":{}}"#;
        assert_eq!(
            rewritten(escaped).unwrap(),
            r#"{"stream":true,"stream\u005foptions":{"include_usage":true}}"#
        );
    }

    #[test]
    fn deep_nesting_is_counted_not_recursed() {
        let deep = format!(
            r#"{{"stream":true,"x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        // serde_json refuses past 128 levels: nothing is rewritten, and nothing breaks.
        assert_eq!(with_include_usage(deep.as_bytes()), None);
        assert!(value_end(deep.as_bytes(), 0).is_some());
    }
}
