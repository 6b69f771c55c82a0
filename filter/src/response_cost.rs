//! Costs known only after the response: its body bytes, a cost header the upstream
//! sets (`x-usage-tokens`), and a number in its JSON body found by a JSON pointer —
//! also in a `text/event-stream`, where the last event carrying it wins (streamed LLM
//! answers report usage in their final event).
//!
//! The response is never paused: the filter reads each chunk as it passes and keeps at
//! most `max_body_bytes` (a whole JSON body, or one event of a stream).

use serde_json::Value;
use tollgate_protocol::config::CostsConfig;

/// How a JSON cost is read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JsonReader {
    /// A plain body, parsed at its end.
    Whole { body: Vec<u8>, too_large: bool },
    /// An event stream, parsed event by event.
    Events {
        line: Vec<u8>,
        data: Vec<u8>,
        last: Option<u64>,
        too_large: bool,
    },
}

/// The post-paid costs of one response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseMeter {
    bytes: u64,
    header_cost: Option<u64>,
    json: Option<JsonReader>,
}

impl ResponseMeter {
    /// Response headers arrived: `header` looks one up.
    pub fn on_headers(&mut self, costs: &CostsConfig, header: impl Fn(&str) -> Option<String>) {
        if let Some(cost) = &costs.response_header {
            self.header_cost = header(&cost.header).and_then(|v| v.trim().parse().ok());
        }
        if costs.response_json.is_some() {
            let streamed = header("content-type")
                .is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
            self.json = Some(if streamed {
                JsonReader::Events {
                    line: Vec::new(),
                    data: Vec::new(),
                    last: None,
                    too_large: false,
                }
            } else {
                JsonReader::Whole {
                    body: Vec::new(),
                    too_large: false,
                }
            });
        }
    }

    /// Whether body chunks must be read (not only counted).
    pub fn reads_body(&self) -> bool {
        self.json.is_some()
    }

    /// A body chunk of `size` bytes passed; `chunk` is its content when read.
    pub fn on_body(&mut self, costs: &CostsConfig, size: u64, chunk: &[u8]) {
        self.bytes = self.bytes.saturating_add(size);
        let (Some(reader), Some(cost)) = (&mut self.json, &costs.response_json) else {
            return;
        };
        let max = usize::try_from(cost.max_body_bytes).unwrap_or(usize::MAX);
        match reader {
            JsonReader::Whole { body, too_large } => {
                if body.len().saturating_add(chunk.len()) > max {
                    *too_large = true;
                    body.clear();
                } else if !*too_large {
                    body.extend_from_slice(chunk);
                }
            }
            JsonReader::Events {
                line,
                data,
                last,
                too_large,
            } => {
                for &byte in chunk {
                    if byte != b'\n' {
                        if line.len() < max {
                            line.push(byte);
                        } else {
                            *too_large = true;
                        }
                        continue;
                    }
                    let text = line.strip_suffix(b"\r").unwrap_or(line);
                    if text.is_empty() {
                        // A blank line ends an event: its data is one JSON document.
                        if let Some(n) = pointer_value(data, &cost.pointer) {
                            *last = Some(n);
                        }
                        data.clear();
                    } else if let Some(value) = text.strip_prefix(b"data:") {
                        let value = value.strip_prefix(b" ").unwrap_or(value);
                        if !data.is_empty() {
                            data.push(b'\n');
                        }
                        if data.len().saturating_add(value.len()) <= max {
                            data.extend_from_slice(value);
                        } else {
                            *too_large = true;
                        }
                    }
                    line.clear();
                }
            }
        }
    }

    /// What the response cost, per post-paid resource, once it is over. A cost the
    /// response did not report is 0; the header wins over the body when both name the
    /// same resource.
    pub fn costs(&self, costs: &CostsConfig) -> Vec<(String, u64)> {
        let mut found: Vec<(String, u64)> = Vec::new();
        if costs.response_bytes {
            found.push((
                tollgate_protocol::resource::RESPONSE_BYTES.into(),
                self.bytes,
            ));
        }
        if let Some(cost) = &costs.response_header {
            found.push((cost.resource.clone(), self.header_cost.unwrap_or(0)));
        }
        if let Some(cost) = &costs.response_json {
            let from_body = self.json_cost(&cost.pointer).unwrap_or(0);
            match found.iter_mut().find(|(r, _)| *r == cost.resource) {
                None => found.push((cost.resource.clone(), from_body)),
                // The same resource as the header: the body counts only without it.
                Some((_, amount)) if self.header_cost.is_none() => *amount = from_body,
                Some(_) => {}
            }
        }
        found
    }

    /// Whether the body was too large to read its cost (worth a log line).
    pub fn too_large(&self) -> bool {
        matches!(
            self.json,
            Some(JsonReader::Whole {
                too_large: true,
                ..
            }) | Some(JsonReader::Events {
                too_large: true,
                ..
            })
        )
    }

