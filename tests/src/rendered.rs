//! What a rendered Envoy config holds, read as Envoy reads it (YAML): the gateway
//! listener's connection manager and HTTP filters, and the Tollgate filter's config
//! parsed by the filter's own parser — for tests of what `scripts/render-envoy.sh` and
//! the documented examples produce.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tollgate_protocol::config::FilterConfig;

/// The name of the Tollgate filter in the shipped templates' `http_filters`.
pub const FILTER_NAME: &str = "tollgate";

/// A rendered config, parsed.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The whole config as JSON values.
    pub config: Value,
}

impl Rendered {
    /// Parses rendered YAML.
    pub fn parse(yaml: &str) -> Result<Rendered> {
        let config: Value = serde_norway::from_str(yaml).context("the config is not YAML")?;
        Ok(Rendered { config })
    }

    /// Reads and parses a rendered file.
    pub fn read(path: &Path) -> Result<Rendered> {
        let yaml =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Rendered::parse(&yaml).with_context(|| path.display().to_string())
    }

    /// The first listener's HTTP connection manager (its `typed_config`).
    pub fn connection_manager(&self) -> Result<&Value> {
        let manager = &self.config["static_resources"]["listeners"][0]["filter_chains"][0]
            ["filters"][0]["typed_config"];
        if !manager.is_object() {
            bail!("the first listener has no connection manager");
        }
        Ok(manager)
    }

    /// The connection manager's HTTP filters, in order.
    pub fn http_filters(&self) -> Result<&Vec<Value>> {
        self.connection_manager()?["http_filters"]
            .as_array()
            .context("the connection manager has no http_filters list")
    }

    /// The HTTP filter called `name`.
    pub fn http_filter(&self, name: &str) -> Result<&Value> {
        self.http_filters()?
            .iter()
            .find(|filter| filter["name"] == name)
            .with_context(|| format!("no http filter {name:?}"))
    }

    /// The Tollgate filter's configuration as written (the JSON string Envoy hands it).
    pub fn filter_config_json(&self) -> Result<&str> {
        self.http_filter(FILTER_NAME)?["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .context("the tollgate filter has no configuration value")
    }

    /// The Tollgate filter's configuration, parsed and checked as the filter does at
    /// start-up.
    pub fn filter_config(&self) -> Result<FilterConfig> {
        let json = self.filter_config_json()?;
        FilterConfig::from_json(json.as_bytes()).with_context(|| json.to_string())
    }

    /// The ports of the control-plane cluster's endpoints.
    pub fn control_plane_ports(&self) -> Result<Vec<u64>> {
        let clusters = self.config["static_resources"]["clusters"]
            .as_array()
            .context("no clusters")?;
        let cluster = clusters
            .iter()
            .find(|c| c["name"] == "tollgate_control_plane")
            .context("no tollgate_control_plane cluster")?;
        let endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_array()
            .context("the control-plane cluster has no lb_endpoints")?;
        endpoints
            .iter()
            .map(|e| {
                e["endpoint"]["address"]["socket_address"]["port_value"]
                    .as_u64()
                    .context("an endpoint without a port")
            })
            .collect()
    }
}
