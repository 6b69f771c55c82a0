//! The counter-store contract: one test body per property, run against every
//! store — memory, a real `redis-server`, and a real three-master Redis Cluster — plus
//! what only a real Redis can do wrong (restarts, script flushes, expiry).
//!
//! The Redis and the cluster are shared by the tests of this file; each test keeps to
//! its own tenant tree (hash tag), as the control plane does.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tempfile::TempDir;
use tollgate_control_plane::model::resolve::{Resolved, ResolvedLevel};
use tollgate_control_plane::model::window::{Period, Series, WindowKind};
use tollgate_control_plane::model::{LimitDef, Mode, Span};
use tollgate_control_plane::plan::settlement;
use tollgate_control_plane::plan::{self, Select};
use tollgate_control_plane::store::bus::{Bus, MemoryBus};
use tollgate_control_plane::store::samples::{MAX_SAMPLES, SAMPLES_KEPT_MS};
use tollgate_control_plane::store::{
    check_record_key, counter_key, gauge_key, hold_record_key, lease_holders_key, lease_key,
    marker_key, samples_key, settlement_key, Adjustment, Call, CallMode, Change, CounterStore,
    Grant, Hold, LeaseCall, LeaseLevel, LeaseOutcome, LeaseReply, Leased, MemoryStore, Move, Op,
    OpKind, Outcome, RedisStore, Release, Reply, ReturnedLease, Sample, Sampled, Seed,
    SettleOutcome, SettleReply, Settled, Settlement, Snapshot, StoreError, COUNTER_MAX,
    SETTLEMENT_ID_TTL_S,
};
use tollgate_e2e::process::free_port;
use tollgate_e2e::redis::Redis;
use tollgate_e2e::shared;
use tollgate_protocol::decision::fits;
use tollgate_protocol::{Decision, Limit, WarnAt};

fn key(root: &str, tenant: &str, window: i64) -> String {
    counter_key(root, tenant, "requests", "minute", window)
}

fn window(keys: &[String], amount: u64, cap: u64) -> Op {
    Op {
        kind: OpKind::Window {
            keys: keys.to_vec(),
            ttl_s: 3_600,
            marker: Some(0),
        },
        amount,
        cap,
    }
}

fn gauge(root: &str, amount: u64, cap: u64) -> Op {
    Op {
        kind: OpKind::Gauge {
            key: gauge_key(root, root, "concurrent_requests"),
        },
        amount,
        cap,
    }
}

fn call(mode: CallMode, markers: Vec<String>, ops: Vec<Op>) -> Call {
    Call {
        mode,
        now: Utc::now().timestamp(),
        markers,
        ops,
        hold: None,
        check_record: None,
        deadline_ms: None,
    }
}

/// Marks `tenants` of `root` as seeded, as the control plane does after a re-seed.
async fn seeded(store: &dyn CounterStore, root: &str, tenants: &[&str]) -> Vec<String> {
    let markers: Vec<String> = tenants.iter().map(|t| marker_key(root, t)).collect();
    store.seed(&markers, &[]).await.unwrap();
    markers
}

async fn run(store: &dyn CounterStore, call: &Call) -> Outcome {
    match store.call(call).await.unwrap() {
        Reply::Done(outcome) => outcome,
        Reply::NeedsSeed(missing) => panic!("markers {missing:?} missing"),
    }
}

async fn used(store: &dyn CounterStore, keys: &[String]) -> Vec<u64> {
    store
        .snapshot(keys)
        .await
        .unwrap()
        .iter()
        .map(|s| s.map_or(0, |s| s.used))
        .collect()
}

async fn rejected_check_leaves_every_counter_unchanged(store: Arc<dyn CounterStore>) {
    let root = "reject";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let (a, b) = (vec![key(root, root, 1)], vec![key(root, root, 2)]);
    let first = run(
        store.as_ref(),
        &call(
            CallMode::Check,
            markers.clone(),
            vec![window(&a, 7, 10), window(&b, 7, 100)],
        ),
    )
    .await;
    assert!(first.admitted);
    assert_eq!(first.used, vec![7, 7]);

    let rejected = run(
        store.as_ref(),
        &call(
            CallMode::Check,
            markers.clone(),
            vec![window(&a, 4, 10), window(&b, 4, 100)],
        ),
    )
    .await;
    assert!(!rejected.admitted);
    assert_eq!(rejected.violated, Some(0));
    assert_eq!(rejected.used, vec![7, 7]);
    assert_eq!(
        used(store.as_ref(), &[a[0].clone(), b[0].clone()]).await,
        vec![7, 7]
    );

    // Exactly the hard limit is admitted.
    let to_the_limit = run(
        store.as_ref(),
        &call(CallMode::Check, markers, vec![window(&a, 3, 10)]),
    )
    .await;
    assert!(to_the_limit.admitted);
    assert_eq!(to_the_limit.used, vec![10]);
}

async fn a_check_over_three_levels_is_all_or_nothing(store: Arc<dyn CounterStore>) {
    // user -> team -> org, one tree, one hash tag.
    let root = "org3";
    let tenants = ["org3/team/alice", "org3/team", "org3"];
    let markers = seeded(store.as_ref(), root, &tenants).await;
    let keys: Vec<Vec<String>> = tenants.iter().map(|t| vec![key(root, t, 0)]).collect();
    let ops = |amount| {
        vec![
            window(&keys[0], amount, 100),
            window(&keys[1], amount, 10),
            window(&keys[2], amount, 1_000),
        ]
    };
    let flat: Vec<String> = keys.iter().map(|k| k[0].clone()).collect();
    assert!(
        run(
            store.as_ref(),
            &call(CallMode::Check, markers.clone(), ops(8))
        )
        .await
        .admitted
    );
    // The team (middle level) would pass its cap: nobody is charged.
    let rejected = run(
        store.as_ref(),
        &call(CallMode::Check, markers.clone(), ops(3)),
    )
    .await;
    assert!(!rejected.admitted);
    assert_eq!(rejected.violated, Some(1));
    assert_eq!(used(store.as_ref(), &flat).await, vec![8, 8, 8]);
    assert!(
        run(store.as_ref(), &call(CallMode::Check, markers, ops(2)))
            .await
            .admitted
    );
    assert_eq!(used(store.as_ref(), &flat).await, vec![10, 10, 10]);
}

async fn concurrent_checks_count_exactly_the_admitted_amounts(store: Arc<dyn CounterStore>) {
    const HARD: u64 = 1_000;
    let root = "concurrent";
    let markers = seeded(store.as_ref(), root, &[root, "concurrent/u"]).await;
    let (a, b) = (key(root, "concurrent/u", 0), key(root, root, 0));
    let mut tasks = Vec::new();
    for task in 0..64u64 {
        let store = store.clone();
        let (a, b, markers) = (a.clone(), b.clone(), markers.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(task);
            let (mut admitted, mut rejected) = (0u64, 0u64);
            for _ in 0..8 {
                let amount = rng.u64(1..=40);
                let ops = vec![
                    window(std::slice::from_ref(&a), amount, HARD),
                    window(std::slice::from_ref(&b), amount, HARD * 2),
                ];
                let outcome =
                    run(store.as_ref(), &call(CallMode::Check, markers.clone(), ops)).await;
                if outcome.admitted {
                    admitted += amount;
                } else {
                    rejected += 1;
                }
            }
            (admitted, rejected)
        }));
    }
    let (mut admitted, mut rejected) = (0, 0);
    for task in tasks {
        let (a, r) = task.await.unwrap();
        admitted += a;
        rejected += r;
    }
    assert_eq!(
        used(store.as_ref(), &[a, b]).await,
        vec![admitted, admitted]
    );
    assert!(admitted <= HARD);
    assert!(rejected > 0, "the test must drive the counter to its limit");
}

/// The cases of the one admission rule, [`fits`]: `(used, amount, cap)`, at the edges
/// of zero, of the cap, of 2^53 (where Lua's doubles stop being exact) and of the
/// largest counter.
const RULE_CASES: &[(u64, u64, u64)] = &[
    (0, 0, 0),
    (0, 1, 0),
    (0, 1, 1),
    (9, 1, 10),
    (9, 2, 10),
    (10, 0, 10),
    (10, 1, 10),
    (11, 0, 10),
    (1 << 53, 1, (1 << 53) + 1),
    (1 << 53, 2, (1 << 53) + 1),
    ((1 << 53) + 1, 1, (1 << 53) + 1),
    ((1 << 53) - 1, 1, 1 << 53),
    (1 << 53, 1 << 53, 1 << 54),
    (1 << 53, (1 << 53) + 1, 1 << 54),
    (COUNTER_MAX - 1, 1, COUNTER_MAX),
    (COUNTER_MAX - 1, 2, COUNTER_MAX),
    (COUNTER_MAX, 0, COUNTER_MAX),
    (COUNTER_MAX, 1, COUNTER_MAX),
    (COUNTER_MAX, COUNTER_MAX, COUNTER_MAX),
    (1, COUNTER_MAX, COUNTER_MAX),
    (0, COUNTER_MAX, COUNTER_MAX),
];

/// The store admits a check exactly when the decision rule does, and then counts the
/// amount exactly; a rejected one changes nothing. The same table is held against
/// [`Limit::decide`], so the rule, the memory store and the Lua mirror cannot drift.
async fn the_store_admits_exactly_what_the_decision_rule_admits(store: Arc<dyn CounterStore>) {
    let root = "rule";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    for (i, &(before, amount, cap)) in RULE_CASES.iter().enumerate() {
        let expected = fits(before, amount, cap);
        let limit = Limit {
            quota: cap,
            overage: 0,
            warn_at: WarnAt::DEFAULT,
            unlimited: false,
        };
        assert_eq!(
            limit.decide(before, amount) != Decision::Reject,
            expected,
            "Limit::decide on case {i}: {before} + {amount} <= {cap}"
        );
        let counter = vec![key(root, root, i as i64 + 1)];
        store
            .adjust(&counter, Adjustment::To(before), 3_600)
            .await
            .unwrap();
        let ops = vec![window(&counter, amount, cap)];
        let outcome = run(store.as_ref(), &call(CallMode::Check, markers.clone(), ops)).await;
        assert_eq!(
            outcome.admitted, expected,
            "store on case {i}: {before} + {amount} <= {cap}"
        );
        let after = if expected { before + amount } else { before };
        assert_eq!(outcome.used, vec![after], "case {i}");
        assert_eq!(
            used(store.as_ref(), &counter).await,
            vec![after],
            "case {i}"
        );
    }
}

