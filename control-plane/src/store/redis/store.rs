//! [`RedisStore`]: the connection (one Redis or a cluster) and the scripts, and the
//! [`CounterStore`] calls, each one script run.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterConfig;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::scripts::Scripts;
use super::tls::{self, RedisTls};
use crate::store::call::{Adjustment, Call, Reply, Seed, Snapshot};
use crate::store::counter_store::{CounterStore, StoreFuture};
use crate::store::error::StoreError;
use crate::store::lease::{LeaseCall, LeaseReply};
use crate::store::samples::Sampled;
use crate::store::settlement::{Cancelled, SettleReply, Settlement};

/// Fail fast when Redis is down: the filter waits ~200 ms for a decision, and a check
/// that queues behind reconnect back-off helps nobody.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One Redis or a cluster, behind one connection type; both clone cheaply.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Counters in Redis.
#[derive(Clone)]
pub struct RedisStore {
    pub(super) conn: Conn,
    pub(super) scripts: Scripts,
}

impl RedisStore {
    /// A store on one Redis (`redis://host:port/db`, or `rediss://` for TLS). Does not
    /// connect yet.
    pub fn new(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::with_tls(url, &RedisTls::default())
    }

    /// [`RedisStore::new`] trusting and presenting what `tls` says (`url` must then be
    /// `rediss://`).
    pub fn with_tls(url: &str, tls: &RedisTls) -> Result<RedisStore, StoreError> {
        let client = tls::client(url, tls)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisStore::over(Conn::Single(conn)))
    }

    /// A store on a Redis Cluster, given some of its nodes. Connects in the background.
    pub fn cluster(nodes: &[String]) -> Result<RedisStore, StoreError> {
        RedisStore::cluster_with_tls(nodes, &RedisTls::default())
    }

    /// [`RedisStore::cluster`] trusting and presenting what `tls` says (the nodes must
    /// then be `rediss://`).
    pub fn cluster_with_tls(nodes: &[String], tls: &RedisTls) -> Result<RedisStore, StoreError> {
        let client = tls::cluster_builder(nodes, tls)?
            .retries(2)
            .min_retry_wait(20)
            .max_retry_wait(200)
            .build()
            .map_err(StoreError::Command)?;
        let config = ClusterConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let conn = client.get_pending_async_connection_with_config(config);
        Ok(RedisStore::over(Conn::Cluster(conn)))
    }

    fn over(conn: Conn) -> RedisStore {
        RedisStore {
            conn,
            scripts: Scripts::new(),
        }
    }

    async fn ping_redis(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

impl CounterStore for RedisStore {
    fn call<'a>(&'a self, call: &'a Call) -> StoreFuture<'a, Reply> {
        Box::pin(self.check(call))
    }

    fn seed<'a>(&'a self, markers: &'a [String], seeds: &'a [Seed]) -> StoreFuture<'a, u64> {
        Box::pin(self.seed_counters(markers, seeds))
    }

    fn adjust<'a>(
        &'a self,
        keys: &'a [String],
        adjustment: Adjustment,
        ttl_s: i64,
    ) -> StoreFuture<'a, (u64, u64)> {
        Box::pin(self.adjust_counters(keys, adjustment, ttl_s))
    }

    fn settle<'a>(&'a self, settlement: &'a Settlement) -> StoreFuture<'a, SettleReply> {
        Box::pin(self.settle_counters(settlement))
    }

    fn lease<'a>(&'a self, budget: &'a LeaseCall) -> StoreFuture<'a, LeaseReply> {
        Box::pin(self.lease_call(budget))
    }

    fn release<'a>(&'a self, record_key: &'a str, request_id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(self.release_holds(record_key, request_id))
    }

    fn cancel<'a>(
        &'a self,
        lease_record: &'a str,
        check_record: &'a str,
        request_id: &'a str,
    ) -> StoreFuture<'a, Cancelled> {
        Box::pin(self.cancel_check(lease_record, check_record, request_id))
    }

    fn snapshot<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Snapshot>>> {
        Box::pin(self.snapshot_counters(keys))
    }

    fn record_samples<'a>(
        &'a self,
        at_ms: i64,
        counters: &'a [(String, Snapshot)],
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.record_counter_samples(at_ms, counters))
    }

    fn samples<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Sampled>> {
        Box::pin(self.read_samples(keys))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.ping_redis())
    }
}
