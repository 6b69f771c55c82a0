//! The request body against what the control plane counted for it: bytes past the
//! reservation are checked before they go on, and a streamed body asks for its next
//! reservation ahead while it flows. A priced cost reads it on the way (`priced`), and
//! may hold it whole until its end.

use std::collections::BTreeMap;

use tollgate_protocol::check::{AMOUNT_MAX, CHECK_PATH};
use tollgate_protocol::{resource, CheckRequest};

use super::request::{Next, RequestFlow};
use super::state::{BodyAsks, Purpose};
use crate::host::{Host, Metric};
use crate::reject_cache;

impl RequestFlow {
    /// A body chunk arrived; `buffered` is everything Envoy buffers for the filter.
    pub fn on_request_body(&mut self, host: &dyn Host, buffered: u64, end_of_stream: bool) -> Next {
        self.body.on_data(buffered, end_of_stream);
        if self.state.is_replied() {
            return Next::Pause;
        }
        self.read_request_json(host);
        if self.state.is_paused() {
            return Next::Pause; // Envoy buffers it until the check in flight answers
        }
        if !self.state.is_flowing() {
            return Next::Continue;
        }
        if self.state.wait().is_some() {
            // An ask ahead is in flight: go on within what is counted; keep back what is
            // not, and the end, so the request is not over before its reservation is
            // known.
            if self.body.shortfall() > 0 || end_of_stream {
                return self.pause();
            }
            if self.holds_request_body() {
                return self.hold();
            }
            self.body.release();
            return Next::Continue;
        }
        self.continue_body(host)
    }

    /// Request trailers arrived: the body has ended. A body held for a rewrite goes on
    /// as it is (only a body callback rewrites it).
    pub fn on_request_trailers(&mut self, host: &dyn Host) -> Next {
        self.body.end();
        if self.state.is_replied() || self.state.is_paused() {
            Next::Pause
        } else if self.state.wait().is_some() {
            self.pause()
        } else {
            self.finish_request_json(host, false);
            if self.state.is_holding() {
                self.body.release();
            }
            self.proceed(host)
        }
    }

    /// Lets the body go on as far as it is counted, or checks the rest first.
    pub(super) fn continue_body(&mut self, host: &dyn Host) -> Next {
        let shortfall = self.body.shortfall();
        let metered = self.state.is_metered() && self.config.costs.request_bytes;
        if !metered || shortfall == 0 {
            if self.holds_request_body() {
                // Held whole for a rewrite at its end; what is counted is checked.
                let next = self.hold();
                if metered {
                    self.ask_ahead(host);
                }
                return next;
            }
            self.finish_request_json(host, true);
            self.body.release();
            let next = self.proceed(host);
            if self.state.is_metered() && self.config.costs.request_bytes {
                self.ask_ahead(host);
            }
            return next;
        }
        let asked = if self.state.body_asks() == BodyAsks::ExactOnly {
            shortfall.min(AMOUNT_MAX)
        } else {
            self.body.ask(self.config.costs.stream_reserve_bytes)
        };
        if !self.config.shadow {
            if let Some(identity) = &self.identity {
                let needed = BTreeMap::from([(resource::REQUEST_BYTES.to_string(), shortfall)]);
                if let Some(policy) = reject_cache::refusal(host, identity, &needed) {
                    host.count(Metric::RejectCacheHits);
                    return self.reject(host, policy);
                }
            }
        }
        let request = self.body_check(asked);
        let exact = asked <= shortfall;
        self.ask(host, &request, Purpose::Body { asked, exact })
    }

    /// A streamed body nearing the end of its reservation asks for the next one while
    /// it keeps flowing, so a fast upload is rarely paused (every pause is a chance for
    /// Envoy's buffer to fill, see envoy/README.md).
    fn ask_ahead(&mut self, host: &dyn Host) {
        let base = self.config.costs.stream_reserve_bytes;
        let asked = self.body.ahead(base);
        let wanted = self.state.body_asks() == BodyAsks::Streamed
            && self.state.wait().is_none()
            && !self.body.ended()
            && self.body.running_low();
        if wanted {
            let request = self.body_check(asked);
            // A failed ask ahead changes nothing: the next needed one pauses the body.
            let _ = self.send_json(host, CHECK_PATH, &request, Purpose::Ahead { asked });
        }
    }

    fn body_check(&self, bytes: u64) -> CheckRequest {
        let amounts = BTreeMap::from([(resource::REQUEST_BYTES.to_string(), bytes)]);
        self.check_request(amounts, None)
    }
}
