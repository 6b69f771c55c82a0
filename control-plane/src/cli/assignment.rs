//! `tollgate assignment list | create | update | delete`.

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::args::ServerArgs;
use super::client::{segment, Client};
use super::error::CliError;
use super::output::{cell, print_json, print_table};

/// `tollgate assignment`.
#[derive(Debug, Args)]
pub struct AssignmentArgs {
    /// The server and how to talk to it.
    #[command(flatten)]
    pub server: ServerArgs,
    /// What to do with assignments.
    #[command(subcommand)]
    pub command: AssignmentCommand,
}

/// Whom an assignment gives its tier to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// One tenant (priority 300).
    Tenant,
    /// A role (priority 200).
    Role,
    /// Everyone (the default tier, priority 100).
    Default,
}

/// The assignment subcommands.
#[derive(Debug, Subcommand)]
pub enum AssignmentCommand {
    /// List assignments.
    List {
        /// Only those giving this tier.
        #[arg(long)]
        tier: Option<String>,
        /// Only direct assignments to this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only assignments to this role.
        #[arg(long)]
        role: Option<String>,
        /// Only this kind.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Only those that apply now (enabled and not expired).
        #[arg(long, conflicts_with = "inactive")]
        active: bool,
        /// Only those that do not apply now.
        #[arg(long)]
        inactive: bool,
        /// Stop after this many assignments.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Give a tier to a tenant, a role, or everyone.
    #[command(group(ArgGroup::new("subject").required(true).args(["tenant", "role", "default"])))]
    Create {
        /// The tier it gives.
        #[arg(long)]
        tier: String,
        /// To this tenant (priority 300).
        #[arg(long)]
        tenant: Option<String>,
        /// To callers with this role (priority 200).
        #[arg(long)]
        role: Option<String>,
        /// To everyone without a better assignment (priority 100).
        #[arg(long)]
        default: bool,
        /// When it stops applying (RFC 3339, in the future).
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Change an assignment's tier, enabled flag or expiry.
    Update {
        /// The assignment id.
        id: i64,
        /// Another tier.
        #[arg(long)]
        tier: Option<String>,
        /// Enable it.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Disable it (it is kept but ignored).
        #[arg(long)]
        disable: bool,
        /// A new expiry (RFC 3339, in the future).
        #[arg(long, conflicts_with = "no_expiry")]
        expires_at: Option<DateTime<Utc>>,
        /// Make it permanent.
        #[arg(long)]
        no_expiry: bool,
    },
    /// Delete an assignment.
    Delete {
        /// The assignment id.
        id: i64,
    },
}

fn path(id: i64) -> Result<String, CliError> {
    Ok(format!("/assignments/{}", segment(&id.to_string())?))
}

/// Runs `tollgate assignment …`.
pub async fn run(args: AssignmentArgs) -> Result<(), CliError> {
    let client = Client::new(&args.server)?;
    let json = args.server.json;
    let shown = match args.command {
        AssignmentCommand::List {
            tier,
            tenant,
            role,
            kind,
            active,
            inactive,
            limit,
        } => {
            let mut query = Vec::new();
            query.extend(tier.map(|t| ("tier", t)));
            query.extend(tenant.map(|t| ("tenant", t)));
            query.extend(role.map(|r| ("role", r)));
            query.extend(kind.map(|k| ("kind", kind_name(k).to_string())));
            if active || inactive {
                query.push(("active", active.to_string()));
            }
            let listing = client.list("/assignments", &query, limit).await?;
            if json {
                print_json(&listing.to_json());
            } else {
                print_assignments(&listing.items);
            }
            return Ok(());
        }
        AssignmentCommand::Create {
            tier,
            tenant,
            role,
            default,
            expires_at,
            disabled,
        } => {
            let mut body = Map::new();
            body.insert("tier".into(), json!(tier));
            if let Some(tenant) = tenant {
                body.insert("tenant".into(), json!(tenant));
            }
            if let Some(role) = role {
                body.insert("role".into(), json!(role));
            }
            if default {
                body.insert("default".into(), json!(true));
            }
            body.insert("enabled".into(), json!(!disabled));
            body.insert("expires_at".into(), json!(expires_at));
            client
                .write(Method::POST, "/assignments", &Value::Object(body))
                .await?
        }
        AssignmentCommand::Update {
            id,
            tier,
            enable,
            disable,
            expires_at,
            no_expiry,
        } => {
            let mut body = Map::new();
            if let Some(tier) = tier {
                body.insert("tier".into(), json!(tier));
            }
            if enable || disable {
                body.insert("enabled".into(), json!(enable));
            }
            if no_expiry {
                body.insert("expires_at".into(), Value::Null);
            } else if let Some(at) = expires_at {
                body.insert("expires_at".into(), json!(at));
            }
            if body.is_empty() {
                return Err(CliError::usage(
                    "nothing to change: give --tier, --enable, --disable, --expires-at \
                     or --no-expiry",
                ));
            }
            client
                .write(Method::PATCH, &path(id)?, &Value::Object(body))
                .await?
        }
        AssignmentCommand::Delete { id } => {
            client.delete(&path(id)?).await?;
            if !json {
                println!("deleted assignment {id}");
            }
            return Ok(());
        }
    };
    if json {
        print_json(&shown);
    } else {
        print_assignments(std::slice::from_ref(&shown));
    }
    Ok(())
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Tenant => "tenant",
        Kind::Role => "role",
        Kind::Default => "default",
    }
}

/// Whom an assignment view gives its tier to: `acme`, `beta`, or `everyone`.
fn subject(assignment: &Value) -> String {
    match assignment.get("kind").and_then(Value::as_str) {
        Some("tenant") => cell(assignment, "tenant"),
        Some("role") => cell(assignment, "role"),
        _ => "everyone".to_string(),
    }
}

fn print_assignments(assignments: &[Value]) {
    let rows: Vec<Vec<String>> = assignments
        .iter()
        .map(|a| {
            vec![
                cell(a, "id"),
                cell(a, "kind"),
                subject(a),
                cell(a, "tier"),
                cell(a, "priority"),
                cell(a, "enabled"),
                cell(a, "expires_at"),
            ]
        })
        .collect();
    print_table(
        &[
            "id", "kind", "subject", "tier", "priority", "enabled", "expires",
        ],
        &rows,
    );
}
