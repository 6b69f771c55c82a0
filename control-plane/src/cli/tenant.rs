//! `tollgate tenant list | get | create | update | delete | quota`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::args::ServerArgs;
use super::client::{segment, Client};
use super::error::CliError;
use super::output::{cell, labels_cell, limit_line, print_json, print_table};
use crate::model::{Mode, Ppm};

/// `tollgate tenant`.
#[derive(Debug, Args)]
pub struct TenantArgs {
    /// The server and how to talk to it.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What to do with tenants.
    #[command(subcommand)]
    pub command: TenantCommand,
}

/// The tenant subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List tenants.
    List {
        /// Only children of this tenant.
        #[arg(long)]
        parent: Option<String>,
        /// Only tenants whose own tier is this.
        #[arg(long)]
        tier: Option<String>,
        /// Only tenants in this mode (enforce, shadow, off).
        #[arg(long)]
        mode: Option<Mode>,
        /// Only tenants with this label, as key=value.
        #[arg(long, value_parser = label)]
        label: Option<(String, String)>,
        /// Stop after this many tenants.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show a tenant.
    Get {
        /// The tenant id (may contain `/`).
        id: String,
    },
    /// Create a tenant.
    Create {
        /// The tenant id: 1-128 characters of letters, digits and ._:@/-.
        id: String,
        /// Its parent tenant.
        #[arg(long)]
        parent: Option<String>,
        /// Its own tier.
        #[arg(long)]
        tier: Option<String>,
        /// enforce (default), shadow or off.
        #[arg(long)]
        mode: Option<Mode>,
        /// How far its children's quotas may sum past its own (1 = not at all).
        #[arg(long, value_parser = overcommit)]
        overcommit: Option<f64>,
        /// A label, as key=value (repeatable).
        #[arg(long = "label", value_parser = label)]
        labels: Vec<(String, String)>,
    },
    /// Change a tenant; what is not given stays.
    Update {
        /// The tenant id.
        id: String,
        /// A new parent.
        #[arg(long, conflicts_with = "no_parent")]
        parent: Option<String>,
        /// Make it a root (no parent).
        #[arg(long)]
        no_parent: bool,
        /// A new own tier.
        #[arg(long, conflicts_with = "no_tier")]
        tier: Option<String>,
        /// Remove its own tier.
        #[arg(long)]
        no_tier: bool,
        /// enforce, shadow or off.
        #[arg(long)]
        mode: Option<Mode>,
        /// A new overcommit ratio.
        #[arg(long, value_parser = overcommit)]
        overcommit: Option<f64>,
        /// A label, as key=value (repeatable); the labels given replace all old ones.
        #[arg(long = "label", value_parser = label)]
        labels: Vec<(String, String)>,
    },
    /// Delete a tenant with its assignments and overrides; refused while it has
    /// children.
    Delete {
        /// The tenant id.
        id: String,
    },
    /// Show a tenant's effective quota at every level, and why each tier applies.
    Quota {
        /// The tenant id.
        id: String,
        /// Comma-separated roles to resolve for, as a request with them would be.
        #[arg(long)]
        roles: Option<String>,
    },
}

/// `key=value`.
fn label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| format!("{text:?}: expected key=value"))
}

/// A ratio above 0 and at most 1000.
fn overcommit(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|ratio| Ppm::from_ratio(*ratio).is_some())
        .ok_or_else(|| format!("{text:?}: expected a ratio above 0 and at most 1000"))
}

fn labels_json(labels: &[(String, String)]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect(),
    )
}

fn path(id: &str) -> Result<String, CliError> {
    Ok(format!("/tenants/{}", segment(id)?))
}

