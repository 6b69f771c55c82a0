//! An Envoy killed under load: usage stays under every hard limit and never under what
//! passed.
//!
//! What "reconciled" means once an Envoy was killed (SIGKILL: it returns nothing).
//!
//! A budget is usage counted ahead, at every level charged. The dead Envoy's budgets are
//! never returned: the control plane keeps each record for the lease TTL plus a 60 s
//! grace (for a late return), then drops it, and what the budget reserved stays counted
//! until its window resets (here the month). Usage can therefore not come back down to
//! what was admitted, and a test cannot wait the grace out. What the test asserts, after
//! the load and one lease TTL (every lease the surviving Envoy took has expired and been
//! returned by then):
//! 1. The surviving Envoy's leases are all returned: the budget records left in Redis
//!    are the dead Envoy's only — granted before it died (expiring by the kill + the TTL,
//!    with a second for a lease request in flight) and held by at most two gateway ids
//!    (its two workers).
//! 2. For every level (tenant and org) and resource:
//!    `received <= usage <= received + held + cut`,
//!    where `received` is what reached the upstreams through both Envoys, `held` what the
//!    budget records left still reserve at that level, and `cut` the cost of the
//!    requests whose connection to the dead Envoy failed (admitted, maybe counted, maybe
//!    partly forwarded, never answered). Never under what passed; over it by at most what
//!    the dead Envoy held or had in flight: conservative, never over a hard limit.
//! 3. No level is ever past its hard limit: sampled through the load, the kill and the
//!    wait, and at the end.
//! 4. The surviving Envoy keeps deciding: after the kill it admits and refuses, every
//!    answer carries a decision, and what it admitted is exactly what reached its upstream.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tollgate_e2e::upstream::Upstream;

use super::load::{load, sum_seen, through, REQUESTS};
use super::tree::{add, exactness_options, past_hard, table, Tree, LEASE_TTL_MS, RESOURCES};
use super::usage::{received, reserved, settled, watch_hard_limits};
use crate::{start, stat, Envoy, UNDER_LOAD};

