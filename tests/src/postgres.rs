//! A throwaway PostgreSQL cluster: `initdb` into a temporary directory, `postgres` on
//! its own port. Under root both run as the `postgres` user, because PostgreSQL refuses
//! to run as root. With [`Postgres::start_tls`] it takes TLS connections only.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process::{free_port, wait_for_port, ChildGuard};
use crate::tls::Pki;

/// A running PostgreSQL with trust authentication for `postgres` on 127.0.0.1.
#[derive(Debug)]
pub struct Postgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    run_as: Option<(u32, u32)>,
    /// The server certificate and key (in the cluster's directory) when TLS is on.
    ssl: Option<(PathBuf, PathBuf)>,
    child: Option<ChildGuard>,
}

impl Postgres {
    /// Creates a cluster under `dir` and starts it.
    pub async fn start(dir: &Path) -> Result<Postgres> {
        Postgres::create(dir, None).await
    }

    /// Creates a cluster under `dir` that presents `pki`'s server certificate and
    /// refuses connections without TLS (`hostssl` only in `pg_hba.conf`), and starts it.
    pub async fn start_tls(dir: &Path, pki: &Pki) -> Result<Postgres> {
        Postgres::create(dir, Some(pki)).await
    }

    async fn create(dir: &Path, pki: Option<&Pki>) -> Result<Postgres> {
        let bin = bin_dir()?;
        let home = dir.join("postgres");
        std::fs::create_dir_all(&home)?;
        // PostgreSQL refuses to run as root: as root, hand the directory to `postgres`.
        // SAFETY: geteuid has no preconditions.
        let run_as = if unsafe { libc::geteuid() } == 0 {
            let (uid, gid) = postgres_user()?;
            chown(dir, uid, gid)?;
            chown(&home, uid, gid)?;
            Some((uid, gid))
        } else {
            None
        };
        let data = home.join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data);
        let log = dir.join("initdb.log");
        let mut init = ChildGuard::spawn("initdb", initdb, log.clone(), libc::SIGTERM, run_as)?;
        if !init.wait_success()? {
            bail!(
                "initdb failed: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let ssl = match pki {
            Some(pki) => Some(enable_tls(&home, &data, pki, run_as)?),
            None => None,
        };
        let mut postgres = Postgres {
            port: free_port()?,
            dir: dir.to_path_buf(),
            run_as,
            ssl,
            child: None,
        };
        postgres.restart().await?;
        Ok(postgres)
    }

    /// Starts the server (again) on the same data and port: tests of PostgreSQL outages.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        let bin = bin_dir()?;
        let home = self.dir.join("postgres");
        let mut server = Command::new(bin.join("postgres"));
        server
            .arg("-D")
            .arg(home.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&home);
        server.args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]);
        server.args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
        if let Some((cert, key)) = &self.ssl {
            server.args(["-c", "ssl=on"]);
            server
                .arg("-c")
                .arg(format!("ssl_cert_file={}", cert.display()));
            server
                .arg("-c")
                .arg(format!("ssl_key_file={}", key.display()));
        }
        let log = self.dir.join("postgres.log");
        // SIGINT is PostgreSQL's fast shutdown.
        let mut child =
            ChildGuard::spawn("postgres", server, log.clone(), libc::SIGINT, self.run_as)?;
        wait_for_port(&mut child, self.port, &log).await?;
        wait_accepting(&mut child, &log, &bin, self.port).await?;
        self.child = Some(child);
        Ok(())
    }

    /// The URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL of the `postgres` database that insists on TLS and verifies the server
    /// against `ca_cert` (certificate chain and host name), as an operator writes it.
    pub fn tls_url(&self, ca_cert: &Path) -> String {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            self.url(),
            ca_cert.display()
        )
    }

    /// Runs `sql` (one or more statements) with `psql` on the `postgres` database and
    /// returns what it printed; fails on the first statement that fails. For seeding
    /// at a scale the admin API would take minutes for.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let output = Command::new(bin_dir()?.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(),
                "-c",
                sql,
            ])
            .output()
            .context("running psql")?;
        if !output.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Stops the server (fast shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.stop();
        }
    }

    /// Stops the server as a crash does: immediate shutdown (SIGQUIT), every backend
    /// gone at once, no checkpoint, so the next start runs crash recovery. (A SIGKILL of
    /// the postmaster alone would leave its backends running and block the restart.)
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.stop_with(libc::SIGQUIT);
        }
    }
}

/// Copies `pki`'s server certificate and key into `home` as PostgreSQL wants them (the
/// key private to the user the server runs as) and allows TCP connections over TLS only.
/// Returns the certificate's and the key's paths.
fn enable_tls(
    home: &Path,
    data: &Path,
    pki: &Pki,
    run_as: Option<(u32, u32)>,
) -> Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let cert = home.join("server.pem");
    let key = home.join("server-key.pem");
    std::fs::copy(&pki.server_cert, &cert).context("copying the server certificate")?;
    std::fs::copy(&pki.server_key, &key).context("copying the server key")?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    if let Some((uid, gid)) = run_as {
        chown(&cert, uid, gid)?;
        chown(&key, uid, gid)?;
    }
    // The Unix socket as initdb left it; over TCP, TLS or nothing.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .context("writing pg_hba.conf")?;
    Ok((cert, key))
}

/// Waits until the server accepts connections (it listens a moment before it does),
/// failing at once, with its log, if it exits: a port that another process listens on
/// looks open even when PostgreSQL could not bind it.
async fn wait_accepting(server: &mut ChildGuard, log: &Path, bin: &Path, port: u16) -> Result<()> {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        server.check_alive(log)?;
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if ready {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.check_alive(log)?;
    let output = std::fs::read_to_string(log).unwrap_or_default();
    bail!("PostgreSQL on port {port} did not accept connections within 60 s:\n{output}")
}

/// Where Debian keeps `initdb` and `postgres` (not on PATH): `pg_config --bindir`, else
/// the newest `/usr/lib/postgresql/*/bin`. `TOLLGATE_PG_BIN` overrides both.
fn bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("TOLLGATE_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (run scripts/setup.sh)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no initdb under /usr/lib/postgresql")
}

fn postgres_user() -> Result<(u32, u32)> {
    let name = CString::new("postgres")?;
    // SAFETY: getpwnam returns a pointer into static storage or null; read at once.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        bail!("no `postgres` user (install the postgresql package)");
    }
    // SAFETY: non-null entry from getpwnam.
    Ok(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))
}
