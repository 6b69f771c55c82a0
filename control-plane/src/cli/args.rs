//! The options every admin subcommand shares: which server, with which token, as whom,
//! and whether to print JSON.

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use super::error::CliError;
use crate::server::config::secret;

/// How to reach a running control plane's admin API.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server options")]
pub struct ServerArgs {
    /// Base URL of the running control plane.
    #[arg(
        long,
        env = "TOLLGATE_SERVER",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    pub server: String,
    /// Bearer token of the admin API (required; never printed).
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_TOKEN",
        global = true,
        hide_env_values = true,
        value_parser = secret
    )]
    pub token: Option<SecretString>,
    /// Who acts, recorded in the audit log [default: $USER@<hostname>, else `cli`].
    #[arg(long, env = "TOLLGATE_ACTOR", global = true)]
    pub actor: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// How many items to ask for per page of a listing (1-500); for tests of paging.
    #[arg(long, global = true, hide = true, default_value_t = 500,
          value_parser = clap::value_parser!(u16).range(1..=500))]
    pub page_size: u16,
}

impl ServerArgs {
    /// The token, or a usage error naming both ways to give it.
    pub fn token(&self) -> Result<&SecretString, CliError> {
        self.token
            .as_ref()
            .filter(|token| !token.expose_secret().trim().is_empty())
            .ok_or_else(|| {
                CliError::usage("an admin token is required: --token or TOLLGATE_ADMIN_TOKEN")
            })
    }

    /// The actor: `--actor`, else `$USER@<hostname>`, else `cli`.
    pub fn actor(&self) -> String {
        if let Some(actor) = self.actor.as_deref().map(str::trim) {
            if !actor.is_empty() {
                return actor.to_string();
            }
        }
        default_actor(std::env::var("USER").ok(), hostname())
    }
}

fn default_actor(user: Option<String>, host: Option<String>) -> String {
    match (user.filter(|u| !u.is_empty()), host) {
        (Some(user), Some(host)) => format!("{user}@{host}"),
        (Some(user), None) => user,
        (None, _) => "cli".to_string(),
    }
}

/// This machine's name, from the kernel or `/etc/hostname`.
fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_string())
        .find(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::assignment::AssignmentCommand;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("tollgate").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn server_options_go_anywhere_after_the_group_and_the_token_never_prints() {
        let Command::Tier(args) = parse(&[
            "tier",
            "--server",
            "http://cp:1",
            "list",
            "--token",
            "s3cret",
            "--json",
        ])
        .unwrap() else {
            panic!("expected tier");
        };
        assert_eq!(args.server.server, "http://cp:1");
        assert!(args.server.json);
        assert_eq!(args.server.token().unwrap().expose_secret(), "s3cret");
        assert!(!format!("{args:?}").contains("s3cret"));
    }

    #[test]
    fn an_assignment_has_exactly_one_subject() {
        assert!(parse(&["assignment", "create", "--tier", "t"]).is_err());
        assert!(parse(&[
            "assignment",
            "create",
            "--tier",
            "t",
            "--role",
            "r",
            "--default"
        ])
        .is_err());
        let Command::Assignment(args) =
            parse(&["assignment", "create", "--tier", "t", "--default"]).unwrap()
        else {
            panic!("expected assignment");
        };
        assert!(matches!(
            args.command,
            AssignmentCommand::Create { default: true, .. }
        ));
    }

    #[test]
    fn contradicting_flags_are_usage_errors() {
        for args in [
            ["tenant", "update", "x", "--parent", "p", "--no-parent"].as_slice(),
            &["tenant", "update", "x", "--tier", "t", "--no-tier"],
            &["assignment", "update", "1", "--enable", "--disable"],
            &["assignment", "list", "--active", "--inactive"],
            &["tier", "create", "x", "--limit", "requests:minute"],
        ] {
            let error = parse(args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn default_actor_is_user_at_host_else_user_else_cli() {
        let host = Some("box".to_string());
        assert_eq!(default_actor(Some("ana".into()), host.clone()), "ana@box");
        assert_eq!(default_actor(Some("ana".into()), None), "ana");
        assert_eq!(default_actor(None, host.clone()), "cli");
        assert_eq!(default_actor(Some(String::new()), host), "cli");
    }
}
