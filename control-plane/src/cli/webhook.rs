//! `tollgate webhook list | get | create | update | delete | deliveries`: threshold
//! notifications. The signing secret is read from an environment variable
//! (`--secret-env NAME`), never from the command line, where `ps` and the shell's
//! history would show it; the server never gives it back.

use clap::{Args, Subcommand};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use super::args::ServerArgs;
use super::client::{segment, Client};
use super::error::CliError;
use super::output::{cell, print_json, print_table};

/// `tollgate webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// The server and how to talk to it.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What to do with webhook subscriptions.
    #[command(subcommand)]
    pub command: WebhookCommand,
}

/// What a subscription is told about, as flags.
#[derive(Debug, Clone, Default, Args)]
pub struct WatchFlags {
    /// A percentage of the quota to be told about (1-1000); repeat for several.
    #[arg(long = "threshold", value_name = "PERCENT")]
    pub thresholds: Vec<u16>,
    /// Be told when usage reaches the hard limit (quota + overage), or a request is
    /// refused by it.
    #[arg(long)]
    pub hard: bool,
    /// Only limits of this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// With --tenant: its descendants' limits too.
    #[arg(long)]
    pub subtree: bool,
    /// Only limits of this resource; repeat for several.
    #[arg(long = "resource", value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// Only limits of tenants this tier applies to; repeat for several.
    #[arg(long = "tier", value_name = "TIER")]
    pub tiers: Vec<String>,
}

/// The webhook subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// List subscriptions.
    List {
        /// Stop after this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show a subscription (never its secret).
    Get {
        /// The subscription's id.
        id: String,
    },
    /// Subscribe a URL to threshold crossings.
    Create {
        /// The subscription's id (1-64 characters of a-z, 0-9, _ and -).
        id: String,
        /// Where payloads are POSTed (http or https).
        #[arg(long)]
        url: String,
        /// The environment variable holding the signing secret (whsec_ and the base64
        /// of 24 to 64 random bytes).
        #[arg(long, value_name = "NAME")]
        secret_env: String,
        /// What it is told about.
        #[command(flatten)]
        watch: WatchFlags,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Change a subscription; what is not given stays. Lists given replace the old ones.
    Update {
        /// The subscription's id.
        id: String,
        /// A new URL.
        #[arg(long)]
        url: Option<String>,
        /// Rotate the secret to the one in this environment variable.
        #[arg(long, value_name = "NAME")]
        secret_env: Option<String>,
        /// New percentages (the whole set); repeat for several.
        #[arg(long = "threshold", value_name = "PERCENT")]
        thresholds: Vec<u16>,
        /// Be told when the hard limit is reached.
        #[arg(long, conflicts_with = "no_hard")]
        hard: bool,
        /// Stop being told when the hard limit is reached.
        #[arg(long)]
        no_hard: bool,
        /// Watch this tenant's limits only.
        #[arg(long, conflicts_with = "every_tenant")]
        tenant: Option<String>,
        /// Watch every tenant's limits.
        #[arg(long)]
        every_tenant: bool,
        /// Watch the tenant's descendants too.
        #[arg(long, conflicts_with = "no_subtree")]
        subtree: bool,
        /// Watch the tenant's own limits only.
        #[arg(long)]
        no_subtree: bool,
        /// New resources (the whole set); repeat for several.
        #[arg(
            long = "resource",
            value_name = "RESOURCE",
            conflicts_with = "every_resource"
        )]
        resources: Vec<String>,
        /// Watch every resource.
        #[arg(long)]
        every_resource: bool,
        /// New tiers (the whole set); repeat for several.
        #[arg(long = "tier", value_name = "TIER", conflicts_with = "every_tier")]
        tiers: Vec<String>,
        /// Watch every tier.
        #[arg(long)]
        every_tier: bool,
        /// Enable it.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Disable it: no new events; its pending deliveries wait.
        #[arg(long)]
        disable: bool,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a subscription and its deliveries.
    Delete {
        /// The subscription's id.
        id: String,
    },
    /// A subscription's deliveries, newest first, with every attempt.
    Deliveries {
        /// The subscription's id.
        id: String,
        /// Only `pending`, `delivered` or `failed` ones.
        #[arg(long)]
        status: Option<String>,
        /// Stop after this many.
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// The secret in environment variable `name`, or a usage error naming it.
pub fn secret_from_env(name: &str) -> Result<SecretString, CliError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(SecretString::from(value)),
        _ => Err(CliError::usage(format!(
            "the environment variable {name} (the webhook's signing secret) is not set"
        ))),
    }
}

