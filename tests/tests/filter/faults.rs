//! Faults under load: Redis, the control plane or PostgreSQL killed (or stopped) and
//! started again while clients keep sending, through an Envoy on the per-request path and one on the
//! budget path, both failing closed. No request may wait past its deadline, every
//! answer is a decision or the failure mode, and once everything is back the usage
//! counted is exactly what was admitted — the bytes and requests the upstream received:
//! nothing admitted is lost, and a check that reached Redis just before the fault cut
//! its answer off (the request refused by the failure mode) is taken back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tollgate_e2e::control_plane::ControlPlane;
use tollgate_e2e::redis::Redis;
use tollgate_e2e::{Gateway, GatewayOptions};

use super::{http, own_usage, start_with_tier, UNDER_LOAD};

const TENANTS: [&str; 4] = ["t0", "t1", "t2", "t3"];
const CLIENTS: usize = 16;
const LOAD: Duration = Duration::from_secs(7);
/// The filter's deadline; no answer may come much later than it.
const TIMEOUT_MS: u64 = 300;
/// What "much later" is: the deadline, Envoy's backstop of a second, and room for a
/// loaded two-core machine. A request that hangs takes the client's 10 s.
const NO_LATER_THAN: Duration = Duration::from_millis(TIMEOUT_MS + 1_500);

/// What the clients saw through one Envoy.
#[derive(Debug, Default)]
struct Seen {
    /// Decided and admitted (200, `ok` or `warning`), per tenant: requests and bytes.
    admitted: BTreeMap<String, (u64, u64)>,
    /// Answered by the failure mode (503), per tenant: requests and bytes. Their
    /// check may have been counted just before the fault cut its answer off.
    failed: BTreeMap<String, (u64, u64)>,
    /// Anything else: a status or an answer the failure mode does not allow.
    wrong: Vec<String>,
    /// The slowest answer.
    slowest: Duration,
}

impl Seen {
    fn absorb(&mut self, other: Seen) {
        for (tenant, (requests, bytes)) in other.admitted {
            let sum = self.admitted.entry(tenant).or_default();
            sum.0 += requests;
            sum.1 += bytes;
        }
        for (tenant, (requests, bytes)) in other.failed {
            let sum = self.failed.entry(tenant).or_default();
            sum.0 += requests;
            sum.1 += bytes;
        }
        self.wrong.extend(other.wrong);
        self.slowest = self.slowest.max(other.slowest);
    }
}

async fn client(index: usize, url: String, until: Instant) -> Seen {
    let http = http();
    let mut rng = fastrand::Rng::with_seed(9_000 + index as u64);
    let mut seen = Seen::default();
    while Instant::now() < until {
        let tenant = TENANTS[rng.usize(..TENANTS.len())];
        let size = rng.usize(1..=2_048);
        let started = Instant::now();
        let reply = http
            .post(format!("{url}/upload"))
            .header("x-tenant-id", tenant)
            .body(vec![b'x'; size])
            .send()
            .await;
        let took = started.elapsed();
        seen.slowest = seen.slowest.max(took);
        let Ok(response) = reply else {
            seen.wrong.push(format!("no answer after {took:?}"));
            continue;
        };
        let status = response.status();
        let quota = response
            .headers()
            .get("x-quota-status")
            .and_then(|s| s.to_str().ok())
            .unwrap_or("")
            .to_string();
        let _ = response.bytes().await;
        match (status, quota.as_str()) {
            (StatusCode::OK, "ok" | "warning") => {
                let sum = seen.admitted.entry(tenant.to_string()).or_default();
                sum.0 += 1;
                sum.1 += size as u64;
            }
            (StatusCode::SERVICE_UNAVAILABLE, _) => {
                let sum = seen.failed.entry(tenant.to_string()).or_default();
                sum.0 += 1;
                sum.1 += size as u64;
            }
            other => seen.wrong.push(format!("{other:?}")),
        }
    }
    seen
}

/// Clients through each of `urls` for [`LOAD`]; what each Envoy's clients saw.
fn load(urls: &[String]) -> tokio::task::JoinHandle<Vec<Seen>> {
    let urls = urls.to_vec();
    tokio::spawn(async move {
        let until = Instant::now() + LOAD;
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| tokio::spawn(client(i, urls[i % urls.len()].clone(), until)))
            .collect();
        let mut seen: Vec<Seen> = urls.iter().map(|_| Seen::default()).collect();
        for (i, task) in tasks.into_iter().enumerate() {
            seen[i % urls.len()].absorb(task.await.unwrap());
        }
        seen
    })
}