async fn amounts_beyond_two_to_the_53_are_counted_exactly(store: Arc<dyn CounterStore>) {
    let root = "big";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let n = vec![key(root, root, 1)];
    // Doubles (Lua numbers) cannot tell 2^53 from 2^53 + 1.
    let big = (1u64 << 53) + 1;
    for _ in 0..2 {
        let ops = vec![window(&n, big, COUNTER_MAX)];
        assert!(
            run(store.as_ref(), &call(CallMode::Check, markers.clone(), ops))
                .await
                .admitted
        );
    }
    assert_eq!(used(store.as_ref(), &n).await, vec![2 * big]);
    let cap = 2 * big + 1;
    let over = run(
        store.as_ref(),
        &call(CallMode::Check, markers.clone(), vec![window(&n, 2, cap)]),
    )
    .await;
    assert!(!over.admitted);
    assert_eq!(over.used, vec![2 * big]);
    let at = run(
        store.as_ref(),
        &call(CallMode::Check, markers.clone(), vec![window(&n, 1, cap)]),
    )
    .await;
    assert_eq!(at.used, vec![cap]);
    let m = vec![key(root, root, 2)];
    let to_max = vec![window(&m, COUNTER_MAX, COUNTER_MAX)];
    assert!(
        run(
            store.as_ref(),
            &call(CallMode::Check, markers.clone(), to_max)
        )
        .await
        .admitted
    );
    let past = run(
        store.as_ref(),
        &call(CallMode::Check, markers, vec![window(&m, 1, COUNTER_MAX)]),
    )
    .await;
    assert!(!past.admitted);
}

async fn zero_amount_and_read_mode_report_usage_without_writing(store: Arc<dyn CounterStore>) {
    let root = "zero";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let (a, none) = (vec![key(root, root, 1)], vec![key(root, root, 2)]);
    run(
        store.as_ref(),
        &call(CallMode::Check, markers.clone(), vec![window(&a, 3, 3)]),
    )
    .await;
    let zero = run(
        store.as_ref(),
        &call(CallMode::Check, markers.clone(), vec![window(&a, 0, 3)]),
    )
    .await;
    assert!(zero.admitted);
    assert_eq!(zero.used, vec![3]);
    // A read with an amount counts nothing, even past the cap.
    let read = run(
        store.as_ref(),
        &call(
            CallMode::Read,
            markers,
            vec![window(&a, 5, 3), window(&none, 5, 3)],
        ),
    )
    .await;
    assert_eq!(read.used, vec![3, 0]);
    let snapshots = store
        .snapshot(&[a[0].clone(), none[0].clone()])
        .await
        .unwrap();
    assert_eq!(snapshots, vec![Some(Snapshot { used: 3, epoch: 0 }), None]);
}

async fn a_store_that_lost_its_counters_asks_to_be_reseeded(store: Arc<dyn CounterStore>) {
    let root = "lost";
    let tenants = ["lost/u", "lost"];
    let markers: Vec<String> = tenants.iter().map(|t| marker_key(root, t)).collect();
    let (k_user, k_org) = (key(root, "lost/u", 0), key(root, "lost", 0));
    let ops = vec![
        window(std::slice::from_ref(&k_user), 1, 100),
        window(std::slice::from_ref(&k_org), 1, 100),
    ];
    // Neither tenant is seeded: nothing is counted, both are named.
    let reply = store
        .call(&call(CallMode::Check, markers.clone(), ops.clone()))
        .await
        .unwrap();
    assert_eq!(reply, Reply::NeedsSeed(vec![0, 1]));
    assert_eq!(
        used(store.as_ref(), &[k_user.clone(), k_org.clone()]).await,
        vec![0, 0]
    );
    let read = store
        .call(&call(CallMode::Read, markers.clone(), ops.clone()))
        .await
        .unwrap();
    assert_eq!(read, Reply::NeedsSeed(vec![0, 1]));

    // Another instance counted the org meanwhile: seeding never overwrites a counter.
    store.seed(&markers[1..], &[]).await.unwrap();
    run(
        store.as_ref(),
        &call(
            CallMode::Check,
            markers[1..].to_vec(),
            vec![window(std::slice::from_ref(&k_org), 5, 100)],
        ),
    )
    .await;
    let seeds = vec![
        Seed {
            key: k_user.clone(),
            used: 40,
            epoch: 2,
            ttl_s: 3_600,
        },
        Seed {
            key: k_org.clone(),
            used: 90,
            epoch: 0,
            ttl_s: 3_600,
        },
    ];
    assert_eq!(store.seed(&markers, &seeds).await.unwrap(), 1);
    let outcome = run(store.as_ref(), &call(CallMode::Check, markers, ops)).await;
    assert_eq!(outcome.used, vec![41, 6]);
    let snapshot = store.snapshot(std::slice::from_ref(&k_user)).await.unwrap();
    assert_eq!(snapshot, vec![Some(Snapshot { used: 41, epoch: 2 })]);
}

async fn a_rolling_window_is_the_sum_of_its_buckets(store: Arc<dyn CounterStore>) {
    let root = "rolling";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let buckets: Vec<String> = (0..4).map(|i| key(root, root, 1_000 - i)).collect();
    let old = Seed {
        key: buckets[2].clone(),
        used: 5,
        epoch: 0,
        ttl_s: 3_600,
    };
    store.seed(&markers, &[old]).await.unwrap();
    let admitted = run(
        store.as_ref(),
        &call(
            CallMode::Check,
            markers.clone(),
            vec![window(&buckets, 3, 10)],
        ),
    )
    .await;
    assert!(admitted.admitted);
    assert_eq!(admitted.used, vec![8]);
    assert_eq!(
        admitted.oldest,
        vec![Some(2)],
        "the oldest bucket holding usage"
    );
    let rejected = run(
        store.as_ref(),
        &call(CallMode::Check, markers, vec![window(&buckets, 3, 10)]),
    )
    .await;
    assert!(!rejected.admitted);
    assert_eq!(
        used(store.as_ref(), &buckets).await,
        vec![3, 0, 5, 0],
        "only the current bucket counts"
    );
}

fn hold(root: &str, id: &str) -> Hold {
    Hold {
        request_id: id.into(),
        record_key: hold_record_key(root, id),
        ttl_s: 60,
    }
}

/// A check of request `id` taking one of the `slots` of `root`'s gauge at `now`.
fn take_slot(root: &str, id: &str, slots: u64, now: i64) -> Call {
    Call {
        mode: CallMode::Check,
        now,
        markers: vec![],
        ops: vec![gauge(root, 1, slots)],
        hold: Some(hold(root, id)),
        check_record: None,
        deadline_ms: None,
    }
}

async fn gauge_slots_are_held_until_released(store: Arc<dyn CounterStore>) {
    let root = "gauge";
    let acquire = |id: &str, now: i64| take_slot(root, id, 2, now);
    let now = Utc::now().timestamp();
    assert!(run(store.as_ref(), &acquire("a", now)).await.admitted);
    assert!(run(store.as_ref(), &acquire("b", now)).await.admitted);
    // A retried check of the same request does not take a second slot.
    assert_eq!(run(store.as_ref(), &acquire("b", now)).await.used, vec![2]);
    let full = run(store.as_ref(), &acquire("c", now)).await;
    assert!(!full.admitted);
    assert_eq!(full.used, vec![2]);
    assert_eq!(
        store
            .release(&hold_record_key(root, "a"), "a")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .release(&hold_record_key(root, "a"), "a")
            .await
            .unwrap(),
        0,
        "idempotent"
    );
    assert!(run(store.as_ref(), &acquire("c", now)).await.admitted);
    // Leases lapse after their time: a crashed gateway cannot leak slots.
    let later = run(store.as_ref(), &acquire("d", now + 61)).await;
    assert!(later.admitted);
    assert_eq!(later.used, vec![1], "b and c lapsed");
}

async fn adjustments_change_usage_and_bump_epochs(store: Arc<dyn CounterStore>) {
    let root = "adjust";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let buckets: Vec<String> = (0..3).map(|i| key(root, root, 500 - i)).collect();
    store
        .seed(
            &markers,
            &[Seed {
                key: buckets[1].clone(),
                used: 10,
                epoch: 0,
                ttl_s: 3_600,
            }],
        )
        .await
        .unwrap();
    run(
        store.as_ref(),
        &call(CallMode::Check, markers, vec![window(&buckets, 4, 100)]),
    )
    .await;
    // A credit is taken from the newest bucket first and never goes below zero.
    assert_eq!(
        store
            .adjust(&buckets, Adjustment::By(-6), 3_600)
            .await
            .unwrap(),
        (14, 8)
    );
    assert_eq!(used(store.as_ref(), &buckets).await, vec![0, 8, 0]);
    assert_eq!(
        store
            .adjust(&buckets, Adjustment::By(-100), 3_600)
            .await
            .unwrap(),
        (8, 0)
    );
    assert_eq!(
        store
            .adjust(&buckets, Adjustment::By(7), 3_600)
            .await
            .unwrap(),
        (0, 7)
    );
    assert_eq!(
        store
            .adjust(&buckets, Adjustment::To(0), 3_600)
            .await
            .unwrap(),
        (7, 0)
    );
    let epochs: Vec<Option<u64>> = store
        .snapshot(&buckets)
        .await
        .unwrap()
        .iter()
        .map(|s| s.map(|s| s.epoch))
        .collect();
    // Every change that passed through a counter bumped it: bucket 0 all four (-6, -100
    // on its way to bucket 1, +7, reset), bucket 1 three (-6, -100, reset). Bucket 2
    // never existed and stays absent.
    assert_eq!(epochs, vec![Some(4), Some(3), None]);
    let huge = store
        .adjust(&buckets[..1], Adjustment::By(i64::MAX), 3_600)
        .await
        .unwrap();
    assert_eq!(huge, (0, COUNTER_MAX));
}

