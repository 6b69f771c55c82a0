//! The billing export at the scale it is for, end to end: the real `tollgate serve` over
//! real Redis and PostgreSQL, a month of daily usage history of 10,000 tenants on two
//! resources (600,000 windows, inserted with SQL as the flusher writes them), exported
//! over HTTP: all of it as CSV, its first three days (10%) in every format.
//!
//! - Every format parses (CSV with a CSV reader, NDJSON line by line, CloudEvents event
//!   by event with the attributes OpenMeter needs) and its totals per tenant and
//!   resource are those PostgreSQL sums from the seeded rows.
//! - A few tenants are counted through `/v1/check`; once the flusher persisted their
//!   Redis counters, the export holds what the admin API reads live from Redis, flagged
//!   open (the day is not over).
//! - The control plane's peak RSS (`VmHWM`, reset through `clear_refs` before each
//!   export) grows by about the same for 10% and for 100% of the windows: the export
//!   streams. The CLI's peak RSS is measured the same way for both sizes.
//! - Throughput (windows/s) is printed, never asserted. Run with `-- --nocapture` to
//!   see the figures.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tollgate_e2e::control_plane::{ControlPlane, ADMIN_TOKEN, DECISION_TOKEN};
use tollgate_e2e::postgres::Postgres;
use tollgate_e2e::redis::Redis;

const TENANTS: u64 = 10_000;
const DAYS: i64 = 30;
const RESOURCES: [&str; 2] = ["requests", "request_bytes"];

/// Totals per (tenant, resource): what was seeded, or what an export holds.
type Totals = HashMap<(String, String), u64>;

