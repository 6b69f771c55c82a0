//! The invalidation bus on Redis: a stream every control plane appends to and reads
//! from (see `store::bus`).

use crate::store::bus::{Bus, Message, STREAM_KEY, STREAM_MAX_LEN};
use crate::store::counter_store::StoreFuture;

use super::store::RedisStore;

/// The entries of one stream as XREAD and XREVRANGE answer them: (id, [field, value]).
type StreamEntries = Vec<(String, Vec<String>)>;

fn messages(entries: StreamEntries) -> Vec<Message> {
    entries
        .into_iter()
        .filter_map(|(id, fields)| {
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|kv| kv[0] == name)
                    .and_then(|kv| kv.get(1))
                    .cloned()
            };
            Some(Message {
                id,
                from: field("from").unwrap_or_default(),
                body: field("body")?,
            })
        })
        .collect()
}

impl Bus for RedisStore {
    fn publish<'a>(&'a self, from: &'a str, body: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _: String = redis::cmd("XADD")
                .arg(STREAM_KEY)
                .arg("MAXLEN")
                .arg("~")
                .arg(STREAM_MAX_LEN)
                .arg("*")
                .arg("from")
                .arg(from)
                .arg("body")
                .arg(body)
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
    }

    fn read_after<'a>(&'a self, after: &'a str, count: usize) -> StoreFuture<'a, Vec<Message>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let reply: Option<Vec<(String, StreamEntries)>> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(count)
                .arg("STREAMS")
                .arg(STREAM_KEY)
                .arg(after)
                .query_async(&mut conn)
                .await?;
            Ok(reply
                .into_iter()
                .flatten()
                .flat_map(|(_, entries)| messages(entries))
                .collect())
        })
    }

    fn last_id(&self) -> StoreFuture<'_, Option<String>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let last: StreamEntries = redis::cmd("XREVRANGE")
                .arg(STREAM_KEY)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn)
                .await?;
            Ok(last.into_iter().next().map(|(id, _)| id))
        })
    }
}
