//! Under load, through two control planes, usage is exactly what was admitted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{load, sum_seen, through, LOAD_LIMIT, REQUESTS};
use super::tree::{assert_limits_bound, exactness_options, past_hard, table, Tree};
use super::usage::{outstanding, usage, watch_hard_limits, RETURN_WAIT};
use crate::{start, stat, UNDER_LOAD};

#[tokio::test(flavor = "multi_thread")]
async fn under_load_through_two_control_planes_usage_is_exactly_what_was_admitted_at_every_level() {
    let _alone = UNDER_LOAD.lock().await;
    let gateway = start(exactness_options()).await;
    let tree = Tree::new();
    tree.create(&gateway).await;
    let tenants = tree.tenants();

    let done = Arc::new(AtomicUsize::new(0));
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let run = async {
        let tally = load(vec![gateway.envoy.url()], tenants.clone(), done.clone()).await;
        stop.store(true, Ordering::Relaxed);
        tally
    };
    let (tally, (reads, past_during)) =
        tokio::join!(run, watch_hard_limits(&gateway, &tree, &stop));
    let took = started.elapsed();

    // Every request was decided: admitted with a decision, or refused.
    let seen = through(&tally, 0);
    let undecided: Vec<_> = (seen.iter())
        .filter(|(_, s)| s.other > 0 || s.cut != [0, 0])
        .collect();
    assert!(undecided.is_empty(), "undecided answers: {undecided:?}");
    let sent: u64 = seen.values().map(|s| s.admitted[0] + s.rejected).sum();
    assert_eq!(
        sent, REQUESTS as u64,
        "every request was sent within {LOAD_LIMIT:?}"
    );

    // What was admitted is exactly what reached the upstream, request by request.
    let admitted = sum_seen(&tally, |s| s.admitted);
    for tenant in &tenants {
        let at_upstream = gateway.upstream.received(tenant);
        let want = admitted.get(tenant).copied().unwrap_or_default();
        assert_eq!(
            [at_upstream.requests, at_upstream.bytes],
            want,
            "{tenant}: upstream received (requests, bytes) vs admitted"
        );
        assert_eq!(at_upstream.completed, at_upstream.requests, "{tenant}");
    }

    // Once every budget is back (each lease expires after its TTL and the worker that
    // took it returns the unspent part), usage is exactly what was admitted, at every
    // level: the organizations' usage is the sum of their tenants'.
    let admitted = tree.per_level(&admitted);
    let back = Instant::now();
    let mut counted = usage(&gateway, &tree).await;
    while counted != admitted && back.elapsed() < RETURN_WAIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        counted = usage(&gateway, &tree).await;
    }
    let report = table(&tree, &admitted, &counted);
    println!(
        "load of {REQUESTS} requests took {took:?}; usage settled {:?} after it; \
         {reads} usage reads during the load\n{report}",
        back.elapsed()
    );
    let records = outstanding(&gateway).await;
    assert!(
        counted == admitted,
        "usage is not what was admitted {RETURN_WAIT:?} after the load; \
         budgets still held: {records:?}\n{report}"
    );
    assert!(records.is_empty(), "budgets never returned: {records:?}");

    assert_limits_bound(&tree, &tally, &counted);

    // No level was ever seen past its hard limit, during the load or after.
    assert!(reads >= 50, "usage read only {reads} times during the load");
    assert!(past_during.is_empty(), "past a hard limit: {past_during:?}");
    assert_eq!(past_hard(&tree, &counted), Vec::<String>::new());

    // The fast path carried the load, through both control planes.
    let hits = stat(&gateway.envoy, "budget_hits").await;
    let leases = stat(&gateway.envoy, "leases").await;
    let callouts = stat(&gateway.envoy, "callouts").await;
    let waits = stat(&gateway.envoy, "budget_waits").await;
    let admitted_requests: u64 = seen.values().map(|s| s.admitted[0]).sum();
    println!(
        "{admitted_requests} admitted: {hits} from budgets, {leases} leases, {callouts} \
         callouts, {waits} waits for a refill"
    );
    // Every lease return was answered (one whose answer got lost would be retried and
    // counted here once its answer was 10 s late).
    assert_eq!(stat(&gateway.envoy, "settlement_failures").await, 0);
    assert!(
        hits * 2 > admitted_requests,
        "only {hits} of {admitted_requests} admitted from budgets"
    );
    assert!(
        leases * 10 < REQUESTS as u64,
        "{leases} leases for {REQUESTS} requests"
    );
    for control_plane in gateway.control_planes() {
        let served = control_plane
            .metric("tollgate_leases_total", "")
            .await
            .unwrap() as u64;
        assert!(
            served > 0,
            "control plane {} served no lease",
            control_plane.port
        );
    }
}
