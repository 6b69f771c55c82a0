//! The self-view: a request for `quota_path` is answered by the filter itself with the
//! caller's own quota (`POST /v1/quota`, passed on as the control plane wrote it). The
//! caller is whoever the request's tenant is by the same rule as every other request (a
//! verified JWT claim, a path segment, a header), so nobody reads another tenant's
//! quota through it unless they could spend it too; without a valid tenant it gets the
//! same 401/400. It counts nothing, is no request the stats count as admitted, never
//! reaches the upstream, and is not to be cached past a second. Without an answer in
//! time it is 503, whatever the failure mode: there is nothing to let through.

use serde::Deserialize;
use tollgate_protocol::problem::Problem;
use tollgate_protocol::quota::QUOTA_PATH;
use tollgate_protocol::{QuotaRequest, RejectReason, TenantSource};

use super::request::{Next, RequestFlow};
use super::state::{Event, Purpose};
use crate::host::{Host, Metric};
use crate::identity::after_tenant_prefix;

/// How long a client may keep the view: a second, for the caller alone.
const VIEW_CACHE_CONTROL: &str = "private, max-age=1";

/// What the filter reads of the control plane's view before passing it on: whose it is,
/// and whether the tenant is known. The rest is passed on as it is.
#[derive(Deserialize)]
struct Head {
    tenant: String,
    #[serde(default)]
    reason: Option<RejectReason>,
}

impl RequestFlow {
    /// Whether the request asks for the caller's own quota: its path (without the
    /// query) is `quota_path`, or with `tenant.from: path` is it after the tenant's
    /// prefix (`/tenants/acme/.well-known/quota`).
    pub(super) fn asks_for_view(&self) -> bool {
        let Some(quota_path) = self.config.quota_path.as_deref() else {
            return false;
        };
        let path = if self.config.tenant.from == TenantSource::Path {
            match after_tenant_prefix(&self.config.tenant, &self.path) {
                Some(rest) => rest,
                None => return false,
            }
        } else {
            self.path.split(['?', '#']).next().unwrap_or_default()
        };
        path == quota_path
    }

    /// Answers a request for the caller's own quota: 405 for a method other than GET
    /// or HEAD, 401/400 without a valid tenant, else asks the control plane.
    pub(super) fn view(&mut self, host: &dyn Host) -> Next {
        self.state.on(Event::ViewAsked);
        if !matches!(self.method.as_str(), "GET" | "HEAD") {
            let detail = format!("{} answers GET and HEAD only", self.path);
            let problem = Problem::plain(405, "Method Not Allowed", detail);
            let headers = [("allow", "GET, HEAD"), ("cache-control", "no-store")];
            return self.reply(host, &problem, &owned(&headers));
        }
        let identity = match self.identify(host) {
            Ok(identity) => identity,
            Err(replied) => return replied,
        };
        let request = QuotaRequest {
            tenant: identity.tenant.clone(),
            roles: identity.roles.clone(),
        };
        self.identity = Some(identity);
        match self.send_json(host, QUOTA_PATH, &request, Purpose::View) {
            Ok(()) => self.pause(),
            Err(why) => self.view_unavailable(host, why),
        }
    }

    /// The control plane's answer (`status` is Envoy's, synthetic 503/504 included).
    pub(super) fn on_view_answer(&mut self, host: &dyn Host, status: Option<u32>, body: &[u8]) {
        if status != Some(200) {
            host.count(Metric::CalloutFailures);
            self.misconfigured(host, status, QUOTA_PATH);
            let why = format!("control plane answered status {status:?}");
            self.view_unavailable(host, &why);
            return;
        }
        let head = match serde_json::from_slice::<Head>(body) {
            Ok(head) if head.tenant == self.tenant() => head,
            Ok(head) => {
                host.count(Metric::CalloutFailures);
                let why = format!("a view of tenant {} answered", head.tenant);
                self.view_unavailable(host, &why);
                return;
            }
            Err(e) => {
                host.count(Metric::CalloutFailures);
                self.view_unavailable(host, &format!("unreadable view: {e}"));
                return;
            }
        };
        if head.reason == Some(RejectReason::UnknownTenant) {
            host.count(Metric::TenantUnknown);
            let detail = format!("tenant {} is not known to the gateway", head.tenant);
            self.reply(host, &Problem::plain(403, "Forbidden", detail), &[]);
            return;
        }
        host.count(Metric::QuotaViews);
        let headers = [
            ("content-type", "application/json"),
            ("cache-control", VIEW_CACHE_CONTROL),
        ];
        self.answer(host, 200, &headers, body);
    }

    /// No view could be had: 503, whatever the failure mode.
    pub(super) fn view_unavailable(&mut self, host: &dyn Host, why: &str) -> Next {
        host.warn(&format!(
            "tollgate: no quota view for tenant {}: {why}",
            self.tenant()
        ));
        let detail = "the quota service is unavailable; try again later";
        let problem = Problem::plain(503, "Service Unavailable", detail);
        self.reply(host, &problem, &owned(&[("cache-control", "no-store")]))
    }
}

fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    (headers.iter())
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}
