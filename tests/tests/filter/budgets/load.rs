//! The load: concurrent clients POSTing seeded random bodies for random tenants, and
//! what they saw (admitted, refused, cut, anything else) per Envoy and tenant.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::tree::{add, Units};
use crate::http;

const CLIENTS: usize = 64;

/// Requests sent in all (each client an equal share): about 256 per tenant (524 kB),
/// 13 MB per organization, against the limits of [`TIERS`](super::tree::TIERS).
pub(super) const REQUESTS: usize = 12_800;

/// No client sends after this long, whatever is left of its share.
pub(super) const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// What the clients saw for one tenant through one Envoy.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Seen {
    /// 200s with a decision (`ok` or `warning`): their count and body bytes.
    pub(super) admitted: Units,
    /// 429s.
    pub(super) rejected: u64,
    /// Requests whose connection failed (their Envoy was killed): count and body bytes.
    pub(super) cut: Units,
    /// Anything else: a 200 without a decision, a 503, another status.
    pub(super) other: u64,
}

/// What the clients saw, by (Envoy index, tenant).
pub(super) type Tally = BTreeMap<(usize, String), Seen>;

/// Sends `count` requests through `urls[index % urls.len()]`, each for a random tenant
/// with a random body of 1–4096 bytes; a request whose connection fails switches the
/// client to `urls[0]` for the rest. `done` counts requests answered, by all clients.
pub(super) async fn client(
    index: usize,
    urls: Vec<String>,
    tenants: Vec<String>,
    count: usize,
    done: Arc<AtomicUsize>,
    until: Instant,
) -> Tally {
    let http = http();
    // Fixed seeds: every run offers the same requests.
    let mut rng = fastrand::Rng::with_seed(7_000 + index as u64);
    let mut envoy = index % urls.len();
    let mut tally = Tally::new();
    for _ in 0..count {
        if Instant::now() > until {
            break;
        }
        let tenant = &tenants[rng.usize(..tenants.len())];
        let size = rng.usize(1..=4_096);
        let reply = http
            .post(format!("{}/upload", urls[envoy]))
            .header("x-tenant-id", tenant)
            .body(vec![b'x'; size])
            .send()
            .await;
        let seen = tally.entry((envoy, tenant.clone())).or_default();
        let one = [1, size as u64];
        match reply {
            Ok(response) => {
                let status = response.status();
                let decided = response
                    .headers()
                    .get("x-quota-status")
                    .is_some_and(|s| s == "ok" || s == "warning");
                // Read the answer through, so the connection is reused.
                let _ = response.bytes().await;
                match status {
                    StatusCode::OK if decided => add(&mut seen.admitted, one),
                    StatusCode::TOO_MANY_REQUESTS => seen.rejected += 1,
                    _ => seen.other += 1,
                }
            }
            Err(_) => {
                add(&mut seen.cut, one);
                envoy = 0;
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

/// Runs [`CLIENTS`] clients sending [`REQUESTS`] in all, client `i` through
/// `urls[i % urls.len()]` (see [`client`]); answers what they saw.
pub(super) async fn load(urls: Vec<String>, tenants: Vec<String>, done: Arc<AtomicUsize>) -> Tally {
    let until = Instant::now() + LOAD_LIMIT;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|index| {
            tokio::spawn(client(
                index,
                urls.clone(),
                tenants.clone(),
                REQUESTS / CLIENTS,
                done.clone(),
                until,
            ))
        })
        .collect();
    let mut tally = Tally::new();
    for task in tasks {
        for (key, seen) in task.await.unwrap() {
            let sum = tally.entry(key).or_default();
            add(&mut sum.admitted, seen.admitted);
            add(&mut sum.cut, seen.cut);
            sum.rejected += seen.rejected;
            sum.other += seen.other;
        }
    }
    tally
}

/// What the clients saw through Envoy `envoy`, per tenant.
pub(super) fn through(tally: &Tally, envoy: usize) -> BTreeMap<String, Seen> {
    (tally.iter())
        .filter(|((e, _), _)| *e == envoy)
        .map(|((_, tenant), seen)| (tenant.clone(), *seen))
        .collect()
}

/// `field` of every tenant's [`Seen`] through any Envoy.
pub(super) fn sum_seen(tally: &Tally, field: impl Fn(&Seen) -> Units) -> BTreeMap<String, Units> {
    let mut sums = BTreeMap::new();
    for ((_, tenant), seen) in tally {
        add(sums.entry(tenant.clone()).or_insert([0, 0]), field(seen));
    }
    sums
}
