//! `tollgate usage get | reset | adjust | history | export`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::args::ServerArgs;
use super::client::{segment, Client};
use super::error::CliError;
use super::export::{self, ExportArgs};
use super::limit::parse_period;
use super::output::{cell, print_json, print_table};
use crate::model::window::WindowKind;

/// `tollgate usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The server and how to talk to it.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What to do with usage.
    #[command(subcommand)]
    pub command: UsageCommand,
}

/// The usage subcommands.
#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Live usage of every limit of a tenant and its ancestors.
    Get {
        /// The tenant id (may contain `/`).
        tenant: String,
        /// Comma-separated roles to resolve for.
        #[arg(long)]
        roles: Option<String>,
    },
    /// Reset the tenant's own usage in the current windows to zero.
    Reset {
        /// The tenant id.
        tenant: String,
        /// Only limits on this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Only limits of this period (`minute`: calendar and rolling; `rolling-hour`:
        /// only the rolling one).
        #[arg(long)]
        period: Option<String>,
    },
    /// Add a signed amount to one limit's usage in its current window.
    Adjust {
        /// The tenant id.
        tenant: String,
        /// The limit's resource.
        #[arg(long)]
        resource: String,
        /// The limit's period (`minute`, `none`, `rolling-hour`).
        #[arg(long)]
        period: String,
        /// What to add; negative takes away (usage never goes below zero).
        #[arg(long, allow_hyphen_values = true)]
        delta: i64,
    },
    /// Persisted usage per window, newest first.
    History {
        /// The tenant id.
        tenant: String,
        /// Only this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Only this series: a period (`month`) or `rolling-<period>`.
        #[arg(long)]
        series: Option<String>,
        /// Stop after this many windows.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Every tenant's persisted usage per window over a range, for billing, as CSV,
    /// NDJSON or CloudEvents, streamed to stdout or a file.
    Export(ExportArgs),
}

fn tenant_path(tenant: &str, rest: &str) -> Result<String, CliError> {
    Ok(format!("/tenants/{}/{rest}", segment(tenant)?))
}

/// The period and window fields of a reset or adjust body.
fn period_fields(text: &str, body: &mut Map<String, Value>) -> Result<(), CliError> {
    let (period, window) = parse_period(text).map_err(|e| CliError::usage(format!("--{e}")))?;
    body.insert(
        "period".into(),
        json!(period.map_or("none", |p| p.as_str())),
    );
    if window == WindowKind::Rolling {
        body.insert("window".into(), json!("rolling"));
    }
    Ok(())
}

/// Runs `tollgate usage …`.
pub async fn run(args: UsageArgs) -> Result<(), CliError> {
    let client = Client::new(&args.server)?;
    let json = args.server.json;
    match args.command {
        UsageCommand::Export(export) => export::run(&client, export).await?,
        UsageCommand::Get { tenant, roles } => {
            let query: Vec<_> = roles.map(|r| ("roles", r)).into_iter().collect();
            let report = client.get(&tenant_path(&tenant, "usage")?, &query).await?;
            if json {
                print_json(&report);
            } else {
                print_usage(&report);
            }
        }
        UsageCommand::Reset {
            tenant,
            resource,
            period,
        } => {
            let mut body = Map::new();
            if let Some(resource) = resource {
                body.insert("resource".into(), json!(resource));
            }
            if let Some(period) = period {
                period_fields(&period, &mut body)?;
            }
            let changes = client
                .write(
                    Method::POST,
                    &tenant_path(&tenant, "usage:reset")?,
                    &Value::Object(body),
                )
                .await?;
            print_changes(&changes, json);
        }
        UsageCommand::Adjust {
            tenant,
            resource,
            period,
            delta,
        } => {
            let mut body = Map::new();
            body.insert("resource".into(), json!(resource));
            period_fields(&period, &mut body)?;
            body.insert("delta".into(), json!(delta));
            let changes = client
                .write(
                    Method::POST,
                    &tenant_path(&tenant, "usage:adjust")?,
                    &Value::Object(body),
                )
                .await?;
            print_changes(&changes, json);
        }
        UsageCommand::History {
            tenant,
            resource,
            series,
            limit,
        } => {
            let mut query = Vec::new();
            query.extend(resource.map(|r| ("resource", r)));
            query.extend(series.map(|s| ("series", s)));
            let listing = client
                .list(&tenant_path(&tenant, "usage/history")?, &query, limit)
                .await?;
            if json {
                print_json(&listing.to_json());
            } else {
                let rows: Vec<Vec<String>> = listing
                    .items
                    .iter()
                    .map(|row| {
                        ["resource", "series", "window_start", "window_end", "used"]
                            .iter()
                            .map(|f| cell(row, f))
                            .collect()
                    })
                    .collect();
                print_table(
                    &["resource", "series", "window_start", "window_end", "used"],
                    &rows,
                );
            }
        }
    }
    Ok(())
}

fn items<'a>(object: &'a Value, field: &str) -> &'a [Value] {
    object
        .get(field)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn print_usage(report: &Value) {
    let rows: Vec<Vec<String>> = items(report, "usage")
        .iter()
        .map(|row| {
            vec![
                cell(row, "tenant"),
                cell(row, "resource"),
                cell(row, "period"),
                cell(row, "window"),
                cell(row, "used"),
                cell(row, "limit"),
                cell(row, "remaining"),
                cell(row, "status"),
                format!("{}s", cell(row, "reset_after_s")),
            ]
        })
        .collect();
    print_table(
        &[
            "tenant",
            "resource",
            "period",
            "window",
            "used",
            "limit",
            "remaining",
            "status",
            "resets in",
        ],
        &rows,
    );
}

fn print_changes(changes: &Value, json: bool) {
    if json {
        print_json(changes);
        return;
    }
    let rows: Vec<Vec<String>> = items(changes, "changes")
        .iter()
        .map(|change| {
            vec![
                cell(changes, "tenant"),
                cell(change, "resource"),
                cell(change, "period"),
                cell(change, "window"),
                cell(change, "before"),
                cell(change, "after"),
            ]
        })
        .collect();
    print_table(
        &["tenant", "resource", "period", "window", "before", "after"],
        &rows,
    );
}
