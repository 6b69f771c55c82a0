//! Threshold notifications: crossings seen where usage moves, handed to the sink off
//! the decision path; the enabled subscriptions cached for it; and the deliverer that
//! sends the outbox's deliveries, signed, through the SSRF guard.
//!
//! # Layout
//! - [`detect`] — crossings from checks, leases and settlements; what the history
//!   flusher watches.
//! - [`subscriptions`] — [`WebhookSubscriptions`]: the enabled subscriptions' filters,
//!   cached and read again on change.
//! - [`deliver`] — [`Deliverer`]: claim, sign, send, log, retry.
//! - [`guard`] — where deliveries may go: the allow-list, special ranges, the resolver.
//! - [`signature`] — Standard Webhooks signatures; [`backoff`] — when to try again.
//! - [`settings`] — [`WebhookSettings`], from the configuration.

pub mod backoff;
pub mod deliver;
pub mod detect;
pub mod guard;
pub mod settings;
pub mod signature;
pub mod subscriptions;

pub use deliver::Deliverer;
pub use guard::{AllowList, Refused};
pub use settings::WebhookSettings;
pub use subscriptions::{Snapshot, WebhookSubscriptions};