async fn snapshots_read_counters_of_many_trees(store: Arc<dyn CounterStore>) {
    let roots = ["snap-a", "snap-b", "snap-c", "snap-d"];
    let mut keys = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let markers = seeded(store.as_ref(), root, &[root]).await;
        let k = vec![key(root, root, 9)];
        run(
            store.as_ref(),
            &call(
                CallMode::Check,
                markers,
                vec![window(&k, i as u64 + 1, 100)],
            ),
        )
        .await;
        keys.push(k[0].clone());
    }
    keys.push(key("snap-z", "snap-z", 9));
    assert_eq!(used(store.as_ref(), &keys).await, vec![1, 2, 3, 4, 0]);
}

fn moved(key: &str, change: Change) -> Move {
    Move {
        key: key.to_string(),
        change,
        ttl_s: 3_600,
        marker: Some(0),
    }
}

/// Settlement `id` of the tree `root`, moving `moves` of the tenants whose seed markers
/// are `markers`; it releases no gauge slots.
fn settlement(root: &str, id: &str, markers: Vec<String>, moves: Vec<Move>) -> Settlement {
    Settlement {
        id_key: settlement_key(root, id),
        markers,
        moves,
        release: None,
    }
}

/// What a settlement gives back of the gauge slots request `id` of `root` holds.
fn release_of(root: &str, id: &str) -> Release {
    Release {
        record_key: hold_record_key(root, id),
        request_id: id.into(),
    }
}

/// A check of `amount` on the one counter `key` (a limit of 100), which must be
/// admitted.
async fn count(store: &dyn CounterStore, markers: &[String], key: &str, amount: u64) {
    let check = call(
        CallMode::Check,
        markers.to_vec(),
        vec![window(&[key.to_string()], amount, 100)],
    );
    assert!(run(store, &check).await.admitted);
}

/// Applies `settlement`, which must be new and find its markers.
async fn settle(store: &dyn CounterStore, settlement: &Settlement) -> Settled {
    match store.settle(settlement).await.unwrap() {
        SettleReply::Done(SettleOutcome::Applied(settled)) => settled,
        SettleReply::Done(SettleOutcome::Duplicate) => panic!("a duplicate: {settlement:?}"),
        SettleReply::NeedsSeed(missing) => panic!("markers {missing:?} missing"),
    }
}

/// `settlement` under another id: a new settlement of the same amounts.
fn renamed(settlement: &Settlement, root: &str, id: &str) -> Settlement {
    Settlement {
        id_key: settlement_key(root, id),
        ..settlement.clone()
    }
}

async fn a_settled_top_up_counts_fully_past_the_hard_limit(store: Arc<dyn CounterStore>) {
    let root = "topup";
    let markers = seeded(store.as_ref(), root, &[root, "topup/u"]).await;
    let (user, org) = (key(root, "topup/u", 0), key(root, root, 0));
    let check = |amount| {
        call(
            CallMode::Check,
            markers.clone(),
            vec![
                window(std::slice::from_ref(&user), amount, 10),
                window(std::slice::from_ref(&org), amount, 100),
            ],
        )
    };
    assert!(run(store.as_ref(), &check(8)).await.admitted);
    // The upstream reported 7 more than the check counted: all of it is billed, at
    // every level, though the user's hard limit is 10.
    let top_up = settlement(
        root,
        "top-up",
        markers.clone(),
        vec![
            Move {
                marker: Some(1),
                ..moved(&user, Change::Add(7))
            },
            moved(&org, Change::Add(7)),
        ],
    );
    let settled = settle(store.as_ref(), &top_up).await;
    assert_eq!(
        settled,
        Settled {
            used: vec![15, 15],
            released: 0
        }
    );
    assert_eq!(
        used(store.as_ref(), &[user.clone(), org.clone()]).await,
        vec![15, 15]
    );
    let next = run(store.as_ref(), &check(1)).await;
    assert!(!next.admitted, "the next request is refused");
    assert_eq!(next.violated, Some(0));
    // A top-up stops at the counter maximum instead of overflowing.
    let huge = settlement(
        root,
        "huge",
        markers.clone(),
        vec![moved(&org, Change::Add(COUNTER_MAX))],
    );
    assert_eq!(settle(store.as_ref(), &huge).await.used, vec![COUNTER_MAX]);
    let epochs = store.snapshot(&[user, org]).await.unwrap();
    assert!(
        epochs.iter().all(|s| s.unwrap().epoch == 0),
        "usage only went up: no new epoch"
    );
}

async fn a_refund_never_goes_below_zero(store: Arc<dyn CounterStore>) {
    let root = "refund";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let (counted, never) = (key(root, root, 0), key(root, root, 60));
    count(store.as_ref(), &markers, &counted, 5).await;
    let refund = settlement(
        root,
        "refund-1",
        markers,
        vec![
            moved(&counted, Change::Refund(8)),
            moved(&never, Change::Refund(3)),
        ],
    );
    assert_eq!(settle(store.as_ref(), &refund).await.used, vec![0, 0]);
    let snapshots = store
        .snapshot(&[counted.clone(), never.clone()])
        .await
        .unwrap();
    assert_eq!(
        snapshots,
        vec![Some(Snapshot { used: 0, epoch: 1 }), None],
        "usage went down: a new epoch; a counter that never existed is not created"
    );
    // Nothing left to refund: nothing changes, not even the epoch.
    let again = renamed(&refund, root, "refund-2");
    assert_eq!(settle(store.as_ref(), &again).await.used, vec![0, 0]);
    assert_eq!(
        store.snapshot(&[counted]).await.unwrap(),
        vec![Some(Snapshot { used: 0, epoch: 1 })]
    );
}

/// One tenant with a 100-unit limit of `series` on `tokens`.
fn tokens_limit(root: &str, series: Series) -> Resolved {
    Resolved {
        root: root.to_string(),
        levels: vec![ResolvedLevel {
            tenant: root.to_string(),
            mode: Mode::Enforce,
            winner: None,
            limits: vec![LimitDef {
                resource: "tokens".into(),
                span: Span::Window(series),
                limit: Limit {
                    quota: 100,
                    overage: 0,
                    warn_at: WarnAt::DEFAULT,
                    unlimited: false,
                },
            }],
            grants: Vec::new(),
        }],
    }
}

/// A check of `amount` tokens at `at`, as `/v1/check` plans it.
async fn check_tokens(
    store: &dyn CounterStore,
    resolved: &Resolved,
    amount: u64,
    at: DateTime<Utc>,
) {
    let amounts = BTreeMap::from([("tokens".to_string(), amount)]);
    let plan = plan::plan(
        resolved,
        Select::Amounts(&amounts),
        CallMode::Check,
        None,
        60,
        at,
    )
    .unwrap();
    seeded(store, &resolved.root, &[&resolved.root]).await;
    assert!(run(store, &plan.call).await.admitted);
}

