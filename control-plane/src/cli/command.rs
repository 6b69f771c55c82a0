//! `tollgate`: the top-level command line, and running whichever subcommand it names.

use clap::{Parser, Subcommand};

use super::error::CliError;
use super::{apply, assignment, events, grant, tenant, tier, usage, webhook};
use crate::server::config::{MigrateArgs, ServeArgs};

/// Tollgate's control plane: quota definitions, live counters, decision and admin APIs.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, then serve the decision, admin and metrics APIs.
    Serve(Box<ServeArgs>),
    /// Apply pending migrations to the database and exit.
    Migrate(MigrateArgs),
    /// Manage tiers (named bundles of limits) on a running server.
    Tier(tier::TierArgs),
    /// Manage tenants and see their effective quota on a running server.
    Tenant(tenant::TenantArgs),
    /// Manage assignments of tiers to tenants, roles and everyone on a running server.
    Assignment(assignment::AssignmentArgs),
    /// Grant a tenant more of one limit for a while, list and revoke grants, on a
    /// running server.
    Grant(grant::GrantArgs),
    /// See, reset and adjust a tenant's usage on a running server.
    Usage(usage::UsageArgs),
    /// Read the audit log of a running server.
    Events(events::EventsArgs),
    /// Manage webhook subscriptions to threshold crossings, and see their deliveries.
    Webhook(webhook::WebhookArgs),
    /// Make a running server's tiers, tenants and assignments match a YAML file.
    Apply(apply::ApplyArgs),
}

/// Runs `command`: serves or migrates until done (an error is the process's), or runs an
/// admin command against a running server and exits with its code.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => crate::server::serve(*args).await,
        Command::Migrate(args) => crate::server::migrate(args).await,
        Command::Tier(args) => exit(tier::run(args).await),
        Command::Tenant(args) => exit(tenant::run(args).await),
        Command::Assignment(args) => exit(assignment::run(args).await),
        Command::Grant(args) => exit(grant::run(args).await),
        Command::Usage(args) => exit(usage::run(args).await),
        Command::Events(args) => exit(events::run(args).await),
        Command::Webhook(args) => exit(webhook::run(args).await),
        Command::Apply(args) => exit(apply::run(args).await),
    }
}

/// Ends the process the way an admin subcommand's `result` says: prints the error to
/// stderr and exits 1 (the server refused) or 2 (a usage error), or exits 0.
fn exit(result: Result<(), CliError>) -> ! {
    // `process::exit` runs no destructors: write out what is buffered first.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    match result {
        Ok(()) => std::process::exit(0),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(error.exit_code())
        }
    }
}
