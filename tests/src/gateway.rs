//! The whole product for one test, and the admin calls tests make.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::control_plane::{ControlPlane, ADMIN_TOKEN, DECISION_TOKEN};
use crate::envoy::{Envoy, EnvoySettings, Template};
use crate::postgres::Postgres;
use crate::process::free_port;
use crate::redis::Redis;
use crate::upstream::Upstream;

/// How long a settlement (sent after the response, asynchronously) may take to show in
/// the admin API's usage.
pub const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// What the filter's control-plane cluster reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ControlPlaneTarget {
    /// The gateway's control plane.
    #[default]
    Real,
    /// Whatever listens on this port (e.g. a [`crate::hanging::Hanging`] server).
    Port(u16),
    /// A cluster with an empty endpoint list (`tollgate_no_endpoints`).
    NoEndpoints,
    /// A cluster whose one host, on this port, fails its active health check and whose
    /// panic threshold is 0, so Envoy has no healthy host to send to
    /// (`tollgate_unhealthy`).
    FailingHealthCheck(u16),
}

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The filter's failure mode, `open` or `closed`.
    pub failure_mode: &'static str,
    /// The filter's decision deadline in milliseconds.
    pub timeout_ms: u64,
    /// More `tollgate serve` flags.
    pub control_plane_args: Vec<&'static str>,
    /// Filter config merged (objects key by key) over the default
    /// `{"control_plane": {"cluster": …, "timeout_ms": timeout_ms},
    /// "failure_mode": failure_mode}`. Ignored by [`Template::Reference`], whose filter
    /// config is the documented one (it takes only the failure mode and the deadline).
    pub filter: Value,
    /// Which shipped Envoy config runs.
    pub template: Template,
    /// What the control-plane cluster reaches.
    pub control_plane: ControlPlaneTarget,
    /// How many control planes run (at least one), all on the same Redis and
    /// PostgreSQL; with [`ControlPlaneTarget::Real`] the cluster has one endpoint each.
    pub control_planes: usize,
    /// Whether Redis keeps its data on disk ([`Redis::start_durable_on`]), so that a
    /// test can stop it and start it again with its data.
    pub durable_redis: bool,
    /// How long Envoy lets a request's stream send nothing before it ends it with 408
    /// (the gateway template's `stream_idle_timeout`).
    pub stream_idle_timeout: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            failure_mode: "open",
            timeout_ms: 200,
            control_plane_args: Vec::new(),
            filter: json!({}),
            template: Template::Gateway,
            control_plane: ControlPlaneTarget::Real,
            control_planes: 1,
            durable_redis: false,
            stream_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Redis, PostgreSQL, the control plane, the upstream and Envoy, all real.
/// Fields drop in declaration order: Envoy first, stores last, the directory at the end.
#[derive(Debug)]
pub struct Gateway {
    /// The gateway under test.
    pub envoy: Envoy,
    /// The backend that records what passed.
    pub upstream: Upstream,
    /// The control plane (stop and restart it to test failure handling); the admin API
    /// calls go to it.
    pub control_plane: ControlPlane,
    /// The other control planes ([`GatewayOptions::control_planes`]), on the same stores.
    pub more_control_planes: Vec<ControlPlane>,
    /// The counter store.
    pub redis: Redis,
    /// The definitions store.
    pub postgres: Postgres,
    /// Logs and data of every process.
    pub dir: TempDir,
    http: reqwest::Client,
}

impl Gateway {
    /// Starts everything.
    pub async fn start(options: GatewayOptions) -> Result<Gateway> {
        let mut dir = tempfile::Builder::new().prefix("tollgate-e2e-").tempdir()?;
        // TOLLGATE_E2E_KEEP=1 keeps every log and config for a look after the test.
        dir.disable_cleanup(std::env::var_os("TOLLGATE_E2E_KEEP").is_some());
        let redis = async {
            if options.durable_redis {
                Redis::start_durable_on(dir.path(), free_port()?).await
            } else {
                Redis::start(dir.path()).await
            }
        };
        let (redis, postgres) = tokio::try_join!(redis, Postgres::start(dir.path()))?;
        let start_control_plane = || async {
            let control_plane = ControlPlane::start_with(
                dir.path(),
                &postgres.url(),
                &redis.url(),
                &options.control_plane_args,
            )
            .await?;
            control_plane.wait_ready(Duration::from_secs(30)).await?;
            anyhow::Ok(control_plane)
        };
        let control_plane = start_control_plane().await?;
        // One after the other: the first has applied the migrations.
        let mut more_control_planes = Vec::new();
        for _ in 1..options.control_planes {
            more_control_planes.push(start_control_plane().await?);
        }
        let upstream = Upstream::start().await?;
        let ports = control_plane_ports(&control_plane, &more_control_planes);
        let envoy = Envoy::start(dir.path(), &options.envoy_settings(&upstream, ports)).await?;
        Ok(Gateway {
            envoy,
            upstream,
            control_plane,
            more_control_planes,
            redis,
            postgres,
            dir,
            http: reqwest::Client::new(),
        })
    }

