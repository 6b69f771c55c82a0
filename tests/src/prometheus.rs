//! A real Prometheus (Debian's `prometheus`, which `scripts/setup.sh` installs) running
//! the shipped scrape config and rules of `observability/prometheus/`, its targets
//! replaced by the test's control planes and Envoys, scraping and evaluating every
//! second.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Map, Value};

use crate::process::{free_port, repo_root, wait_for_port, ChildGuard};

/// The shipped configuration: its jobs' names and metrics paths are what the rules and
/// the dashboard expect.
pub fn shipped_config() -> PathBuf {
    repo_root().join("observability/prometheus/prometheus.yml")
}

/// The shipped rule files.
pub fn rule_files() -> Result<Vec<PathBuf>> {
    let dir = repo_root().join("observability/prometheus/rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|path| path.extension().is_some_and(|e| e == "yml"));
    files.sort();
    Ok(files)
}

/// What Prometheus scrapes, by the shipped config's job names.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Admin ports of the control planes (`/metrics`), job `tollgate-control-plane`.
    pub control_planes: Vec<u16>,
    /// Admin ports of the Envoys (`/stats/prometheus`), job `tollgate-envoy`.
    pub envoys: Vec<u16>,
}

/// One sample of an instant query.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The series' labels (`__name__` included, when the result has one).
    pub labels: Map<String, Value>,
    /// Its value (NaN included).
    pub value: f64,
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    /// Its port on 127.0.0.1 (HTTP API).
    pub port: u16,
    log: PathBuf,
    http: reqwest::Client,
    _child: ChildGuard,
}

impl Prometheus {
    /// The binary: `TOLLGATE_PROMETHEUS`, else `prometheus` on the PATH.
    pub fn binary() -> Result<PathBuf> {
        if let Some(path) = std::env::var_os("TOLLGATE_PROMETHEUS") {
            return Ok(PathBuf::from(path));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("prometheus"))
            .find(|candidate| candidate.is_file())
            .context("no `prometheus` on the PATH: run scripts/setup.sh")
    }

    /// Writes the shipped config with `targets` into `dir` and starts Prometheus on it,
    /// its data in `dir` too; returns once it is ready.
    pub async fn start(dir: &Path, targets: &Targets) -> Result<Prometheus> {
        let port = free_port()?;
        let config = dir.join(format!("prometheus-{port}.yml"));
        std::fs::write(&config, render_config(targets)?)?;
        let data = dir.join(format!("prometheus-{port}-data"));
        let log = dir.join(format!("prometheus-{port}.log"));
        let mut command = Command::new(Self::binary()?);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let mut child = ChildGuard::spawn("prometheus", command, log.clone(), libc::SIGTERM, None)?;
        wait_for_port(&mut child, port, &log).await?;
        let prometheus = Prometheus {
            port,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            _child: child,
        };
        prometheus.wait_ready().await?;
        Ok(prometheus)
    }

    /// The last lines of its log, for a failure message.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn wait_ready(&self) -> Result<()> {
        let url = format!("http://127.0.0.1:{}/-/ready", self.port);
        for _ in 0..300 {
            let ready = self.http.get(&url).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("Prometheus not ready after 30 s:\n{}", self.log())
    }

    /// `GET /api/v1/<path>` with `query`, its `data` once the answer is a success.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let url = format!("http://127.0.0.1:{}/api/v1/{path}", self.port);
        let body: Value = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?
            .json()
            .await?;
        ensure!(
            body["status"] == "success",
            "{path} {query:?} answered {body}"
        );
        Ok(body["data"].clone())
    }

    /// An instant query of `expr` (an error for a query Prometheus refuses, or one whose
    /// result is not a vector).
    pub async fn query(&self, expr: &str) -> Result<Vec<Sample>> {
        let data = self.api("query", &[("query", expr)]).await?;
        ensure!(
            data["resultType"] == "vector",
            "{expr} is a {}, not a vector",
            data["resultType"]
        );
        let result = data["result"].as_array().cloned().unwrap_or_default();
        result
            .iter()
            .map(|sample| {
                let value = sample["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .with_context(|| format!("a sample without a value: {sample}"))?;
                let labels = sample["metric"].as_object().cloned().unwrap_or_default();
                Ok(Sample { labels, value })
            })
            .collect()
    }

    /// The values of label `name` (`__name__`: every metric name it has stored), of the
    /// series `matching` selects (all with `None`).
    pub async fn label_values(
        &self,
        name: &str,
        matching: Option<&str>,
    ) -> Result<BTreeSet<String>> {
        let query: Vec<(&str, &str)> = matching.map(|m| ("match[]", m)).into_iter().collect();
        let data = self.api(&format!("label/{name}/values"), &query).await?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect())
    }

    /// Every rule it loaded, as `/api/v1/rules` lists them (`name`, `type`, `health`,
    /// `lastError`, …).
    pub async fn rules(&self) -> Result<Vec<Value>> {
        let data = self.api("rules", &[]).await?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// The state (`pending` or `firing`) of each active alert named `alertname`, by its
    /// labels.
    pub async fn alert_states(&self, alertname: &str) -> Result<Vec<String>> {
        let samples = self
            .query(&format!("ALERTS{{alertname=\"{alertname}\"}}"))
            .await?;
        Ok(samples
            .iter()
            .filter_map(|s| s.labels.get("alertstate")?.as_str().map(String::from))
            .collect())
    }
}

/// The shipped config, scraping and evaluating every second, its rule files by absolute
/// path and each job's targets replaced by the test's. Fails on a job the harness does
/// not know, and when a job it fills is missing: the test must scrape as shipped.
fn render_config(targets: &Targets) -> Result<String> {
    let path = shipped_config();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut config: Value = serde_norway::from_str(&text)?;
    config["global"] = json!({
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    });
    config["rule_files"] = json!(rule_files()?
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>());
    let jobs = config["scrape_configs"]
        .as_array_mut()
        .context("the config has no scrape_configs")?;
    let mut filled = BTreeSet::new();
    for job in jobs.iter_mut() {
        let name = job["job_name"].as_str().unwrap_or_default().to_string();
        let ports = match name.as_str() {
            "tollgate-control-plane" => &targets.control_planes,
            "tollgate-envoy" => &targets.envoys,
            other => bail!("{}: a job the harness cannot fill: {other}", path.display()),
        };
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        job["static_configs"] = json!([{ "targets": addresses }]);
        filled.insert(name);
    }
    for job in ["tollgate-control-plane", "tollgate-envoy"] {
        ensure!(filled.contains(job), "{}: no job {job}", path.display());
    }
    Ok(serde_norway::to_string(&config)?)
}