    fn json_cost(&self, pointer: &str) -> Option<u64> {
        match self.json.as_ref()? {
            JsonReader::Whole { body, too_large } => {
                if *too_large {
                    None
                } else {
                    pointer_value(body, pointer)
                }
            }
            // An event still open when the stream ended (no final blank line) counts too.
            JsonReader::Events { data, last, .. } => pointer_value(data, pointer).or(*last),
        }
    }
}

/// The non-negative integer at `pointer` in a JSON document, if there is one.
fn pointer_value(json: &[u8], pointer: &str) -> Option<u64> {
    if json.is_empty() {
        return None;
    }
    let document: Value = serde_json::from_slice(json).ok()?;
    document.pointer(pointer)?.as_u64()
}

/// The post-paid resources a config reserves at the headers, each once.
pub fn post_paid_resources(costs: &CostsConfig) -> Vec<String> {
    let mut resources: Vec<String> = Vec::new();
    if costs.response_bytes {
        resources.push(tollgate_protocol::resource::RESPONSE_BYTES.into());
    }
    let reported = [
        costs.response_header.as_ref().map(|c| &c.resource),
        costs.response_json.as_ref().map(|c| &c.resource),
    ];
    for resource in reported.into_iter().flatten() {
        if !resources.contains(resource) {
            resources.push(resource.clone());
        }
    }
    resources
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs(json: &str) -> CostsConfig {
        serde_json::from_str(json).unwrap()
    }

    const TOKENS: &str = r#"{"response_json":{"pointer":"/usage/total_tokens","resource":"tokens"},
        "response_header":{"header":"x-usage-tokens","resource":"tokens"},"response_bytes":true}"#;

    fn meter(costs: &CostsConfig, headers: &[(&str, &str)]) -> ResponseMeter {
        let mut meter = ResponseMeter::default();
        meter.on_headers(costs, |name| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        });
        meter
    }

    #[test]
    fn plain_json_body_across_chunks() {
        let costs = costs(TOKENS);
        let mut m = meter(&costs, &[("content-type", "application/json")]);
        let body = br#"{"id":"x","usage":{"prompt_tokens":3,"total_tokens":42}}"#;
        let (a, b) = body.split_at(20);
        m.on_body(&costs, a.len() as u64, a);
        m.on_body(&costs, b.len() as u64, b);
        assert_eq!(
            m.costs(&costs),
            vec![
                ("response_bytes".to_string(), body.len() as u64),
                ("tokens".to_string(), 42)
            ]
        );
    }

    #[test]
    fn header_wins_over_the_body_for_the_same_resource() {
        let costs = costs(TOKENS);
        let mut m = meter(&costs, &[("x-usage-tokens", "7")]);
        let body = br#"{"usage":{"total_tokens":42}}"#;
        m.on_body(&costs, body.len() as u64, body);
        assert!(m.costs(&costs).contains(&("tokens".to_string(), 7)));
    }

    #[test]
    fn event_stream_counts_the_last_event_with_usage_even_split_mid_line() {
        let costs = costs(TOKENS);
        let mut m = meter(
            &costs,
            &[("content-type", "text/event-stream; charset=utf-8")],
        );
        let stream = "data: {\"choices\":[{\"delta\":\"hi\"}]}\n\n\
                      data: {\"usage\":{\"total_tokens\":5}}\r\n\r\n\
                      data: {\"choices\":[],\"usage\":{\"total_tokens\":17}}\n\n\
                      data: [DONE]\n\n";
        for chunk in stream.as_bytes().chunks(7) {
            m.on_body(&costs, chunk.len() as u64, chunk);
        }
        assert!(m.costs(&costs).contains(&("tokens".to_string(), 17)));
    }

    #[test]
    fn missing_unparseable_or_negative_costs_count_zero() {
        let costs = costs(TOKENS);
        for body in [&b"not json"[..], br#"{"usage":{"total_tokens":-3}}"#, b""] {
            let mut m = meter(&costs, &[("x-usage-tokens", "lots")]);
            m.on_body(&costs, body.len() as u64, body);
            assert!(m.costs(&costs).contains(&("tokens".to_string(), 0)));
        }
    }

    #[test]
    fn body_larger_than_the_limit_is_not_parsed() {
        let costs =
            costs(r#"{"response_json":{"pointer":"/n","resource":"tokens","max_body_bytes":8}}"#);
        let mut m = meter(&costs, &[]);
        let body = br#"{"n":12345678}"#;
        m.on_body(&costs, body.len() as u64, body);
        assert!(m.too_large());
        assert_eq!(m.costs(&costs), vec![("tokens".to_string(), 0)]);
    }

    #[test]
    fn post_paid_resources_are_listed_once() {
        assert_eq!(
            post_paid_resources(&costs(TOKENS)),
            vec!["response_bytes".to_string(), "tokens".to_string()]
        );
        assert!(post_paid_resources(&CostsConfig::default()).is_empty());
    }
}
