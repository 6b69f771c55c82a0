//! `tollgate tier list | get | create | delete`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::args::ServerArgs;
use super::client::{segment, Client};
use super::error::CliError;
use super::limit::LimitSpec;
use super::output::{cell, limit_line, print_json, print_table};

/// `tollgate tier`.
#[derive(Debug, Args)]
pub struct TierArgs {
    /// The server and how to talk to it.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What to do with tiers.
    #[command(subcommand)]
    pub command: TierCommand,
}

/// The tier subcommands.
#[derive(Debug, Subcommand)]
pub enum TierCommand {
    /// List tiers with their limits.
    List {
        /// Stop after this many tiers.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show a tier and its limits.
    Get {
        /// The tier name.
        name: String,
    },
    /// Create a tier with its limits.
    Create {
        /// The tier name: 1-64 characters of a-z, 0-9, _ and -.
        name: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
        /// A limit, as resource:period:quota[:overage[:warn_at]]; period is second,
        /// minute, hour, day, week, month, none (a gauge) or rolling-<period>
        /// (`requests:minute:100`, `requests:rolling-hour:500`).
        #[arg(long = "limit", value_name = "SPEC")]
        limits: Vec<LimitSpec>,
    },
    /// Delete a tier; refused while a tenant or an assignment uses it.
    Delete {
        /// The tier name.
        name: String,
    },
}

/// Runs `tollgate tier …`.
pub async fn run(args: TierArgs) -> Result<(), CliError> {
    let client = Client::new(&args.server)?;
    let json = args.server.json;
    match args.command {
        TierCommand::List { limit } => {
            let listing = client.list("/tiers", &[], limit).await?;
            if json {
                print_json(&listing.to_json());
            } else {
                print_tiers(&listing.items);
            }
        }
        TierCommand::Get { name } => {
            let tier = client
                .get(&format!("/tiers/{}", segment(&name)?), &[])
                .await?;
            if json {
                print_json(&tier);
            } else {
                print_tier(&tier);
            }
        }
        TierCommand::Create {
            name,
            description,
            limits,
        } => {
            let body = json!({
                "name": name,
                "description": description,
                "limits": limits.iter().map(LimitSpec::to_input).collect::<Vec<_>>(),
            });
            let tier = client.write(Method::POST, "/tiers", &body).await?;
            if json {
                print_json(&tier);
            } else {
                print_tier(&tier);
            }
        }
        TierCommand::Delete { name } => {
            client
                .delete(&format!("/tiers/{}", segment(&name)?))
                .await?;
            if !json {
                println!("deleted tier {name}");
            }
        }
    }
    Ok(())
}

fn limits_of(tier: &Value) -> Vec<Value> {
    tier.get("limits")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// One row per tier, its limits one per line.
fn print_tiers(tiers: &[Value]) {
    let rows: Vec<Vec<String>> = tiers
        .iter()
        .map(|tier| {
            let limits: Vec<String> = limits_of(tier).iter().map(limit_line).collect();
            vec![
                cell(tier, "name"),
                cell(tier, "description"),
                if limits.is_empty() {
                    "-".to_string()
                } else {
                    limits.join("\n")
                },
            ]
        })
        .collect();
    print_table(&["name", "description", "limits"], &rows);
}

/// A tier's name and description, then a table of its limits.
fn print_tier(tier: &Value) {
    println!("tier:         {}", cell(tier, "name"));
    println!("description:  {}", cell(tier, "description"));
    println!("updated:      {}", cell(tier, "updated_at"));
    println!();
    print_limits(&limits_of(tier));
}

/// The columns of a limit table: the limit view's fields, in this order.
const LIMIT_COLUMNS: [&str; 8] = [
    "id",
    "resource",
    "period",
    "window",
    "quota",
    "overage",
    "warn_at",
    "unlimited",
];

/// A table of limit views.
pub fn print_limits(limits: &[Value]) {
    let rows: Vec<Vec<String>> = limits
        .iter()
        .map(|limit| {
            LIMIT_COLUMNS
                .iter()
                .map(|field| cell(limit, field))
                .collect()
        })
        .collect();
    print_table(&LIMIT_COLUMNS, &rows);
}
