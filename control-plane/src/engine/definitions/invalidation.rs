//! Invalidation messages between control-plane instances: an admin write on one instance
//! must reach the definitions cache of every other within a second.
//!
//! The messages go through a Redis stream rather than pub/sub: an instance reads from
//! the last id it saw, so a message published while its poll was failing is still
//! delivered when Redis answers again. An instance that could not read for a while also
//! drops everything it cached, in case the stream was trimmed or lost meanwhile.
//!
//! Messages: `tenant:<id>` (that tenant and its descendants), `catalog` (tiers, limits,
//! role and default assignments), `all`; and `webhooks` (the webhook subscriptions,
//! which are cached beside the definitions).

use std::sync::Arc;
use std::time::Duration;

use super::cache::DefinitionsCache;
use crate::engine::webhooks::WebhookSubscriptions;
use crate::store::bus::Bus;

/// The message for a change to `tenant`.
pub fn tenant_message(tenant: &str) -> String {
    format!("tenant:{tenant}")
}

/// The message for a change to the catalog.
pub const CATALOG_MESSAGE: &str = "catalog";

/// The message for a change to the webhook subscriptions.
pub const WEBHOOKS_MESSAGE: &str = "webhooks";

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
/// published to the definitions `cache` and the `webhooks` subscriptions.
pub async fn listen(
    bus: Arc<dyn Bus>,
    cache: Arc<DefinitionsCache>,
    webhooks: Arc<WebhookSubscriptions>,
    me: String,
    every: Duration,
) {
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
                    webhooks.invalidate();
                    lost = false;
                }
                for message in messages {
                    if message.from != me {
                        if message.body == WEBHOOKS_MESSAGE {
                            webhooks.invalidate();
                        } else {
                            apply(&cache, &message.body);
                        }
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