/// A settlement of `amount` tokens checked at `checked_at`, as `/v1/settle` plans it.
async fn settle_tokens(
    store: &dyn CounterStore,
    resolved: &Resolved,
    amount: i64,
    checked_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> settlement::SettlePlan {
    static IDS: AtomicU64 = AtomicU64::new(0);
    let id = format!("tokens-{}", IDS.fetch_add(1, Ordering::Relaxed));
    let amounts = BTreeMap::from([("tokens".to_string(), amount)]);
    let plan = settlement::plan(resolved, &id, &amounts, checked_at, None, now).unwrap();
    settle(store, &plan.settlement).await;
    plan
}

async fn a_refund_checked_in_a_previous_calendar_window_leaves_the_current_one_alone(
    store: Arc<dyn CounterStore>,
) {
    let month = Series::calendar(Period::Month);
    let resolved = tokens_limit("refund-old", month);
    let now = Utc::now();
    let this_month = month.windows_at(now).unwrap()[0];
    let last_month = this_month.start - chrono::Duration::days(1);
    check_tokens(store.as_ref(), &resolved, 30, last_month).await;
    check_tokens(store.as_ref(), &resolved, 50, now).await;
    let plan = settle_tokens(store.as_ref(), &resolved, -30, last_month, now).await;
    assert!(plan.settlement.moves.is_empty(), "{plan:?}");
    let keys: Vec<String> = [last_month, now]
        .iter()
        .map(|at| {
            let start = month.windows_at(*at).unwrap()[0].start.timestamp();
            counter_key("refund-old", "refund-old", "tokens", "month", start)
        })
        .collect();
    assert_eq!(
        used(store.as_ref(), &keys).await,
        vec![30, 50],
        "neither the old window nor the current one gave anything back"
    );
}

async fn a_refund_in_the_window_of_its_check_is_exact(store: Arc<dyn CounterStore>) {
    let month = Series::calendar(Period::Month);
    let calendar = tokens_limit("refund-same", month);
    let now = Utc::now();
    let start_of_month = month.windows_at(now).unwrap()[0].start;
    check_tokens(store.as_ref(), &calendar, 70, start_of_month).await;
    let plan = settle_tokens(store.as_ref(), &calendar, -30, start_of_month, now).await;
    assert_eq!(plan.settlement.moves.len(), 1);
    assert_eq!(
        used(store.as_ref(), &[plan.settlement.moves[0].key.clone()]).await,
        vec![40]
    );

    // A rolling limit: the refund comes out of the bucket the check counted in.
    let hour = Series {
        period: Period::Hour,
        kind: WindowKind::Rolling,
    };
    let rolling = tokens_limit("refund-rolling", hour);
    let checked_at = now - chrono::Duration::minutes(20);
    check_tokens(store.as_ref(), &rolling, 20, checked_at).await;
    check_tokens(store.as_ref(), &rolling, 5, now).await;
    let plan = settle_tokens(store.as_ref(), &rolling, -8, checked_at, now).await;
    let bucket_key = |at: DateTime<Utc>| {
        let start = hour.windows_at(at).unwrap()[0].start.timestamp();
        counter_key(
            "refund-rolling",
            "refund-rolling",
            "tokens",
            "rolling-hour",
            start,
        )
    };
    assert_eq!(
        plan.settlement
            .moves
            .iter()
            .map(|m| m.key.clone())
            .collect::<Vec<_>>(),
        vec![bucket_key(checked_at)]
    );
    assert_eq!(
        used(store.as_ref(), &[bucket_key(checked_at), bucket_key(now)]).await,
        vec![12, 5]
    );
    // A check whose bucket no longer counts gets nothing back.
    let gone = settle_tokens(
        store.as_ref(),
        &rolling,
        -5,
        now - chrono::Duration::hours(2),
        now,
    )
    .await;
    assert!(gone.settlement.moves.is_empty());
}

async fn a_settlement_on_a_store_that_lost_its_counters_reseeds_first(
    store: Arc<dyn CounterStore>,
) {
    let root = "settle-lost";
    let markers = vec![marker_key(root, "settle-lost/u"), marker_key(root, root)];
    let (user, org) = (key(root, "settle-lost/u", 0), key(root, root, 0));
    let correction = settlement(
        root,
        "correction",
        markers.clone(),
        vec![
            moved(&user, Change::Refund(10)),
            Move {
                marker: Some(1),
                ..moved(&org, Change::Add(25))
            },
        ],
    );
    // Neither tenant is seeded: nothing changes, both are named.
    assert_eq!(
        store.settle(&correction).await.unwrap(),
        SettleReply::NeedsSeed(vec![0, 1])
    );
    assert_eq!(
        store.snapshot(&[user.clone(), org.clone()]).await.unwrap(),
        vec![None, None]
    );
    let seeds = [
        Seed {
            key: user.clone(),
            used: 40,
            epoch: 2,
            ttl_s: 3_600,
        },
        Seed {
            key: org.clone(),
            used: 90,
            epoch: 0,
            ttl_s: 3_600,
        },
    ];
    store.seed(&markers, &seeds).await.unwrap();
    let settled = settle(store.as_ref(), &correction).await;
    assert_eq!(settled.used, vec![30, 115], "corrected from the history");
    assert_eq!(
        store.snapshot(&[user, org]).await.unwrap(),
        vec![
            Some(Snapshot { used: 30, epoch: 3 }),
            Some(Snapshot {
                used: 115,
                epoch: 0
            })
        ]
    );
}

async fn a_settlement_releases_the_requests_gauge_slots(store: Arc<dyn CounterStore>) {
    let root = "settle-gauge";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let now = Utc::now().timestamp();
    let acquire = |id: &str| take_slot(root, id, 1, now);
    assert!(run(store.as_ref(), &acquire("a")).await.admitted);
    assert!(!run(store.as_ref(), &acquire("b")).await.admitted, "full");
    let counter = key(root, root, 0);
    let done = Settlement {
        release: Some(release_of(root, "a")),
        ..settlement(root, "done", markers, vec![moved(&counter, Change::Add(3))])
    };
    assert_eq!(
        settle(store.as_ref(), &done).await,
        Settled {
            used: vec![3],
            released: 1
        }
    );
    assert!(run(store.as_ref(), &acquire("b")).await.admitted);
    // The release is idempotent: a second one finds nothing.
    let again = Settlement {
        release: done.release.clone(),
        ..settlement(root, "again", vec![], vec![])
    };
    assert_eq!(settle(store.as_ref(), &again).await.released, 0);
    assert!(
        !run(store.as_ref(), &acquire("c")).await.admitted,
        "b still holds the only slot"
    );
}

async fn a_settlement_is_applied_once_per_id(store: Arc<dyn CounterStore>) {
    let root = "settle-once";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let (topped, refunded) = (key(root, root, 0), key(root, root, 60));
    count(store.as_ref(), &markers, &refunded, 10).await;
    let first = settlement(
        root,
        "s-1",
        markers,
        vec![
            moved(&topped, Change::Add(7)),
            moved(&refunded, Change::Refund(4)),
        ],
    );
    assert_eq!(settle(store.as_ref(), &first).await.used, vec![7, 6]);
    let after_first = vec![
        Some(Snapshot { used: 7, epoch: 0 }),
        Some(Snapshot { used: 6, epoch: 1 }),
    ];
    // The retry of a settlement whose answer was lost changes nothing, not even epochs.
    for _ in 0..2 {
        assert_eq!(
            store.settle(&first).await.unwrap(),
            SettleReply::Done(SettleOutcome::Duplicate)
        );
    }
    let keys = [topped.clone(), refunded.clone()];
    assert_eq!(store.snapshot(&keys).await.unwrap(), after_first);
    // Another settlement of the same amounts counts again.
    let second = renamed(&first, root, "s-2");
    assert_eq!(settle(store.as_ref(), &second).await.used, vec![14, 2]);
    // So does one under the same id in another tenant tree.
    let other_root = "settle-once-other";
    let other_markers = seeded(store.as_ref(), other_root, &[other_root]).await;
    let other = settlement(
        other_root,
        "s-1",
        other_markers,
        vec![moved(&key(other_root, other_root, 0), Change::Add(1))],
    );
    assert_eq!(settle(store.as_ref(), &other).await.used, vec![1]);
}

async fn a_settlement_refused_for_a_reseed_is_applied_once_after_it(store: Arc<dyn CounterStore>) {
    let root = "settle-once-lost";
    let markers = vec![marker_key(root, root)];
    let counter = key(root, root, 0);
    let settlement = settlement(
        root,
        "s",
        markers.clone(),
        vec![moved(&counter, Change::Add(5))],
    );
    assert_eq!(
        store.settle(&settlement).await.unwrap(),
        SettleReply::NeedsSeed(vec![0])
    );
    let seeds = [Seed {
        key: counter.clone(),
        used: 20,
        epoch: 0,
        ttl_s: 3_600,
    }];
    store.seed(&markers, &seeds).await.unwrap();
    // The refusal did not remember the id: the retry after the re-seed is applied…
    assert_eq!(settle(store.as_ref(), &settlement).await.used, vec![25]);
    // …exactly once.
    assert_eq!(
        store.settle(&settlement).await.unwrap(),
        SettleReply::Done(SettleOutcome::Duplicate)
    );
    assert_eq!(used(store.as_ref(), &[counter]).await, vec![25]);
}

async fn a_duplicate_settlement_releases_nothing(store: Arc<dyn CounterStore>) {
    let root = "settle-once-gauge";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let now = Utc::now().timestamp();
    let acquire = |id: &str| take_slot(root, id, 1, now);
    assert!(run(store.as_ref(), &acquire("a")).await.admitted);
    let counter = key(root, root, 0);
    let done = Settlement {
        release: Some(release_of(root, "a")),
        ..settlement(root, "done", markers, vec![moved(&counter, Change::Add(3))])
    };
    assert_eq!(settle(store.as_ref(), &done).await.released, 1);
    // The request id holds a slot again; the retry of `done` leaves it held.
    assert!(run(store.as_ref(), &acquire("a")).await.admitted);
    assert_eq!(
        store.settle(&done).await.unwrap(),
        SettleReply::Done(SettleOutcome::Duplicate)
    );
    assert_eq!(used(store.as_ref(), &[counter]).await, vec![3]);
    assert!(
        !run(store.as_ref(), &acquire("b")).await.admitted,
        "a still holds the only slot"
    );
}

/// A limit of the budgets below: the counter `key` of the tenant whose marker is
/// `marker`, capped at `cap`.
fn limit_of(key: &str, cap: u64, marker: usize) -> Op {
    Op {
        kind: OpKind::Window {
            keys: vec![key.to_string()],
            ttl_s: 3_600,
            marker: Some(marker),
        },
        amount: 0,
        cap,
    }
}

/// Hold `id` of `root`'s `requests` by `gateway`: up to `want` under `ops` (all of one
/// level, `root`'s), for 10 s, returning nothing.
fn budget(
    root: &str,
    id: &str,
    gateway: &str,
    markers: &[String],
    ops: Vec<Op>,
    want: u64,
) -> LeaseCall {
    LeaseCall {
        now_ms: Utc::now().timestamp_millis(),
        markers: markers.to_vec(),
        record_key: lease_key(root, id),
        levels: vec![LeaseLevel {
            holders_key: lease_holders_key(root, root, "requests"),
            ops: (0..ops.len()).collect(),
        }],
        ops,
        gateway: gateway.into(),
        tenant: root.into(),
        want,
        min_grant: 2,
        ttl_ms: 10_000,
        record_ttl_ms: 70_000,
        previous: None,
        deadline_ms: None,
    }
}

/// `budget` giving back lease `id` of its tree, of which `spent` was spent.
fn returning(budget: LeaseCall, root: &str, id: &str, spent: u64) -> LeaseCall {
    LeaseCall {
        previous: Some(ReturnedLease {
            record_key: lease_key(root, id),
            spent,
        }),
        ..budget
    }
}

/// Runs `budget`, which must find its markers and return no overspent lease.
async fn leased(store: &dyn CounterStore, budget: &LeaseCall) -> Leased {
    match store.lease(budget).await.unwrap() {
        LeaseReply::Done(LeaseOutcome::Done(budgeted)) => budgeted,
        other => panic!("{other:?} for {budget:?}"),
    }
}

/// What `budget` reserved now (a duplicate or an exhausted limit fails the test).
async fn granted(store: &dyn CounterStore, budget: &LeaseCall) -> u64 {
    match leased(store, budget).await.grant {
        Grant::Reserved { granted, .. } => granted,
        other => panic!("{other:?} for {budget:?}"),
    }
}

async fn a_budget_is_reserved_at_every_level_at_once(store: Arc<dyn CounterStore>) {
    let root = "budget-levels";
    let tenants = ["budget-levels/u", root];
    let markers = seeded(store.as_ref(), root, &tenants).await;
    let (user, org) = (key(root, tenants[0], 0), key(root, root, 0));
    let shadow = counter_key(root, root, "requests", "month", 0);
    let counted = call(
        CallMode::Check,
        markers.clone(),
        vec![
            Op {
                amount: 10,
                ..limit_of(&user, 100, 0)
            },
            Op {
                amount: 10,
                ..limit_of(&org, 1_000, 1)
            },
        ],
    );
    run(store.as_ref(), &counted).await;
    let ops = vec![
        limit_of(&user, 100, 0),
        limit_of(&org, 1_000, 1),
        limit_of(&shadow, COUNTER_MAX, 1),
    ];
    let lease = budget(root, "l1", "g1", &markers, ops, 30);
    let done = leased(store.as_ref(), &lease).await;
    assert_eq!(
        done,
        Leased {
            grant: Grant::Reserved {
                granted: 30,
                ttl_ms: 10_000
            },
            refunded: 0,
            refunded_keys: vec![],
            used: vec![10, 10, 0],
            oldest: vec![Some(0), Some(0), None],
        },
        "usage as before the budget"
    );
    let keys = [user, org, shadow];
    assert_eq!(used(store.as_ref(), &keys).await, vec![40, 40, 30]);
    // A check sees the budget as usage: 60 more fit the user's 100, not 61.
    let check = |amount| {
        call(
            CallMode::Check,
            markers.clone(),
            vec![window(&keys[..1], amount, 100)],
        )
    };
    assert!(!run(store.as_ref(), &check(61)).await.admitted);
    assert!(run(store.as_ref(), &check(60)).await.admitted);
}

async fn budgets_never_let_usage_pass_a_hard_limit(store: Arc<dyn CounterStore>) {
    const HARD: u64 = 1_000;
    let root = "budget-hard";
    let markers = seeded(store.as_ref(), root, &[root, "budget-hard/u"]).await;
    let (user, org) = (key(root, "budget-hard/u", 0), key(root, root, 0));
    let ops = vec![limit_of(&user, HARD, 1), limit_of(&org, HARD * 3, 0)];
    let mut tasks = Vec::new();
    for task in 0..16u64 {
        let (store, markers, ops) = (store.clone(), markers.clone(), ops.clone());
        tasks.push(tokio::spawn(async move {
            let mut total = 0;
            for n in 0..8 {
                let id = format!("g{task}-{n}");
                let lease = budget(root, &id, &format!("g{task}"), &markers, ops.clone(), 400);
                total += granted(store.as_ref(), &lease).await;
            }
            total
        }));
    }
    let mut reserved = 0;
    for task in tasks {
        reserved += task.await.unwrap();
    }
    assert!(reserved > 0 && reserved <= HARD, "reserved {reserved}");
    // The budgets are never returned; checks take what is left, exactly.
    let mut admitted = 0;
    loop {
        let check = call(
            CallMode::Check,
            markers.clone(),
            vec![window(std::slice::from_ref(&user), 7, HARD)],
        );
        if !run(store.as_ref(), &check).await.admitted {
            break;
        }
        admitted += 7;
    }
    let counted = used(store.as_ref(), &[user.clone(), org.clone()]).await;
    assert_eq!(counted, vec![reserved + admitted, reserved]);
    assert!(counted[0] <= HARD && counted[0] + 7 > HARD, "{counted:?}");
}

async fn headroom_is_split_between_the_gateways_holding_budgets(store: Arc<dyn CounterStore>) {
    let root = "budget-split";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let counter = key(root, root, 0);
    let ops = vec![limit_of(&counter, 1_000, 0)];
    let ask = |id: &str, gateway: &str| budget(root, id, gateway, &markers, ops.clone(), 10_000);
    // Alone, a gateway gets half the headroom; the other half is for the gateways to come.
    assert_eq!(granted(store.as_ref(), &ask("a1", "a")).await, 500);
    // Two gateways now hold budgets: a quarter of the 500 left.
    assert_eq!(granted(store.as_ref(), &ask("b1", "b")).await, 125);
    // A's next lease (its first spent in full) still counts two gateways: 375 / 4.
    let next = returning(ask("a2", "a"), root, "a1", 500);
    assert_eq!(granted(store.as_ref(), &next).await, 93);
    assert_eq!(
        used(store.as_ref(), std::slice::from_ref(&counter)).await,
        vec![718]
    );
    // Once their leases are over, gateways no longer count: c is alone, 282 / 2.
    let later = LeaseCall {
        now_ms: next.now_ms + 10_001,
        ..ask("c1", "c")
    };
    assert_eq!(granted(store.as_ref(), &later).await, 141);
    // At most what was asked for.
    let small = LeaseCall {
        want: 3,
        ..ask("c2", "c")
    };
    assert_eq!(granted(store.as_ref(), &small).await, 3);
}

async fn near_the_limit_a_budget_is_zero_and_nothing_is_reserved(store: Arc<dyn CounterStore>) {
    let root = "budget-near";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let counter = key(root, root, 0);
    count(store.as_ref(), &markers, &counter, 6).await;
    let ops = vec![limit_of(&counter, 10, 0)];
    let ask = |id: &str| budget(root, id, "g", &markers, ops.clone(), 100);
    // 4 left, one gateway: a budget of 2, the smallest worth a lease.
    assert_eq!(granted(store.as_ref(), &ask("n1")).await, 2);
    // 2 left: a budget of 1 is too small. Nothing is reserved, nothing recorded.
    for _ in 0..2 {
        let done = leased(store.as_ref(), &ask("n2")).await;
        assert_eq!(
            (done.grant, done.used),
            (
                Grant::Reserved {
                    granted: 0,
                    ttl_ms: 10_000
                },
                vec![8]
            ),
            "a retry is not a duplicate: nothing was granted"
        );
    }
    // A request for nothing (a return only) reserves nothing either.
    let nothing = LeaseCall {
        want: 0,
        ..ask("n3")
    };
    assert_eq!(granted(store.as_ref(), &nothing).await, 0);
    assert_eq!(used(store.as_ref(), &[counter]).await, vec![8]);
}

async fn without_headroom_a_budget_is_refused_and_nothing_changes(store: Arc<dyn CounterStore>) {
    let root = "budget-none";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let (roomy, full) = (key(root, root, 0), key(root, root, 60));
    count(store.as_ref(), &markers, &full, 10).await;
    let ops = vec![limit_of(&roomy, 100, 0), limit_of(&full, 10, 0)];
    let done = leased(store.as_ref(), &budget(root, "x1", "g", &markers, ops, 5)).await;
    assert_eq!(done.grant, Grant::Exhausted { violated: 1 });
    assert_eq!(done.used, vec![0, 10]);
    assert_eq!(used(store.as_ref(), &[roomy, full]).await, vec![0, 10]);
}

async fn a_returned_budget_refunds_its_unspent_part_once(store: Arc<dyn CounterStore>) {
    let root = "budget-return";
    let tenants = ["budget-return/u", root];
    let markers = seeded(store.as_ref(), root, &tenants).await;
    let (user, org) = (key(root, tenants[0], 0), key(root, root, 0));
    let ops = vec![limit_of(&user, 1_000, 0), limit_of(&org, 1_000, 1)];
    let ask = |id: &str, want| budget(root, id, "g", &markers, ops.clone(), want);
    assert_eq!(granted(store.as_ref(), &ask("r1", 100)).await, 100);
    let keys = [user.clone(), org.clone()];
    // 30 of the 100 were spent: 70 come back, at every level, in a newer epoch.
    let back = returning(ask("r2", 0), root, "r1", 30);
    let done = leased(store.as_ref(), &back).await;
    assert_eq!((done.refunded, done.refunded_keys), (70, keys.to_vec()));
    assert_eq!(done.used, vec![30, 30], "usage after the refund");
    let after = vec![Some(Snapshot { used: 30, epoch: 1 }); 2];
    assert_eq!(store.snapshot(&keys).await.unwrap(), after);
    // The same return again (a retry, or another lease naming it) refunds nothing.
    for id in ["r2", "r3"] {
        let again = returning(ask(id, 0), root, "r1", 30);
        assert_eq!(leased(store.as_ref(), &again).await.refunded, 0);
    }
    assert_eq!(store.snapshot(&keys).await.unwrap(), after);

    // Spending more than was granted is refused, and changes nothing.
    assert_eq!(granted(store.as_ref(), &ask("r4", 50)).await, 50);
    let over = returning(ask("r5", 50), root, "r4", 51);
    assert_eq!(
        store.lease(&over).await.unwrap(),
        LeaseReply::Done(LeaseOutcome::Overspent { granted: 50 })
    );
    assert_eq!(used(store.as_ref(), &keys).await, vec![80, 80]);
    // Usage reset meanwhile: the refund never takes a counter below zero.
    store
        .adjust(&keys[..1], Adjustment::To(10), 3_600)
        .await
        .unwrap();
    let back = returning(ask("r5", 0), root, "r4", 0);
    assert_eq!(leased(store.as_ref(), &back).await.refunded, 50);
    assert_eq!(used(store.as_ref(), &keys).await, vec![0, 30]);
}

async fn a_retried_lease_is_answered_again_without_a_second_reservation(
    store: Arc<dyn CounterStore>,
) {
    let root = "budget-retry";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let counter = key(root, root, 0);
    count(store.as_ref(), &markers, &counter, 5).await;
    let ops = vec![limit_of(&counter, 1_000, 0)];
    let first = budget(root, "t1", "g", &markers, ops, 40);
    assert_eq!(granted(store.as_ref(), &first).await, 40);
    // The answer was lost; the gateway asks again, 4 s later, with the same id.
    let retry = LeaseCall {
        now_ms: first.now_ms + 4_000,
        ..first.clone()
    };
    for _ in 0..2 {
        let done = leased(store.as_ref(), &retry).await;
        assert_eq!(
            (done.grant, done.used),
            (
                Grant::Duplicate {
                    granted: 40,
                    ttl_ms: 6_000
                },
                vec![5]
            )
        );
    }
    assert_eq!(
        used(store.as_ref(), std::slice::from_ref(&counter)).await,
        vec![45]
    );
    // Past its time, a retry is answered with no time left.
    let late = LeaseCall {
        now_ms: first.now_ms + 20_000,
        ..first
    };
    let done = leased(store.as_ref(), &late).await;
    assert_eq!(
        done.grant,
        Grant::Duplicate {
            granted: 40,
            ttl_ms: 0
        }
    );
    assert_eq!(used(store.as_ref(), &[counter]).await, vec![45]);
}

async fn a_budget_returned_after_its_record_expired_refunds_nothing(store: Arc<dyn CounterStore>) {
    let root = "budget-expired";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let counter = key(root, root, 0);
    let ops = vec![limit_of(&counter, 1_000, 0)];
    let short = LeaseCall {
        ttl_ms: 1_000,
        record_ttl_ms: 1_000,
        ..budget(root, "e1", "g", &markers, ops.clone(), 100)
    };
    assert_eq!(granted(store.as_ref(), &short).await, 100);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // The gateway died; its budget stays counted (conservative, never over).
    let back = returning(budget(root, "e2", "g", &markers, ops, 0), root, "e1", 0);
    let done = leased(store.as_ref(), &back).await;
    assert_eq!((done.refunded, done.used), (0, vec![100]));
    assert_eq!(used(store.as_ref(), &[counter]).await, vec![100]);
}

async fn a_budget_on_a_store_that_lost_its_counters_is_reseeded_first(
    store: Arc<dyn CounterStore>,
) {
    let root = "budget-lost";
    let tenants = ["budget-lost/u", root];
    let markers: Vec<String> = tenants.iter().map(|t| marker_key(root, t)).collect();
    let (user, org) = (key(root, tenants[0], 0), key(root, root, 0));
    let ops = vec![limit_of(&user, 1_000, 0), limit_of(&org, 1_000, 1)];
    let lease = budget(root, "s1", "g", &markers, ops, 10_000);
    assert_eq!(
        store.lease(&lease).await.unwrap(),
        LeaseReply::NeedsSeed(vec![0, 1])
    );
    let keys = [user.clone(), org.clone()];
    assert_eq!(store.snapshot(&keys).await.unwrap(), vec![None, None]);
    let seeds = [
        Seed {
            key: user,
            used: 900,
            epoch: 0,
            ttl_s: 3_600,
        },
        Seed {
            key: org,
            used: 800,
            epoch: 0,
            ttl_s: 3_600,
        },
    ];
    store.seed(&markers, &seeds).await.unwrap();
    // Sized from the history, not from zero: (1000 - 900) / 2.
    assert_eq!(granted(store.as_ref(), &lease).await, 50);
    assert_eq!(used(store.as_ref(), &keys).await, vec![950, 850]);
}

/// Hold `id` of `tenant`'s `requests` (a child of `root`) by `gateway`: up to `want`,
/// under the tenant's own limit of `own` and the org's of `org_hard`, each level sharing
/// its headroom between its own holders.
fn child_budget(
    root: &str,
    tenant: &str,
    (id, gateway): (&str, &str),
    (own, org_hard): (u64, u64),
    want: u64,
) -> LeaseCall {
    let markers = vec![marker_key(root, tenant), marker_key(root, root)];
    let ops = vec![
        limit_of(&key(root, tenant, 0), own, 0),
        limit_of(&key(root, root, 0), org_hard, 1),
    ];
    LeaseCall {
        levels: vec![
            LeaseLevel {
                holders_key: lease_holders_key(root, tenant, "requests"),
                ops: vec![0],
            },
            LeaseLevel {
                holders_key: lease_holders_key(root, root, "requests"),
                ops: vec![1],
            },
        ],
        tenant: tenant.into(),
        ..budget(root, id, gateway, &markers, ops, want)
    }
}

async fn siblings_share_their_parents_headroom_instead_of_starving_it(
    store: Arc<dyn CounterStore>,
) {
    const ORG_HARD: u64 = 1_500;
    const OWN: u64 = 1_000_000;
    let root = "budget-siblings";
    let tenants: Vec<String> = (0..26).map(|t| format!("{root}/t{t}")).collect();
    let mut names: Vec<&str> = tenants.iter().map(String::as_str).collect();
    names.push(root);
    let markers = seeded(store.as_ref(), root, &names).await;
    let org = key(root, root, 0);
    // What the org's tenants really used so far.
    let real = call(
        CallMode::Check,
        vec![markers[26].clone()],
        vec![window(std::slice::from_ref(&org), 295, ORG_HARD)],
    );
    assert!(run(store.as_ref(), &real).await.admitted);
    let headroom = ORG_HARD - 295;
    // 25 gateways each lease for one tenant with plenty of room of its own: each gets a
    // share of the org's headroom left for the budgets held under the org, its own
    // included — not half of it.
    let mut grants = Vec::new();
    let mut left = headroom;
    for (n, tenant) in tenants[..25].iter().enumerate() {
        let (id, gateway) = (format!("l{n}"), format!("g{n}"));
        let lease = child_budget(root, tenant, (&id, &gateway), (OWN, ORG_HARD), 50_000);
        let got = granted(store.as_ref(), &lease).await;
        assert_eq!(got, left / (2 * (n as u64 + 1)), "lease {n}");
        left -= got;
        grants.push(got);
    }
    assert_eq!(grants[..4], [602, 150, 75, 47]);
    let total: u64 = grants.iter().sum();
    assert_eq!(total, 1_061);
    assert!(
        total < headroom * 9 / 10,
        "25 budgets reserved {total} of {headroom}"
    );
    assert_eq!(
        used(store.as_ref(), std::slice::from_ref(&org)).await,
        vec![295 + total]
    );
    // A 26th tenant still gets a budget (or at worst checks each request): never a
    // REJECT while the org's real usage is far below its limit.
    let last = child_budget(root, &tenants[25], ("l25", "g25"), (OWN, ORG_HARD), 50_000);
    let done = leased(store.as_ref(), &last).await;
    assert_eq!(
        done.grant,
        Grant::Reserved {
            granted: (headroom - total) / 52,
            ttl_ms: 10_000
        }
    );
    assert_eq!(done.used, vec![0, 295 + total]);
    // Once their leases are over, holders no longer count, at any level: g0 is alone.
    let mut left = headroom - total - 2;
    let later = |tenant: usize, id: &str| LeaseCall {
        now_ms: last.now_ms + 10_001,
        ..child_budget(root, &tenants[tenant], (id, "g0"), (OWN, ORG_HARD), 50_000)
    };
    let alone = granted(store.as_ref(), &later(0, "m0")).await;
    assert_eq!(alone, left / 2);
    left -= alone;
    // The same gateway leasing for another tenant is another holder under the org.
    let other = granted(store.as_ref(), &later(1, "m1")).await;
    assert_eq!(other, left / 4);
    left -= other;
    // Renewing its lease, a gateway is still one holder: two share the org's headroom.
    let renewal = returning(later(0, "m2"), root, "m0", alone);
    assert_eq!(granted(store.as_ref(), &renewal).await, left / 4);
}

async fn budgets_beyond_two_to_the_53_are_split_exactly(store: Arc<dyn CounterStore>) {
    let root = "budget-huge";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let counter = key(root, root, 0);
    let big = (1u64 << 60) + 3;
    let check = call(
        CallMode::Check,
        markers.clone(),
        vec![window(std::slice::from_ref(&counter), big, COUNTER_MAX)],
    );
    run(store.as_ref(), &check).await;
    let ops = vec![limit_of(&counter, COUNTER_MAX, 0)];
    let lease = budget(root, "h1", "g", &markers, ops, COUNTER_MAX);
    let share = (COUNTER_MAX - big) / 2;
    assert_eq!(granted(store.as_ref(), &lease).await, share);
    assert_eq!(used(store.as_ref(), &[counter]).await, vec![big + share]);
}

/// A deadline `ms` milliseconds from now (negative: already past), on the real clock.
fn deadline_in(ms: i64) -> Option<i64> {
    Some(Utc::now().timestamp_millis() + ms)
}

async fn a_check_the_store_gets_after_its_deadline_counts_nothing(store: Arc<dyn CounterStore>) {
    let root = "late-check";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let counter = vec![key(root, root, 0)];
    let check = |deadline_ms| Call {
        deadline_ms,
        ..call(
            CallMode::Check,
            markers.clone(),
            vec![window(&counter, 5, 100)],
        )
    };
    assert!(
        run(store.as_ref(), &check(deadline_in(10_000)))
            .await
            .admitted
    );
    let late = store.call(&check(deadline_in(-1))).await;
    assert!(
        matches!(late, Err(StoreError::PastDeadline)),
        "a late check fails: {late:?}"
    );
    assert_eq!(used(store.as_ref(), &counter).await, vec![5]);
    // A read has no caller waiting on a failure mode: it answers whatever the deadline.
    let read = Call {
        deadline_ms: deadline_in(-1),
        ..call(
            CallMode::Read,
            markers.clone(),
            vec![window(&counter, 0, 100)],
        )
    };
    assert_eq!(run(store.as_ref(), &read).await.used, vec![5]);
}

async fn a_lease_the_store_gets_after_its_deadline_grants_nothing_but_takes_back_the_previous(
    store: Arc<dyn CounterStore>,
) {
    let root = "late-lease";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let counter = key(root, root, 0);
    let ops = vec![limit_of(&counter, 1_000, 0)];
    let first = budget(root, "l1", "g", &markers, ops.clone(), 100);
    assert_eq!(granted(store.as_ref(), &first).await, 100);
    let late = LeaseCall {
        deadline_ms: deadline_in(-1),
        ..returning(budget(root, "l2", "g", &markers, ops, 100), root, "l1", 40)
    };
    let done = leased(store.as_ref(), &late).await;
    assert_eq!(done.refunded, 60);
    assert!(
        matches!(done.grant, Grant::Reserved { granted: 0, .. }),
        "{done:?}"
    );
    assert_eq!(used(store.as_ref(), &[counter]).await, vec![40]);
}

async fn a_refused_check_is_taken_back_once_with_its_slot(store: Arc<dyn CounterStore>) {
    let root = "cancel";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let (minute, month) = (vec![key(root, root, 0)], vec![key(root, root, 1)]);
    let check = |id: &str, amount| Call {
        hold: Some(hold(root, id)),
        check_record: Some(check_record_key(root, id)),
        ..call(
            CallMode::Check,
            markers.clone(),
            vec![
                window(&minute, amount, 100),
                window(&month, amount, 1_000),
                gauge(root, 1, 5),
            ],
        )
    };
    assert!(run(store.as_ref(), &check("r1", 7)).await.admitted);
    assert!(run(store.as_ref(), &check("r2", 5)).await.admitted);
    let counters = [minute[0].clone(), month[0].clone()];
    assert_eq!(used(store.as_ref(), &counters).await, vec![12, 12]);
    // r1's answer never reached the filter, which refused the request: take it back.
    let records = (hold_record_key(root, "r1"), check_record_key(root, "r1"));
    let cancelled = store.cancel(&records.0, &records.1, "r1").await.unwrap();
    assert_eq!(
        (cancelled.released, cancelled.refunded, cancelled.keys.len()),
        (1, 14, 2)
    );
    assert_eq!(used(store.as_ref(), &counters).await, vec![5, 5]);
    let after = store.snapshot(&counters).await.unwrap();
    assert!(
        after.iter().all(|s| s.is_some_and(|s| s.epoch == 1)),
        "{after:?}"
    );
    // Again (a retry), or for a check never counted: nothing changes.
    for id in ["r1", "never"] {
        let (lease, check) = (hold_record_key(root, id), check_record_key(root, id));
        assert_eq!(
            store.cancel(&lease, &check, id).await.unwrap(),
            Default::default()
        );
    }
    assert_eq!(used(store.as_ref(), &counters).await, vec![5, 5]);
    // A rejected check records nothing to take back.
    assert!(!run(store.as_ref(), &check("r3", 99)).await.admitted);
    let (lease, record) = (hold_record_key(root, "r3"), check_record_key(root, "r3"));
    assert_eq!(
        store.cancel(&lease, &record, "r3").await.unwrap().refunded,
        0
    );
    assert_eq!(used(store.as_ref(), &counters).await, vec![5, 5]);
}

async fn a_check_that_arrives_after_its_take_back_counts_nothing(store: Arc<dyn CounterStore>) {
    let root = "cancel-first";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let counter = vec![key(root, root, 0)];
    let check = |id: &str| Call {
        check_record: Some(check_record_key(root, id)),
        ..call(
            CallMode::Check,
            markers.clone(),
            vec![window(&counter, 5, 100)],
        )
    };
    // The filter gave up on c1 and its take-back got to the store first.
    let (lease, record) = (hold_record_key(root, "c1"), check_record_key(root, "c1"));
    let cancelled = store.cancel(&lease, &record, "c1").await.unwrap();
    assert_eq!(cancelled, Default::default());
    let late = store.call(&check("c1")).await;
    assert!(
        matches!(late, Err(StoreError::PastDeadline)),
        "a check taken back before it ran fails: {late:?}"
    );
    assert_eq!(used(store.as_ref(), &counter).await, vec![0]);
    // Other checks count, and one taken back after it ran cannot run again.
    assert!(run(store.as_ref(), &check("c2")).await.admitted);
    let (lease, record) = (hold_record_key(root, "c2"), check_record_key(root, "c2"));
    assert_eq!(
        store.cancel(&lease, &record, "c2").await.unwrap().refunded,
        5
    );
    let again = store.call(&check("c2")).await;
    assert!(matches!(again, Err(StoreError::PastDeadline)), "{again:?}");
    assert!(run(store.as_ref(), &check("c3")).await.admitted);
    assert_eq!(used(store.as_ref(), &counter).await, vec![5]);
}

async fn a_lease_that_arrives_after_its_return_reserves_nothing(store: Arc<dyn CounterStore>) {
    let root = "return-first";
    let markers = seeded(store.as_ref(), root, &[root]).await;
    let counter = key(root, root, 0);
    let ops = vec![limit_of(&counter, 1_000, 0)];
    let ask = |id: &str, want| budget(root, id, "g", &markers, ops.clone(), want);
    // The gateway gave up on lease b1 and returned it; the return got there first.
    let back = returning(ask("b0", 0), root, "b1", 0);
    assert_eq!(leased(store.as_ref(), &back).await.refunded, 0);
    assert_eq!(granted(store.as_ref(), &ask("b1", 100)).await, 0);
    assert_eq!(
        used(store.as_ref(), std::slice::from_ref(&counter)).await,
        vec![0]
    );
    // A lease returned after its grant is not granted again by a late copy.
    assert_eq!(granted(store.as_ref(), &ask("b2", 100)).await, 100);
    let back = returning(ask("b3", 0), root, "b2", 10);
    assert_eq!(leased(store.as_ref(), &back).await.refunded, 90);
    assert_eq!(granted(store.as_ref(), &ask("b2", 100)).await, 0);
    assert_eq!(used(store.as_ref(), &[counter]).await, vec![10]);
}

/// A sample as the flusher records it: `used` at `at_ms`, epoch 0.
fn sample(at_ms: i64, used: u64) -> Sample {
    Sample {
        at_ms,
        used,
        epoch: 0,
    }
}

async fn usage_samples_are_kept_beside_their_counters_oldest_first(store: Arc<dyn CounterStore>) {
    let roots = ["samples-a", "samples-b"];
    let keys: Vec<String> = roots.iter().map(|r| key(r, r, 3_600)).collect();
    for (i, root) in roots.iter().enumerate() {
        let markers = seeded(store.as_ref(), root, &[root]).await;
        let k = std::slice::from_ref(&keys[i]);
        run(
            store.as_ref(),
            &call(CallMode::Check, markers, vec![window(k, 5 + i as u64, 100)]),
        )
        .await;
    }
    let at = 1_763_380_800_000_i64;
    let snapshot = |used| Snapshot { used, epoch: 0 };
    // Out of order, and twice the same: a sorted set by time, without duplicates.
    for (offset, used) in [(2_000, 4), (0, 1), (1_000, 2), (2_000, 4)] {
        let counters = vec![(keys[0].clone(), snapshot(used))];
        store.record_samples(at + offset, &counters).await.unwrap();
    }
    let later = vec![
        (keys[0].clone(), snapshot(5)),
        (keys[1].clone(), Snapshot { used: 6, epoch: 2 }),
    ];
    store.record_samples(at + 3_000, &later).await.unwrap();

    let never = key("samples-z", "samples-z", 3_600);
    let read = store
        .samples(&[keys[0].clone(), keys[1].clone(), never])
        .await
        .unwrap();
    assert_eq!(
        read[0],
        Sampled {
            now: Some(snapshot(5)),
            samples: vec![
                sample(at, 1),
                sample(at + 1_000, 2),
                sample(at + 2_000, 4),
                sample(at + 3_000, 5)
            ],
        }
    );
    let b = Sample {
        at_ms: at + 3_000,
        used: 6,
        epoch: 2,
    };
    assert_eq!(read[1].samples, vec![b], "its epoch too");
    assert_eq!(read[1].now, Some(snapshot(6)));
    assert_eq!(read[2], Sampled::default(), "a counter never used");
    assert_eq!(
        samples_key(&keys[0]).unwrap(),
        format!("tollgate:{{samples-a}}:r:samples-a:requests:minute:3600")
    );
}

async fn only_the_last_ten_minutes_of_samples_and_at_most_the_newest_few_are_kept(
    store: Arc<dyn CounterStore>,
) {
    let counter = key("samples-trim", "samples-trim", 3_600);
    let at = 1_763_380_800_000_i64;
    let record = |at_ms: i64, used: u64| {
        let store = store.clone();
        let counters = vec![(counter.clone(), Snapshot { used, epoch: 0 })];
        async move { store.record_samples(at_ms, &counters).await.unwrap() }
    };
    record(at, 1).await;
    record(at + 1, 2).await;
    record(at + SAMPLES_KEPT_MS, 3).await;
    let kept =
        |read: Vec<Sampled>| -> Vec<i64> { read[0].samples.iter().map(|s| s.at_ms - at).collect() };
    let read = store.samples(std::slice::from_ref(&counter)).await.unwrap();
    assert_eq!(
        kept(read),
        vec![0, 1, SAMPLES_KEPT_MS],
        "exactly ten minutes old is kept"
    );
    record(at + SAMPLES_KEPT_MS + 1, 4).await;
    let read = store.samples(std::slice::from_ref(&counter)).await.unwrap();
    assert_eq!(kept(read), vec![1, SAMPLES_KEPT_MS, SAMPLES_KEPT_MS + 1]);

    let start = at + 2 * SAMPLES_KEPT_MS;
    for i in 0..MAX_SAMPLES as i64 + 10 {
        record(start + i, 10).await;
    }
    let read = store.samples(std::slice::from_ref(&counter)).await.unwrap();
    let times = kept(read);
    assert_eq!(times.len(), MAX_SAMPLES, "the newest");
    assert_eq!(times[0], 2 * SAMPLES_KEPT_MS + 10);
}

async fn samples_are_only_of_counter_keys(store: Arc<dyn CounterStore>) {
    let marker = marker_key("samples-bad", "samples-bad");
    let counters = vec![(marker.clone(), Snapshot { used: 1, epoch: 0 })];
    let recorded = store.record_samples(1, &counters).await;
    assert!(
        matches!(recorded, Err(StoreError::Invalid(_))),
        "{recorded:?}"
    );
    let read = store.samples(&[marker]).await;
    assert!(matches!(read, Err(StoreError::Invalid(_))), "{read:?}");
}

macro_rules! for_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Arc::new(MemoryStore::new())).await;
                }
            )*
        }
        mod redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let url = shared::redis_url().unwrap();
                    super::$name(Arc::new(RedisStore::new(&url).unwrap())).await;
                }
            )*
        }
        mod redis_cluster {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let nodes: Vec<String> = shared::redis_cluster_urls()
                        .unwrap()
                        .split(',')
                        .map(str::to_string)
                        .collect();
                    super::$name(Arc::new(RedisStore::cluster(&nodes).unwrap())).await;
                }
            )*
        }
    };
}

