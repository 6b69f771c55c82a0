//! Webhook subscriptions in `tollgate apply`: the file's `webhooks:` entries, matched
//! to the server's by id, and their changes.
//!
//! The signing secret is write-only: the server never shows it, so `apply` cannot tell
//! whether it differs. The file names an environment variable holding it
//! (`secret_env`), never the secret itself. A subscription `apply` creates gets it; one
//! that exists keeps its secret unless `apply --set-secrets` is given, which sends the
//! secret of every subscription the file names (a change each time, since none can be
//! compared). Rotating a secret is therefore: put the new one in the variable, then
//! `apply --set-secrets` (or `tollgate webhook update ID --secret-env NAME`).

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::request::Request;
use crate::cli::client::segment;
use crate::cli::error::CliError;
use crate::cli::webhook::secret_from_env;
use crate::model::names::{is_valid_resource, is_valid_tenant_id, is_valid_tier_name, TENANT_RULE};
use crate::model::webhook::{is_valid_webhook_id, normalized_percents, WEBHOOK_ID_RULE};

/// A `webhooks:` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebhookEntry {
    id: String,
    url: String,
    secret_env: Option<String>,
    #[serde(default)]
    thresholds: Vec<u16>,
    #[serde(default)]
    hard: bool,
    tenant: Option<String>,
    #[serde(default)]
    subtree: bool,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    tiers: Vec<String>,
    #[serde(default = "enabled")]
    enabled: bool,
    #[serde(default)]
    description: String,
}

fn enabled() -> bool {
    true
}

/// A subscription without its secret: what both sides show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    /// Its id, by which the file and the server are matched.
    pub id: String,
    /// Where it sends.
    pub url: String,
    /// Percentages, ascending.
    pub percents: Vec<u16>,
    /// Whether the hard limit is told.
    pub hard: bool,
    /// Only this tenant's limits.
    pub tenant: Option<String>,
    /// The tenant's descendants too.
    pub subtree: bool,
    /// Only these resources (compared as a set).
    pub resources: Vec<String>,
    /// Only these tiers (compared as a set).
    pub tiers: Vec<String>,
    /// Whether it gets new events.
    pub enabled: bool,
    /// What it is for.
    pub description: String,
}

/// A subscription as the file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredWebhook {
    /// Everything but the secret.
    pub spec: WebhookSpec,
    /// The environment variable holding its secret.
    pub secret_env: Option<String>,
}

/// A subscription change.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookChange {
    /// A new subscription, with its secret from `secret_env`.
    Create(DesiredWebhook),
    /// Changed fields, and a secret to set.
    Update {
        /// The subscription.
        id: String,
        /// The PATCH body without the secret: only what changes.
        patch: Map<String, Value>,
        /// The variable of the secret to set, with `--set-secrets`.
        secret_env: Option<String>,
        /// What changes, for the diff line.
        details: Vec<String>,
    },
    /// A subscription the file no longer names (`--prune`).
    Delete {
        /// The subscription.
        id: String,
    },
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    items.dedup();
    items
}

/// Checks the file's entries, adding `webhooks[i].field: …` problems to `errors`.
pub(super) fn check(entries: Vec<WebhookEntry>, errors: &mut Vec<String>) -> Vec<DesiredWebhook> {
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut desired = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let path = format!("webhooks[{i}]");
        if !is_valid_webhook_id(&entry.id) {
            errors.push(format!("{path}.id: {:?}: {WEBHOOK_ID_RULE}", entry.id));
        }
        if let Some(first) = at.insert(entry.id.clone(), i) {
            errors.push(format!(
                "{path}.id: webhook {} is already defined at webhooks[{first}]",
                entry.id
            ));
        }
        if !(entry.url.starts_with("http://") || entry.url.starts_with("https://")) {
            errors.push(format!("{path}.url: an http:// or https:// URL"));
        }
        let percents = normalized_percents(&entry.thresholds).unwrap_or_else(|why| {
            errors.push(format!("{path}.thresholds: {why}"));
            Vec::new()
        });
        if entry.thresholds.is_empty() && !entry.hard {
            errors.push(format!(
                "{path}.thresholds: give at least one percentage, or hard: true"
            ));
        }
        if let Some(tenant) = entry.tenant.as_deref().filter(|t| !is_valid_tenant_id(t)) {
            errors.push(format!("{path}.tenant: {tenant:?}: {TENANT_RULE}"));
        }
        if let Some(bad) = entry.resources.iter().find(|r| !is_valid_resource(r)) {
            errors.push(format!("{path}.resources: {bad:?} is not a resource name"));
        }
        if let Some(bad) = entry.tiers.iter().find(|t| !is_valid_tier_name(t)) {
            errors.push(format!("{path}.tiers: {bad:?} is not a tier name"));
        }
        if entry
            .secret_env
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            errors.push(format!(
                "{path}.secret_env: the name of an environment variable"
            ));
        }
        desired.push(DesiredWebhook {
            spec: WebhookSpec {
                id: entry.id,
                url: entry.url,
                percents,
                hard: entry.hard,
                tenant: entry.tenant,
                subtree: entry.subtree,
                resources: entry.resources,
                tiers: entry.tiers,
                enabled: entry.enabled,
                description: entry.description,
            },
            secret_env: entry.secret_env,
        });
    }
    desired
}

