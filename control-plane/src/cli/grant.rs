//! `tollgate grant list | get | create | revoke`: more of one tenant's limit for a while.

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::args::ServerArgs;
use super::client::{segment, Client};
use super::error::CliError;
use super::output::{cell, print_json, print_table};

/// `tollgate grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The server and how to talk to it.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What to do with grants.
    #[command(subcommand)]
    pub command: GrantCommand,
}

/// Where a grant stands now, for `list --state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum State {
    /// Counting now.
    InForce,
    /// Not counting yet.
    Scheduled,
    /// Expired or revoked.
    Ended,
}

/// The grant subcommands.
#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// List a tenant's grants, oldest first: in force, scheduled and ended.
    List {
        /// The tenant.
        tenant: String,
        /// Only grants in this state now.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// Only grants on this resource.
        #[arg(long)]
        resource: Option<String>,
        /// Stop after this many grants.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show one of a tenant's grants.
    Get {
        /// The tenant.
        tenant: String,
        /// The grant id.
        id: i64,
    },
    /// Add an amount to a tenant's hard limit on a resource, period and window, for a
    /// while.
    #[command(group(ArgGroup::new("end").required(true).args(["expires_at", "until_window_end"])))]
    Create {
        /// The tenant.
        tenant: String,
        /// The resource of the limit it raises.
        #[arg(long)]
        resource: String,
        /// The period of that limit: second, minute, hour, day, week, month, or none for
        /// a gauge.
        #[arg(long)]
        period: String,
        /// The window of that limit: calendar (default) or rolling.
        #[arg(long, default_value = "calendar")]
        window: String,
        /// What it adds to the hard limit (quota + overage).
        #[arg(long)]
        amount: u64,
        /// From when it counts (RFC 3339) [default: now].
        #[arg(long)]
        effective_at: Option<DateTime<Utc>>,
        /// The first instant it no longer counts (RFC 3339, in the future).
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
        /// Until the end of the limit's calendar window in force at --effective-at
        /// (the month's end for a monthly limit).
        #[arg(long)]
        until_window_end: bool,
        /// Why, for billing and the audit log.
        #[arg(long)]
        reason: String,
        /// A stable name for it, unique per tenant (what `tollgate apply` matches).
        #[arg(long)]
        key: Option<String>,
    },
    /// End a grant now; its record stays, with who revoked it and why.
    Revoke {
        /// The tenant.
        tenant: String,
        /// The grant id.
        id: i64,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

fn path(tenant: &str) -> Result<String, CliError> {
    Ok(format!("/tenants/{}/grants", segment(tenant)?))
}

fn state_name(state: State) -> &'static str {
    match state {
        State::InForce => "in_force",
        State::Scheduled => "scheduled",
        State::Ended => "ended",
    }
}

/// Runs `tollgate grant …`.
pub async fn run(args: GrantArgs) -> Result<(), CliError> {
    let client = Client::new(&args.server)?;
    let json = args.server.json;
    let shown = match args.command {
        GrantCommand::List {
            tenant,
            state,
            resource,
            limit,
        } => {
            let mut query = Vec::new();
            query.extend(state.map(|s| ("state", state_name(s).to_string())));
            query.extend(resource.map(|r| ("resource", r)));
            let listing = client.list(&path(&tenant)?, &query, limit).await?;
            if json {
                print_json(&listing.to_json());
            } else {
                print_grants(&listing.items);
            }
            return Ok(());
        }
        GrantCommand::Get { tenant, id } => {
            client
                .get(&format!("{}/{}", path(&tenant)?, id), &[])
                .await?
        }
        GrantCommand::Create {
            tenant,
            resource,
            period,
            window,
            amount,
            effective_at,
            expires_at,
            until_window_end,
            reason,
            key,
        } => {
            let mut body = Map::new();
            body.insert("resource".into(), json!(resource));
            body.insert("period".into(), json!(period));
            body.insert("window".into(), json!(window));
            body.insert("amount".into(), json!(amount));
            if let Some(at) = effective_at {
                body.insert("effective_at".into(), json!(at));
            }
            if until_window_end {
                body.insert("until".into(), json!("window_end"));
            } else {
                body.insert("expires_at".into(), json!(expires_at));
            }
            body.insert("reason".into(), json!(reason));
            if let Some(key) = key {
                body.insert("key".into(), json!(key));
            }
            client
                .write(Method::POST, &path(&tenant)?, &Value::Object(body))
                .await?
        }
        GrantCommand::Revoke { tenant, id, reason } => {
            let body = match reason {
                Some(reason) => json!({"reason": reason}),
                None => json!({}),
            };
            client
                .write(
                    Method::POST,
                    &format!("{}/{}/revoke", path(&tenant)?, id),
                    &body,
                )
                .await?
        }
    };
    if json {
        print_json(&shown);
    } else {
        print_grants(std::slice::from_ref(&shown));
    }
    Ok(())
}

/// The limit a grant raises: `requests/month/calendar`.
pub fn grant_limit(grant: &Value) -> String {
    format!(
        "{}/{}/{}",
        cell(grant, "resource"),
        cell(grant, "period"),
        cell(grant, "window")
    )
}

fn print_grants(grants: &[Value]) {
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| {
            vec![
                cell(g, "id"),
                cell(g, "key"),
                grant_limit(g),
                format!("+{}", cell(g, "amount")),
                cell(g, "state"),
                cell(g, "effective_at"),
                cell(g, "ends_at"),
                cell(g, "reason"),
            ]
        })
        .collect();
    print_table(
        &[
            "id", "key", "limit", "amount", "state", "from", "until", "reason",
        ],
        &rows,
    );
}
