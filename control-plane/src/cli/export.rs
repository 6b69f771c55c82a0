//! `tollgate usage export`: the billing export (`GET /admin/v1/usage/export`) written to
//! stdout or a file as it arrives, a chunk at a time, so that it takes the same memory
//! however many windows it has. A file is written under a temporary name beside it
//! (`FILE.part`) and renamed once the export is complete: a FILE that exists is whole,
//! and an export cut short leaves none.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::client::Client;
use super::error::CliError;

/// The body the server writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// A JSON array of CloudEvents, one per closed window (OpenMeter's batch ingest).
    Cloudevents,
}

impl ExportFormat {
    fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Cloudevents => "cloudevents",
        }
    }
}

/// `tollgate usage export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Windows starting at or after this instant (RFC 3339: 2026-05-01T00:00:00Z).
    #[arg(long)]
    pub from: String,
    /// Windows starting before this instant (at most 366 days after --from).
    #[arg(long)]
    pub to: String,
    /// Only this tenant's windows.
    #[arg(long)]
    pub tenant: Option<String>,
    /// With --tenant: its descendants' windows too.
    #[arg(long, requires = "tenant")]
    pub subtree: bool,
    /// Only this resource.
    #[arg(long)]
    pub resource: Option<String>,
    /// Only this series: a period (`month`) or `rolling-<period>`.
    #[arg(long)]
    pub series: Option<String>,
    /// csv, ndjson or cloudevents.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl ExportArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("from", self.from.clone()),
            ("to", self.to.clone()),
            ("format", self.format.as_str().to_string()),
        ];
        query.extend(self.tenant.clone().map(|t| ("tenant", t)));
        if self.subtree {
            query.push(("subtree", "true".to_string()));
        }
        query.extend(self.resource.clone().map(|r| ("resource", r)));
        query.extend(self.series.clone().map(|s| ("series", s)));
        query
    }
}

/// Where a file is written until it is complete.
fn partial(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Runs `tollgate usage export`.
pub async fn run(client: &Client, args: ExportArgs) -> Result<(), CliError> {
    let query = args.query();
    let Some(file) = &args.output else {
        let mut out = BufWriter::new(std::io::stdout());
        return client
            .download("/usage/export", &query, &mut out)
            .await
            .map(|_| ());
    };
    let part = partial(file);
    let created = File::create(&part)
        .map_err(|e| CliError::usage(format!("cannot write {}: {e}", part.display())))?;
    let mut out = BufWriter::new(created);
    let written = client.download("/usage/export", &query, &mut out).await;
    drop(out);
    let renamed = written.and_then(|_| {
        std::fs::rename(&part, file).map_err(|e| {
            CliError::Output(format!(
                "renaming {} to {}: {e}",
                part.display(),
                file.display()
            ))
        })
    });
    if renamed.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    renamed
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        export: ExportArgs,
    }

    fn parse(args: &[&str]) -> Result<ExportArgs, clap::Error> {
        let mut line = vec!["export"];
        line.extend_from_slice(args);
        Line::try_parse_from(line).map(|l| l.export)
    }

    #[test]
    fn the_flags_become_the_query() {
        let args = parse(&[
            "--from",
            "2026-05-01T00:00:00Z",
            "--to",
            "2026-06-01T00:00:00Z",
            "--tenant",
            "acme",
            "--subtree",
            "--resource",
            "requests",
            "--series",
            "day",
            "--format",
            "cloudevents",
            "-o",
            "may.json",
        ])
        .unwrap();
        assert_eq!(
            args.query(),
            [
                ("from", "2026-05-01T00:00:00Z".to_string()),
                ("to", "2026-06-01T00:00:00Z".to_string()),
                ("format", "cloudevents".to_string()),
                ("tenant", "acme".to_string()),
                ("subtree", "true".to_string()),
                ("resource", "requests".to_string()),
                ("series", "day".to_string()),
            ]
        );
        assert_eq!(args.output.as_deref(), Some(Path::new("may.json")));
        assert_eq!(
            partial(Path::new("out/may.json")),
            Path::new("out/may.json.part")
        );
    }

    #[test]
    fn a_format_is_required_and_subtree_needs_a_tenant() {
        let range = [
            "--from",
            "2026-05-01T00:00:00Z",
            "--to",
            "2026-06-01T00:00:00Z",
        ];
        assert!(parse(&range).is_err());
        let mut bad = range.to_vec();
        bad.extend(["--format", "xml"]);
        assert!(parse(&bad).is_err());
        let mut orphan = range.to_vec();
        orphan.extend(["--format", "csv", "--subtree"]);
        assert!(parse(&orphan).is_err());
    }
}
