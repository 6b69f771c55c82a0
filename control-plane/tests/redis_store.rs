//! The counter-store contract (SPEC §2), one test body per property run against every
//! store: a real `redis-server` on a free loopback port, and memory. Plus what only
//! Redis can do wrong: exact big numbers in Lua, script reloads, reconnects.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tempfile::TempDir;
use tollgate_control_plane::store::{
    CounterOp, CounterStore, MemoryStore, RedisStore, COUNTER_MAX,
};
use tollgate_e2e::process::free_port;
use tollgate_e2e::redis::Redis;

/// A throwaway `redis-server` from the end-to-end harness, stopped when dropped.
struct RedisServer {
    redis: Redis,
    port: u16,
    _dir: TempDir,
}

impl RedisServer {
    async fn start() -> RedisServer {
        RedisServer::start_on(free_port().unwrap()).await
    }

    async fn start_on(port: u16) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let redis = Redis::start_on(dir.path(), port).await.unwrap();
        RedisServer {
            redis,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        self.redis.url()
    }
}

fn op(key: &str, amount: u64, cap: u64) -> CounterOp {
    CounterOp {
        key: key.to_string(),
        amount,
        cap,
        expire_at: Utc::now().timestamp() + 3_600,
    }
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| k.to_string()).collect()
}

async fn rejected_check_leaves_every_counter_unchanged(store: Arc<dyn CounterStore>) {
    let first = store
        .check_and_count(&[op("{t}:a", 7, 10), op("{t}:b", 7, 100)])
        .await
        .unwrap();
    assert!(first.admitted);
    assert_eq!(first.used, vec![7, 7]);

    let rejected = store
        .check_and_count(&[op("{t}:a", 4, 10), op("{t}:b", 4, 100)])
        .await
        .unwrap();
    assert!(!rejected.admitted);
    assert_eq!(rejected.violated, Some(0));
    assert_eq!(rejected.used, vec![7, 7]);
    assert_eq!(
        store.read(&keys(&["{t}:a", "{t}:b"])).await.unwrap(),
        vec![7, 7]
    );

    // Exactly the hard limit is admitted.
    let to_the_limit = store.check_and_count(&[op("{t}:a", 3, 10)]).await.unwrap();
    assert!(to_the_limit.admitted);
    assert_eq!(to_the_limit.used, vec![10]);
}

async fn check_and_count_across_two_counters_is_all_or_nothing(store: Arc<dyn CounterStore>) {
    // The second counter is the one that would overflow: the first must not move.
    let rejected = store
        .check_and_count(&[op("{t}:x", 5, 100), op("{t}:y", 5, 4)])
        .await
        .unwrap();
    assert!(!rejected.admitted);
    assert_eq!(rejected.violated, Some(1));
    assert_eq!(rejected.used, vec![0, 0]);
    assert_eq!(
        store.read(&keys(&["{t}:x", "{t}:y"])).await.unwrap(),
        vec![0, 0]
    );

    let admitted = store
        .check_and_count(&[op("{t}:x", 4, 100), op("{t}:y", 4, 4)])
        .await
        .unwrap();
    assert!(admitted.admitted);
    assert_eq!(admitted.violated, None);
    assert_eq!(
        store.read(&keys(&["{t}:x", "{t}:y"])).await.unwrap(),
        vec![4, 4]
    );
}

