//! The deliverer: one background task per control plane that claims due deliveries
//! from the outbox (`FOR UPDATE SKIP LOCKED`: control planes share the work, and no two
//! send one delivery at once), sends each as a signed POST within its deadline, and
//! logs the attempt — delivered on a 2xx, otherwise due again after a backoff, until
//! the retry span runs out and it is given up.
//!
//! Delivery is at least once: a control plane killed mid-attempt leaves its claim to
//! run out ([`WebhookSettings::lease`]), after which another control plane (or its
//! restart) sends it again; a receiver that answered but whose answer was lost gets it
//! again. Receivers tell repeats apart by `webhook-id`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::Notify;

use super::backoff::retry_in;
use super::guard::{refusal, GuardedResolver, Refused};
use super::settings::WebhookSettings;
use super::signature::sign;
use crate::metrics::Metrics;
use crate::model::webhook::signing_key;
use crate::repo::webhooks::{Attempt, Claimed, Finished};
use crate::repo::QuotaRepo;

/// At most this many deliveries are claimed at once.
const BATCH: i64 = 32;
/// How often the pending figures are read for the metrics.
const STATS_EVERY: Duration = Duration::from_secs(5);
/// How often finished deliveries and crossings of ended windows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// How one attempt ended: the receiver's status, or why there was none, with the
/// `result` label of `tollgate_webhook_attempts_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    status_code: Option<u16>,
    error: Option<String>,
    result: &'static str,
}

impl Outcome {
    fn failed(result: &'static str, error: String) -> Outcome {
        Outcome {
            status_code: None,
            error: Some(error),
            result,
        }
    }
}

/// Sends the outbox's deliveries.
pub struct Deliverer {
    repo: QuotaRepo,
    settings: WebhookSettings,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    wake: Arc<Notify>,
}

