//! How webhooks are delivered, from the configuration (`--webhook-*`).

use std::sync::Arc;
use std::time::Duration;

use super::guard::AllowList;

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where deliveries may go (the SSRF guard).
    pub allow: Arc<AllowList>,
    /// The deadline of one attempt: connecting, sending, and the answer's status.
    pub timeout: Duration,
    /// The wait after a first failed attempt; it doubles with each failure.
    pub backoff_min: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// How long after its event a delivery is retried before it is given up.
    pub give_up_after: Duration,
    /// How often the outbox is looked at for due deliveries (this control plane's own
    /// new events are sent at once).
    pub poll: Duration,
    /// At most this many attempts of one control plane at once.
    pub concurrency: usize,
    /// How long finished deliveries and the crossings of windows that ended are kept.
    pub keep: Duration,
    /// How often the enabled subscriptions are read again, besides every change.
    pub reload: Duration,
}

impl WebhookSettings {
    /// How long a claimed delivery is this control plane's: its attempt's deadline,
    /// and as long again with two seconds for logging the result. A control plane
    /// killed mid-attempt leaves it due again after this.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(2)
    }
}

impl Default for WebhookSettings {
    /// The defaults of `tollgate serve`: public addresses allowed, nothing special.
    fn default() -> WebhookSettings {
        WebhookSettings {
            allow: Arc::new(AllowList::parse(&[], true).unwrap_or_default()),
            timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            give_up_after: Duration::from_secs(24 * 3600),
            poll: Duration::from_secs(1),
            concurrency: 8,
            keep: Duration::from_secs(7 * 86_400),
            reload: Duration::from_secs(30),
        }
    }
}