for_every_store!(
    rejected_check_leaves_every_counter_unchanged,
    a_check_over_three_levels_is_all_or_nothing,
    concurrent_checks_count_exactly_the_admitted_amounts,
    amounts_beyond_two_to_the_53_are_counted_exactly,
    the_store_admits_exactly_what_the_decision_rule_admits,
    zero_amount_and_read_mode_report_usage_without_writing,
    a_store_that_lost_its_counters_asks_to_be_reseeded,
    a_rolling_window_is_the_sum_of_its_buckets,
    gauge_slots_are_held_until_released,
    adjustments_change_usage_and_bump_epochs,
    snapshots_read_counters_of_many_trees,
    a_settled_top_up_counts_fully_past_the_hard_limit,
    a_refund_never_goes_below_zero,
    a_refund_checked_in_a_previous_calendar_window_leaves_the_current_one_alone,
    a_refund_in_the_window_of_its_check_is_exact,
    a_settlement_on_a_store_that_lost_its_counters_reseeds_first,
    a_settlement_releases_the_requests_gauge_slots,
    a_settlement_is_applied_once_per_id,
    a_settlement_refused_for_a_reseed_is_applied_once_after_it,
    a_duplicate_settlement_releases_nothing,
    a_budget_is_reserved_at_every_level_at_once,
    budgets_never_let_usage_pass_a_hard_limit,
    headroom_is_split_between_the_gateways_holding_budgets,
    siblings_share_their_parents_headroom_instead_of_starving_it,
    near_the_limit_a_budget_is_zero_and_nothing_is_reserved,
    without_headroom_a_budget_is_refused_and_nothing_changes,
    a_returned_budget_refunds_its_unspent_part_once,
    a_retried_lease_is_answered_again_without_a_second_reservation,
    a_budget_returned_after_its_record_expired_refunds_nothing,
    a_budget_on_a_store_that_lost_its_counters_is_reseeded_first,
    budgets_beyond_two_to_the_53_are_split_exactly,
    a_check_the_store_gets_after_its_deadline_counts_nothing,
    a_lease_the_store_gets_after_its_deadline_grants_nothing_but_takes_back_the_previous,
    a_refused_check_is_taken_back_once_with_its_slot,
    a_check_that_arrives_after_its_take_back_counts_nothing,
    a_lease_that_arrives_after_its_return_reserves_nothing,
    usage_samples_are_kept_beside_their_counters_oldest_first,
    only_the_last_ten_minutes_of_samples_and_at_most_the_newest_few_are_kept,
    samples_are_only_of_counter_keys,
);

