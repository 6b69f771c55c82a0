//! Webhook subscriptions, pure: who is told when usage of a limit crosses one of its
//! thresholds — a percentage of the quota, or the hard limit — filtered by the tenant
//! whose limit it is (with or without its subtree), the resource and the tier; and the
//! signing secret, which signs every payload and is never shown.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tollgate_protocol::Limit;
use utoipa::ToSchema;

/// The largest percentage of the quota a threshold may be (10 × the quota: overage can
/// take usage past 100 %).
pub const MAX_PERCENT: u16 = 1000;

/// At most this many percentages per subscription.
pub const MAX_PERCENTS: usize = 16;

/// At most this many resources or tiers in one filter.
pub const MAX_FILTER_ITEMS: usize = 64;

/// The prefix of a signing secret, as Standard Webhooks writes them.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a signing secret was refused.
pub const SECRET_RULE: &str =
    "a signing secret is whsec_ followed by the base64 of 24 to 64 random bytes";

/// Why a subscription id was refused.
pub const WEBHOOK_ID_RULE: &str = "webhook ids are 1-64 characters of a-z, 0-9, _ and -";

/// One threshold of a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Threshold {
    /// Usage reached this percentage of the quota.
    Percent(u16),
    /// Usage reached the hard limit (quota + overage), or a request was refused by it.
    Hard,
}

impl Threshold {
    /// How it is stored and keyed: `80`, `hard`.
    pub fn key(self) -> String {
        match self {
            Threshold::Percent(percent) => percent.to_string(),
            Threshold::Hard => "hard".to_string(),
        }
    }

    /// The threshold a [`Threshold::key`] names.
    pub fn parse(key: &str) -> Option<Threshold> {
        match key {
            "hard" => Some(Threshold::Hard),
            digits => digits.parse().ok().map(Threshold::Percent),
        }
    }

    /// The usage at which `limit` reaches it: `⌈quota × percent / 100⌉`, or the hard
    /// limit. `None` when usage cannot cross it: a percentage of a quota of 0 (it would
    /// be reached before anything is counted), the hard limit of an unlimited limit.
    pub fn units(self, limit: &Limit) -> Option<u64> {
        match self {
            Threshold::Percent(percent) => {
                let scaled = u128::from(limit.quota) * u128::from(percent);
                let units = scaled.div_ceil(100);
                (units > 0).then(|| u64::try_from(units).unwrap_or(u64::MAX))
            }
            Threshold::Hard if limit.unlimited => None,
            Threshold::Hard => Some(limit.hard()),
        }
    }
}

/// What a subscription is told about: the thresholds, and the limits they are watched
/// on. An empty list of resources or tiers means every one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookFilter {
    /// Percentages of the quota, ascending, distinct.
    pub percents: Vec<u16>,
    /// Whether reaching the hard limit is told.
    pub hard: bool,
    /// Only limits of this tenant (`None`: every tenant's).
    pub tenant: Option<String>,
    /// With `tenant`: the limits of its descendants too.
    pub subtree: bool,
    /// Only limits of these resources.
    pub resources: Vec<String>,
    /// Only limits of tenants on these tiers (the tier that applies to the level).
    pub tiers: Vec<String>,
}

/// The limit a crossing happened on, as filters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The tenant whose limit it is.
    pub level: &'a str,
    /// Its ancestors, parent first.
    pub ancestors: &'a [String],
    /// The resource.
    pub resource: &'a str,
    /// The tier that applies to the level, if any.
    pub tier: Option<&'a str>,
}

impl WebhookFilter {
    /// Whether the subscription asks for `threshold`.
    pub fn wants(&self, threshold: Threshold) -> bool {
        match threshold {
            Threshold::Percent(percent) => self.percents.binary_search(&percent).is_ok(),
            Threshold::Hard => self.hard,
        }
    }

