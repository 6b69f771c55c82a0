//! Sending a callout for a request, within what is left of its deadline.

use std::time::Duration;

use tollgate_protocol::check::{CHECK_PATH, DEADLINE_HEADER};
use tollgate_protocol::CheckRequest;

use super::request::{Next, RequestFlow};
use super::state::{Event, Purpose, Wait};
use crate::host::{Callout, Host, Metric};

/// How much later than the filter's own deadline Envoy's callout timeout fires: it is
/// only the backstop, so a hung callout is always answered by the filter's deadline.
const ENVOY_TIMEOUT_BACKSTOP_MS: u64 = 1_000;

impl RequestFlow {
    /// Until when a wait for `purpose` that starts now may last: the admission's one
    /// deadline, or for a body's check or a view a whole timeout from now.
    pub(super) fn deadline_for(&mut self, host: &dyn Host, purpose: Purpose) -> u64 {
        let fresh = host
            .now_ms()
            .saturating_add(self.config.control_plane.timeout_ms);
        match purpose {
            Purpose::Admission | Purpose::Lease | Purpose::Refill => {
                *self.admission_by_ms.get_or_insert(fresh)
            }
            Purpose::Body { .. } | Purpose::Ahead { .. } | Purpose::View => fresh,
        }
    }

    /// Sends a check and keeps the request paused until it answers or the deadline
    /// passes.
    pub(super) fn ask(
        &mut self,
        host: &dyn Host,
        request: &CheckRequest,
        purpose: Purpose,
    ) -> Next {
        match self.send_json(host, CHECK_PATH, request, purpose) {
            Ok(()) => self.pause(),
            Err(why) => self.fail(host, purpose, why),
        }
    }

    /// Sends `request` to `path`; the request waits for it until the deadline (paused
    /// or not, the caller decides).
    pub(super) fn send_json(
        &mut self,
        host: &dyn Host,
        path: &'static str,
        request: &impl serde::Serialize,
        purpose: Purpose,
    ) -> Result<(), &'static str> {
        let Ok(body) = serde_json::to_vec(request) else {
            host.count(Metric::CalloutFailures);
            return Err("could not encode the request");
        };
        let deadline_ms = self.deadline_for(host, purpose);
        let left_ms = deadline_ms.saturating_sub(host.now_ms());
        if left_ms == 0 {
            host.count(Metric::CalloutTimeouts);
            return Err("no time left within the deadline");
        }
        let cp = &self.config.control_plane;
        let backstop = Duration::from_millis(left_ms + ENVOY_TIMEOUT_BACKSTOP_MS);
        let mut callout = Callout::post(cp, path, &body, backstop);
        // The control plane bounds its own work by what is left of the deadline.
        let deadline = left_ms.to_string();
        callout.headers.push((DEADLINE_HEADER, &deadline));
        host.count(Metric::Callouts);
        let Some(token) = host.dispatch(callout) else {
            host.count(Metric::CalloutFailures);
            return Err("the callout could not be dispatched");
        };
        self.follow_ups.dispatched.push(token);
        let wait = Wait {
            purpose,
            deadline_ms,
        };
        self.state.on(Event::Waiting(wait));
        Ok(())
    }
}