async fn invalidations_are_read_in_order_after_the_last_seen(bus: Arc<dyn Bus>, prefix: &str) {
    let start = bus
        .last_id()
        .await
        .unwrap()
        .unwrap_or_else(|| "0-0".to_string());
    for i in 0..3 {
        bus.publish("me", &format!("tenant:{prefix}-{i}"))
            .await
            .unwrap();
    }
    let all = bus.read_after(&start, 100).await.unwrap();
    let mine: Vec<&str> = all
        .iter()
        .map(|m| m.body.as_str())
        .filter(|b| b.starts_with(&format!("tenant:{prefix}-")))
        .collect();
    assert_eq!(
        mine,
        vec![
            format!("tenant:{prefix}-0"),
            format!("tenant:{prefix}-1"),
            format!("tenant:{prefix}-2")
        ]
    );
    let after_first = bus.read_after(&all[0].id, 100).await.unwrap();
    assert_eq!(after_first.len(), all.len() - 1);
    assert_eq!(
        bus.last_id().await.unwrap().as_deref(),
        all.last().map(|m| m.id.as_str())
    );
    assert!(all.iter().all(|m| m.from == "me"));
}

#[tokio::test]
async fn memory_bus_delivers_invalidations_in_order() {
    invalidations_are_read_in_order_after_the_last_seen(Arc::new(MemoryBus::default()), "m").await;
}

