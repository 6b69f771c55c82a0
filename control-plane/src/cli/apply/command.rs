//! `tollgate apply`: its flags, and the run — read the file, read the server, plan the
//! changes, print them, apply them in order (unless `--dry-run`).

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};

use super::change::{summary, Change, Op};
use super::{diff, file, grants, state, webhooks};
use crate::cli::args::ServerArgs;
use crate::cli::client::Client;
use crate::cli::error::CliError;
use crate::cli::output::print_json;

/// `tollgate apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The quota definitions: a YAML file (see quotas.example.yaml), or `-` for stdin.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Print the changes without making them.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete the tiers, tenants, assignments and webhooks the file does not name.
    #[arg(long)]
    pub prune: bool,
    /// Also set the signing secret of every webhook the file names, from its
    /// `secret_env` (the server never shows a secret, so it cannot be compared: without
    /// this flag an existing webhook keeps its secret).
    #[arg(long)]
    pub set_secrets: bool,
    /// The server and how to talk to it.
    #[command(flatten)]
    pub server: ServerArgs,
}

fn read(path: &Path) -> Result<String, CliError> {
    let mut text = String::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    result.map_err(|e| CliError::usage(format!("reading {}: {e}", path.display())))?;
    Ok(text)
}

/// One usage error listing every problem, each prefixed with the file name.
fn file_errors(path: &Path, errors: &[String]) -> CliError {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {e}", path.display()))
        .collect();
    CliError::usage(lines.join("\nerror: "))
}

/// Runs `tollgate apply`.
pub async fn run(args: ApplyArgs) -> Result<(), CliError> {
    let text = read(&args.file)?;
    let desired = file::parse(&text).map_err(|errors| file_errors(&args.file, &errors))?;
    let client = Client::new(&args.server)?;
    let mut current = state::fetch(&client).await?;
    // Grants are read per tenant: only those of the file's tenants that declare grants
    // (or, with --prune, may have some to revoke) and exist.
    let with_grants: Vec<&str> = desired
        .tenants
        .iter()
        .filter(|t| args.prune || !t.grants.is_empty())
        .map(|t| t.spec.id.as_str())
        .filter(|id| current.tenants.iter().any(|t| t.id == *id))
        .collect();
    current.grants = grants::fetch(&client, &with_grants).await?;
    let mut changes = diff::plan(&desired, &current, args.prune)
        .map_err(|errors| file_errors(&args.file, &errors))?;
    let (hooks, unhooked) = webhooks::plan(
        &desired.webhooks,
        &current.webhooks,
        args.prune,
        args.set_secrets,
    )
    .map_err(|errors| file_errors(&args.file, &errors))?;
    // Webhooks name tenants and tiers but need none of them: created and changed after
    // the rest, deleted last.
    let deletions = changes
        .iter()
        .position(|c| c.op() == Op::Delete)
        .unwrap_or(changes.len());
    changes.splice(deletions..deletions, hooks.into_iter().map(Change::Webhook));
    changes.extend(unhooked.into_iter().map(Change::Webhook));
    // Every secret is read before anything is changed.
    for change in &changes {
        if let Change::Webhook(webhook) = change {
            if let Some(name) = webhook.secret_env() {
                crate::cli::webhook::secret_from_env(name)?;
            }
        }
    }

    if args.server.json {
        print_json(&json!({
            "changes": changes.iter().map(Change::to_json).collect::<Vec<Value>>(),
            "summary": summary(&changes),
            "dry_run": args.dry_run,
        }));
    } else {
        for change in &changes {
            println!("{change}");
        }
        println!("{}", summary(&changes));
    }
    if args.dry_run {
        if !changes.is_empty() {
            eprintln!("dry run: nothing was changed");
        }
        return Ok(());
    }
    for (done, change) in changes.iter().enumerate() {
        if let Err(error) = execute(&client, change).await {
            eprintln!(
                "apply stopped at change {} of {}: {change}",
                done + 1,
                changes.len()
            );
            if done == 0 {
                eprintln!("nothing was applied");
            } else {
                eprintln!("applied before it:");
                for applied in &changes[..done] {
                    eprintln!("  {applied}");
                }
            }
            return Err(error);
        }
    }
    Ok(())
}

async fn execute(client: &Client, change: &Change) -> Result<(), CliError> {
    let request = change.request()?;
    client
        .send(request.method, &request.path, &[], request.body.as_ref())
        .await
        .map(|_| ())
}