fn path(id: &str) -> Result<String, CliError> {
    Ok(format!("/webhooks/{}", segment(id)?))
}

/// The create body of `watch` and the rest.
fn create_body(
    id: String,
    url: String,
    secret: &SecretString,
    watch: WatchFlags,
    description: Option<String>,
    enabled: bool,
) -> Value {
    let mut body = json!({
        "id": id, "url": url, "secret": secret.expose_secret(),
        "thresholds": watch.thresholds, "hard": watch.hard, "subtree": watch.subtree,
        "resources": watch.resources, "tiers": watch.tiers, "enabled": enabled,
    });
    if let Some(tenant) = watch.tenant {
        body["tenant"] = json!(tenant);
    }
    if let Some(description) = description {
        body["description"] = json!(description);
    }
    body
}

/// Runs `tollgate webhook …`.
pub async fn run(args: WebhookArgs) -> Result<(), CliError> {
    let client = Client::new(&args.server)?;
    let json = args.server.json;
    let shown = match args.command {
        WebhookCommand::List { limit } => {
            let listing = client.list("/webhooks", &[], limit).await?;
            if json {
                print_json(&listing.to_json());
            } else {
                print_webhooks(&listing.items);
            }
            return Ok(());
        }
        WebhookCommand::Get { id } => client.get(&path(&id)?, &[]).await?,
        WebhookCommand::Create {
            id,
            url,
            secret_env,
            watch,
            description,
            disabled,
        } => {
            let secret = secret_from_env(&secret_env)?;
            let body = create_body(id, url, &secret, watch, description, !disabled);
            client.write(Method::POST, "/webhooks", &body).await?
        }
        WebhookCommand::Update {
            id,
            url,
            secret_env,
            thresholds,
            hard,
            no_hard,
            tenant,
            every_tenant,
            subtree,
            no_subtree,
            resources,
            every_resource,
            tiers,
            every_tier,
            enable,
            disable,
            description,
        } => {
            let mut body = Map::new();
            if let Some(url) = url {
                body.insert("url".into(), json!(url));
            }
            if let Some(name) = secret_env {
                let secret = secret_from_env(&name)?;
                body.insert("secret".into(), json!(secret.expose_secret()));
            }
            if !thresholds.is_empty() {
                body.insert("thresholds".into(), json!(thresholds));
            }
            if hard || no_hard {
                body.insert("hard".into(), json!(hard));
            }
            if every_tenant {
                body.insert("tenant".into(), Value::Null);
            } else if let Some(tenant) = tenant {
                body.insert("tenant".into(), json!(tenant));
            }
            if subtree || no_subtree {
                body.insert("subtree".into(), json!(subtree));
            }
            if every_resource || !resources.is_empty() {
                body.insert("resources".into(), json!(resources));
            }
            if every_tier || !tiers.is_empty() {
                body.insert("tiers".into(), json!(tiers));
            }
            if enable || disable {
                body.insert("enabled".into(), json!(enable));
            }
            if let Some(description) = description {
                body.insert("description".into(), json!(description));
            }
            if body.is_empty() {
                return Err(CliError::usage(
                    "nothing to change: see --help for what can be",
                ));
            }
            client
                .write(Method::PATCH, &path(&id)?, &Value::Object(body))
                .await?
        }
        WebhookCommand::Delete { id } => {
            client.delete(&path(&id)?).await?;
            if !json {
                println!("deleted webhook {id}");
            }
            return Ok(());
        }
        WebhookCommand::Deliveries { id, status, limit } => {
            let query: Vec<(&str, String)> = status.into_iter().map(|s| ("status", s)).collect();
            let listing = client
                .list(&format!("{}/deliveries", path(&id)?), &query, limit)
                .await?;
            if json {
                print_json(&listing.to_json());
            } else {
                print_deliveries(&listing.items);
            }
            return Ok(());
        }
    };
    if json {
        print_json(&shown);
    } else {
        print_webhooks(std::slice::from_ref(&shown));
    }
    Ok(())
}