struct Stack {
    control_plane: ControlPlane,
    postgres: Postgres,
    _redis: Redis,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Midnight UTC of `at`'s day.
fn midnight(at: DateTime<Utc>) -> DateTime<Utc> {
    at.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc()
}

impl Stack {
    async fn start() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let (redis, postgres) =
            tokio::try_join!(Redis::start(dir.path()), Postgres::start(dir.path())).unwrap();
        let control_plane = ControlPlane::start(dir.path(), &postgres.url(), &redis.url())
            .await
            .unwrap();
        control_plane
            .wait_ready(Duration::from_secs(60))
            .await
            .unwrap();
        Stack {
            control_plane,
            postgres,
            _redis: redis,
            dir,
            http: reqwest::Client::new(),
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/admin/v1{path}", self.control_plane.url());
        let mut request = self.http.request(method, url).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Downloads the export at `query` into `file`, a chunk at a time; returns how long
    /// it took.
    async fn download(&self, query: &str, file: &Path) -> Duration {
        let url = format!("{}/admin/v1/usage/export?{query}", self.control_plane.url());
        let started = Instant::now();
        let mut response = self
            .http
            .get(url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let mut out = BufWriter::new(File::create(file).unwrap());
        while let Some(chunk) = response.chunk().await.unwrap() {
            out.write_all(&chunk).unwrap();
        }
        out.flush().unwrap();
        started.elapsed()
    }

    /// `field` of the control plane's `/proc/PID/status`, in KiB.
    fn proc_kib(&self, field: &str) -> u64 {
        let pid = self.control_plane.pid().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB"))
            .unwrap_or_else(|| panic!("no {field} in {status}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Resets the control plane's peak RSS to its RSS now; returns the RSS.
    fn reset_peak(&self) -> u64 {
        let pid = self.control_plane.pid().unwrap();
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        self.proc_kib("VmRSS:")
    }
}

/// 10,000 tenants × 2 resources × 30 days from `first`, each window's usage a function
/// of tenant and day, one epoch in three past its first.
fn seed(stack: &Stack, first: DateTime<Utc>) {
    let start = rfc3339(first);
    stack
        .postgres
        .psql(&format!(
            "INSERT INTO usage_history \
                 (tenant_id, resource, series, window_start, window_end, used, epoch) \
             SELECT format('tenant-%s', lpad(t::text, 5, '0')), r, 'day', \
                    timestamptz '{start}' + d * interval '1 day', \
                    timestamptz '{start}' + (d + 1) * interval '1 day', \
                    CASE r WHEN 'requests' THEN t % 997 + d ELSE (t % 997) * 1024 + d * 7 END, \
                    t % 3 \
             FROM generate_series(0, {}) t, generate_series(0, {}) d, \
                  unnest(ARRAY['requests', 'request_bytes']) r; \
             ANALYZE usage_history",
            TENANTS - 1,
            DAYS - 1
        ))
        .unwrap();
}

/// What the seeded rows of windows starting in `[from, to)` add up to, per tenant and
/// resource, as PostgreSQL sums them.
fn seeded(stack: &Stack, from: &str, to: &str) -> Totals {
    let sums = stack
        .postgres
        .psql(&format!(
            "SELECT tenant_id, resource, sum(used) FROM usage_history \
             WHERE tenant_id LIKE 'tenant-%' AND window_start >= '{from}' \
               AND window_start < '{to}' GROUP BY tenant_id, resource"
        ))
        .unwrap();
    sums.lines()
        .map(|line| {
            let mut fields = line.split('|');
            let mut next = || fields.next().unwrap().to_string();
            let (tenant, resource, sum) = (next(), next(), next());
            ((tenant, resource), sum.parse().unwrap())
        })
        .collect()
}

/// Asserts that an export's totals are the seeded ones, naming a few that differ.
fn assert_totals(format: &str, exported: &Totals, seeded: &Totals) {
    let differing: Vec<_> = seeded
        .iter()
        .filter(|(key, sum)| exported.get(*key) != Some(*sum))
        .take(5)
        .collect();
    assert!(
        differing.is_empty() && exported.len() == seeded.len(),
        "{format}: {} totals exported, {} seeded; seeded but not exported so: {differing:?}",
        exported.len(),
        seeded.len()
    );
}

/// The CSV export in `file`: every row closed and in `[from, to)`; its totals.
fn csv_totals(file: &Path, from: &str, to: &str) -> (u64, Totals) {
    let mut reader = csv::Reader::from_reader(BufReader::new(File::open(file).unwrap()));
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "tenant",
            "resource",
            "series",
            "window_start",
            "window_end",
            "used",
            "epoch",
            "closed"
        ]
    );
    let (mut rows, mut totals) = (0, Totals::new());
    for record in reader.records() {
        let r = record.unwrap();
        assert!(&r[3] >= from && &r[3] < to, "{r:?}");
        assert_eq!((&r[2], &r[7]), ("day", "true"), "{r:?}");
        r[6].parse::<u64>().unwrap();
        *totals
            .entry((r[0].to_string(), r[1].to_string()))
            .or_default() += r[5].parse::<u64>().unwrap();
        rows += 1;
    }
    (rows, totals)
}

/// One NDJSON line.
#[derive(Deserialize)]
struct Line {
    tenant: String,
    resource: String,
    series: String,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    used: u64,
    #[allow(dead_code)]
    epoch: u64,
    closed: bool,
}

fn ndjson_totals(file: &Path) -> (u64, Totals) {
    let (mut rows, mut totals) = (0, Totals::new());
    for line in BufReader::new(File::open(file).unwrap()).lines() {
        let line: Line = serde_json::from_str(&line.unwrap()).unwrap();
        assert!(line.closed && line.series == "day");
        assert_eq!(line.window_end - line.window_start, Span::days(1));
        *totals.entry((line.tenant, line.resource)).or_default() += line.used;
        rows += 1;
    }
    (rows, totals)
}

/// One CloudEvent, with every attribute OpenMeter reads.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    specversion: String,
    id: String,
    source: String,
    #[serde(rename = "type")]
    kind: String,
    subject: String,
    time: DateTime<Utc>,
    datacontenttype: String,
    data: EventData,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventData {
    resource: String,
    series: String,
    used: u64,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    epoch: u64,
}

/// The CloudEvents export in `file`: a JSON array, one event a line, each id once.
fn cloudevents_totals(file: &Path) -> (u64, Totals) {
    let mut lines = BufReader::new(File::open(file).unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "[");
    let (mut rows, mut totals, mut ids) = (0, Totals::new(), HashSet::new());
    let mut ended = false;
    for line in lines {
        let line = line.unwrap();
        if line == "]" {
            ended = true;
            continue;
        }
        assert!(!ended, "after the array: {line}");
        let event: Event = serde_json::from_str(line.strip_suffix(',').unwrap_or(&line)).unwrap();
        assert_eq!(
            (
                event.specversion.as_str(),
                event.source.as_str(),
                event.kind.as_str(),
                event.datacontenttype.as_str(),
            ),
            ("1.0", "tollgate", "tollgate.usage", "application/json")
        );
        assert_eq!(event.time, event.data.window_start);
        assert_eq!(
            event.data.window_end - event.data.window_start,
            Span::days(1)
        );
        let id = format!(
            "{}|{}|{}|{}|{}",
            event.subject,
            event.data.resource,
            event.data.series,
            rfc3339(event.data.window_start),
            event.data.epoch
        );
        assert_eq!(event.id, id);
        assert!(ids.insert(event.id), "an id twice");
        *totals
            .entry((event.subject, event.data.resource))
            .or_default() += event.data.used;
        rows += 1;
    }
    assert!(ended, "the array is not closed");
    (rows, totals)
}

/// Runs `tollgate usage export <args>` against `stack` and returns its peak RSS in
/// KiB: its `VmHWM`, which only grows, read every 20 ms until it exits. (The kernel's
/// `ru_maxrss` of a child would not do: at `exec` it takes over the peak of the test
/// process it was spawned from.)
async fn cli_export(stack: &Stack, args: Vec<String>) -> u64 {
    let mut child = std::process::Command::new(ControlPlane::binary().unwrap())
        .args(["usage", "export"])
        .args(args)
        .env("TOLLGATE_SERVER", stack.control_plane.url())
        .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "{exit}");
            return peak;
        }
        let hwm = std::fs::read_to_string(&status).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB"))
                .and_then(|kib| kib.trim().parse().ok())
        });
        peak = peak.max(hwm.unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts traffic for three tenants through `/v1/check`, and returns the usage the
/// admin API reads live from Redis, per (tenant, resource).
async fn live_traffic(stack: &Stack) -> Totals {
    stack
        .admin(
            reqwest::Method::POST,
            "/tiers",
            Some(json!({"name": "metered", "limits": [
                {"resource": "requests", "period": "day", "quota": 1_000_000},
                {"resource": "request_bytes", "period": "day", "quota": 1_000_000_000},
            ]})),
        )
        .await;
    let check = format!("{}/v1/check", stack.control_plane.decision_url());
    let mut live = Totals::new();
    for k in 0..3 {
        let tenant = format!("live-{k}");
        stack
            .admin(
                reqwest::Method::POST,
                "/tenants",
                Some(json!({"id": tenant, "tier": "metered"})),
            )
            .await;
        for i in 0..10 + k * 5 {
            let body = json!({"tenant": tenant,
                              "amounts": {"requests": 1, "request_bytes": 100 * (i + 1)}});
            let answer = stack
                .http
                .post(&check)
                .bearer_auth(DECISION_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
        }
        let usage = stack
            .admin(
                reqwest::Method::GET,
                &format!("/tenants/{tenant}/usage"),
                None,
            )
            .await;
        for row in usage["usage"].as_array().unwrap() {
            let key = (
                tenant.clone(),
                row["resource"].as_str().unwrap().to_string(),
            );
            live.insert(key, row["used"].as_u64().unwrap());
        }
    }
    live
}

#[tokio::test(flavor = "multi_thread")]
async fn a_month_of_10_000_tenants_exports_in_every_format_in_flat_memory() {
    let stack = Stack::start().await;
    let now = Utc::now();
    // Thirty whole days that ended at least a day ago: every window closed.
    let first = midnight(now) - Span::days(DAYS + 2);
    let seeding = Instant::now();
    seed(&stack, first);
    let windows = TENANTS * DAYS as u64 * RESOURCES.len() as u64;
    println!("seeded {windows} windows in {:.1?}", seeding.elapsed());
    let (from, to, tenth) = (
        rfc3339(first),
        rfc3339(first + Span::days(DAYS)),
        rfc3339(first + Span::days(DAYS / 10)),
    );
    let (seeded_month, seeded_tenth) = (seeded(&stack, &from, &to), seeded(&stack, &from, &tenth));
    assert_eq!(seeded_month.len() as u64, TENANTS * RESOURCES.len() as u64);
    let month = format!("from={from}&to={to}");
    let file = |name: &str| stack.dir.path().join(name);

    // Warm up (connections, allocator), then 10% and 100% of the windows as CSV, the
    // peak RSS reset before each.
    stack
        .download(&format!("from={from}&to={tenth}"), &file("warm.csv"))
        .await;
    let mut peaks = Vec::new();
    for (name, query, expected) in [
        ("10%", format!("from={from}&to={tenth}"), windows / 10),
        ("100%", month.clone(), windows),
    ] {
        let rss = stack.reset_peak();
        let took = stack.download(&query, &file("export.csv")).await;
        let peak = stack.proc_kib("VmHWM:");
        let (rows, totals) = csv_totals(&file("export.csv"), &from, &to);
        assert_eq!(rows, expected);
        let seeded = if name == "100%" {
            &seeded_month
        } else {
            &seeded_tenth
        };
        assert_totals("CSV", &totals, seeded);
        println!(
            "csv {name}: {rows} windows in {took:.2?} = {:.0} windows/s; control plane RSS \
             {rss} KiB before, peak {peak} KiB (+{} KiB)",
            rows as f64 / took.as_secs_f64(),
            peak as i64 - rss as i64
        );
        peaks.push(peak.saturating_sub(rss));
    }
    let (tenth_growth, whole_growth) = (peaks[0], peaks[1]);
    // Ten times the windows may not take ten times the memory: a page is the most an
    // export holds. Held whole, 600,000 windows would take over 100 MiB (the CSV text
    // alone is 50 MiB); the bound is generous because the allocator keeps and returns
    // freed pages on its own schedule: the RSS of the same 10% export, repeated, moves
    // by 15 MiB and more here.
    assert!(
        whole_growth <= tenth_growth + 64 * 1024,
        "peak RSS grew by {tenth_growth} KiB for 10% and {whole_growth} KiB for 100%"
    );
    std::fs::remove_file(file("export.csv")).unwrap();

    // The other formats, for the first three days (10%; the CSV above took all).
    let days = format!("from={from}&to={tenth}");
    let took = stack
        .download(&format!("{days}&format=ndjson"), &file("export.ndjson"))
        .await;
    let (rows, totals) = ndjson_totals(&file("export.ndjson"));
    assert_eq!(rows, windows / 10);
    assert_totals("NDJSON", &totals, &seeded_tenth);
    println!(
        "ndjson 10%: {rows} windows in {took:.2?} = {:.0} windows/s",
        rows as f64 / took.as_secs_f64()
    );
    let took = stack
        .download(&format!("{days}&format=cloudevents"), &file("export.json"))
        .await;
    let (rows, totals) = cloudevents_totals(&file("export.json"));
    assert_eq!(rows, windows / 10);
    assert_totals("CloudEvents", &totals, &seeded_tenth);
    println!(
        "cloudevents 10%: {rows} events in {took:.2?} = {:.0} events/s",
        rows as f64 / took.as_secs_f64()
    );

    // The CLI streams too: its peak RSS for 10% and for 100% of the windows.
    let mut cli = Vec::new();
    for until in [&tenth, &to] {
        let out = file("cli.csv");
        let args = ["--from", &from, "--to", until, "--format", "csv", "-o"];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(out.to_str().unwrap().to_string());
        cli.push(cli_export(&stack, args).await);
        std::fs::remove_file(out).unwrap();
    }
    println!(
        "cli: peak RSS {} KiB for 10%, {} KiB for 100%",
        cli[0], cli[1]
    );
    assert!(
        cli[1] <= 2 * cli[0] + 16 * 1024,
        "the CLI's peak RSS grew from {} KiB to {} KiB",
        cli[0],
        cli[1]
    );

    // Live counters: what Redis counted reaches the export once the flusher ran.
    let live = live_traffic(&stack).await;
    let today = format!(
        "from={}&to={}&format=ndjson",
        rfc3339(midnight(now)),
        rfc3339(midnight(now) + Span::days(1))
    );
    let (stack, today, live, out) = (&stack, &today, &live, &file("today.ndjson"));
    let exported = tollgate_e2e::eventually(
        Duration::from_secs(10),
        "the flusher persists the live counters",
        || async move {
            stack.download(today, out).await;
            let lines: Vec<Value> = std::fs::read_to_string(out)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let totals: Totals = lines
                .iter()
                .filter(|l| l["closed"] == false)
                .map(|l| {
                    let key = (
                        l["tenant"].as_str().unwrap(),
                        l["resource"].as_str().unwrap(),
                    );
                    (
                        (key.0.to_string(), key.1.to_string()),
                        l["used"].as_u64().unwrap(),
                    )
                })
                .collect();
            totals == *live
        },
    )
    .await;
    exported.unwrap();
    println!("live: {} counters exported as Redis holds them", live.len());
}