    /// Another Envoy on the same control plane and upstream, with other options.
    pub async fn another_envoy(&self, options: GatewayOptions) -> Result<Envoy> {
        self.another_envoy_to(options, &self.upstream).await
    }

    /// Another Envoy on the same control planes, in front of `upstream` (one of its own,
    /// so that what passed each Envoy is recorded apart).
    pub async fn another_envoy_to(
        &self,
        options: GatewayOptions,
        upstream: &Upstream,
    ) -> Result<Envoy> {
        let ports = control_plane_ports(&self.control_plane, &self.more_control_planes);
        Envoy::start(self.dir.path(), &options.envoy_settings(upstream, ports)).await
    }

    /// What an Envoy started with `options` in front of this gateway's upstream and
    /// control planes runs: for [`Envoy::start_reloadable`] and [`Envoy::reload`].
    pub fn envoy_settings(&self, options: &GatewayOptions) -> EnvoySettings {
        let ports = control_plane_ports(&self.control_plane, &self.more_control_planes);
        options.envoy_settings(&self.upstream, ports)
    }

    /// Every control plane: [`Gateway::control_plane`] first.
    pub fn control_planes(&self) -> impl Iterator<Item = &ControlPlane> {
        std::iter::once(&self.control_plane).chain(&self.more_control_planes)
    }