    /// Whether the subscription watches the limit of `scope` (the same rule as the
    /// outbox's query in `repo/webhooks/crossings.rs`).
    pub fn covers(&self, scope: &Scope<'_>) -> bool {
        let tenant = match &self.tenant {
            None => true,
            Some(tenant) => {
                tenant == scope.level
                    || (self.subtree && scope.ancestors.iter().any(|a| a == tenant))
            }
        };
        let resource =
            self.resources.is_empty() || self.resources.iter().any(|r| r == scope.resource);
        let tier = self.tiers.is_empty()
            || scope
                .tier
                .is_some_and(|tier| self.tiers.iter().any(|t| t == tier));
        tenant && resource && tier
    }

    /// Every threshold it asks for, percentages first.
    pub fn thresholds(&self) -> impl Iterator<Item = Threshold> + '_ {
        (self.percents.iter().map(|&p| Threshold::Percent(p)))
            .chain(self.hard.then_some(Threshold::Hard))
    }
}

/// A subscription: where to send, with which secret, what about.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Its id, chosen by the operator: 1–64 characters of `a-z 0-9 _ -`.
    pub id: String,
    /// Where payloads are POSTed (`http` or `https`).
    pub url: String,
    /// The signing secret (`whsec_…`): write-only, never returned or logged.
    pub secret: SecretString,
    /// What it is told about.
    pub filter: WebhookFilter,
    /// Whether it is told anything: a disabled subscription gets no new events, and its
    /// pending deliveries wait.
    pub enabled: bool,
    /// What it is for, for operators.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A subscription as the admin API shows it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: String,
    /// Where payloads are POSTed.
    pub url: String,
    /// Percentages of the quota it is told about, ascending.
    pub thresholds: Vec<u16>,
    /// Whether it is told when usage reaches the hard limit.
    pub hard: bool,
    /// Only limits of this tenant.
    pub tenant: Option<String>,
    /// With `tenant`: its descendants' limits too.
    pub subtree: bool,
    /// Only limits of these resources (empty: every resource).
    pub resources: Vec<String>,
    /// Only limits of tenants on these tiers (empty: every tier).
    pub tiers: Vec<String>,
    /// Whether it gets new events.
    pub enabled: bool,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Webhook> for WebhookView {
    fn from(webhook: &Webhook) -> WebhookView {
        let filter = &webhook.filter;
        WebhookView {
            id: webhook.id.clone(),
            url: webhook.url.clone(),
            thresholds: filter.percents.clone(),
            hard: filter.hard,
            tenant: filter.tenant.clone(),
            subtree: filter.subtree,
            resources: filter.resources.clone(),
            tiers: filter.tiers.clone(),
            enabled: webhook.enabled,
            description: webhook.description.clone(),
            created_at: webhook.created_at,
            updated_at: webhook.updated_at,
        }
    }
}

/// Whether `id` may name a subscription: 1–64 characters of `a-z 0-9 _ -`.
pub fn is_valid_webhook_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The HMAC key a signing secret stands for: the bytes after `whsec_`, base64-decoded,
/// 24 to 64 of them (Standard Webhooks' symmetric secrets).
pub fn signing_key(secret: &SecretString) -> Result<Vec<u8>, &'static str> {
    let encoded = secret
        .expose_secret()
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SECRET_RULE)?;
    let key = STANDARD.decode(encoded).map_err(|_| SECRET_RULE)?;
    if (24..=64).contains(&key.len()) {
        Ok(key)
    } else {
        Err(SECRET_RULE)
    }
}

/// Percentages as a subscription keeps them: ascending and distinct, each 1 to
/// [`MAX_PERCENT`], at most [`MAX_PERCENTS`]; or why not.
pub fn normalized_percents(percents: &[u16]) -> Result<Vec<u16>, String> {
    if percents.len() > MAX_PERCENTS {
        return Err(format!("at most {MAX_PERCENTS} percentages"));
    }
    if let Some(bad) = percents.iter().find(|&&p| p == 0 || p > MAX_PERCENT) {
        return Err(format!("{bad}: percentages are 1 to {MAX_PERCENT}"));
    }
    let mut sorted = percents.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    Ok(sorted)
}

#[cfg(test)]
mod tests {
    use tollgate_protocol::WarnAt;

    use super::*;

