//! `tollgate events list`: the audit log, newest first.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::args::ServerArgs;
use super::client::Client;
use super::error::CliError;
use super::output::{cell, print_json, print_table};

/// `tollgate events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The server and how to talk to it.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What to do with events.
    #[command(subcommand)]
    pub command: EventsCommand,
}

/// The events subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first.
    List {
        /// Only events of this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this kind (`tier.created`), or a family ending in `.` (`quota.`).
        #[arg(long)]
        kind: Option<String>,
        /// Only events at or after this instant (RFC 3339).
        #[arg(long)]
        since: Option<DateTime<Utc>>,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// Runs `tollgate events …`.
pub async fn run(args: EventsArgs) -> Result<(), CliError> {
    let client = Client::new(&args.server)?;
    let EventsCommand::List {
        tenant,
        kind,
        since,
        limit,
    } = args.command;
    let mut query = Vec::new();
    query.extend(tenant.map(|t| ("tenant", t)));
    query.extend(kind.map(|k| ("kind", k)));
    query.extend(since.map(|s| ("since", s.to_rfc3339())));
    let listing = client.list("/events", &query, limit).await?;
    if args.server.json {
        print_json(&listing.to_json());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = listing
        .items
        .iter()
        .map(|event| {
            ["id", "at", "kind", "tenant", "actor", "subject"]
                .iter()
                .map(|field| cell(event, field))
                .collect()
        })
        .collect();
    print_table(&["id", "at", "kind", "tenant", "actor", "subject"], &rows);
    Ok(())
}