/// The subscription a listing's item shows.
pub fn from_view(item: &Value) -> Result<WebhookSpec, String> {
    #[derive(Deserialize)]
    struct View {
        id: String,
        url: String,
        thresholds: Vec<u16>,
        hard: bool,
        tenant: Option<String>,
        subtree: bool,
        resources: Vec<String>,
        tiers: Vec<String>,
        enabled: bool,
        description: String,
    }
    let view = View::deserialize(item)
        .map_err(|e| format!("the server answered a webhook the CLI cannot read: {e}"))?;
    Ok(WebhookSpec {
        id: view.id,
        url: view.url,
        percents: view.thresholds,
        hard: view.hard,
        tenant: view.tenant,
        subtree: view.subtree,
        resources: view.resources,
        tiers: view.tiers,
        enabled: view.enabled,
        description: view.description,
    })
}

fn thresholds_text(spec: &WebhookSpec) -> String {
    let mut parts: Vec<String> = spec.percents.iter().map(|p| format!("{p}%")).collect();
    if spec.hard {
        parts.push("hard".into());
    }
    parts.join(",")
}

fn list_text(items: &[String]) -> String {
    if items.is_empty() {
        "all".to_string()
    } else {
        items.join(",")
    }
}

/// The fields that differ, as a PATCH body and as details (`url a -> b`).
fn differences(desired: &WebhookSpec, now: &WebhookSpec) -> (Map<String, Value>, Vec<String>) {
    let mut patch = Map::new();
    let mut details = Vec::new();
    let mut differ = |field: &str, value: Value, detail: String| {
        patch.insert(field.into(), value);
        details.push(detail);
    };
    if desired.url != now.url {
        differ(
            "url",
            json!(desired.url),
            format!("url {} -> {}", now.url, desired.url),
        );
    }
    if desired.percents != now.percents || desired.hard != now.hard {
        let text = format!(
            "thresholds {} -> {}",
            thresholds_text(now),
            thresholds_text(desired)
        );
        differ("thresholds", json!(desired.percents), text);
        differ("hard", json!(desired.hard), String::new());
    }
    if desired.tenant != now.tenant {
        let name = |t: &Option<String>| t.clone().unwrap_or_else(|| "all".into());
        differ(
            "tenant",
            json!(desired.tenant),
            format!("tenant {} -> {}", name(&now.tenant), name(&desired.tenant)),
        );
    }
    if desired.subtree != now.subtree {
        differ(
            "subtree",
            json!(desired.subtree),
            format!("subtree {} -> {}", now.subtree, desired.subtree),
        );
    }
    if sorted(&desired.resources) != sorted(&now.resources) {
        let text = format!(
            "resources {} -> {}",
            list_text(&now.resources),
            list_text(&desired.resources)
        );
        differ("resources", json!(desired.resources), text);
    }
    if sorted(&desired.tiers) != sorted(&now.tiers) {
        let text = format!(
            "tiers {} -> {}",
            list_text(&now.tiers),
            list_text(&desired.tiers)
        );
        differ("tiers", json!(desired.tiers), text);
    }
    if desired.enabled != now.enabled {
        differ(
            "enabled",
            json!(desired.enabled),
            format!("enabled {} -> {}", now.enabled, desired.enabled),
        );
    }
    if desired.description != now.description {
        let text = format!(
            "description {:?} -> {:?}",
            now.description, desired.description
        );
        differ("description", json!(desired.description), text);
    }
    details.retain(|d| !d.is_empty());
    (patch, details)
}