    /// An admin API call; fails unless it answers 2xx.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let (status, body) = self.admin_reply(method.clone(), path, body).await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// An admin API call, whatever it answers: status and JSON body.
    pub async fn admin_reply(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let url = format!("{}/admin/v1{path}", self.control_plane.url());
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Creates a tier with one monthly `request_bytes` limit.
    pub async fn create_monthly_bytes_tier(
        &self,
        name: &str,
        quota: u64,
        overage: u64,
        warn_at: f64,
    ) -> Result<()> {
        let limit = json!({
            "resource": "request_bytes", "period": "month",
            "quota": quota, "overage": overage, "warn_at": warn_at
        });
        self.admin(
            reqwest::Method::POST,
            "/tiers",
            Some(json!({"name": name, "limits": [limit]})),
        )
        .await?;
        Ok(())
    }

    /// Creates a tenant on a tier.
    pub async fn create_tenant(&self, id: &str, tier: &str) -> Result<()> {
        self.admin(
            reqwest::Method::POST,
            "/tenants",
            Some(json!({"id": id, "tier": tier})),
        )
        .await?;
        Ok(())
    }

    /// The tenant's own `request_bytes` usage in the current month, from the admin API.
    pub async fn usage(&self, tenant: &str) -> Result<u64> {
        self.usage_at(tenant, tenant, "request_bytes", "month")
            .await
    }

    /// Live usage of `level`'s limit on `resource` per `period`, as the usage of
    /// `tenant` (a descendant of `level`, or `level` itself) reports it.
    pub async fn usage_at(
        &self,
        tenant: &str,
        level: &str,
        resource: &str,
        period: &str,
    ) -> Result<u64> {
        let path = format!("/tenants/{}/usage", path_segment(tenant));
        let body = self.admin(reqwest::Method::GET, &path, None).await?;
        body["usage"]
            .as_array()
            .and_then(|rows| {
                rows.iter().find(|row| {
                    row["tenant"] == level && row["resource"] == resource && row["period"] == period
                })
            })
            .and_then(|row| row["used"].as_u64())
            .with_context(|| format!("no {period} {resource} usage of {level} in {body}"))
    }

    /// The tenant's own usage of `resource` per `period` with the limits a request
    /// carrying `roles` gets (a tier chosen by a role assignment).
    pub async fn usage_with_roles(
        &self,
        tenant: &str,
        roles: &[&str],
        resource: &str,
        period: &str,
    ) -> Result<u64> {
        let path = format!(
            "/tenants/{}/usage?roles={}",
            path_segment(tenant),
            roles.join(",")
        );
        let body = self.admin(reqwest::Method::GET, &path, None).await?;
        body["usage"]
            .as_array()
            .and_then(|rows| {
                rows.iter().find(|row| {
                    row["tenant"] == tenant
                        && row["resource"] == resource
                        && row["period"] == period
                })
            })
            .and_then(|row| row["used"].as_u64())
            .with_context(|| format!("no {period} {resource} usage of {tenant} in {body}"))
    }

    /// Creates a tier with `limits` (a JSON array of limit objects:
    /// `{"resource", "period", "quota", "overage"?, "warn_at"?}`).
    pub async fn create_tier(&self, name: &str, limits: Value) -> Result<()> {
        self.admin(
            reqwest::Method::POST,
            "/tiers",
            Some(json!({"name": name, "limits": limits})),
        )
        .await?;
        Ok(())
    }

    /// Gives `tier` to every request that carries `role`.
    pub async fn assign_role(&self, role: &str, tier: &str) -> Result<()> {
        self.admin(
            reqwest::Method::POST,
            "/assignments",
            Some(json!({"role": role, "tier": tier})),
        )
        .await?;
        Ok(())
    }

    /// Creates a tenant without a tier of its own (a role or the default decides).
    pub async fn create_tenant_without_tier(&self, id: &str) -> Result<()> {
        self.admin(reqwest::Method::POST, "/tenants", Some(json!({"id": id})))
            .await?;
        Ok(())
    }

    /// Waits (at most [`SETTLE_WAIT`]) until the tenant's own usage of `resource` per
    /// `period` is `expected`, and fails with the last value otherwise: settlements
    /// are sent after the response, so usage reaches its final value a little later.
    pub async fn wait_usage(
        &self,
        tenant: &str,
        resource: &str,
        period: &str,
        expected: u64,
    ) -> Result<()> {
        let start = std::time::Instant::now();
        loop {
            let used = self.usage_at(tenant, tenant, resource, period).await;
            if used.as_ref().is_ok_and(|u| *u == expected) {
                return Ok(());
            }
            if start.elapsed() > SETTLE_WAIT {
                bail!(
                    "{tenant}'s {period} {resource} usage is {used:?}, not {expected}, after {SETTLE_WAIT:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `bytes` of body as `tenant` through the gateway.
    pub async fn send(&self, tenant: Option<&str>, bytes: usize) -> Result<reqwest::Response> {
        send(&self.http, &self.envoy, tenant, bytes).await
    }
}

/// Sends `bytes` of body as `tenant` through `envoy`.
pub async fn send(
    http: &reqwest::Client,
    envoy: &Envoy,
    tenant: Option<&str>,
    bytes: usize,
) -> Result<reqwest::Response> {
    let mut request = http
        .post(format!("{}/upload", envoy.url()))
        .body(vec![b'x'; bytes]);
    if let Some(tenant) = tenant {
        request = request.header("x-tenant-id", tenant);
    }
    Ok(request.send().await?)
}

/// A tenant id as one URL path segment (`/` as `%2F`).
pub fn path_segment(id: &str) -> String {
    id.replace('%', "%25").replace('/', "%2F")
}

impl GatewayOptions {
    /// The filter config this gateway runs: the default with [`GatewayOptions::filter`]
    /// merged over it.
    pub fn filter_config(&self) -> Value {
        let cluster = match self.control_plane {
            ControlPlaneTarget::NoEndpoints => "tollgate_no_endpoints",
            ControlPlaneTarget::FailingHealthCheck(_) => "tollgate_unhealthy",
            ControlPlaneTarget::Real | ControlPlaneTarget::Port(_) => "tollgate_control_plane",
        };
        let mut config = json!({
            "control_plane": {
                "cluster": cluster,
                "timeout_ms": self.timeout_ms,
                "token": DECISION_TOKEN,
            },
            "failure_mode": self.failure_mode,
        });
        merge(&mut config, &self.filter);
        config
    }

    /// The settings of an Envoy in front of `upstream` whose control-plane cluster
    /// reaches `control_plane_ports` (unless [`GatewayOptions::control_plane`] says
    /// otherwise).
    fn envoy_settings(&self, upstream: &Upstream, control_plane_ports: Vec<u16>) -> EnvoySettings {
        let control_plane_ports = match self.control_plane {
            ControlPlaneTarget::Port(port) => vec![port],
            _ => control_plane_ports,
        };
        let extra_clusters = match self.control_plane {
            ControlPlaneTarget::NoEndpoints => NO_ENDPOINTS_CLUSTER.to_string(),
            ControlPlaneTarget::FailingHealthCheck(port) => {
                UNHEALTHY_CLUSTER.replace("{{PORT}}", &port.to_string())
            }
            _ => String::new(),
        };
        EnvoySettings {
            template: self.template,
            upstream_port: upstream.port,
            control_plane_ports,
            filter_config: self.filter_config(),
            extra_clusters,
            stream_idle_timeout: self.stream_idle_timeout,
        }
    }
}

fn control_plane_ports(first: &ControlPlane, more: &[ControlPlane]) -> Vec<u16> {
    std::iter::once(first)
        .chain(more)
        .map(|cp| cp.decision_port)
        .collect()
}

const NO_ENDPOINTS_CLUSTER: &str = "\
- name: tollgate_no_endpoints
  type: STATIC
  connect_timeout: 0.25s
  load_assignment:
    cluster_name: tollgate_no_endpoints
    endpoints: []
";

const UNHEALTHY_CLUSTER: &str = "\
- name: tollgate_unhealthy
  type: STATIC
  connect_timeout: 0.25s
  common_lb_config:
    healthy_panic_threshold: { value: 0 }
  health_checks:
  - timeout: 0.2s
    interval: 1s
    unhealthy_threshold: 1
    healthy_threshold: 1
    http_health_check: { path: /health }
  load_assignment:
    cluster_name: tollgate_unhealthy
    endpoints:
    - lb_endpoints:
      - endpoint:
          address:
            socket_address: { address: 127.0.0.1, port_value: {{PORT}} }
";

/// Merges `patch` into `base`: objects key by key, anything else replaced.
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}