#[tokio::test(flavor = "multi_thread")]
async fn an_envoy_killed_under_load_leaves_usage_under_every_hard_limit_and_never_under_what_passed(
) {
    let _alone = UNDER_LOAD.lock().await;
    let options = exactness_options();
    let gateway = start(options.clone()).await;
    let tree = Tree::new();
    tree.create(&gateway).await;
    let tenants = tree.tenants();
    // The second Envoy has an upstream of its own: what passed each is known apart.
    let doomed_upstream = Upstream::start().await.unwrap();
    let mut doomed = gateway
        .another_envoy_to(options, &doomed_upstream)
        .await
        .unwrap();
    let urls = vec![gateway.envoy.url(), doomed.url()];

    let done = Arc::new(AtomicUsize::new(0));
    let stop = AtomicBool::new(false);
    let killed_at = std::sync::Mutex::new(None);
    let run = async {
        let tally = load(urls, tenants.clone(), done.clone()).await;
        let loaded_ms = now_ms();
        (tally, loaded_ms)
    };
    let kill = async {
        // Mid-run: 40 % of the requests answered, through both Envoys.
        while done.load(Ordering::Relaxed) < REQUESTS * 2 / 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = survivor_decisions(&gateway.envoy).await;
        doomed.kill();
        *killed_at.lock().unwrap() = Some(now_ms());
        before
    };
    let watch = watch_hard_limits(&gateway, &tree, &stop);
    let after = async {
        let ((tally, loaded_ms), before) = tokio::join!(run, kill);
        let kill_ms = killed_at.lock().unwrap().unwrap();
        let after = survivor_decisions(&gateway.envoy).await;
        // Every lease the survivor took has expired by one TTL after the load.
        let returned_by = loaded_ms + LEASE_TTL_MS + 1_000;
        tokio::time::sleep(Duration::from_millis(returned_by.saturating_sub(now_ms()))).await;
        let dead_by = kill_ms + LEASE_TTL_MS + 1_000;
        let (records, counted) = settled(&gateway, &tree, |records, _| {
            records.iter().all(|r| r.expires_ms <= dead_by)
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        (tally, kill_ms, before, after, records, counted)
    };
    let ((tally, kill_ms, before, after, records, counted), (reads, past_during)) =
        tokio::join!(after, watch);

    // The survivor kept deciding, and what it admitted is exactly what reached its
    // upstream.
    let survivor = through(&tally, 0);
    let undecided: Vec<_> = (survivor.iter())
        .filter(|(_, s)| s.other > 0 || s.cut != [0, 0])
        .collect();
    assert!(
        undecided.is_empty(),
        "the survivor left undecided: {undecided:?}"
    );
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "after the kill the survivor admitted {} and refused {}",
        after.0 - before.0,
        after.1 - before.1
    );
    for (tenant, seen) in &survivor {
        let at_upstream = gateway.upstream.received(tenant);
        assert_eq!(
            [at_upstream.requests, at_upstream.bytes],
            seen.admitted,
            "{tenant}: the survivor's upstream received (requests, bytes) vs admitted"
        );
        assert_eq!(at_upstream.completed, at_upstream.requests, "{tenant}");
    }
    // The dead Envoy's clients saw at most what its upstream received (an answer may
    // have been lost with it), and some of them saw it die.
    let dead = through(&tally, 1);
    for (tenant, seen) in &dead {
        let at_upstream = doomed_upstream.received(tenant);
        assert!(
            at_upstream.requests >= seen.admitted[0] && at_upstream.bytes >= seen.admitted[1],
            "{tenant}: {seen:?} admitted by the dead Envoy, its upstream got {at_upstream:?}"
        );
        assert_eq!(seen.other, 0, "{tenant}: {seen:?}");
    }
    let cut_requests: u64 = dead.values().map(|s| s.cut[0]).sum();
    assert!(cut_requests > 0, "no client saw the Envoy die");

    // Reconciled (see above): the records left are the dead Envoy's.
    let dead_by = kill_ms + LEASE_TTL_MS + 1_000;
    let late: Vec<_> = records.iter().filter(|r| r.expires_ms > dead_by).collect();
    assert!(
        late.is_empty(),
        "leases the survivor never returned: {late:?}"
    );
    let holders: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.gateway.as_str()).collect();
    assert!(holders.len() <= 2, "budgets held by {holders:?}");
    let mut passed = received(&gateway.upstream, &tree);
    for (tenant, units) in received(&doomed_upstream, &tree) {
        add(passed.entry(tenant).or_insert([0, 0]), units);
    }
    let passed = tree.per_level(&passed);
    let held = reserved(&tree, &records);
    let cut = tree.per_level(&sum_seen(&tally, |s| s.cut));
    let report = table(&tree, &passed, &counted);
    println!(
        "killed after {} requests; {} budgets of the dead Envoy left, {cut_requests} \
         requests cut; {reads} usage reads\n(admitted = received by both upstreams)\n{report}",
        REQUESTS * 2 / 5,
        records.len()
    );
    for level in &tree.levels {
        let id = &level.id;
        for (r, resource) in RESOURCES.iter().enumerate() {
            let (used, got) = (counted[id][r], passed[id][r]);
            let slack = held[id][r] + cut[id][r];
            assert!(
                got <= used && used <= got + slack,
                "{id} {resource}: counted {used}, received {got}, held by the dead Envoy {}, \
                 cut {}\n{report}",
                held[id][r],
                cut[id][r]
            );
        }
    }

    // Never past a hard limit: during the load, the kill and the wait, and now.
    assert!(reads >= 50, "usage read only {reads} times");
    assert!(past_during.is_empty(), "past a hard limit: {past_during:?}");
    assert_eq!(past_hard(&tree, &counted), Vec::<String>::new());
}

/// What the survivor decided so far: (admitted, refused).
async fn survivor_decisions(envoy: &Envoy) -> (u64, u64) {
    let admitted = stat(envoy, "allowed").await + stat(envoy, "warned").await;
    (admitted, stat(envoy, "rejected").await)
}

/// Now, in ms since the epoch (as budget records store their expiry).
fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}
