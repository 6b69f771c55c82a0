//! The admin console in a real browser: the whole product (Redis, PostgreSQL, the
//! control plane with an admin and a read-only token, Envoy with the filter, an
//! upstream), 100,000 tenants, and the browser tests of `console/tests/` run by
//! `node --test`, driving Debian's chromium through playwright-core. Each browser test
//! saves a screenshot under `target/console-screenshots/`.
//!
//! Nothing is skipped: without chromium, node or `console/tests/node_modules`
//! (`scripts/setup.sh` installs them) the test fails and says so.
//!
//! - `seed` — the tiers, tenants, assignment, history and traffic the tests look at.
//! - `browser` — running the browser tests and reading their report.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod browser;
mod seed;

use reqwest::StatusCode;
use tollgate_e2e::{Gateway, GatewayOptions};

/// The read-only token of this control plane (`--admin-read-token`).
const READ_TOKEN: &str = "e2e-read-token";

#[tokio::test(flavor = "multi_thread")]
async fn the_console_works_in_a_real_browser_at_100_000_tenants() {
    browser::check_prerequisites();
    let gateway = Gateway::start(GatewayOptions {
        control_plane_args: vec!["--admin-read-token", READ_TOKEN],
        // A loaded two-core machine (the browser runs meanwhile) must not turn the
        // traffic the test sends into fail-open.
        timeout_ms: 2_000,
        ..GatewayOptions::default()
    })
    .await
    .expect("gateway starts");
    let fixtures = seed::seed(&gateway).await;

    // The console is served on the admin listener, and not on the gateways'.
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{}/console/", gateway.control_plane.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'; script-src 'self'"));
    let elsewhere = http
        .get(format!("{}/console/", gateway.control_plane.decision_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);

    let report = browser::run(&gateway, &fixtures, READ_TOKEN).await;
    report.assert_all_passed();
    browser::assert_screenshots(&report);
}
