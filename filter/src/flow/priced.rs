//! A priced cost's own steps (`costs.priced`): at the headers, what is held for it and
//! whether the body is read (for the request's model) or held (for `include_usage`, with
//! `content-length` dropped since the body may grow); the body read as it passes and
//! dealt with at its end; and, at the settlement, what the request is charged.

use std::collections::BTreeMap;

use super::request::{Next, RequestFlow};
use super::state::Event;
use crate::host::{Host, Metric};
use crate::priced::{charge, Charge, Reported};
use crate::request_json::{is_json, Finish, RequestJson};
use crate::response_cost::Finished;

impl RequestFlow {
    /// At the headers: adds what the price table reserves to `amounts`, and prepares to
    /// read the body if the model is the request's or `include_usage` may rewrite it.
    pub(super) fn priced_headers(
        &mut self,
        host: &dyn Host,
        amounts: &mut BTreeMap<String, u64>,
        end_of_stream: bool,
    ) {
        let Some(priced) = &self.config.costs.priced else {
            return;
        };
        for (resource, reserve) in priced.reserves() {
            if reserve > 0 {
                amounts.insert(resource, reserve);
            }
        }
        if end_of_stream {
            return;
        }
        let rewrites = priced.includes_usage_at(&self.path)
            && is_json(host.request_header("content-type").as_deref());
        if rewrites {
            // The body may grow at its end, when its headers have long gone on: Envoy
            // frames it instead (chunked to an HTTP/1.1 upstream, as HTTP/2 needs none).
            host.remove_request_header("content-length");
        }
        if rewrites || priced.model_from_request() {
            self.request_json = Some(RequestJson::new(rewrites));
        }
    }

    /// A body callback: reads the bytes Envoy now shows, if the body is read.
    pub(super) fn read_request_json(&mut self, host: &dyn Host) {
        let (Some(reader), Some(priced)) = (&mut self.request_json, &self.config.costs.priced)
        else {
            return;
        };
        let (from, buffered) = self.body.window();
        reader.read(host, from, buffered, priced.max_request_bytes);
    }

    /// Whether the body is still held whole for a rewrite at its end: none of it has
    /// gone on yet, it has not ended, and a body callback showed some of it (so Envoy
    /// stops at the body, and a later body callback comes: never at the admission, when
    /// Envoy stops at the headers and must be resumed for the body to come at all).
    pub(super) fn holds_request_body(&self) -> bool {
        let (from, buffered) = self.body.window();
        from == 0
            && buffered > 0
            && !self.body.ended()
            && (self.request_json.as_ref()).is_some_and(RequestJson::holds)
    }

    /// Holds the body: Envoy keeps buffering it, and a later body callback lets it go.
    pub(super) fn hold(&mut self) -> Next {
        self.state.on(Event::Held);
        Next::Pause
    }

    /// The body has ended and is about to go on: learns its model and, if `may_rewrite`
    /// and Envoy still buffers all of it, rewrites it for `include_usage`.
    pub(super) fn finish_request_json(&mut self, host: &dyn Host, may_rewrite: bool) {
        if !self.body.ended() {
            return;
        }
        let (Some(reader), Some(priced)) = (&mut self.request_json, &self.config.costs.priced)
        else {
            return;
        };
        let (from, buffered) = self.body.window();
        let whole = (may_rewrite && from == 0).then_some(buffered);
        match reader.finish(priced, whole) {
            Finish::Unchanged => {}
            Finish::Rewritten(body) => {
                if host.set_request_body(&body) {
                    host.count(Metric::StreamUsageAdded);
                }
            }
            Finish::TooLarge => host.warn(
                "tollgate: request body past costs.priced.max_request_bytes: \
                 not read for its model nor rewritten",
            ),
        }
    }

    /// What the settlement corrects a priced cost to: each resource and its cost; none
    /// when what was reserved stands. A request the filter answered itself never
    /// reached an answer: its priced resources cost nothing.
    pub(super) fn priced_costs(&self, host: &dyn Host, finished: &Finished) -> Vec<(String, u64)> {
        let Some(priced) = &self.config.costs.priced else {
            return Vec::new();
        };
        let nothing = || priced.resources().map(|r| (r.to_string(), 0)).collect();
        if !self.state.is_flowing() {
            return nothing();
        }
        let reported = (finished.priced.clone()).unwrap_or_else(|| Reported::new(priced, None));
        let model = if priced.model_from_request() {
            self.request_json.as_ref().and_then(RequestJson::model)
        } else {
            reported.model.as_deref()
        };
        match charge(priced, &reported, model) {
            Charge::Reserve => Vec::new(),
            Charge::Nothing => nothing(),
            Charge::Reported {
                amounts,
                unknown_model,
            } => {
                if let Some(model) = unknown_model {
                    host.count(Metric::UnknownModels);
                    host.warn(&format!(
                        "tollgate: no price for model {model:?} in costs.priced.prices; \
                         charged the table's highest weights"
                    ));
                }
                amounts
            }
        }
    }
}
