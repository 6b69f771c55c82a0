//! The invalidation bus between control-plane instances: a Redis stream in production
//! (see `redis/bus.rs`), a list in memory for tests of several instances in one process.
//!
//! The messages go through a stream rather than pub/sub: an instance reads from the last
//! id it saw, so a message published while its poll was failing is still delivered when
//! Redis answers again. What the messages mean is the definitions cache's business.

use std::sync::{Mutex, PoisonError};

use super::counter_store::StoreFuture;
use super::error::StoreError;

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
