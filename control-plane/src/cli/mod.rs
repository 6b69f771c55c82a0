//! The admin subcommands of `tollgate` that talk to a running server, and
//! `tollgate apply`.
//!
//! Each subcommand is a thin layer over the admin HTTP API (`/admin/v1`): it builds one
//! request (or follows a listing's `next_cursor`), then prints the answer as a table or,
//! with `--json`, as the server's JSON. Exit codes: 0 on success, 1 when the server (or
//! the network) refused, 2 for a usage error (a bad flag, limit spec or file).
//!
//! # Layout
//! - [`command`] — [`Cli`]: the top-level parser, and running a subcommand.
//! - [`args`] — the options every admin subcommand shares (`--server`, `--token`, …).
//! - [`error`] — [`CliError`], how it is printed and which exit code it gives.
//! - [`client`] — the HTTP client: bearer token, actor header, problem+json, paging.
//! - [`limit`] — limits as the command line and `apply` write them (`requests:minute:100`).
//! - [`output`] — tables and JSON on stdout.
//! - [`tier`], [`tenant`], [`assignment`], [`grant`], [`usage`], [`events`], [`webhook`] —
//!   one subcommand each; [`export`] is `usage export`, the billing export streamed to
//!   stdout or a file.
//! - [`apply`] — `tollgate apply -f quotas.yaml`: file, pure diff, execution.

pub mod apply;
pub mod args;
pub mod assignment;
pub mod client;
pub mod command;
pub mod error;
pub mod events;
pub mod export;
pub mod grant;
pub mod limit;
pub mod output;
pub mod tenant;
pub mod tier;
pub mod usage;
pub mod webhook;

pub use self::command::{run, Cli, Command};
pub use self::error::CliError;
