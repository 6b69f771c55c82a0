//! `tollgate`: reads the config file into the environment, parses the command line and
//! runs the subcommand (see [`tollgate_control_plane::cli`]).

use anyhow::Context;
use clap::Parser;
use tollgate_control_plane::cli::{self, Cli};
use tollgate_control_plane::server::config::load_config_file;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    load_config_file(&args).context("reading the --config file")?;
    cli::run(Cli::parse().command).await
}