/// Runs `tollgate tenant …`.
pub async fn run(args: TenantArgs) -> Result<(), CliError> {
    let client = Client::new(&args.server)?;
    let json = args.server.json;
    let shown = match args.command {
        TenantCommand::List {
            parent,
            tier,
            mode,
            label,
            limit,
        } => {
            let mut query = Vec::new();
            query.extend(parent.map(|p| ("parent", p)));
            query.extend(tier.map(|t| ("tier", t)));
            query.extend(mode.map(|m| ("mode", m.to_string())));
            query.extend(label.map(|(k, v)| ("label", format!("{k}={v}"))));
            let listing = client.list("/tenants", &query, limit).await?;
            if json {
                print_json(&listing.to_json());
            } else {
                print_tenants(&listing.items);
            }
            return Ok(());
        }
        TenantCommand::Get { id } => client.get(&path(&id)?, &[]).await?,
        TenantCommand::Create {
            id,
            parent,
            tier,
            mode,
            overcommit,
            labels,
        } => {
            let mut body = Map::new();
            body.insert("id".into(), json!(id));
            body.insert("parent_id".into(), json!(parent));
            body.insert("tier".into(), json!(tier));
            if let Some(mode) = mode {
                body.insert("mode".into(), json!(mode.as_str()));
            }
            if let Some(ratio) = overcommit {
                body.insert("overcommit".into(), json!(ratio));
            }
            body.insert("labels".into(), labels_json(&labels));
            client
                .write(Method::POST, "/tenants", &Value::Object(body))
                .await?
        }
        TenantCommand::Update {
            id,
            parent,
            no_parent,
            tier,
            no_tier,
            mode,
            overcommit,
            labels,
        } => {
            let mut body = Map::new();
            if no_parent {
                body.insert("parent_id".into(), Value::Null);
            } else if let Some(parent) = parent {
                body.insert("parent_id".into(), json!(parent));
            }
            if no_tier {
                body.insert("tier".into(), Value::Null);
            } else if let Some(tier) = tier {
                body.insert("tier".into(), json!(tier));
            }
            if let Some(mode) = mode {
                body.insert("mode".into(), json!(mode.as_str()));
            }
            if let Some(ratio) = overcommit {
                body.insert("overcommit".into(), json!(ratio));
            }
            if !labels.is_empty() {
                body.insert("labels".into(), labels_json(&labels));
            }
            if body.is_empty() {
                return Err(CliError::usage(
                    "nothing to change: give --parent, --no-parent, --tier, --no-tier, \
                     --mode, --overcommit or --label",
                ));
            }
            client
                .write(Method::PATCH, &path(&id)?, &Value::Object(body))
                .await?
        }
        TenantCommand::Delete { id } => {
            client.delete(&path(&id)?).await?;
            if !json {
                println!("deleted tenant {id}");
            }
            return Ok(());
        }
        TenantCommand::Quota { id, roles } => {
            let query: Vec<_> = roles.map(|r| ("roles", r)).into_iter().collect();
            let report = client.get(&format!("{}/quota", path(&id)?), &query).await?;
            if json {
                print_json(&report);
            } else {
                print_quota(&report);
            }
            return Ok(());
        }
    };
    if json {
        print_json(&shown);
    } else {
        print_tenants(std::slice::from_ref(&shown));
    }
    Ok(())
}

fn print_tenants(tenants: &[Value]) {
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                cell(t, "id"),
                cell(t, "parent_id"),
                cell(t, "tier"),
                cell(t, "mode"),
                cell(t, "overcommit"),
                labels_cell(t.get("labels")),
            ]
        })
        .collect();
    print_table(
        &["id", "parent", "tier", "mode", "overcommit", "labels"],
        &rows,
    );
}

/// What grants add to a limit of the quota report: `, +500 granted: hard limit 1500`.
fn granted(limit: &Value) -> String {
    match limit.get("granted").and_then(Value::as_u64) {
        Some(amount) if amount > 0 => format!(
            ", +{amount} granted: hard limit {}",
            cell(limit, "hard_limit")
        ),
        _ => String::new(),
    }
}

/// One row per level: its tier, why, and its limits one per line (with what grants add).
fn print_quota(report: &Value) {
    let levels = report
        .get("levels")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = levels
        .iter()
        .map(|level| {
            let limits: Vec<String> = level
                .get("limits")
                .and_then(Value::as_array)
                .map(|limits| {
                    limits
                        .iter()
                        .map(|l| format!("{} ({}){}", limit_line(l), cell(l, "from"), granted(l)))
                        .collect()
                })
                .unwrap_or_default();
            vec![
                cell(level, "tenant"),
                cell(level, "mode"),
                cell(level, "tier"),
                cell(level, "reason"),
                if limits.is_empty() {
                    "-".to_string()
                } else {
                    limits.join("\n")
                },
            ]
        })
        .collect();
    print_table(&["tenant", "mode", "tier", "reason", "limits"], &rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_equals_value() {
        assert_eq!(label("plan=pro").unwrap(), ("plan".into(), "pro".into()));
        assert_eq!(label("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(label("plan").is_err());
        assert!(label("=x").is_err());
    }

    #[test]
    fn overcommit_is_a_positive_ratio_up_to_1000() {
        assert_eq!(overcommit("1.5").unwrap(), 1.5);
        for bad in ["0", "-1", "1001", "x"] {
            assert!(overcommit(bad).is_err(), "{bad}");
        }
    }
}
