//! Costs known only after the response: its body bytes, a cost header the upstream
//! sets (`x-usage-tokens`), and a number in its JSON body found by a JSON pointer —
//! also in a `text/event-stream`, where the last event carrying it wins (streamed LLM
//! answers report usage in their final event).
//!
//! The response is never paused: the filter reads each chunk as it passes and keeps at
//! most `max_body_bytes` (a whole JSON body, or one event of a stream; `json_events`).
//! A priced cost (`costs.priced`) reads the same documents for its parts and model.

use tollgate_protocol::config::CostsConfig;

use crate::json_events::JsonEvents;
use crate::priced::Reported;

/// What the JSON documents of a response reported so far.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Found {
    /// `response_json`'s number: the last document that had it wins.
    json: Option<u64>,
    /// A priced cost's parts and model.
    priced: Option<Reported>,
}

impl Found {
    fn take(&mut self, costs: &CostsConfig, document: &serde_json::Value) {
        if let Some(cost) = &costs.response_json {
            if let Some(n) = document.pointer(&cost.pointer).and_then(|v| v.as_u64()) {
                self.json = Some(n);
            }
        }
        if let (Some(priced), Some(reported)) = (&costs.priced, &mut self.priced) {
            reported.take(priced, document);
        }
    }
}

/// What a response reported once it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Each post-paid resource but the priced ones, and what it cost.
    pub costs: Vec<(String, u64)>,
    /// With a priced cost: what the response reported of it.
    pub priced: Option<Reported>,
}

/// The post-paid costs of one response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseMeter {
    bytes: u64,
    header_cost: Option<u64>,
    json: Option<JsonEvents>,
    found: Found,
}

impl ResponseMeter {
    /// Response headers arrived: `header` looks one up.
    pub fn on_headers(&mut self, costs: &CostsConfig, header: impl Fn(&str) -> Option<String>) {
        if let Some(cost) = &costs.response_header {
            self.header_cost = header(&cost.header).and_then(|v| v.trim().parse().ok());
        }
        if let Some(priced) = &costs.priced {
            let status = header(":status").and_then(|s| s.trim().parse().ok());
            self.found.priced = Some(Reported::new(priced, status));
        }
        if costs.response_json.is_some() || costs.priced.is_some() {
            let streamed = header("content-type")
                .is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
            self.json = Some(JsonEvents::new(streamed));
        }
    }

    /// Whether body chunks must be read (not only counted).
    pub fn reads_body(&self) -> bool {
        self.json.is_some()
    }

    /// A body chunk of `size` bytes passed; `chunk` is its content when read.
    pub fn on_body(&mut self, costs: &CostsConfig, size: u64, chunk: &[u8]) {
        self.bytes = self.bytes.saturating_add(size);
        let Some(reader) = &mut self.json else {
            return;
        };
        let found = &mut self.found;
        reader.feed(chunk, max_body_bytes(costs), |document| {
            found.take(costs, document);
        });
    }

    /// What the response cost, per post-paid resource, once it is over. A cost the
    /// response did not report is 0; the header wins over the body when both name the
    /// same resource. Priced costs are left to [`ResponseMeter::finish`].
    pub fn costs(&self, costs: &CostsConfig) -> Vec<(String, u64)> {
        self.finish(costs).costs
    }

    /// What the response reported once it is over: the document still open at its end
    /// (a whole JSON body, or an event without its blank line) counts too.
    pub fn finish(&self, costs: &CostsConfig) -> Finished {
        let mut found = self.found.clone();
        if let Some(document) = self.json.as_ref().and_then(JsonEvents::rest) {
            found.take(costs, &document);
        }
        let mut amounts: Vec<(String, u64)> = Vec::new();
        if costs.response_bytes {
            amounts.push((
                tollgate_protocol::resource::RESPONSE_BYTES.into(),
                self.bytes,
            ));
        }
        if let Some(cost) = &costs.response_header {
            amounts.push((cost.resource.clone(), self.header_cost.unwrap_or(0)));
        }
        if let Some(cost) = &costs.response_json {
            let from_body = found.json.unwrap_or(0);
            match amounts.iter_mut().find(|(r, _)| *r == cost.resource) {
                None => amounts.push((cost.resource.clone(), from_body)),
                // The same resource as the header: the body counts only without it.
                Some((_, amount)) if self.header_cost.is_none() => *amount = from_body,
                Some(_) => {}
            }
        }
        Finished {
            costs: amounts,
            priced: found.priced,
        }
    }

    /// Whether the body was too large to read its cost (worth a log line).
    pub fn too_large(&self) -> bool {
        self.json.as_ref().is_some_and(JsonEvents::too_large)
    }
}

/// The most of a response kept to read its costs: the larger bound when both
/// `response_json` and `priced` read it.
fn max_body_bytes(costs: &CostsConfig) -> usize {
    let json = costs.response_json.as_ref().map(|c| c.max_body_bytes);
    let priced = costs.priced.as_ref().map(|c| c.max_body_bytes);
    let max = json.max(priced).unwrap_or(0);
    usize::try_from(max).unwrap_or(usize::MAX)
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
