//! The response and the end of the request: quota headers, costs the upstream reports,
//! what to settle, and what to give back when the client went away first.

use std::collections::BTreeMap;

use tollgate_protocol::headers::quota_headers;
use tollgate_protocol::{resource, SettleRequest};

use super::request::RequestFlow;
use super::state::{Event, Purpose};
use crate::budget::{self, RefillEnd};
use crate::host::Host;

impl RequestFlow {
    /// Response headers are on their way to the client: add the quota headers and read
    /// any cost the upstream reports in them.
    pub fn on_response_headers(&mut self, host: &dyn Host) {
        if !self.state.is_flowing() {
            return;
        }
        let status = self.status;
        for (name, value) in quota_headers(&self.config.headers, status, self.policy.as_ref()) {
            host.add_response_header(&name, &value);
        }
        self.response
            .on_headers(&self.config.costs, |name| host.response_header(name));
    }

    /// A response body chunk of `size` bytes is passing.
    pub fn on_response_body(&mut self, host: &dyn Host, size: usize) {
        if !self.state.is_flowing() || !self.state.is_counted() {
            return;
        }
        let chunk = if self.response.reads_body() {
            host.response_body(size)
        } else {
            Vec::new()
        };
        self.response.on_body(
            &self.config.costs,
            u64::try_from(size).unwrap_or(u64::MAX),
            &chunk,
        );
    }

    /// The request ends (the client went away) while its check or its refill is in
    /// flight: the check is taken back, and both leases of the refill are returned.
    pub fn abandon(&mut self, host: &dyn Host) {
        if self.state.waits_for(Purpose::Refill) || self.state.waits_for(Purpose::View) {
            self.state.on(Event::WaitOver); // nobody to wake or answer any more
        }
        // The client went away while its check was in flight: not admitted.
        if self.state.waits_for(Purpose::Admission) {
            self.state.on(Event::WaitOver);
            self.take_back_check();
        }
        let Some(refill) = self.refill.take() else {
            return;
        };
        budget::abandon_refill(host, &refill.owner);
        self.refill_ended(&refill.owner, RefillEnd::Answered);
        let returns = refill.give_back(host);
        self.follow_ups.returns.extend(returns);
    }

    /// The request is over: what to correct in what its checks counted, if anything
    /// (with a unique id, so a retry is recognised), and the hold to release.
    pub fn settlement(&self, host: &dyn Host) -> Option<SettleRequest> {
        let identity = self.identity.as_ref()?;
        if !self.state.is_counted() {
            return None;
        }
        let costs = &self.config.costs;
        let mut amounts = BTreeMap::new();
        if costs.request_bytes {
            amounts.insert(resource::REQUEST_BYTES.to_string(), self.body.correction());
        }
        if self.response.too_large() {
            host.warn(
                "tollgate: response body (or an event of it) past max_body_bytes, not read \
                 for its cost: a JSON cost counts 0, a priced one what the rest reported \
                 (else its reserve)",
            );
        }
        let finished = self.response.finish(costs);
        let priced = self.priced_costs(host, &finished);
        for (resource, cost) in finished.costs.into_iter().chain(priced) {
            let reserved = self.amounts.get(&resource).copied().unwrap_or(0);
            let cost = i64::try_from(cost).unwrap_or(i64::MAX);
            let reserved = i64::try_from(reserved).unwrap_or(i64::MAX);
            amounts.insert(resource, cost.saturating_sub(reserved));
        }
        amounts.retain(|_, amount| *amount != 0);
        if amounts.is_empty() && self.hold_id.is_none() {
            return None;
        }
        Some(SettleRequest {
            id: host.unique_id(),
            tenant: identity.tenant.clone(),
            roles: identity.roles.clone(),
            amounts,
            checked_at_ms: self.checked_at_ms,
            release_request_id: self.hold_id.clone(),
        })
    }
}
