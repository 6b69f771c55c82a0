//! Request headers: whether the request asks for the caller's own quota or counts,
//! whose it is, and what it costs; then its admission is decided.

use std::collections::BTreeMap;

use tollgate_protocol::check::AMOUNT_MAX;
use tollgate_protocol::problem::Problem;
use tollgate_protocol::resource;

use super::request::{Next, RequestFlow};
use super::state::{BodyAsks, Event};
use crate::host::{Host, Metric};
use crate::identity::{identify, Identity, IdentityError};
use crate::response_cost::post_paid_resources;

impl RequestFlow {
    /// Request headers arrived: find the tenant and the costs and ask for a decision.
    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Next {
        self.method = host.request_header(":method").unwrap_or_default();
        self.path = host.request_header(":path").unwrap_or_default();
        if self.asks_for_view() {
            return self.view(host);
        }
        if !self.config.counts(&self.method, &self.path) {
            self.state.on(Event::Pass);
            return Next::Continue;
        }
        let identity = match self.identify(host) {
            Ok(identity) => identity,
            Err(replied) => return replied,
        };
        let (mut amounts, body) = self.admission_amounts(host, end_of_stream);
        self.priced_headers(host, &mut amounts, end_of_stream);
        self.amounts = amounts;
        self.state.on(Event::Identified(body));
        self.body.on_data(0, end_of_stream);
        self.identity = Some(identity);
        self.decide(host)
    }

    /// The caller's identity, or the request answered 401 (no tenant) or 400 (one that
    /// cannot be a tenant).
    pub(super) fn identify(&mut self, host: &dyn Host) -> Result<Identity, Next> {
        let found = identify(&self.config.tenant, &self.path, |name| {
            host.request_header(name)
        });
        found.map_err(|error| match error {
            IdentityError::Missing(what) => {
                host.count(Metric::TenantMissing);
                let detail = format!("{what} is required");
                self.reply(host, &Problem::plain(401, "Unauthorized", detail), &[])
            }
            IdentityError::Invalid(why) => {
                host.count(Metric::TenantInvalid);
                self.reply(host, &Problem::plain(400, "Bad Request", why), &[])
            }
        })
    }

    /// What the admission check asks for: one request, the announced body, a reserve
    /// for each cost known only after the response (a priced cost's is added by
    /// `priced_headers`), a hold; and how the body's bytes are asked for.
    fn admission_amounts(
        &mut self,
        host: &dyn Host,
        end_of_stream: bool,
    ) -> (BTreeMap<String, u64>, BodyAsks) {
        let costs = &self.config.costs;
        let mut amounts = BTreeMap::new();
        let mut body = BodyAsks::Announced;
        if costs.requests {
            amounts.insert(resource::REQUESTS.to_string(), 1);
        }
        if costs.request_bytes {
            // No quota is larger than what a check may ask for; the upstream gets no
            // more than is counted either way, and the settlement corrects to it.
            let announced = host
                .request_header("content-length")
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(|bytes| bytes.min(AMOUNT_MAX));
            if announced.is_none() && !end_of_stream {
                body = BodyAsks::Streamed;
            }
            let bytes = if end_of_stream {
                0
            } else {
                announced.unwrap_or(0)
            };
            amounts.insert(resource::REQUEST_BYTES.to_string(), bytes);
        }
        if costs.response_reserve > 0 {
            for resource in post_paid_resources(costs) {
                amounts.insert(resource, costs.response_reserve);
            }
        }
        if costs.concurrent_requests {
            // The hold is taken under an id of the filter's own: a client's
            // x-request-id could repeat (two requests sharing one hold) or be one the
            // control plane refuses (failing the request open, uncounted).
            amounts.insert(resource::CONCURRENT_REQUESTS.to_string(), 1);
            self.hold_id = Some(host.unique_id());
        }
        (amounts, body)
    }
}
