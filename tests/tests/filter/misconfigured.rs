//! A filter whose control plane answers its calls 404 (its cluster reaches the admin
//! listener, which serves no `/v1`) or 401 (its token is not the control plane's
//! `--decision-token`): it applies its failure mode as for any failed call, counts
//! each such answer in `control_plane_misconfigured`, and says why in Envoy's log,
//! once per worker rather than once per request.

use std::time::Duration;

use serde_json::json;
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::process::eventually;
use tollgate_e2e::raw::RawConnection;
use tollgate_e2e::{ControlPlaneTarget, GatewayOptions};

use super::{get, start, stat};

/// The tenant of every request.
const TENANT: (&str, &str) = ("x-tenant-id", "acme");

/// Sends `requests` requests through `envoy` on one connection (kept alive, as a
/// pooling client might not), so that one Envoy worker (one VM) sees them all: the log
/// line is once per worker.
async fn on_one_connection(envoy: &Envoy, requests: usize) {
    let mut connection = RawConnection::start(envoy.port, "GET", "/api", &[TENANT])
        .await
        .unwrap();
    for n in 0..requests {
        if n > 0 {
            let (name, value) = TENANT;
            let head = format!("GET /api HTTP/1.1\r\nhost: gateway\r\n{name}: {value}\r\n\r\n");
            connection.send(head.as_bytes()).await.unwrap();
        }
        let response = connection.response(Duration::from_secs(10)).await.unwrap();
        assert_eq!(response.status, 200, "failure mode open");
        assert_eq!(response.header("x-quota-status"), Some("unknown"));
    }
}

/// Waits until `envoy`'s log has `line`, gives the other requests' lines a moment to
/// show, and answers the log's lines that have it (each names its Envoy thread).
async fn logged(envoy: &Envoy, line: &str) -> Vec<String> {
    eventually(Duration::from_secs(10), line, || async {
        envoy.log().contains(line)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = envoy.log();
    let lines = log.lines().filter(|l| l.contains(line));
    lines.map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_pointed_at_the_admin_listener_or_with_the_wrong_token_says_so_once() {
    let gateway = start(GatewayOptions::default()).await;
    let admin_listener = gateway.control_plane.port;
    let misdirected = gateway
        .another_envoy(GatewayOptions {
            control_plane: ControlPlaneTarget::Port(admin_listener),
            ..GatewayOptions::default()
        })
        .await
        .unwrap();
    let impostor = gateway
        .another_envoy(GatewayOptions {
            filter: json!({"control_plane": {"token": "guessed-secret"}}),
            ..GatewayOptions::default()
        })
        .await
        .unwrap();

    on_one_connection(&misdirected, 3).await;
    assert_eq!(stat(&misdirected, "control_plane_misconfigured").await, 3);
    assert_eq!(stat(&misdirected, "callout_failures").await, 3);
    assert_eq!(stat(&misdirected, "failed_open").await, 3);
    let not_found = "the control plane answered 404 to /v1/check: is control_plane.cluster \
                     pointing at the decision listener (--decision-listen)?";
    let lines = logged(&misdirected, not_found).await;
    assert_eq!(lines.len(), 1, "{lines:#?}");

    on_one_connection(&impostor, 3).await;
    assert_eq!(stat(&impostor, "control_plane_misconfigured").await, 3);
    let unauthorized = "the control plane answered 401 to /v1/check: control_plane.token \
                        does not match the control plane's --decision-token";
    let lines = logged(&impostor, unauthorized).await;
    assert_eq!(lines.len(), 1, "{lines:#?}");

    // The gateway that reaches the decision listener with the right token has nothing to
    // say about it.
    get(&gateway.envoy, "/api", &[("x-tenant-id", "acme")]).await;
    assert_eq!(stat(&gateway.envoy, "control_plane_misconfigured").await, 0);
    assert!(!gateway.envoy.log().contains("the control plane answered"));
}