#[tokio::test]
async fn redis_bus_delivers_invalidations_in_order() {
    let store = RedisStore::new(&shared::redis_url().unwrap()).unwrap();
    invalidations_are_read_in_order_after_the_last_seen(Arc::new(store), "r").await;
}

#[tokio::test]
async fn redis_cluster_bus_delivers_invalidations_in_order() {
    let nodes: Vec<String> = shared::redis_cluster_urls()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let store = RedisStore::cluster(&nodes).unwrap();
    invalidations_are_read_in_order_after_the_last_seen(Arc::new(store), "c").await;
}

/// A throwaway `redis-server` of one test, to stop and restart.
struct OwnRedis {
    redis: Redis,
    port: u16,
    _dir: TempDir,
}

impl OwnRedis {
    async fn start_on(port: u16) -> OwnRedis {
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start_on(dir.path(), port).await.unwrap();
        OwnRedis {
            redis,
            port,
            _dir: dir,
        }
    }
}

/// Retries a seeded check until it succeeds or 15 s pass.
async fn eventually_counts(store: &RedisStore, root: &str) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let k = vec![key(root, root, 0)];
    loop {
        let markers = vec![marker_key(root, root)];
        let attempt = async {
            store.seed(&markers, &[]).await?;
            store
                .call(&call(
                    CallMode::Check,
                    markers.clone(),
                    vec![window(&k, 1, 100)],
                ))
                .await
        };
        match attempt.await {
            Ok(Reply::Done(outcome)) => return outcome.used,
            Ok(Reply::NeedsSeed(_)) => {}
            Err(error) => {
                assert!(error.is_transient(), "{error:?}");
                assert!(Instant::now() < deadline, "store did not recover: {error}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn redis_store_recovers_after_redis_restarts_and_asks_for_a_reseed() {
    let server = OwnRedis::start_on(free_port().unwrap()).await;
    let port = server.port;
    let store = RedisStore::new(&server.redis.url()).unwrap();
    assert_eq!(eventually_counts(&store, "r").await, vec![1]);
    drop(server);
    let k = vec![key("r", "r", 0)];
    let markers = vec![marker_key("r", "r")];
    let error = store
        .call(&call(
            CallMode::Check,
            markers.clone(),
            vec![window(&k, 1, 100)],
        ))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let _server = OwnRedis::start_on(port).await;
    // A fresh, empty server: the lost marker makes it ask for a re-seed, not count from 0.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store
            .call(&call(
                CallMode::Check,
                markers.clone(),
                vec![window(&k, 1, 100)],
            ))
            .await
        {
            Ok(reply) => {
                assert_eq!(reply, Reply::NeedsSeed(vec![0]));
                break;
            }
            Err(error) => assert!(Instant::now() < deadline, "no recovery: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn redis_store_created_while_redis_is_down_works_once_it_is_up() {
    let port = free_port().unwrap();
    let store = RedisStore::new(&format!("redis://127.0.0.1:{port}/")).unwrap();
    let error = store.ping().await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let _server = OwnRedis::start_on(port).await;
    assert_eq!(eventually_counts(&store, "d").await, vec![1]);
}

#[tokio::test]
async fn counters_expire_when_told_and_scripts_survive_a_flush() {
    let server = OwnRedis::start_on(free_port().unwrap()).await;
    let store = RedisStore::new(&server.redis.url()).unwrap();
    let markers = seeded(&store, "e", &["e"]).await;
    let k = vec![key("e", "e", 0)];
    let mut op = window(&k, 1, 10);
    op.kind = OpKind::Window {
        keys: k.clone(),
        ttl_s: 500,
        marker: Some(0),
    };
    run(
        &store,
        &call(CallMode::Check, markers.clone(), vec![op.clone()]),
    )
    .await;

    let client = ::redis::Client::open(server.redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = ::redis::cmd("TTL")
        .arg(&k[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((490..=500).contains(&ttl), "ttl {ttl}");

    let _: () = ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let counted = run(
        &store,
        &call(CallMode::Check, markers.clone(), vec![op.clone()]),
    )
    .await;
    assert_eq!(counted.used, vec![2]);

    // The seed marker is refreshed when a check starts a new window, not on every check.
    let marker = markers[0].clone();
    let _: () = ::redis::cmd("EXPIRE")
        .arg(&marker)
        .arg(100)
        .query_async(&mut conn)
        .await
        .unwrap();
    run(&store, &call(CallMode::Check, markers.clone(), vec![op])).await;
    let ttl: i64 = ::redis::cmd("TTL")
        .arg(&marker)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl <= 100, "same window: not refreshed ({ttl})");
    let next = vec![key("e", "e", 60)];
    run(
        &store,
        &call(CallMode::Check, markers, vec![window(&next, 1, 10)]),
    )
    .await;
    let ttl: i64 = ::redis::cmd("TTL")
        .arg(&marker)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 30 * 86_400, "a new window refreshes it ({ttl})");
}

#[tokio::test]
async fn usage_samples_expire_ten_minutes_after_the_last_one() {
    let url = shared::redis_url().unwrap();
    let store = RedisStore::new(&url).unwrap();
    let counter = key("samples-ttl", "samples-ttl", 0);
    let counters = vec![(counter.clone(), Snapshot { used: 1, epoch: 0 })];
    store.record_samples(1_000, &counters).await.unwrap();
    let client = ::redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg(samples_key(&counter).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (SAMPLES_KEPT_MS - 5_000..=SAMPLES_KEPT_MS).contains(&ttl),
        "pttl {ttl}"
    );
}

#[tokio::test]
async fn a_settlement_id_is_remembered_for_an_hour_then_forgotten() {
    let url = shared::redis_url().unwrap();
    let store = RedisStore::new(&url).unwrap();
    let root = "settle-id-ttl";
    let markers = seeded(&store, root, &[root]).await;
    let counter = key(root, root, 0);
    let settlement = settlement(root, "s", markers, vec![moved(&counter, Change::Add(2))]);
    settle(&store, &settlement).await;
    let client = ::redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = ::redis::cmd("TTL")
        .arg(&settlement.id_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (SETTLEMENT_ID_TTL_S - 10..=SETTLEMENT_ID_TTL_S).contains(&ttl),
        "ttl {ttl}"
    );
    // Once the id is forgotten, the same settlement is a new one.
    let _: () = ::redis::cmd("DEL")
        .arg(&settlement.id_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(settle(&store, &settlement).await.used, vec![4]);
}

#[tokio::test]
async fn a_budget_record_expires_a_grace_after_its_lease_and_the_holders_with_it() {
    let url = shared::redis_url().unwrap();
    let store = RedisStore::new(&url).unwrap();
    let root = "budget-ttl";
    let markers = seeded(&store, root, &[root]).await;
    let ops = vec![limit_of(&key(root, root, 0), 1_000, 0)];
    let lease = budget(root, "t1", "g", &markers, ops, 10);
    assert_eq!(granted(&store, &lease).await, 10);
    let client = ::redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pttl = |key: String| {
        let mut conn = conn.clone();
        async move {
            let ttl: i64 = ::redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            ttl
        }
    };
    let record = pttl(lease.record_key.clone()).await;
    assert!((69_000..=70_000).contains(&record), "record pttl {record}");
    let holders = pttl(lease.levels[0].holders_key.clone()).await;
    assert!(
        (9_000..=10_000).contains(&holders),
        "holders pttl {holders}"
    );
    let fields: Vec<String> = ::redis::cmd("HMGET")
        .arg(&lease.record_key)
        .arg("g")
        .arg("w")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fields, vec!["10", "g"]);
    let members: Vec<String> = ::redis::cmd("ZRANGE")
        .arg(&lease.levels[0].holders_key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        members,
        vec!["g|budget-ttl"],
        "one holder per gateway and tenant"
    );
}
