//! Running `console/tests/` with `node --test` and reading its report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tollgate_e2e::control_plane::ADMIN_TOKEN;
use tollgate_e2e::process::{repo_root, ChildGuard};
use tollgate_e2e::Gateway;

use crate::seed::Fixtures;

/// Past this the browser run counts as hung: it is killed and the test fails. The run
/// took about a minute here.
const DEADLINE: Duration = Duration::from_secs(300);

/// The browser test files. Each test holds whatever order they run in: it compares
/// with what it read before it acted (usage, a quota), not with the seed.
const FILES: [&str; 4] = [
    "signin.test.mjs",
    "tenants.test.mjs",
    "limits.test.mjs",
    "assignments.test.mjs",
];

/// How many browser tests there are.
const TESTS: usize = 10;

/// The screenshots the browser tests save (each test at least one).
const SCREENSHOTS: [&str; 13] = [
    "signin-refused",
    "tier-admin",
    "tier-read-only",
    "tenant-read-only",
    "tenants-tree",
    "tenants-search",
    "tenant-long-id",
    "tenant-usage",
    "limit-field-error",
    "events-limit-updated",
    "usage-reset-confirm",
    "assignment-field-error",
    "assignments",
];

fn tests_dir() -> PathBuf {
    repo_root().join("console/tests")
}

/// Where the screenshots go: `target/console-screenshots/` of the repository.
pub fn screenshot_dir() -> PathBuf {
    repo_root().join("target/console-screenshots")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Fails, saying what to run, unless chromium, node and the npm packages are there.
pub fn check_prerequisites() {
    assert!(
        chromium().exists(),
        "{} is missing: the console tests need Debian's chromium (scripts/setup.sh installs it)",
        chromium().display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: scripts/setup.sh installs nodejs"
    );
    let playwright = tests_dir().join("node_modules/playwright-core/package.json");
    assert!(
        playwright.exists(),
        "{} is missing: run scripts/setup.sh (npm ci in console/tests)",
        playwright.display()
    );
}

/// What `node --test` printed, and how it ended.
pub struct Report {
    pub output: String,
    pub success: bool,
    pub started: std::time::SystemTime,
}

impl Report {
    fn count(&self, label: &str) -> usize {
        self.output
            .lines()
            .find_map(|line| line.strip_prefix(&format!("# {label} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `# {label}` line in the report:\n{}", self.output))
    }

    /// Every browser test ran and passed.
    pub fn assert_all_passed(&self) {
        assert!(self.success, "browser tests failed:\n{}", self.output);
        let (passed, failed) = (self.count("pass"), self.count("fail"));
        assert_eq!(failed, 0, "{}", self.output);
        assert_eq!(self.count("skipped"), 0, "{}", self.output);
        assert!(
            passed >= TESTS,
            "only {passed} browser tests passed:\n{}",
            self.output
        );
    }
}

/// Runs the browser tests against `gateway`.
pub async fn run(gateway: &Gateway, fixtures: &Fixtures, read_token: &str) -> Report {
    let shots = screenshot_dir();
    for name in SCREENSHOTS {
        let _ = std::fs::remove_file(shots.join(format!("{name}.png")));
    }
    let mut command = Command::new("node");
    command
        .args(["--test", "--test-concurrency=1", "--test-reporter=tap"])
        .args(FILES)
        .current_dir(tests_dir())
        .env(
            "CONSOLE_URL",
            format!("{}/console/", gateway.control_plane.url()),
        )
        .env("CONSOLE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("CONSOLE_READ_TOKEN", read_token)
        .env("CONSOLE_GATEWAY_URL", gateway.envoy.url())
        .env("CONSOLE_SCREENSHOTS", &shots)
        .env("CHROMIUM", chromium())
        .env("CONSOLE_TRAFFIC_TENANT", &fixtures.traffic_tenant)
        .env("CONSOLE_LONG_TENANT", &fixtures.long_tenant)
        .env("CONSOLE_FIND_TENANT", &fixtures.find_tenant)
        .env("CONSOLE_TIER", &fixtures.tier);
    let log = gateway.dir.path().join("console-tests.log");
    let started = std::time::SystemTime::now();
    let clock = Instant::now();
    let mut run = ChildGuard::spawn("node", command, log.clone(), libc::SIGTERM, None)
        .expect("starting node --test");
    let status = loop {
        if let Some(status) = run.try_status().unwrap() {
            break status;
        }
        if clock.elapsed() > DEADLINE {
            run.kill();
            panic!(
                "the browser tests still ran after {DEADLINE:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    println!(
        "browser tests ({:.0?}):\n{}",
        clock.elapsed(),
        summary(&output)
    );
    Report {
        output,
        success: status.success(),
        started,
    }
}

/// The lines that name a test and its result, and the totals.
fn summary(output: &str) -> String {
    output
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("not ok ") || l.starts_with("# "))
        .filter(|l| !l.starts_with("# Subtest"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each browser test left its screenshot, written by this run.
pub fn assert_screenshots(report: &Report) {
    for name in SCREENSHOTS {
        let path = screenshot_dir().join(format!("{name}.png"));
        let written = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(written >= report.started, "{} is stale", path.display());
        assert!(is_png(&path), "{} is not a PNG", path.display());
    }
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
}
