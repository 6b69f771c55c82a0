//! The Redis Cluster harness itself: three masters that hold keys with different hash
//! tags on different nodes, run scripts whose keys share one hash tag, refuse scripts
//! whose keys do not (`CROSSSLOT`), and can be emptied with `flush_all`.

use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::{AsyncCommands, ErrorKind, Script, ServerErrorKind};
use tollgate_e2e::redis_cluster::RedisCluster;

/// How many keys the node on `port` holds.
async fn keys_on(port: u16) -> redis::RedisResult<i64> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut node = client.get_multiplexed_async_connection().await?;
    redis::cmd("DBSIZE").query_async(&mut node).await
}

#[tokio::test]
async fn cluster_routes_by_hash_tag_and_refuses_cross_slot_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RedisCluster::start(dir.path()).await.unwrap();
    assert_eq!(cluster.ports().len(), 3);
    assert_eq!(cluster.url_list().split(',').count(), 3);

    let client = ClusterClient::builder(cluster.urls())
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .retries(3)
        .build()
        .unwrap();
    let mut con = client.get_async_connection().await.unwrap();

    // {a}, {b} and {c} hash to slots 15495, 3300 and 7365: one per master.
    for tag in ["a", "b", "c"] {
        let _: () = con.set(format!("{{{tag}}}:k"), tag).await.unwrap();
    }
    for tag in ["a", "b", "c"] {
        let value: String = con.get(format!("{{{tag}}}:k")).await.unwrap();
        assert_eq!(value, tag);
    }
    for port in cluster.ports() {
        assert_eq!(keys_on(port).await.unwrap(), 1, "keys on node {port}");
    }

    // Two keys with one hash tag: one slot, one script (EVALSHA, loaded on NOSCRIPT).
    let add_both = Script::new(
        "redis.call('INCRBY', KEYS[1], ARGV[1]) \
         return redis.call('INCRBY', KEYS[2], ARGV[1])",
    );
    let second: i64 = add_both
        .key("{t}:used")
        .key("{t}:total")
        .arg(5)
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(second, 5);
    let second: i64 = add_both
        .key("{t}:used")
        .key("{t}:total")
        .arg(2)
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(second, 7);
    let used: i64 = con.get("{t}:used").await.unwrap();
    assert_eq!(used, 7);

    // Keys with different hash tags: the server refuses the script.
    let error = add_both
        .key("{a}:used")
        .key("{b}:total")
        .arg(1)
        .invoke_async::<i64>(&mut con)
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::Server(ServerErrorKind::CrossSlot),
        "{error}"
    );
    // The server's code; `Display` spells it `CrossSlot: Keys in request don't hash…`.
    assert_eq!(error.code(), Some("CROSSSLOT"), "{error}");

    // A cluster that lost its data.
    cluster.flush_all().await.unwrap();
    for port in cluster.ports() {
        assert_eq!(
            keys_on(port).await.unwrap(),
            0,
            "keys on node {port} after flush"
        );
    }
    let gone: Option<String> = con.get("{a}:k").await.unwrap();
    assert_eq!(gone, None);
}