/// A gateway failing closed with the tenants on a tier far above the load, Redis on
/// disk, leases short-lived; its Envoy checks each request, a second one spends
/// budgets. Answers the gateway and both Envoys' URLs.
async fn two_paths() -> (Gateway, tollgate_e2e::envoy::Envoy) {
    let options = |filter| GatewayOptions {
        failure_mode: "closed",
        timeout_ms: TIMEOUT_MS,
        control_plane_args: vec!["--lease-ttl-ms", "1000"],
        durable_redis: true,
        filter,
        ..GatewayOptions::default()
    };
    let limits = json!([
        {"resource": "requests", "period": "month", "quota": 100_000_000u64},
        {"resource": "request_bytes", "period": "month", "quota": 100_000_000_000u64},
    ]);
    let gateway = start_with_tier(options(json!({})), "big", limits, &TENANTS).await;
    let budgets = options(json!({"budgets": {"enabled": true, "want": 100}}));
    let budget_envoy = gateway.another_envoy(budgets).await.unwrap();
    (gateway, budget_envoy)
}

fn total(per_tenant: &BTreeMap<String, (u64, u64)>) -> (u64, u64) {
    per_tenant
        .values()
        .fold((0, 0), |(r, b), (requests, bytes)| {
            (r + requests, b + bytes)
        })
}

/// Asserts what the clients saw, then waits until every tenant's usage has settled and
/// asserts it is exactly what was admitted through both Envoys (what the upstream
/// received): nothing lost, and nothing of what the failure mode refused left counted
/// (a check that reached Redis just before the fault cut its answer off is taken back).
async fn assert_counted_exactly_what_was_admitted(gateway: &Gateway, seen: &[Seen], fault: &str) {
    let mut all = Seen::default();
    for (path, s) in ["per-request", "budgets"].iter().zip(seen) {
        let admitted = total(&s.admitted).0;
        println!(
            "{fault}, {path}: {admitted} admitted, {} failed closed, slowest {:?}",
            total(&s.failed).0,
            s.slowest
        );
        let first = &s.wrong[..s.wrong.len().min(5)];
        assert!(s.wrong.is_empty(), "{fault}, {path}: {first:?}");
        assert!(
            s.slowest < NO_LATER_THAN,
            "{fault}, {path}: an answer took {:?}",
            s.slowest
        );
        assert!(admitted > 0, "{fault}, {path}: nothing admitted");
        all.absorb(Seen {
            admitted: s.admitted.clone(),
            failed: s.failed.clone(),
            ..Seen::default()
        });
    }
    for tenant in TENANTS {
        let admitted = all.admitted.get(tenant).copied().unwrap_or_default();
        let received = gateway.upstream.received(tenant);
        let upstream = (received.requests, received.bytes);
        assert_eq!(
            upstream, admitted,
            "{fault}: {tenant} received what was admitted"
        );
        // Budgets come back within their second, and usage counted in PostgreSQL
        // reaches Redis within a reconcile round: poll until it is still.
        let counted = || async {
            (
                own_usage(gateway, tenant, "requests", "month").await,
                own_usage(gateway, tenant, "request_bytes", "month").await,
            )
        };
        let mut last = counted().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            let now = counted().await;
            if now == last && now.0 >= admitted.0 && now.1 >= admitted.1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{fault}: {tenant} counted {now:?}, admitted {admitted:?}"
            );
            last = now;
        }
        let refused = all.failed.get(tenant).copied().unwrap_or_default();
        assert_eq!(
            last, admitted,
            "{fault}: {tenant} counted (requests, bytes) against admitted, with {refused:?} \
             refused by the failure mode"
        );
    }
    println!("{fault}: counted exactly what was admitted");
}

