//! Invalidation messages between control-plane instances: an admin write on one instance
//! must reach the definitions cache of every other within a second.
//!
//! The messages go through a Redis stream rather than pub/sub: an instance reads from
//! the last id it saw, so a message published while its poll was failing is still
//! delivered when Redis answers again. An instance that could not read for a while also
//! drops everything it cached, in case the stream was trimmed or lost meanwhile.
//!
//! Messages: `tenant:<id>` (that tenant and its descendants), `catalog` (tiers, limits,
//! role and default assignments), `all`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::definitions::DefinitionsCache;
use crate::store::{StoreError, StoreFuture};

/// The stream every instance reads.
pub const STREAM_KEY: &str = "tollgate:{invalidations}";

/// How many messages the stream keeps (approximately); older ones are trimmed.
pub const STREAM_MAX_LEN: usize = 10_000;

/// A message read from the bus, with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id; reading resumes after it.
    pub id: String,
    /// The instance that published it (it applied the change itself already).
    pub from: String,
    /// What to invalidate.
    pub body: String,
}

/// Publishes and reads invalidation messages.
pub trait Bus: Send + Sync {
    /// Appends a message from instance `from`.
    fn publish<'a>(&'a self, from: &'a str, body: &'a str) -> StoreFuture<'a, ()>;
    /// Messages after `after` (`0-0` for all), oldest first, at most `count`.
    fn read_after<'a>(&'a self, after: &'a str, count: usize) -> StoreFuture<'a, Vec<Message>>;
    /// The id of the newest message, if any.
    fn last_id(&self) -> StoreFuture<'_, Option<String>>;
}

/// The message for a change to `tenant`.
pub fn tenant_message(tenant: &str) -> String {
    format!("tenant:{tenant}")
}

/// The message for a change to the catalog.
pub const CATALOG_MESSAGE: &str = "catalog";

/// Applies one message to the local cache.
pub fn apply(cache: &DefinitionsCache, body: &str) {
    match body.strip_prefix("tenant:") {
        Some(tenant) => cache.invalidate_tenant(tenant),
        None if body == CATALOG_MESSAGE => cache.invalidate_catalog(),
        None => cache.invalidate_all(),
    }
}

/// A name for this process on the bus, different for every start.
pub fn instance_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

/// Reads the bus every `every` until the process ends, applying what other instances
/// published.
pub async fn listen(bus: Arc<dyn Bus>, cache: Arc<DefinitionsCache>, me: String, every: Duration) {
    let (mut last, mut lost) = match bus.last_id().await {
        Ok(id) => (id.unwrap_or_else(|| "0-0".to_string()), false),
        Err(_) => ("0-0".to_string(), true),
    };
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match bus.read_after(&last, 512).await {
            Ok(messages) => {
                if lost {
                    tracing::info!("invalidation bus readable again; dropping cached definitions");
                    cache.invalidate_all();
                    lost = false;
                }
                for message in messages {
                    if message.from != me {
                        apply(&cache, &message.body);
                    }
                    last = message.id;
                }
            }
            Err(error) => {
                if !lost {
                    tracing::warn!(%error, "cannot read the invalidation bus");
                }
                lost = true;
            }
        }
    }
}

/// A bus inside one process, for tests of several instances over one memory store.
#[derive(Debug, Default)]
pub struct MemoryBus {
    messages: Mutex<Vec<(String, String)>>,
}

impl MemoryBus {
    fn messages(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn parse_index(id: &str) -> Result<usize, StoreError> {
    id.split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::Protocol(format!("bad message id {id:?}")))
}

impl Bus for MemoryBus {
    fn publish<'a>(&'a self, from: &'a str, body: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.messages().push((from.to_string(), body.to_string()));
            Ok(())
        })
    }

    fn read_after<'a>(&'a self, after: &'a str, count: usize) -> StoreFuture<'a, Vec<Message>> {
        Box::pin(async move {
            let from = parse_index(after)?;
            Ok(self
                .messages()
                .iter()
                .enumerate()
                .skip(from)
                .take(count)
                .map(|(i, (from, body))| Message {
                    id: format!("{}-0", i + 1),
                    from: from.clone(),
                    body: body.clone(),
                })
                .collect())
        })
    }

    fn last_id(&self) -> StoreFuture<'_, Option<String>> {
        Box::pin(async move {
            let len = self.messages().len();
            Ok((len > 0).then(|| format!("{len}-0")))
        })
    }
}
