//! The JSON documents of a response body as it passes: the whole body of a plain JSON
//! answer, or the `data:` of each event of a `text/event-stream` (streamed LLM answers
//! report usage in their last events).
//!
//! The body is never held: each chunk is read as Envoy passes it on, and at most `max`
//! bytes are kept (the whole JSON body, or one line and one event of a stream). A body
//! or an event past that is not parsed, and [`JsonEvents::too_large`] says so.

use serde_json::Value;

/// A response body being read, document by document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonEvents {
    /// A plain body, parsed at its end.
    Whole { body: Vec<u8>, too_large: bool },
    /// An event stream, parsed event by event.
    Events {
        line: Vec<u8>,
        data: Vec<u8>,
        too_large: bool,
        /// The current line went past the bound: what is kept of it is not the line.
        cut: bool,
        /// The current event lost some of its data: it is not read at all (its data
        /// without the lost part could still parse, to a different document).
        spoiled: bool,
    },
}

impl JsonEvents {
    /// A reader for an event stream (`streamed`) or a plain body.
    pub fn new(streamed: bool) -> JsonEvents {
        if streamed {
            JsonEvents::Events {
                line: Vec::new(),
                data: Vec::new(),
                too_large: false,
                cut: false,
                spoiled: false,
            }
        } else {
            JsonEvents::Whole {
                body: Vec::new(),
                too_large: false,
            }
        }
    }

    /// Reads `chunk`, keeping at most `max` bytes; each event it completes (a stream's
    /// blank line) is handed to `each` if it is JSON.
    pub fn feed(&mut self, chunk: &[u8], max: usize, mut each: impl FnMut(&Value)) {
        match self {
            JsonEvents::Whole { body, too_large } => {
                if body.len().saturating_add(chunk.len()) > max {
                    *too_large = true;
                    body.clear();
                } else if !*too_large {
                    body.extend_from_slice(chunk);
                }
            }
            JsonEvents::Events {
                line,
                data,
                too_large,
                cut,
                spoiled,
            } => {
                for &byte in chunk {
                    if byte != b'\n' {
                        if line.len() < max {
                            line.push(byte);
                        } else {
                            *too_large = true;
                            *cut = true;
                        }
                        continue;
                    }
                    let text = line.strip_suffix(b"\r").unwrap_or(line);
                    if *cut {
                        // Perhaps a data line: the event is missing it.
                        *spoiled = true;
                        data.clear();
                    } else if text.is_empty() {
                        // A blank line ends an event: its data is one JSON document.
                        if !*spoiled {
                            if let Some(document) = parse(data) {
                                each(&document);
                            }
                        }
                        data.clear();
                        *spoiled = false;
                    } else if *spoiled {
                        // The rest of an event that lost some of its data.
                    } else if let Some(value) = text.strip_prefix(b"data:") {
                        let value = value.strip_prefix(b" ").unwrap_or(value);
                        if !data.is_empty() {
                            data.push(b'\n');
                        }
                        if data.len().saturating_add(value.len()) <= max {
                            data.extend_from_slice(value);
                        } else {
                            *too_large = true;
                            *spoiled = true;
                            data.clear();
                        }
                    }
                    line.clear();
                    *cut = false;
                }
            }
        }
    }

    /// The document still open when the body ended: the whole JSON body (unless it was
    /// too large), or an event whose blank line never came.
    pub fn rest(&self) -> Option<Value> {
        match self {
            JsonEvents::Whole { body, too_large } => (!*too_large).then(|| parse(body))?,
            JsonEvents::Events {
                data, spoiled, cut, ..
            } => (!*spoiled && !*cut).then(|| parse(data))?,
        }
    }

    /// Whether part of the body was too large to read (worth a log line).
    pub fn too_large(&self) -> bool {
        match self {
            JsonEvents::Whole { too_large, .. } | JsonEvents::Events { too_large, .. } => {
                *too_large
            }
        }
    }
}

/// A JSON document, if `json` is one.
fn parse(json: &[u8]) -> Option<Value> {
    if json.is_empty() {
        return None;
    }
    serde_json::from_slice(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documents(events: &mut JsonEvents, body: &[u8], cut: usize, max: usize) -> Vec<Value> {
        let mut seen = Vec::new();
        for chunk in body.chunks(cut) {
            events.feed(chunk, max, |doc| seen.push(doc.clone()));
        }
        seen
    }

    #[test]
    fn a_stream_hands_over_each_json_event_however_it_is_cut() {
        let stream = b"event: message_start\ndata: {\"a\":1}\n\n: ping\n\
                       data: [DONE]\n\ndata: {\"b\":\ndata: 2}\r\n\r\ndata: {\"open\":3}\n";
        for cut in [1, 2, 7, stream.len()] {
            let mut events = JsonEvents::new(true);
            let seen = documents(&mut events, stream, cut, 64);
            assert_eq!(
                seen,
                vec![serde_json::json!({"a": 1}), serde_json::json!({"b": 2})]
            );
            assert_eq!(events.rest(), Some(serde_json::json!({"open": 3})));
            assert!(!events.too_large());
        }
    }

    #[test]
    fn a_whole_body_is_one_document_at_its_end_unless_it_is_too_large() {
        let body = br#"{"usage":{"total_tokens":4}}"#;
        let mut whole = JsonEvents::new(false);
        assert!(documents(&mut whole, body, 5, body.len()).is_empty());
        assert_eq!(whole.rest().unwrap()["usage"]["total_tokens"], 4);
        let mut small = JsonEvents::new(false);
        documents(&mut small, body, 5, body.len() - 1);
        assert!(small.too_large() && small.rest().is_none());
    }

    #[test]
    fn an_event_missing_a_line_past_the_bound_is_not_read_as_what_is_left() {
        // Cut at the bound, the long line would read as its first digits; left out, the
        // event's other lines would read as {"n":1}: neither is what the upstream sent.
        let long =
            b"data: 123456789\n\ndata: {\"n\":\ndata: \"xxxxxxxxxxxxxxxxxxxx\"\ndata: 1}\n\n";
        let next = b"data: {\"n\":2}\n\ndata: 9999999999";
        for cut in [1, 4, long.len()] {
            let mut events = JsonEvents::new(true);
            let mut seen = documents(&mut events, long, cut, 14);
            seen.extend(documents(&mut events, next, cut, 14));
            assert_eq!(seen, vec![serde_json::json!({"n": 2})], "cut {cut}");
            assert!(events.too_large());
            assert_eq!(events.rest(), None, "the open event is past the bound too");
        }
    }

    #[test]
    fn an_event_past_the_bound_is_not_read_and_the_next_one_is() {
        let stream = b"data: {\"long\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}\n\ndata: {\"n\":1}\n\n";
        let mut events = JsonEvents::new(true);
        let seen = documents(&mut events, stream, 3, 16);
        assert_eq!(seen, vec![serde_json::json!({"n": 1})]);
        assert!(events.too_large());
    }
}