/// Takes this file's turn under load, starts [`two_paths`] and load through both
/// Envoys, and returns once the load has run for 1.5 s, when a test brings its fault.
async fn loaded() -> (
    tokio::sync::MutexGuard<'static, ()>,
    Gateway,
    tollgate_e2e::envoy::Envoy,
    tokio::task::JoinHandle<Vec<Seen>>,
) {
    let alone = UNDER_LOAD.lock().await;
    let (gateway, budget_envoy) = two_paths().await;
    let running = load(&[gateway.envoy.url(), budget_envoy.url()]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    (alone, gateway, budget_envoy, running)
}

/// Asserts that checks were counted in PostgreSQL while Redis could not count them.
async fn assert_decided_from_postgres(gateway: &Gateway, fault: &str) {
    let fallback = (gateway.control_plane)
        .metric("tollgate_fallback_calls_total", "outcome=\"admitted\"")
        .await
        .unwrap();
    assert!(fallback > 0.0, "{fault}: decided from PostgreSQL meanwhile");
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_under_load_decides_from_postgres_and_loses_nothing() {
    let (_alone, mut gateway, _budget_envoy, running) = loaded().await;
    let port = gateway.redis.port;
    // A crash: it keeps only what it synced, which is all it acknowledged.
    gateway.redis.kill();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    gateway.redis = Redis::start_durable_on(gateway.dir.path(), port)
        .await
        .unwrap();
    let seen = running.await.unwrap();
    assert_decided_from_postgres(&gateway, "Redis killed").await;
    assert_counted_exactly_what_was_admitted(&gateway, &seen, "Redis killed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_frozen_under_load_counts_nothing_it_runs_past_the_deadline() {
    // Frozen, Redis answers nothing: calls wait out their deadline, the breaker opens,
    // and checks are counted in PostgreSQL. Thawed, it runs every call it was sent
    // meanwhile, long after the filter refused those requests: none may count.
    let (_alone, gateway, _budget_envoy, running) = loaded().await;
    gateway.redis.freeze();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    gateway.redis.thaw();
    let seen = running.await.unwrap();
    assert_decided_from_postgres(&gateway, "Redis frozen").await;
    assert_counted_exactly_what_was_admitted(&gateway, &seen, "Redis frozen").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_and_postgres_lost_together_fail_closed_and_lose_nothing() {
    // Nothing left to count in: checks get the failure mode, budgets already granted
    // are spent until they expire, and what was admitted is all that is counted.
    let (_alone, mut gateway, _budget_envoy, running) = loaded().await;
    let port = gateway.redis.port;
    gateway.redis.kill();
    gateway.postgres.crash();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    gateway.postgres.restart().await.unwrap();
    gateway.redis = Redis::start_durable_on(gateway.dir.path(), port)
        .await
        .unwrap();
    let seen = running.await.unwrap();
    for (path, s) in ["per-request", "budgets"].iter().zip(&seen) {
        assert!(!s.failed.is_empty(), "{path}: the outage failed closed");
    }
    assert_counted_exactly_what_was_admitted(&gateway, &seen, "Redis and PostgreSQL lost").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_killed_under_load_fails_closed_meanwhile_and_loses_nothing() {
    // A crash: the checks it was deciding are answered by nobody, the filter refuses
    // them by its failure mode, and takes back what Redis counted for them.
    control_plane_down_under_load("control plane killed", ControlPlane::kill).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_stopped_under_load_fails_closed_meanwhile_and_loses_nothing() {
    // SIGTERM: it answers what it is deciding, then goes.
    control_plane_down_under_load("control plane stopped", ControlPlane::stop).await;
}

/// The control plane taken down by `take_down` 1.5 s into the load and started again
/// 1.5 s later: the failure mode meanwhile, decisions again at once, nothing lost.
async fn control_plane_down_under_load(fault: &str, take_down: fn(&mut ControlPlane)) {
    let (_alone, mut gateway, _budget_envoy, running) = loaded().await;
    take_down(&mut gateway.control_plane);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let restarted = Instant::now();
    gateway.control_plane.restart().await.unwrap();
    // Back within a second of its start: a request is decided again.
    loop {
        let reply = http()
            .post(format!("{}/upload", gateway.envoy.url()))
            .header("x-tenant-id", "t0")
            .body("x")
            .send()
            .await
            .unwrap();
        if reply.status() == StatusCode::OK {
            let _ = reply.bytes().await;
            // Counted like any other admitted request.
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(5), "not back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("{fault}: decisions again after {:?}", restarted.elapsed());
    let mut seen = running.await.unwrap();
    let probe = seen[0].admitted.entry("t0".into()).or_default();
    probe.0 += 1;
    probe.1 += 1;
    assert!(
        seen.iter().any(|s| !s.failed.is_empty()),
        "the outage failed closed"
    );
    assert_counted_exactly_what_was_admitted(&gateway, &seen, fault).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_crashed_under_load_changes_no_decision_and_loses_nothing() {
    let (_alone, mut gateway, _budget_envoy, running) = loaded().await;
    gateway.postgres.crash();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // Admin writes are refused meanwhile; decisions come from cached definitions.
    let (status, _) = gateway
        .admin_reply(
            reqwest::Method::POST,
            "/tiers",
            Some(json!({"name": "later"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    gateway.postgres.restart().await.unwrap();
    let seen = running.await.unwrap();
    for s in &seen {
        assert!(
            s.failed.is_empty(),
            "PostgreSQL is not on the decision path: {:?} failed closed, slowest {:?}",
            s.failed,
            s.slowest
        );
    }
    assert_counted_exactly_what_was_admitted(&gateway, &seen, "PostgreSQL crashed").await;
}