async fn concurrent_checks_count_exactly_the_admitted_amounts(store: Arc<dyn CounterStore>) {
    const HARD: u64 = 1_000;
    let mut tasks = Vec::new();
    for task in 0..64u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // A small LCG per task: random-looking amounts without a dependency.
            let mut seed = task.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let (mut admitted, mut rejected) = (0u64, 0u64);
            for _ in 0..8 {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let amount = (seed >> 33) % 40 + 1;
                let ops = [op("{c}:a", amount, HARD), op("{c}:b", amount, HARD * 2)];
                let outcome = store.check_and_count(&ops).await.unwrap();
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
    let counted = store.read(&keys(&["{c}:a", "{c}:b"])).await.unwrap();
    assert_eq!(counted, vec![admitted, admitted]);
    assert!(admitted <= HARD);
    assert!(rejected > 0, "the test must drive the counter to its limit");
}

async fn amounts_beyond_two_to_the_53_are_counted_exactly(store: Arc<dyn CounterStore>) {
    // Doubles (Lua numbers) cannot tell 2^53 from 2^53 + 1.
    let big = (1u64 << 53) + 1;
    for _ in 0..2 {
        assert!(
            store
                .check_and_count(&[op("{b}:n", big, COUNTER_MAX)])
                .await
                .unwrap()
                .admitted
        );
    }
    assert_eq!(store.read(&keys(&["{b}:n"])).await.unwrap(), vec![2 * big]);
    // One past the cap is refused, exactly at the cap is admitted.
    let cap = 2 * big + 1;
    let over = store.check_and_count(&[op("{b}:n", 2, cap)]).await.unwrap();
    assert!(!over.admitted);
    assert_eq!(over.used, vec![2 * big]);
    let at = store.check_and_count(&[op("{b}:n", 1, cap)]).await.unwrap();
    assert_eq!(at.used, vec![cap]);
    let past_max = store
        .check_and_count(&[op("{b}:m", COUNTER_MAX, COUNTER_MAX)])
        .await
        .unwrap();
    assert!(past_max.admitted);
    let overflow = store
        .check_and_count(&[op("{b}:m", 1, COUNTER_MAX)])
        .await
        .unwrap();
    assert!(!overflow.admitted);
}

async fn zero_amount_reports_usage_without_counting(store: Arc<dyn CounterStore>) {
    store.check_and_count(&[op("{z}:a", 3, 3)]).await.unwrap();
    let zero = store.check_and_count(&[op("{z}:a", 0, 3)]).await.unwrap();
    assert!(zero.admitted);
    assert_eq!(zero.used, vec![3]);
    assert_eq!(
        store.read(&keys(&["{z}:a", "{z}:none"])).await.unwrap(),
        vec![3, 0]
    );
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
                    let server = RedisServer::start().await;
                    super::$name(Arc::new(RedisStore::new(&server.url()).unwrap())).await;
                }
            )*
        }
    };
}

for_every_store!(
    rejected_check_leaves_every_counter_unchanged,
    check_and_count_across_two_counters_is_all_or_nothing,
    concurrent_checks_count_exactly_the_admitted_amounts,
    amounts_beyond_two_to_the_53_are_counted_exactly,
    zero_amount_reports_usage_without_counting,
);

/// Retries `check` until it succeeds or 15 s pass.
async fn eventually_counts(store: &RedisStore, key: &str) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.check_and_count(&[op(key, 1, 100)]).await {
            Ok(outcome) => return outcome.used,
            Err(error) => {
                assert!(error.is_transient(), "{error:?}");
                assert!(Instant::now() < deadline, "store did not recover: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn redis_store_recovers_after_redis_restarts() {
    let server = RedisServer::start().await;
    let port = server.port;
    let store = RedisStore::new(&server.url()).unwrap();
    assert_eq!(eventually_counts(&store, "{r}:k").await, vec![1]);
    drop(server);
    let error = store
        .check_and_count(&[op("{r}:k", 1, 100)])
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let _server = RedisServer::start_on(port).await;
    // A fresh server: the counter starts again, and the script is reloaded.
    assert_eq!(eventually_counts(&store, "{r}:k").await, vec![1]);
}

#[tokio::test]
async fn redis_store_created_while_redis_is_down_works_once_it_is_up() {
    let port = free_port().unwrap();
    let store = RedisStore::new(&format!("redis://127.0.0.1:{port}/")).unwrap();
    let error = store.ping().await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let _server = RedisServer::start_on(port).await;
    assert_eq!(eventually_counts(&store, "{d}:k").await, vec![1]);
}

#[tokio::test]
async fn counters_expire_at_the_time_given_and_scripts_survive_a_flush() {
    let server = RedisServer::start().await;
    let store = RedisStore::new(&server.url()).unwrap();
    let mut counter = op("{e}:k", 1, 10);
    counter.expire_at = Utc::now().timestamp() + 500;
    store.check_and_count(&[counter.clone()]).await.unwrap();

    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = ::redis::cmd("TTL")
        .arg("{e}:k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((490..=500).contains(&ttl), "ttl {ttl}");

    let _: () = ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        store.check_and_count(&[counter]).await.unwrap().used,
        vec![2]
    );
}