/// The changes that make `current` what `desired` says: creations and updates, then
/// (with `prune`) deletions; with `set_secrets`, every named subscription's secret is
/// set. Creating one without `secret_env` is a problem of the file.
pub fn plan(
    desired: &[DesiredWebhook],
    current: &[WebhookSpec],
    prune: bool,
    set_secrets: bool,
) -> Result<(Vec<WebhookChange>, Vec<WebhookChange>), Vec<String>> {
    let on_server: HashMap<&str, &WebhookSpec> =
        current.iter().map(|w| (w.id.as_str(), w)).collect();
    let mut upserts = Vec::new();
    let mut errors = Vec::new();
    for (i, webhook) in desired.iter().enumerate() {
        let Some(now) = on_server.get(webhook.spec.id.as_str()) else {
            if webhook.secret_env.is_none() {
                errors.push(format!(
                    "webhooks[{i}].secret_env: needed to create webhook {}",
                    webhook.spec.id
                ));
            }
            upserts.push(WebhookChange::Create(webhook.clone()));
            continue;
        };
        let (patch, mut details) = differences(&webhook.spec, now);
        let secret_env = webhook.secret_env.clone().filter(|_| set_secrets);
        if let Some(name) = &secret_env {
            details.push(format!(
                "secret set from ${name} (never shown, so not compared)"
            ));
        }
        if !details.is_empty() {
            upserts.push(WebhookChange::Update {
                id: webhook.spec.id.clone(),
                patch,
                secret_env,
                details,
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let named: HashSet<&str> = desired.iter().map(|w| w.spec.id.as_str()).collect();
    let deletions = current
        .iter()
        .filter(|w| prune && !named.contains(w.id.as_str()))
        .map(|w| WebhookChange::Delete { id: w.id.clone() })
        .collect();
    Ok((upserts, deletions))
}

impl WebhookChange {
    /// The environment variable this change reads a secret from, if any.
    pub fn secret_env(&self) -> Option<&str> {
        match self {
            WebhookChange::Create(webhook) => webhook.secret_env.as_deref(),
            WebhookChange::Update { secret_env, .. } => secret_env.as_deref(),
            WebhookChange::Delete { .. } => None,
        }
    }

    /// The request that makes it, with the secret read from its variable.
    pub fn request(&self) -> Result<Request, CliError> {
        let secret = match self.secret_env() {
            Some(name) => Some(secret_from_env(name)?),
            None => None,
        };
        let exposed = |s: &Option<secrecy::SecretString>| {
            s.as_ref()
                .map(|s| json!(secrecy::ExposeSecret::expose_secret(s)))
        };
        Ok(match self {
            WebhookChange::Create(webhook) => {
                let spec = &webhook.spec;
                let mut body = json!({
                    "id": spec.id, "url": spec.url, "thresholds": spec.percents, "hard": spec.hard,
                    "tenant": spec.tenant, "subtree": spec.subtree, "resources": spec.resources,
                    "tiers": spec.tiers, "enabled": spec.enabled, "description": spec.description,
                });
                if let Some(secret) = exposed(&secret) {
                    body["secret"] = secret;
                }
                Request {
                    method: Method::POST,
                    path: "/webhooks".into(),
                    body: Some(body),
                }
            }
            WebhookChange::Update { id, patch, .. } => {
                let mut body = patch.clone();
                if let Some(secret) = exposed(&secret) {
                    body.insert("secret".into(), secret);
                }
                Request {
                    method: Method::PATCH,
                    path: format!("/webhooks/{}", segment(id)?),
                    body: Some(Value::Object(body)),
                }
            }
            WebhookChange::Delete { id } => Request {
                method: Method::DELETE,
                path: format!("/webhooks/{}", segment(id)?),
                body: None,
            },
        })
    }

    /// Its diff line.
    pub fn line(&self) -> String {
        match self {
            WebhookChange::Create(webhook) => {
                let spec = &webhook.spec;
                let mut extras = vec![spec.url.clone(), thresholds_text(spec)];
                if let Some(tenant) = &spec.tenant {
                    extras.push(format!(
                        "tenant {tenant}{}",
                        if spec.subtree { " and its subtree" } else { "" }
                    ));
                }
                if !spec.resources.is_empty() {
                    extras.push(format!("resources {}", spec.resources.join(",")));
                }
                if !spec.tiers.is_empty() {
                    extras.push(format!("tiers {}", spec.tiers.join(",")));
                }
                if !spec.enabled {
                    extras.push("disabled".into());
                }
                format!("+ webhook {} ({})", spec.id, extras.join("; "))
            }
            WebhookChange::Update { id, details, .. } => {
                format!("~ webhook {id}: {}", details.join(", "))
            }
            WebhookChange::Delete { id } => format!("- webhook {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> WebhookSpec {
        WebhookSpec {
            id: id.into(),
            url: "https://hooks.example.com/t".into(),
            percents: vec![80],
            hard: false,
            tenant: None,
            subtree: false,
            resources: vec!["requests".into(), "tokens".into()],
            tiers: Vec::new(),
            enabled: true,
            description: String::new(),
        }
    }

    fn desired(spec: WebhookSpec, secret_env: Option<&str>) -> DesiredWebhook {
        DesiredWebhook {
            spec,
            secret_env: secret_env.map(String::from),
        }
    }

    fn lines(changes: &[WebhookChange]) -> Vec<String> {
        changes.iter().map(WebhookChange::line).collect()
    }

    #[test]
    fn the_same_subscription_is_no_change_whatever_its_secret() {
        let mut reordered = spec("ops");
        reordered.resources.reverse();
        let (upserts, deletions) = plan(
            &[desired(reordered, Some("S"))],
            &[spec("ops")],
            true,
            false,
        )
        .unwrap();
        assert!(upserts.is_empty() && deletions.is_empty());
    }

    #[test]
    fn changed_fields_are_described_and_only_they_are_sent() {
        let mut wanted = spec("ops");
        wanted.url = "https://hooks.example.com/v2".into();
        wanted.hard = true;
        wanted.enabled = false;
        let (upserts, _) =
            plan(&[desired(wanted, Some("S"))], &[spec("ops")], false, false).unwrap();
        assert_eq!(
            lines(&upserts),
            [
                "~ webhook ops: url https://hooks.example.com/t -> https://hooks.example.com/v2, \
              thresholds 80% -> 80%,hard, enabled true -> false"
            ]
        );
        let change = &upserts[0];
        let body = change.request().unwrap().body.unwrap();
        assert_eq!(
            body,
            json!({"url": "https://hooks.example.com/v2", "thresholds": [80], "hard": true, "enabled": false})
        );
    }

    #[test]
    fn secrets_are_set_only_on_creation_or_when_asked_and_never_shown() {
        std::env::set_var(
            "TOLLGATE_TEST_APPLY_SECRET",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        );
        let file = [
            desired(spec("new"), Some("TOLLGATE_TEST_APPLY_SECRET")),
            desired(spec("ops"), Some("TOLLGATE_TEST_APPLY_SECRET")),
        ];
        let (upserts, _) = plan(&file, &[spec("ops")], false, false).unwrap();
        assert_eq!(upserts.len(), 1, "{:?}", lines(&upserts));
        assert!(upserts[0].line().starts_with(
            "+ webhook new (https://hooks.example.com/t; 80%; resources requests,tokens)"
        ));
        assert!(!upserts[0].line().contains("whsec_"));
        let create = &upserts[0];
        assert_eq!(
            create.request().unwrap().body.unwrap()["secret"],
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
        );
        let (upserts, _) = plan(&file, &[spec("ops")], false, true).unwrap();
        assert_eq!(
            lines(&upserts)[1],
            "~ webhook ops: secret set from $TOLLGATE_TEST_APPLY_SECRET (never shown, so not compared)"
        );
        let errors = plan(&[desired(spec("new"), None)], &[], false, false).unwrap_err();
        assert_eq!(
            errors,
            ["webhooks[0].secret_env: needed to create webhook new"]
        );
    }

    #[test]
    fn prune_deletes_the_subscriptions_the_file_does_not_name() {
        let (_, deletions) = plan(&[], &[spec("old")], true, false).unwrap();
        assert_eq!(lines(&deletions), ["- webhook old"]);
        assert!(plan(&[], &[spec("old")], false, false)
            .unwrap()
            .1
            .is_empty());
    }
}