/// `50%,80%,hard`.
fn thresholds_cell(webhook: &Value) -> String {
    let mut parts: Vec<String> = (webhook.get("thresholds").and_then(Value::as_array))
        .map(|items| items.iter().map(|p| format!("{p}%")).collect())
        .unwrap_or_default();
    if webhook.get("hard") == Some(&Value::Bool(true)) {
        parts.push("hard".into());
    }
    parts.join(",")
}

/// What a subscription watches: `acme (subtree) requests,tokens tier pro`, or `all`.
fn watches_cell(webhook: &Value) -> String {
    let list = |field: &str| -> Vec<String> {
        (webhook.get(field).and_then(Value::as_array))
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut parts = Vec::new();
    if let Some(tenant) = webhook.get("tenant").and_then(Value::as_str) {
        let subtree = webhook.get("subtree") == Some(&Value::Bool(true));
        parts.push(format!(
            "{tenant}{}",
            if subtree { " (subtree)" } else { "" }
        ));
    }
    let resources = list("resources");
    if !resources.is_empty() {
        parts.push(resources.join(","));
    }
    let tiers = list("tiers");
    if !tiers.is_empty() {
        parts.push(format!("tier {}", tiers.join(",")));
    }
    if parts.is_empty() {
        "all".to_string()
    } else {
        parts.join(" ")
    }
}

fn print_webhooks(webhooks: &[Value]) {
    let rows: Vec<Vec<String>> = webhooks
        .iter()
        .map(|w| {
            vec![
                cell(w, "id"),
                cell(w, "url"),
                thresholds_cell(w),
                watches_cell(w),
                cell(w, "enabled"),
            ]
        })
        .collect();
    print_table(&["id", "url", "thresholds", "watches", "enabled"], &rows);
}

/// One row per attempt (a delivery not tried yet is one row without one).
fn print_deliveries(deliveries: &[Value]) {
    let mut rows = Vec::new();
    for delivery in deliveries {
        let event = delivery.get("event").cloned().unwrap_or(Value::Null);
        let data = event.get("data").cloned().unwrap_or(Value::Null);
        let what = format!(
            "{} {} {} {}",
            cell(&data, "level"),
            cell(&data, "resource"),
            cell(&data, "policy"),
            match data.pointer("/threshold/kind").and_then(Value::as_str) {
                Some("hard") => "hard".to_string(),
                _ => format!("{}%", cell(&data["threshold"], "percent")),
            }
        );
        let attempts = delivery
            .get("log")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let head = [cell(delivery, "id"), cell(delivery, "status"), what];
        if attempts.is_empty() {
            rows.push([&head[..], &["-".into(), "-".into(), "-".into(), "-".into()]].concat());
        }
        for attempt in &attempts {
            let answer = match attempt.get("status_code").and_then(Value::as_i64) {
                Some(code) => code.to_string(),
                None => cell(attempt, "error"),
            };
            let row = [
                cell(attempt, "attempt"),
                cell(attempt, "at"),
                format!("{} ms", cell(attempt, "duration_ms")),
                answer,
            ];
            rows.push([&head[..], &row[..]].concat());
        }
    }
    print_table(
        &[
            "delivery", "status", "event", "attempt", "at", "took", "answer",
        ],
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_is_one_row_saying_what_it_watches() {
        let webhook = json!({"id": "ops", "url": "https://h/x", "thresholds": [50, 80],
            "hard": true, "tenant": "acme", "subtree": true, "resources": ["requests"],
            "tiers": [], "enabled": true});
        assert_eq!(thresholds_cell(&webhook), "50%,80%,hard");
        assert_eq!(watches_cell(&webhook), "acme (subtree) requests");
        let all = json!({"thresholds": [], "hard": true, "tenant": null, "resources": [], "tiers": ["pro"]});
        assert_eq!(watches_cell(&all), "tier pro");
        assert_eq!(thresholds_cell(&all), "hard");
    }

    #[test]
    fn a_missing_secret_variable_is_a_usage_error_naming_it() {
        let error = secret_from_env("TOLLGATE_TEST_NO_SUCH_SECRET").unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("TOLLGATE_TEST_NO_SUCH_SECRET"));
    }
}
