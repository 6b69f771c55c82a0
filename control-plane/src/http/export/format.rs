//! The three bodies of an export, written a page of windows at a time so that nothing
//! but the page is ever held: what goes before the first window ([`Writer::begin`]),
//! each page ([`Writer::page`]) and what closes the body ([`Writer::end`]).
//!
//! - **CSV** (RFC 4180, `csv` crate quoting): a header row, then
//!   `tenant,resource,series,window_start,window_end,used,epoch,closed`.
//! - **NDJSON**: one object per line with the same fields (`used` and `epoch` numbers,
//!   `closed` a boolean).
//! - **CloudEvents**: a JSON array of events, one per closed window and one per line,
//!   as OpenMeter's batch ingest takes it (`cloudevents.rs`).
//!
//! Instants are RFC 3339 in UTC (`2026-05-01T00:00:00Z`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::cloudevents::UsageEvent;
use super::query::Format;
use crate::repo::ExportRow;

/// The columns of the CSV body, and the fields of each NDJSON line.
pub const COLUMNS: [&str; 8] = [
    "tenant",
    "resource",
    "series",
    "window_start",
    "window_end",
    "used",
    "epoch",
    "closed",
];

impl Format {
    /// The `content-type` of the body.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::Ndjson => "application/x-ndjson",
            Format::Cloudevents => "application/cloudevents-batch+json",
        }
    }

    /// The file name a download is saved as.
    pub fn file_name(self, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
        let extension = match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Cloudevents => "json",
        };
        let stamp = |at: DateTime<Utc>| at.format("%Y%m%dT%H%M%SZ");
        format!("tollgate-usage-{}-{}.{extension}", stamp(from), stamp(to))
    }
}

/// One NDJSON line.
#[derive(Serialize)]
struct Line<'a> {
    tenant: &'a str,
    resource: &'a str,
    series: &'a str,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    used: u64,
    epoch: u64,
    closed: bool,
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Writes an export's body in one format, judging each window open or closed at the
/// export's `now`.
#[derive(Debug)]
pub struct Writer {
    format: Format,
    now: DateTime<Utc>,
    /// Windows written so far (for CloudEvents, events: closed windows).
    written: u64,
}

impl Writer {
    /// A writer of `format` for an export made at `now`.
    pub fn new(format: Format, now: DateTime<Utc>) -> Writer {
        Writer {
            format,
            now,
            written: 0,
        }
    }

    /// How many windows (for CloudEvents, events) were written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// What comes before the first window: the CSV header, the array's `[`.
    pub fn begin(&self) -> Vec<u8> {
        match self.format {
            Format::Csv => csv_record(&COLUMNS),
            Format::Ndjson => Vec::new(),
            Format::Cloudevents => b"[".to_vec(),
        }
    }

    /// One page of windows.
    pub fn page(&mut self, rows: &[ExportRow]) -> Result<Vec<u8>, std::io::Error> {
        let mut out = Vec::with_capacity(rows.len() * 160);
        match self.format {
            Format::Csv => {
                let mut csv = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(&mut out);
                for row in rows {
                    let closed = row.is_closed(self.now);
                    let r = &row.row;
                    csv.write_record([
                        r.tenant_id.as_str(),
                        &r.resource,
                        &r.series,
                        &instant(r.window_start),
                        &instant(r.window_end),
                        &r.used.to_string(),
                        &r.epoch.to_string(),
                        if closed { "true" } else { "false" },
                    ])?;
                    self.written += 1;
                }
                csv.flush()?;
            }
            Format::Ndjson => {
                for row in rows {
                    let r = &row.row;
                    let line = Line {
                        tenant: &r.tenant_id,
                        resource: &r.resource,
                        series: &r.series,
                        window_start: r.window_start,
                        window_end: r.window_end,
                        used: r.used,
                        epoch: r.epoch,
                        closed: row.is_closed(self.now),
                    };
                    serde_json::to_writer(&mut out, &line)?;
                    out.push(b'\n');
                    self.written += 1;
                }
            }
            Format::Cloudevents => {
                for row in rows.iter().filter(|row| row.is_closed(self.now)) {
                    out.extend_from_slice(if self.written == 0 { b"\n" } else { b",\n" });
                    serde_json::to_writer(&mut out, &UsageEvent::from(&row.row))?;
                    self.written += 1;
                }
            }
        }
        Ok(out)
    }

