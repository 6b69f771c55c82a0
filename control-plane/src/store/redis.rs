//! The Redis counter store: one Lua script per check, run with EVALSHA (reloaded
//! automatically after a Redis restart flushed the script cache).
//!
//! The connection is a lazy [`ConnectionManager`]: the control plane starts while Redis
//! is down, and reconnects by itself when Redis goes away and comes back.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::{CounterOp, CounterStore, ScriptOutcome, StoreError, StoreFuture};

/// The check-and-count script; see the file for its contract.
const CHECK_AND_COUNT: &str = include_str!("check_and_count.lua");

/// Counters in Redis.
#[derive(Clone)]
pub struct RedisStore {
    /// Multiplexed, self-reconnecting; cheap to clone per call.
    conn: ConnectionManager,
    /// Knows its SHA1 and falls back to EVAL on `NOSCRIPT`.
    script: Script,
}

impl RedisStore {
    /// A store for `url` (`redis://host:port/db`). Does not connect yet: the first call
    /// does, and a failed connection is retried on later calls.
    pub fn new(url: &str) -> Result<RedisStore, StoreError> {
        let client = Client::open(url).map_err(StoreError::Command)?;
        // Fail fast when Redis is down: the filter waits ~200 ms for a decision, and a
        // check that queues behind reconnect back-off helps nobody.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisStore {
            conn,
            script: Script::new(CHECK_AND_COUNT),
        })
    }

    async fn run_script(&self, ops: &[CounterOp]) -> Result<ScriptOutcome, StoreError> {
        if ops.is_empty() {
            return Ok(ScriptOutcome {
                admitted: true,
                used: Vec::new(),
                violated: None,
            });
        }
        let mut invocation = self.script.prepare_invoke();
        for op in ops {
            invocation
                .key(&op.key)
                .arg(op.amount)
                .arg(op.cap)
                .arg(op.expire_at);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        parse_reply(&reply, ops.len())
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<u64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(keys).query_async(&mut conn).await?;
        values
            .iter()
            .map(|v| v.as_deref().map_or(Ok(0), parse_count))
            .collect()
    }

    async fn ping_redis(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

fn parse_count(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Protocol(format!("counter value {text:?} is not a count")))
}

/// `{admitted, violated (1-based, 0 = none), used_1, …, used_n}`.
fn parse_reply(reply: &[String], counters: usize) -> Result<ScriptOutcome, StoreError> {
    let [admitted, violated, used @ ..] = reply else {
        return Err(StoreError::Protocol(format!(
            "short script reply {reply:?}"
        )));
    };
    if used.len() != counters {
        return Err(StoreError::Protocol(format!(
            "script returned {} counters for {counters}",
            used.len()
        )));
    }
    let violated: usize = violated
        .parse()
        .map_err(|_| StoreError::Protocol(format!("bad violated index {violated:?}")))?;
    Ok(ScriptOutcome {
        admitted: admitted == "1",
        used: used
            .iter()
            .map(|u| parse_count(u))
            .collect::<Result<_, _>>()?,
        violated: violated.checked_sub(1),
    })
}

impl CounterStore for RedisStore {
    fn check_and_count<'a>(&'a self, ops: &'a [CounterOp]) -> StoreFuture<'a, ScriptOutcome> {
        Box::pin(self.run_script(ops))
    }

    fn read<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(self.mget(keys))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.ping_redis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rejected_reply_names_the_violating_counter_zero_based() {
        let outcome = parse_reply(&strings(&["0", "2", "5", "9"]), 2).unwrap();
        assert!(!outcome.admitted);
        assert_eq!(outcome.violated, Some(1));
        assert_eq!(outcome.used, vec![5, 9]);
    }

    #[test]
    fn reply_with_the_wrong_number_of_counters_is_a_protocol_error() {
        assert!(matches!(
            parse_reply(&strings(&["1", "0", "5"]), 2),
            Err(StoreError::Protocol(_))
        ));
        assert!(matches!(
            parse_reply(&strings(&["1"]), 0),
            Err(StoreError::Protocol(_))
        ));
    }
}