impl Deliverer {
    /// A deliverer over `repo`, woken by `wake` when this control plane queued
    /// deliveries. Its client follows no redirect, uses no proxy, and resolves through
    /// the guard.
    pub fn new(
        repo: QuotaRepo,
        settings: WebhookSettings,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Result<Deliverer, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(settings.allow.clone())))
            .connect_timeout(settings.timeout)
            .user_agent(concat!("tollgate-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Deliverer {
            repo,
            settings,
            metrics,
            http,
            wake,
        })
    }

    /// Delivers until the process ends.
    pub async fn run(self) {
        let mut stats_at: Option<Instant> = None;
        let mut pruned_at = Instant::now();
        let mut failing = false;
        loop {
            let claimed = match self
                .repo
                .claim_deliveries(BATCH, self.settings.lease())
                .await
            {
                Ok(claimed) => {
                    failing = false;
                    claimed
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "cannot claim webhook deliveries; retrying");
                    }
                    failing = true;
                    Vec::new()
                }
            };
            let full = claimed.len() as i64 == BATCH;
            futures_util::stream::iter(claimed)
                .for_each_concurrent(self.settings.concurrency.max(1), |c| self.attempt(c))
                .await;
            if stats_at.is_none_or(|at| at.elapsed() >= STATS_EVERY) {
                stats_at = Some(Instant::now());
                self.update_stats().await;
            }
            if pruned_at.elapsed() >= PRUNE_EVERY {
                pruned_at = Instant::now();
                if let Err(error) = self.repo.prune_webhooks(self.settings.keep).await {
                    tracing::warn!(%error, "cannot prune finished webhook deliveries");
                }
            }
            if !full {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.poll) => {}
                }
            }
        }
    }

    /// Gives up the overdue deliveries of disabled subscriptions (never claimed), then
    /// reads the pending figures.
    async fn update_stats(&self) {
        match self.repo.give_up_overdue(self.settings.give_up_after).await {
            Ok(0) => {}
            Ok(given_up) => {
                self.metrics.webhook_failed.inc_by(given_up);
                tracing::warn!(
                    given_up,
                    "webhook deliveries of disabled subscriptions given up: past the retry span"
                );
            }
            Err(error) => tracing::debug!(%error, "cannot give up overdue webhook deliveries"),
        }
        match self.repo.pending_deliveries().await {
            Ok(pending) => {
                self.metrics.webhook_pending.set(pending.count);
                self.metrics.webhook_oldest_pending.set(pending.oldest_s);
            }
            Err(error) => tracing::debug!(%error, "cannot read pending webhook deliveries"),
        }
    }

    /// One attempt of `claimed`, logged and finished.
    async fn attempt(&self, claimed: Claimed) {
        let started = Instant::now();
        let outcome = self.send(&claimed).await;
        let took = started.elapsed();
        self.metrics
            .webhook_attempts
            .with_label_values(&[outcome.result])
            .inc();
        let attempt = Attempt {
            id: claimed.id,
            attempt: claimed.attempt,
            took,
            delivered: outcome.result == "delivered",
            status_code: outcome.status_code,
            error: outcome.error.clone(),
        };
        let settings = &self.settings;
        let wait = retry_in(
            claimed.attempt,
            settings.backoff_min,
            settings.backoff_max,
            claimed.id,
        );
        let finished = self
            .repo
            .finish_attempt(&attempt, wait, settings.give_up_after)
            .await;
        let (webhook, delivery) = (claimed.webhook.as_str(), claimed.id);
        let why = outcome.error.as_deref().unwrap_or("");
        match finished {
            Ok(Finished::Delivered) => self.metrics.webhook_delivered.inc(),
            Ok(Finished::Failed) => {
                self.metrics.webhook_failed.inc();
                tracing::warn!(webhook, delivery, attempts = claimed.attempt, status = ?outcome.status_code, error = why, "webhook delivery given up");
            }
            Ok(Finished::Retrying) => {
                tracing::info!(webhook, delivery, attempt = claimed.attempt, status = ?outcome.status_code, error = why, retry_in_ms = wait.as_millis() as u64, "webhook delivery failed; will retry");
            }
            Ok(Finished::Superseded) => {
                tracing::debug!(
                    webhook,
                    delivery,
                    "webhook attempt finished after its claim ran out"
                );
            }
            Err(error) => {
                tracing::warn!(%error, webhook, delivery, "cannot log a webhook attempt; it is tried again once its claim runs out");
            }
        }
    }

    /// Signs and sends `claimed` within the attempt's deadline.
    async fn send(&self, claimed: &Claimed) -> Outcome {
        if let Err(Refused(why)) = self.settings.allow.check_url(&claimed.url) {
            return Outcome::failed("refused", why);
        }
        let Ok(key) = signing_key(&claimed.secret) else {
            return Outcome::failed("error", "the subscription's secret cannot sign".into());
        };
        let body = match serde_json::to_vec(&claimed.event.payload()) {
            Ok(body) => body,
            Err(error) => return Outcome::failed("error", format!("the payload: {error}")),
        };
        let id = format!("msg_{}", claimed.id);
        let timestamp = Utc::now().timestamp();
        let signature = sign(&key, &id, timestamp, &body);
        let sent = self
            .http
            .post(&claimed.url)
            .timeout(self.settings.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                Outcome {
                    status_code: Some(status.as_u16()),
                    error: None,
                    result: if status.is_success() {
                        "delivered"
                    } else {
                        "http_error"
                    },
                }
            }
            Err(error) => {
                // Without the URL: its path or query may carry a receiver's token.
                let error = error.without_url();
                if let Some(Refused(why)) = refusal(&error) {
                    return Outcome::failed("refused", why.clone());
                }
                if error.is_timeout() {
                    let deadline = self.settings.timeout;
                    return Outcome::failed("timeout", format!("no answer within {deadline:?}"));
                }
                let result = if error.is_connect() {
                    "connect"
                } else {
                    "error"
                };
                Outcome::failed(result, chain(&error))
            }
        }
    }
}

/// An error and its sources, one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