    fn limit(quota: u64, overage: u64, unlimited: bool) -> Limit {
        Limit {
            quota,
            overage,
            warn_at: WarnAt::DEFAULT,
            unlimited,
        }
    }

    #[test]
    fn a_percentage_is_reached_at_the_usage_rounded_up() {
        assert_eq!(
            Threshold::Percent(80).units(&limit(1000, 0, false)),
            Some(800)
        );
        assert_eq!(Threshold::Percent(50).units(&limit(3, 0, false)), Some(2));
        assert_eq!(
            Threshold::Percent(150).units(&limit(10, 10, false)),
            Some(15)
        );
        assert_eq!(Threshold::Percent(80).units(&limit(0, 5, false)), None);
        let huge = limit(u64::MAX / 2, 0, false);
        assert_eq!(Threshold::Percent(1000).units(&huge), Some(u64::MAX));
        assert_eq!(Threshold::Hard.units(&limit(10, 5, false)), Some(15));
        assert_eq!(Threshold::Hard.units(&limit(10, 5, true)), None);
        assert_eq!(
            Threshold::Percent(50).units(&limit(10, 0, true)),
            Some(5),
            "an unlimited limit still counts against its included amount"
        );
    }

    #[test]
    fn thresholds_round_trip_through_their_keys() {
        for threshold in [
            Threshold::Percent(1),
            Threshold::Percent(1000),
            Threshold::Hard,
        ] {
            assert_eq!(Threshold::parse(&threshold.key()), Some(threshold));
        }
        assert_eq!(Threshold::parse("80%"), None);
    }

    #[test]
    fn a_filter_covers_its_tenant_its_subtree_when_asked_its_resources_and_tiers() {
        let ancestors = vec!["acme/web".to_string(), "acme".to_string()];
        let scope = Scope {
            level: "acme/web/alice",
            ancestors: &ancestors,
            resource: "requests",
            tier: Some("pro"),
        };
        let mut filter = WebhookFilter::default();
        assert!(filter.covers(&scope), "an empty filter covers everything");
        filter.tenant = Some("acme".into());
        assert!(!filter.covers(&scope), "the tenant's own limits only");
        filter.subtree = true;
        assert!(filter.covers(&scope));
        filter.tenant = Some("acme/web/alice".into());
        filter.subtree = false;
        assert!(filter.covers(&scope));
        filter.resources = vec!["tokens".into()];
        assert!(!filter.covers(&scope));
        filter.resources.push("requests".into());
        assert!(filter.covers(&scope));
        filter.tiers = vec!["free".into()];
        assert!(!filter.covers(&scope));
        assert!(!filter.covers(&Scope {
            tier: None,
            ..scope
        }));
        filter.tiers.push("pro".into());
        assert!(filter.covers(&scope));
    }

    #[test]
    fn secrets_are_whsec_and_base64_of_24_to_64_bytes() {
        let secret = |text: &str| SecretString::from(text.to_string());
        let key = signing_key(&secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")).unwrap();
        assert_eq!(key.len(), 24);
        for bad in [
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            &format!("whsec_{}", STANDARD.encode([7u8; 65])),
        ] {
            assert_eq!(signing_key(&secret(bad)), Err(SECRET_RULE), "{bad}");
        }
    }

    #[test]
    fn percentages_are_kept_sorted_and_distinct_within_bounds() {
        assert_eq!(
            normalized_percents(&[100, 50, 80, 50]).unwrap(),
            [50, 80, 100]
        );
        assert!(normalized_percents(&[0]).is_err());
        assert!(normalized_percents(&[1001]).is_err());
        assert!(normalized_percents(&[1; 17]).is_err());
        let filter = WebhookFilter {
            percents: vec![50, 80],
            hard: true,
            ..WebhookFilter::default()
        };
        assert!(filter.wants(Threshold::Percent(80)) && !filter.wants(Threshold::Percent(90)));
        assert_eq!(
            filter.thresholds().collect::<Vec<_>>(),
            [
                Threshold::Percent(50),
                Threshold::Percent(80),
                Threshold::Hard
            ]
        );
    }
}
