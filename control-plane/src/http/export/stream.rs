//! An export's body as a stream of chunks: one page of windows read from PostgreSQL
//! and written out at a time. The connection polls for the next chunk only once it has
//! sent the last one, so a slow client slows the reads down instead of piling pages up:
//! memory stays one page however many windows the export has, and no PostgreSQL
//! connection is held between pages. Each page starts after the last window of the one
//! before (keyset), so every window is written once, in order, even while the history
//! changes meanwhile.
//!
//! The first page is read before the answer starts, so that PostgreSQL being down is a
//! 503 rather than a 200 cut short. A failure after that can only cut the body short:
//! the connection closes without ending it (the chunked body never ends, the HTTP/2
//! stream is reset), which clients report as an error, and it is logged. So does a
//! server that is stopping: an export ends at its next page rather than hold the
//! shutdown up.

use std::time::Instant;

use axum::body::Bytes;
use futures_util::Stream;
use tokio::sync::watch;

use super::format::Writer;
use crate::repo::{ExportFilter, ExportKey, ExportRow, QuotaRepo, RepoError};

/// Windows read from PostgreSQL at a time: a page of them is about 300 KB of rows and
/// as much of text.
pub const PAGE_ROWS: usize = 2_000;

/// Why an export was cut short.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading a page failed.
    #[error("reading the usage history failed")]
    Postgres(#[from] RepoError),
    /// Writing a page failed (it cannot, into memory; kept for the CSV writer's type).
    #[error("writing the export failed")]
    Write(#[from] std::io::Error),
    /// The server is stopping.
    #[error("the server is stopping")]
    Stopping,
}

/// An export under way: where it is, and what it needs to go on.
pub struct Export {
    repo: QuotaRepo,
    filter: ExportFilter,
    writer: Writer,
    /// The first page, read before the answer started; not yet written.
    first: Option<Vec<ExportRow>>,
    /// The last window written.
    after: Option<ExportKey>,
    stopping: watch::Receiver<bool>,
    started: Instant,
    done: bool,
}

impl Export {
    /// Reads the first page of `filter`'s export; the rest is read as it is sent.
    pub async fn start(
        repo: QuotaRepo,
        filter: ExportFilter,
        writer: Writer,
        stopping: watch::Receiver<bool>,
    ) -> Result<Export, RepoError> {
        let started = Instant::now();
        let first = repo.export_page(&filter, None, PAGE_ROWS).await?;
        Ok(Export {
            repo,
            filter,
            writer,
            first: Some(first),
            after: None,
            stopping,
            started,
            done: false,
        })
    }

    /// The body: the chunks of [`Export::next_chunk`] until it has none, or its error
    /// (which ends the body early).
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, ExportError>> + Send {
        futures_util::stream::unfold(Some(self), |export| async move {
            let mut export = export?;
            match export.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(export))),
                Ok(None) => None,
                Err(error) => {
                    tracing::warn!(
                        %error,
                        windows = export.writer.written(),
                        "usage export cut short"
                    );
                    Some((Err(error), None))
                }
            }
        })
    }

    /// The next chunk of the body, never empty; `None` once the body is complete.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ExportError> {
        let mut chunk = Vec::new();
        while chunk.is_empty() {
            if self.done {
                return Ok(None);
            }
            let rows = match self.first.take() {
                Some(rows) => {
                    chunk.extend(self.writer.begin());
                    rows
                }
                None => {
                    if *self.stopping.borrow() {
                        return Err(ExportError::Stopping);
                    }
                    let after = self.after.as_ref();
                    self.repo
                        .export_page(&self.filter, after, PAGE_ROWS)
                        .await?
                }
            };
            chunk.extend(self.writer.page(&rows)?);
            if rows.len() < PAGE_ROWS {
                chunk.extend(self.writer.end());
                self.done = true;
                tracing::info!(
                    windows = self.writer.written(),
                    elapsed_ms = self.started.elapsed().as_millis() as u64,
                    "usage exported"
                );
            } else {
                self.after = rows.last().map(ExportRow::key);
            }
        }
        Ok(Some(Bytes::from(chunk)))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use futures_util::StreamExt;
    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::http::export::query::Format;
    use crate::repo::{HistoryRow, TenantScope};

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, day, 0, 0, 0).unwrap()
    }

    /// An export whose first page (`rows` windows) was read; any further read fails,
    /// as no PostgreSQL is there.
    fn export(rows: usize, stopping: bool) -> Export {
        let pool = PgPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_millis(50))
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let first = (0..rows)
            .map(|i| ExportRow {
                row: HistoryRow {
                    tenant_id: format!("t-{i:05}"),
                    resource: "requests".into(),
                    series: "day".into(),
                    window_start: at(1),
                    window_end: at(2),
                    used: 1,
                    epoch: 0,
                },
                reconciling: false,
            })
            .collect();
        Export {
            repo: QuotaRepo::new(pool),
            filter: ExportFilter {
                from: at(1),
                to: at(2),
                tenants: TenantScope::All,
                resource: None,
                series: None,
            },
            writer: Writer::new(Format::Ndjson, at(20)),
            first: Some(first),
            after: None,
            stopping: watch::channel(stopping).1,
            started: Instant::now(),
            done: false,
        }
    }

    async fn chunks(export: Export) -> Vec<Result<Bytes, ExportError>> {
        export.into_stream().collect().await
    }

    #[tokio::test]
    async fn a_short_first_page_is_the_whole_export() {
        let chunks = chunks(export(3, false)).await;
        assert_eq!(chunks.len(), 1);
        let text = String::from_utf8(chunks[0].as_ref().unwrap().to_vec()).unwrap();
        assert_eq!(text.lines().count(), 3);
    }

    #[tokio::test]
    async fn a_stopping_server_ends_the_export_at_its_next_page() {
        let chunks = chunks(export(PAGE_ROWS, true)).await;
        assert_eq!(chunks.len(), 2, "the first page, then the end");
        assert!(chunks[0].is_ok());
        assert!(matches!(chunks[1], Err(ExportError::Stopping)));
    }

    #[tokio::test]
    async fn a_page_that_cannot_be_read_ends_the_body_with_an_error() {
        let chunks = chunks(export(PAGE_ROWS, false)).await;
        assert_eq!(chunks.len(), 2);
        assert!(matches!(chunks[1], Err(ExportError::Postgres(_))));
    }
}