    /// What closes the body: the array's `]`.
    pub fn end(&self) -> Vec<u8> {
        match self.format {
            Format::Csv | Format::Ndjson => Vec::new(),
            Format::Cloudevents => b"\n]\n".to_vec(),
        }
    }
}

/// One CSV record of `fields`, quoted as RFC 4180 asks.
fn csv_record(fields: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(&mut out);
        // Writing to a Vec cannot fail.
        let _ = csv.write_record(fields);
        let _ = csv.flush();
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{json, Value};

    use super::*;
    use crate::repo::HistoryRow;

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, d, 0, 0, 0).unwrap()
    }

    fn window(tenant: &str, day: u32, used: u64) -> ExportRow {
        ExportRow {
            row: HistoryRow {
                tenant_id: tenant.into(),
                resource: "requests".into(),
                series: "day".into(),
                window_start: at(day),
                window_end: at(day + 1),
                used,
                epoch: 1,
            },
            reconciling: false,
        }
    }

    /// The body of `rows` written as two pages, at the start of May 3.
    fn body(format: Format, rows: &[ExportRow]) -> String {
        let mut writer = Writer::new(format, at(3));
        let (first, second) = rows.split_at(rows.len() / 2);
        let mut out = writer.begin();
        out.extend(writer.page(first).unwrap());
        out.extend(writer.page(second).unwrap());
        out.extend(writer.end());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_has_a_header_and_quotes_as_rfc_4180_asks() {
        let rows = [window("acme", 1, 10), window("a,\"b\"", 2, 20)];
        assert_eq!(
            body(Format::Csv, &rows),
            "tenant,resource,series,window_start,window_end,used,epoch,closed\n\
             acme,requests,day,2026-05-01T00:00:00Z,2026-05-02T00:00:00Z,10,1,true\n\
             \"a,\"\"b\"\"\",requests,day,2026-05-02T00:00:00Z,2026-05-03T00:00:00Z,20,1,false\n"
        );
    }

    #[test]
    fn csv_reads_back_as_what_was_written() {
        let rows = [window("acme/web", 1, u64::MAX), window("x\ny", 2, 0)];
        let text = body(Format::Csv, &rows);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.headers().unwrap(), COLUMNS.as_slice());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 2);
        assert_eq!(&records[0][0], "acme/web");
        assert_eq!(&records[0][5], u64::MAX.to_string());
        assert_eq!(&records[1][0], "x\ny");
        assert_eq!(&records[1][7], "false");
    }

    #[test]
    fn ndjson_is_one_object_per_line() {
        let rows = [window("acme", 1, 10), window("beta", 2, 20)];
        let text = body(Format::Ndjson, &rows);
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                json!({"tenant": "acme", "resource": "requests", "series": "day",
                       "window_start": "2026-05-01T00:00:00Z",
                       "window_end": "2026-05-02T00:00:00Z",
                       "used": 10, "epoch": 1, "closed": true}),
                json!({"tenant": "beta", "resource": "requests", "series": "day",
                       "window_start": "2026-05-02T00:00:00Z",
                       "window_end": "2026-05-03T00:00:00Z",
                       "used": 20, "epoch": 1, "closed": false}),
            ]
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn cloudevents_are_a_json_array_of_the_closed_windows_only() {
        let rows = [
            window("acme", 1, 10),
            window("beta", 1, 11),
            window("acme", 2, 20),
        ];
        let text = body(Format::Cloudevents, &rows);
        let events: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(events.len(), 2, "{text}");
        assert_eq!(events[0]["subject"], "acme");
        assert_eq!(events[1]["subject"], "beta");
        assert_eq!(events[1]["data"]["used"], 11);
        assert!(text.lines().skip(1).all(|l| l == "]" || l.starts_with('{')));
    }

    #[test]
    fn an_empty_export_is_a_header_nothing_or_an_empty_array() {
        assert_eq!(
            body(Format::Csv, &[]),
            "tenant,resource,series,window_start,window_end,used,epoch,closed\n"
        );
        assert_eq!(body(Format::Ndjson, &[]), "");
        let events: Vec<Value> = serde_json::from_str(&body(Format::Cloudevents, &[])).unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn a_download_is_named_after_its_range_and_format() {
        assert_eq!(
            Format::Csv.file_name(at(1), at(31)),
            "tollgate-usage-20260501T000000Z-20260531T000000Z.csv"
        );
        assert_eq!(
            Format::Cloudevents.file_name(at(1), at(2)),
            "tollgate-usage-20260501T000000Z-20260502T000000Z.json"
        );
    }
}
