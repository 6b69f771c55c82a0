//! The whole product for one test, and the admin calls tests make.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::control_plane::{ControlPlane, ADMIN_TOKEN};
use crate::envoy::{Envoy, EnvoySettings};
use crate::postgres::Postgres;
use crate::redis::Redis;
use crate::upstream::Upstream;

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The filter's failure mode, `open` or `closed`.
    pub failure_mode: &'static str,
    /// The filter's decision deadline in milliseconds.
    pub timeout_ms: u64,
    /// More `tollgate serve` flags.
    pub control_plane_args: Vec<&'static str>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            failure_mode: "open",
            timeout_ms: 200,
            control_plane_args: Vec::new(),
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
    /// The control plane (stop and restart it to test failure handling).
    pub control_plane: ControlPlane,
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
        let dir = tempfile::Builder::new().prefix("tollgate-e2e-").tempdir()?;
        let (redis, postgres) =
            tokio::try_join!(Redis::start(dir.path()), Postgres::start(dir.path()))?;
        let control_plane = ControlPlane::start_with(
            dir.path(),
            &postgres.url(),
            &redis.url(),
            &options.control_plane_args,
        )
        .await?;
        control_plane.wait_ready(Duration::from_secs(30)).await?;
        let upstream = Upstream::start().await?;
        let envoy = Envoy::start(
            dir.path(),
            &options.envoy_settings(&upstream, &control_plane),
        )
        .await?;
        Ok(Gateway {
            envoy,
            upstream,
            control_plane,
            redis,
            postgres,
            dir,
            http: reqwest::Client::new(),
        })
    }

    /// Another Envoy on the same control plane and upstream, with other options.
    pub async fn another_envoy(&self, options: GatewayOptions) -> Result<Envoy> {
        Envoy::start(
            self.dir.path(),
            &options.envoy_settings(&self.upstream, &self.control_plane),
        )
        .await
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
    fn envoy_settings(&self, upstream: &Upstream, control_plane: &ControlPlane) -> EnvoySettings {
        EnvoySettings {
            upstream_port: upstream.port,
            control_plane_port: control_plane.port,
            failure_mode: self.failure_mode,
            timeout_ms: self.timeout_ms,
        }
    }
}
