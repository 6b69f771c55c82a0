//! Child processes that cannot outlive their test, free ports, and waiting.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Where cargo put this build's artifacts (`target/`), found from the test binary
/// (`target/debug/deps/…`) so that `CARGO_TARGET_DIR` is honoured.
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| repo_root().join("target"))
}

/// The lowest port [`free_port`] hands out.
const FIRST_PORT: u16 = 16_384;
/// How many ports this process has handed out.
static PORTS_HANDED_OUT: AtomicU32 = AtomicU32::new(0);

/// A loopback port nobody listens on right now, for a child to listen on.
///
/// A port is only free when it is picked: the child binds it a moment later. Ports come
/// from below the kernel's ephemeral range, where `bind(0)` and every outgoing
/// connection pick theirs, so no connection takes one meanwhile, and each is handed out
/// once per process (from an offset of the pid's), so two tests running at once never
/// get the same one. Where no such range is left, the kernel picks.
pub fn free_port() -> Result<u16> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = u32::from(ephemeral_low.saturating_sub(FIRST_PORT));
    if span < 1_024 {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
        return Ok(listener.local_addr()?.port());
    }
    let offset = std::process::id().wrapping_mul(7_919);
    for _ in 0..span {
        let n = PORTS_HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let port = u32::from(FIRST_PORT) + offset.wrapping_add(n) % span;
        let port = u16::try_from(port).context("a port past 65535")?;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {FIRST_PORT}..{ephemeral_low}")
}

/// Whether something accepts connections on `port`.
pub fn is_listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Polls `condition` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("{what}: not true after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A running child that is stopped (signal, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    stop_signal: i32,
}

impl ChildGuard {
    /// Spawns `command` with its output in `log`, killed if the spawning thread dies.
    /// `run_as` switches to that uid/gid first (PostgreSQL refuses to run as root).
    pub fn spawn(
        name: &str,
        mut command: Command,
        log: PathBuf,
        stop_signal: i32,
        run_as: Option<(u32, u32)>,
    ) -> Result<ChildGuard> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: only async-signal-safe libc calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if let Some((uid, gid)) = run_as {
                    if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // After setuid: a credential change clears the parent-death signal.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(ChildGuard {
            name: name.to_string(),
            child: Some(child),
            stop_signal,
        })
    }

    /// Fails if the child has already exited (it died at start-up).
    pub fn check_alive(&mut self, log: &std::path::Path) -> Result<()> {
        // Through `try_status`, so the guard lets go of an exited child and never
        // signals its pid again.
        if let Some(status) = self.try_status()? {
            let output = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = output.lines().rev().take(30).collect();
            bail!(
                "{} exited at start-up with {status}:\n{}",
                self.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// How the child exited, or `None` while it runs. Once it has exited the guard lets
    /// go of it, so that stopping never signals a pid the system may have reused.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child.try_wait()?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// The child's pid while it runs (to read its `/proc` entry).
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for a short-lived child (a setup command) and tells whether it succeeded.
    pub fn wait_success(&mut self) -> Result<bool> {
        match self.child.take() {
            Some(mut child) => Ok(child.wait()?.success()),
            None => Ok(false),
        }
    }

    /// Kills the child at once (SIGKILL: no graceful shutdown, nothing flushed) and
    /// waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the child and waits for it.
    pub fn stop(&mut self) {
        self.stop_with(self.stop_signal);
    }

    /// Sends the running child `signal` (nothing once it has exited).
    pub fn signal(&self, signal: i32) {
        let Some(pid) = self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok()) else {
            return;
        };
        // SAFETY: signalling our own child by its pid; the guard lets go of a child
        // once it has exited, so the pid is not another process's.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Sends the child `signal` and waits for it to exit (SIGKILL after 10 s).
    pub fn stop_with(&mut self, signal: i32) {
        self.signal(signal);
        // A frozen child (SIGSTOP) acts on it only once it runs again.
        self.signal(libc::SIGCONT);
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `port` accepts connections, failing early if `child` died.
pub async fn wait_for_port(child: &mut ChildGuard, port: u16, log: &std::path::Path) -> Result<()> {
    let start = Instant::now();
    while !is_listening(port) {
        child.check_alive(log)?;
        if start.elapsed() > Duration::from_secs(60) {
            bail!("{} did not listen on port {port} within 60 s", child.name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
