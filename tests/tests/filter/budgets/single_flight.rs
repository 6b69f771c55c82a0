//! Single flight: while one request refills a budget, the requests of its Envoy worker
//! that need that budget wait for the answer instead of each making a callout; those of
//! the other worker are checked. The deadline still applies to every one of them.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use tollgate_e2e::hanging::Hanging;
use tollgate_e2e::slow::Slow;
use tollgate_e2e::{ControlPlaneTarget, Gateway};

use crate::{get, start_with_tier, stat, GatewayOptions};

/// Concurrent requests of one tenant that has no budget yet.
const REQUESTS: u64 = 24;

/// A gateway started with `options` and tenant `acme`, 1000 requests a day.
async fn with_acme(options: GatewayOptions) -> Gateway {
    let limits = json!([{"resource": "requests", "period": "day", "quota": 1000}]);
    start_with_tier(options, "daily", limits, &["acme"]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_arriving_during_a_refill_wait_for_it_and_are_paid_from_the_new_budget() {
    // Every callout takes 300 ms, so all the requests arrive while the refill is out.
    let slow = Slow::start(Duration::from_millis(300)).await.unwrap();
    let options = GatewayOptions {
        filter: json!({"budgets": {"enabled": true, "want": 100}}),
        timeout_ms: 2_000,
        control_plane: ControlPlaneTarget::Port(slow.port),
        control_plane_args: vec!["--lease-ttl-ms", "1500"],
        ..GatewayOptions::default()
    };
    let gateway = with_acme(options).await;
    slow.forward_to(gateway.control_plane.decision_port);

    let answers =
        join_all((0..REQUESTS).map(|_| get(&gateway.envoy, "/x", &[("x-tenant-id", "acme")])))
            .await;
    assert!(answers.iter().all(|a| a.status() == StatusCode::OK));

    let leases = stat(&gateway.envoy, "leases").await;
    let waits = stat(&gateway.envoy, "budget_waits").await;
    let hits = stat(&gateway.envoy, "budget_hits").await;
    let callouts = stat(&gateway.envoy, "callouts").await;
    assert_eq!(leases, 1, "one refill for all of them");
    assert!(
        waits >= 1,
        "requests of the refilling worker waited ({waits})"
    );
    assert!(
        hits > waits,
        "the refill's own request and its waiters: {hits} from the budget"
    );
    // Every request was paid from the budget or checked; the one other callout is the lease.
    assert_eq!(
        hits + (callouts - leases),
        REQUESTS,
        "{hits} from the budget, {callouts} callouts"
    );
    assert_eq!(gateway.upstream.received("acme").requests, REQUESTS);
    gateway
        .wait_usage("acme", "requests", "day", REQUESTS)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_waiting_for_a_refill_that_never_comes_meet_their_deadline() {
    let hanging = Hanging::start().await.unwrap();
    let options = GatewayOptions {
        filter: json!({"budgets": {"enabled": true}}),
        failure_mode: "closed",
        timeout_ms: 300,
        control_plane: ControlPlaneTarget::Port(hanging.port),
        ..GatewayOptions::default()
    };
    let gateway = with_acme(options).await;

    let batch = Instant::now();
    let timed = (0..REQUESTS).map(|_| async {
        let started = Instant::now();
        let answer = get(&gateway.envoy, "/x", &[("x-tenant-id", "acme")]).await;
        (answer.status(), started.elapsed())
    });
    let answers = join_all(timed).await;
    let span = batch.elapsed();
    for (status, took) in answers {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        // The filter's deadline (300 ms, checked every 50 ms) answers, well before
        // Envoy's backstop (the deadline + 1 s).
        assert!(
            took < Duration::from_millis(1_000),
            "answered after {took:?}"
        );
    }
    assert_eq!(stat(&gateway.envoy, "failed_closed").await, REQUESTS);
    // One refill at a time: the next begins only once the last one's deadline (300 ms)
    // has passed, for a request that arrived after it. On a loaded machine the requests
    // reach Envoy over more than one deadline.
    let leases = stat(&gateway.envoy, "leases").await;
    let windows = u64::try_from(span.as_millis() / 300).unwrap() + 1;
    assert!(
        (1..=windows).contains(&leases),
        "{leases} refills while the requests took {span:?}"
    );
    assert!(stat(&gateway.envoy, "budget_waits").await >= 1);
    assert_eq!(gateway.upstream.received("acme").requests, 0);
}
