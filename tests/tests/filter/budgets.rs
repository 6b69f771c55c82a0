//! The fast path: requests admitted from budgets leased from the control plane.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use tollgate_e2e::control_plane::{ControlPlane, ADMIN_TOKEN};
use tollgate_e2e::gateway::path_segment;
use tollgate_e2e::upstream::Upstream;

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_admitted_from_a_budget_and_usage_settles_to_what_was_admitted() {
    let options = GatewayOptions {
        filter: json!({"budgets": {"enabled": true, "want": 100}}),
        // Short leases, so the unspent part comes back within the test.
        control_plane_args: vec!["--lease-ttl-ms", "1500"],
        ..GatewayOptions::default()
    };
    let gateway = start_with_tier(
        options,
        "daily",
        json!([
            {"resource": "requests", "period": "day", "quota": 1000}
        ]),
        &["acme"],
    )
    .await;
    for _ in 0..20 {
        let response = get(&gateway.envoy, "/x", &[("x-tenant-id", "acme")]).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-quota-used"));
    }
    let hits = stat(&gateway.envoy, "budget_hits").await;
    let leases = stat(&gateway.envoy, "leases").await;
    assert!(
        hits >= 15,
        "{hits} of 20 requests from a budget ({leases} leases)"
    );
    assert_eq!(gateway.upstream.received("acme").requests, 20);
    // The budgets are reserved as usage at once; once the leases expire and come
    // back, usage is exactly what was admitted.
    gateway
        .wait_usage("acme", "requests", "day", 20)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Exactness under load (issue 7, "Exactness must survive the speed").
//
// One Envoy (`--concurrency 2`, the harness's) or two, in front of two control planes
// that share Redis and PostgreSQL, budgets on, leases of 2 s; 64 clients POST bodies of
// 1–4096 bytes (content-length set, so budgets can decide them) for 50 tenants under two
// organizations, every level with limits on `requests` and `request_bytes`:
// - `org-a` binds on its bytes (its 25 tenants have room of their own);
// - in `org-b` (room to spare), a third of the tenants bind on their own requests and a
//   third on their own bytes.
// An organization's request limit is not made to bind: a parent's headroom is split
// only between the gateways of the tenant asking, so siblings' budgets take it in a few
// leases and its tenants are refused while the org has used little.
// ---------------------------------------------------------------------------------------

/// The resources limited, in the order of [`Units`].
const RESOURCES: [&str; 2] = ["requests", "request_bytes"];

/// An amount of each of [`RESOURCES`]: requests, body bytes.
type Units = [u64; 2];

/// The lease TTL of the exactness tests: short, so that budgets come back within them.
const LEASE_TTL_MS: u64 = 2_000;

/// Concurrent clients.
const CLIENTS: usize = 64;

/// Requests sent in all (each client an equal share): about 256 per tenant (524 kB),
/// 13 MB per organization, against the limits of [`TIERS`].
const REQUESTS: usize = 12_800;

/// No client sends after this long, whatever is left of its share.
const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// The tiers: name, then `[quota, overage]` of `requests` and of `request_bytes` a month.
const TIERS: [(&str, [u64; 2], [u64; 2]); 5] = [
    ("org-bytes", [1_000_000, 0], [5_000_000, 1_000_000]),
    ("org-roomy", [1_000_000, 0], [1_000_000_000, 0]),
    ("tenant-requests", [80, 20], [10_000_000, 0]),
    ("tenant-bytes", [10_000, 0], [160_000, 40_000]),
    ("tenant-roomy", [10_000, 0], [10_000_000, 0]),
];

/// The limits made to bind: (tier, resource index).
const BINDING: [(&str, usize); 3] = [
    ("org-bytes", 1),
    ("tenant-requests", 0),
    ("tenant-bytes", 1),
];

/// The options of the exactness tests: two control planes, budgets on, short leases,
/// failure mode closed (a request no decision covered must not reach the upstream
/// uncounted) and a deadline a loaded two-core machine keeps.
fn exactness_options() -> GatewayOptions {
    GatewayOptions {
        failure_mode: "closed",
        timeout_ms: 2_000,
        // One `want` for every resource: large enough for bytes (requests are bounded by
        // the headroom anyway).
        filter: json!({"budgets": {"enabled": true, "want": 50_000}}),
        // `--lease-ttl-ms` is LEASE_TTL_MS.
        control_plane_args: vec!["--lease-ttl-ms", "2000", "--lease-max-budget", "50000"],
        control_planes: 2,
        ..GatewayOptions::default()
    }
}

/// One level of the tenant tree: an organization or a tenant under one.
#[derive(Debug, Clone)]
struct Level {
    id: String,
    parent: Option<String>,
    tier: &'static str,
    /// Hard limits (quota + overage).
    hard: Units,
}

/// The tenant tree of the exactness tests.
#[derive(Debug, Clone)]
struct Tree {
    /// Organizations first.
    levels: Vec<Level>,
}

impl Tree {
    fn new() -> Tree {
        let hard = |tier: &str| {
            let (_, requests, bytes) = TIERS.iter().find(|(name, _, _)| *name == tier).unwrap();
            [requests[0] + requests[1], bytes[0] + bytes[1]]
        };
        let level = |id: String, parent: Option<&str>, tier: &'static str| Level {
            id,
            parent: parent.map(String::from),
            tier,
            hard: hard(tier),
        };
        let mut levels = vec![
            level("org-a".into(), None, "org-bytes"),
            level("org-b".into(), None, "org-roomy"),
        ];
        for i in 0..25 {
            levels.push(level(
                format!("org-a/t{i:02}"),
                Some("org-a"),
                "tenant-roomy",
            ));
        }
        for i in 0..25 {
            let tier = ["tenant-requests", "tenant-bytes", "tenant-roomy"][i % 3];
            levels.push(level(format!("org-b/t{i:02}"), Some("org-b"), tier));
        }
        Tree { levels }
    }

    /// Creates the tiers and the tenants through the admin API.
    async fn create(&self, gateway: &Gateway) {
        for (name, requests, bytes) in TIERS {
            let limit = |resource: &str, [quota, overage]: [u64; 2]| {
                json!({
                    "resource": resource, "period": "month", "quota": quota, "overage": overage
                })
            };
            let limits = json!([limit(RESOURCES[0], requests), limit(RESOURCES[1], bytes)]);
            gateway.create_tier(name, limits).await.unwrap();
        }
        for level in &self.levels {
            let body = match &level.parent {
                // Room for the children's quotas to sum past the org's own.
                None => json!({"id": level.id, "tier": level.tier, "overcommit": 1000}),
                Some(parent) => json!({"id": level.id, "parent_id": parent, "tier": level.tier}),
            };
            gateway
                .admin(Method::POST, "/tenants", Some(body))
                .await
                .unwrap();
        }
    }

    /// The tenants that take traffic (the leaves).
    fn tenants(&self) -> Vec<String> {
        (self.levels.iter())
            .filter(|l| l.parent.is_some())
            .map(|l| l.id.clone())
            .collect()
    }

    fn level(&self, id: &str) -> &Level {
        self.levels.iter().find(|l| l.id == id).unwrap()
    }

    /// `units` per tenant, summed up the tree: per level (tenants and organizations).
    fn per_level(&self, units: &BTreeMap<String, Units>) -> BTreeMap<String, Units> {
        let mut sums: BTreeMap<String, Units> =
            self.levels.iter().map(|l| (l.id.clone(), [0, 0])).collect();
        for (tenant, amount) in units {
            let level = self.level(tenant);
            for id in std::iter::once(&level.id).chain(&level.parent) {
                add(sums.get_mut(id).unwrap(), *amount);
            }
        }
        sums
    }
}

/// What the clients saw for one tenant through one Envoy.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// 200s with a decision (`ok` or `warning`): their count and body bytes.
    admitted: Units,
    /// 429s.
    rejected: u64,
    /// Requests whose connection failed (their Envoy was killed): count and body bytes.
    cut: Units,
    /// Anything else: a 200 without a decision, a 503, another status.
    other: u64,
}

/// What the clients saw, by (Envoy index, tenant).
type Tally = BTreeMap<(usize, String), Seen>;

/// Sends `count` requests through `urls[index % urls.len()]`, each for a random tenant
/// with a random body of 1–4096 bytes; a request whose connection fails switches the
/// client to `urls[0]` for the rest. `done` counts requests answered, by all clients.
async fn client(
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

fn add(sum: &mut Units, units: Units) {
    sum[0] += units[0];
    sum[1] += units[1];
}

/// Runs [`CLIENTS`] clients sending [`REQUESTS`] in all, client `i` through
/// `urls[i % urls.len()]` (see [`client`]); answers what they saw.
async fn load(urls: Vec<String>, tenants: Vec<String>, done: Arc<AtomicUsize>) -> Tally {
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
fn through(tally: &Tally, envoy: usize) -> BTreeMap<String, Seen> {
    (tally.iter())
        .filter(|((e, _), _)| *e == envoy)
        .map(|((_, tenant), seen)| (tenant.clone(), *seen))
        .collect()
}

/// `field` of every tenant's [`Seen`] through any Envoy.
fn sum_seen(tally: &Tally, field: impl Fn(&Seen) -> Units) -> BTreeMap<String, Units> {
    let mut sums = BTreeMap::new();
    for ((_, tenant), seen) in tally {
        add(sums.entry(tenant.clone()).or_insert([0, 0]), field(seen));
    }
    sums
}

/// What `upstream` received per tenant: requests (their headers arrived) and body bytes.
fn received(upstream: &Upstream, tree: &Tree) -> BTreeMap<String, Units> {
    (tree.tenants().into_iter())
        .map(|tenant| {
            let r = upstream.received(&tenant);
            (tenant, [r.requests, r.bytes])
        })
        .collect()
}

/// Every level's monthly usage of both resources, from the admin API (each tenant's
/// usage shows its organization's too).
async fn usage(gateway: &Gateway, tree: &Tree) -> BTreeMap<String, Units> {
    let mut usage = BTreeMap::new();
    for tenant in tree.tenants() {
        for (level, units) in usage_rows(&gateway.control_plane, &tenant).await {
            usage.insert(level, units);
        }
    }
    usage
}

/// The monthly usage of `tenant` and its ancestors, as `tenant`'s usage shows it in the
/// admin API of `control_plane`.
async fn usage_rows(control_plane: &ControlPlane, tenant: &str) -> BTreeMap<String, Units> {
    let url = format!(
        "{}/admin/v1/tenants/{}/usage",
        control_plane.url(),
        path_segment(tenant)
    );
    let response = http().get(&url).bearer_auth(ADMIN_TOKEN).send().await;
    let body: Value = response
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut rows: BTreeMap<String, Units> = BTreeMap::new();
    for row in body["usage"].as_array().unwrap() {
        let Some(resource) = RESOURCES.iter().position(|r| row["resource"] == *r) else {
            continue;
        };
        if row["period"] != "month" {
            continue;
        }
        let level = row["tenant"].as_str().unwrap().to_string();
        rows.entry(level).or_insert([0, 0])[resource] = row["used"].as_u64().unwrap();
    }
    rows
}

/// The levels and resources whose `usage` is past their hard limit.
fn past_hard(tree: &Tree, usage: &BTreeMap<String, Units>) -> Vec<String> {
    let mut past = Vec::new();
    for (level, used) in usage {
        let hard = tree.level(level).hard;
        for (r, resource) in RESOURCES.iter().enumerate() {
            if used[r] > hard[r] {
                past.push(format!("{level} {resource}: {} > {}", used[r], hard[r]));
            }
        }
    }
    past
}

/// Reads usage round and round (every tenant in turn, its organization with it) until
/// `stop`, through the admin API of each control plane in turn: how many reads were made
/// and every level seen past its hard limit.
async fn watch_hard_limits(
    gateway: &Gateway,
    tree: &Tree,
    stop: &AtomicBool,
) -> (u64, Vec<String>) {
    let (mut reads, mut past) = (0, Vec::new());
    let tenants = tree.tenants();
    let control_planes: Vec<&ControlPlane> = gateway.control_planes().collect();
    while !stop.load(Ordering::Relaxed) {
        for tenant in &tenants {
            let control_plane = control_planes[reads as usize % control_planes.len()];
            let rows = usage_rows(control_plane, tenant).await;
            reads += 1;
            past.extend(past_hard(tree, &rows));
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    (reads, past)
}

/// Asserts that the limits of [`BINDING`] bound, and that nothing else did: each such
/// level's tenants were refused and its counted usage got near its hard limit (it was
/// reached by what was admitted, not only by budgets held); tenants with room at both
/// levels were never refused.
fn assert_limits_bound(tree: &Tree, tally: &Tally, counted: &BTreeMap<String, Units>) {
    let refused = |level: &Level| -> u64 {
        (tally.iter())
            .filter(|((_, tenant), _)| {
                *tenant == level.id || tree.level(tenant).parent.as_ref() == Some(&level.id)
            })
            .map(|(_, seen)| seen.rejected)
            .sum()
    };
    for level in &tree.levels {
        let binding = BINDING.iter().find(|(tier, _)| *tier == level.tier);
        let parent_binds = (level.parent.as_ref())
            .is_some_and(|p| BINDING.iter().any(|(tier, _)| *tier == tree.level(p).tier));
        match binding {
            Some(&(_, r)) => {
                let (used, hard) = (counted[&level.id][r], level.hard[r]);
                assert!(refused(level) > 0, "{} never refused", level.id);
                assert!(
                    used * 10 >= hard * 9,
                    "{} stopped at {used} of {hard} {}",
                    level.id,
                    RESOURCES[r]
                );
            }
            None if !parent_binds && level.parent.is_some() => {
                assert_eq!(refused(level), 0, "{} has room yet was refused", level.id);
            }
            None => {}
        }
    }
}

/// A budget the control plane reserved and nobody returned yet (a record in Redis).
#[derive(Debug)]
struct Outstanding {
    /// The gateway (Envoy worker) that holds it.
    gateway: String,
    /// When its lease expires (ms since the epoch).
    expires_ms: u64,
    /// What was reserved, at every level charged.
    granted: u64,
    /// The counters charged (`tollgate:{root}:c:<tenant>:<resource>:…`).
    counters: Vec<String>,
}

/// Every budget record left in Redis (`tollgate:{root}:b:<lease id>`).
async fn outstanding(gateway: &Gateway) -> Vec<Outstanding> {
    let client = ::redis::Client::open(gateway.redis.url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("tollgate:*:b:*")
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut records = Vec::new();
    for key in keys {
        let fields: HashMap<String, String> = ::redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        if fields.is_empty() {
            continue; // returned meanwhile
        }
        records.push(Outstanding {
            gateway: fields["w"].clone(),
            expires_ms: fields["x"].parse().unwrap(),
            granted: fields["g"].parse().unwrap(),
            counters: fields["k"].lines().map(String::from).collect(),
        });
    }
    records
}

/// What `records` hold reserved, per level and resource.
fn reserved(tree: &Tree, records: &[Outstanding]) -> BTreeMap<String, Units> {
    let mut sums: BTreeMap<String, Units> =
        tree.levels.iter().map(|l| (l.id.clone(), [0, 0])).collect();
    for record in records {
        for counter in &record.counters {
            let (_, rest) = counter.split_once(":c:").unwrap();
            for level in &tree.levels {
                for (r, resource) in RESOURCES.iter().enumerate() {
                    if rest.starts_with(&format!("{}:{resource}:", level.id)) {
                        sums.get_mut(&level.id).unwrap()[r] += record.granted;
                    }
                }
            }
        }
    }
    sums
}

/// The sum of counter `name` (all label sets) in a control plane's `/metrics`.
async fn control_plane_counter(url: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (text.lines())
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One line per level: hard limits, what the clients saw admitted and what was counted.
fn table(
    tree: &Tree,
    admitted: &BTreeMap<String, Units>,
    counted: &BTreeMap<String, Units>,
) -> String {
    let mut lines = vec![format!(
        "{:<12} {:>22} {:>22} {:>22}",
        "level", "hard (req, bytes)", "admitted", "counted"
    )];
    for level in &tree.levels {
        let id = &level.id;
        lines.push(format!(
            "{id:<12} {:>22} {:>22} {:>22}",
            format!("{:?}", level.hard),
            format!("{:?}", admitted.get(id).copied().unwrap_or_default()),
            format!("{:?}", counted.get(id).copied().unwrap_or_default()),
        ));
    }
    lines.join("\n")
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// How long usage may take to settle after the load: a lease expires after its TTL,
/// the next tick of the worker that took it returns it, and the return is a callout.
const RETURN_WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn under_load_through_two_control_planes_usage_is_exactly_what_was_admitted_at_every_level() {
    let gateway = start(exactness_options()).await;
    let tree = Tree::new();
    tree.create(&gateway).await;
    let tenants = tree.tenants();

    let done = Arc::new(AtomicUsize::new(0));
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let run = async {
        let tally = load(vec![gateway.envoy.url()], tenants.clone(), done.clone()).await;
        stop.store(true, Ordering::Relaxed);
        tally
    };
    let (tally, (reads, past_during)) =
        tokio::join!(run, watch_hard_limits(&gateway, &tree, &stop));
    let took = started.elapsed();

    // Every request was decided: admitted with a decision, or refused.
    let seen = through(&tally, 0);
    let undecided: Vec<_> = (seen.iter())
        .filter(|(_, s)| s.other > 0 || s.cut != [0, 0])
        .collect();
    assert!(undecided.is_empty(), "undecided answers: {undecided:?}");
    let sent: u64 = seen.values().map(|s| s.admitted[0] + s.rejected).sum();
    assert_eq!(
        sent, REQUESTS as u64,
        "every request was sent within {LOAD_LIMIT:?}"
    );

    // What was admitted is exactly what reached the upstream, request by request.
    let admitted = sum_seen(&tally, |s| s.admitted);
    for tenant in &tenants {
        let at_upstream = gateway.upstream.received(tenant);
        let want = admitted.get(tenant).copied().unwrap_or_default();
        assert_eq!(
            [at_upstream.requests, at_upstream.bytes],
            want,
            "{tenant}: upstream received (requests, bytes) vs admitted"
        );
        assert_eq!(at_upstream.completed, at_upstream.requests, "{tenant}");
    }

    // Once every budget is back (each lease expires after its TTL and the worker that
    // took it returns the unspent part), usage is exactly what was admitted, at every
    // level: the organizations' usage is the sum of their tenants'.
    let admitted = tree.per_level(&admitted);
    let back = Instant::now();
    let mut counted = usage(&gateway, &tree).await;
    while counted != admitted && back.elapsed() < RETURN_WAIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        counted = usage(&gateway, &tree).await;
    }
    let report = table(&tree, &admitted, &counted);
    println!(
        "load of {REQUESTS} requests took {took:?}; usage settled {:?} after it; \
         {reads} usage reads during the load\n{report}",
        back.elapsed()
    );
    let records = outstanding(&gateway).await;
    assert!(
        counted == admitted,
        "usage is not what was admitted {RETURN_WAIT:?} after the load; \
         budgets still held: {records:?}\n{report}"
    );
    assert!(records.is_empty(), "budgets never returned: {records:?}");

    assert_limits_bound(&tree, &tally, &counted);

    // No level was ever seen past its hard limit, during the load or after.
    assert!(reads >= 50, "usage read only {reads} times during the load");
    assert!(past_during.is_empty(), "past a hard limit: {past_during:?}");
    assert_eq!(past_hard(&tree, &counted), Vec::<String>::new());

    // The fast path carried the load, through both control planes.
    let hits = stat(&gateway.envoy, "budget_hits").await;
    let leases = stat(&gateway.envoy, "leases").await;
    let callouts = stat(&gateway.envoy, "callouts").await;
    let admitted_requests: u64 = seen.values().map(|s| s.admitted[0]).sum();
    println!(
        "{admitted_requests} admitted: {hits} from budgets, {leases} leases, {callouts} checks"
    );
    assert!(
        hits * 2 > admitted_requests,
        "only {hits} of {admitted_requests} admitted from budgets"
    );
    assert!(
        leases * 10 < REQUESTS as u64,
        "{leases} leases for {REQUESTS} requests"
    );
    for control_plane in gateway.control_planes() {
        let served = control_plane_counter(&control_plane.url(), "tollgate_leases_total").await;
        assert!(
            served > 0,
            "control plane {} served no lease",
            control_plane.port
        );
    }
}

/// Waits until `condition` holds of the budgets outstanding and the usage of every level,
/// at most [`RETURN_WAIT`]; answers the last of both either way.
async fn settled(
    gateway: &Gateway,
    tree: &Tree,
    condition: impl Fn(&[Outstanding], &BTreeMap<String, Units>) -> bool,
) -> (Vec<Outstanding>, BTreeMap<String, Units>) {
    let start = Instant::now();
    loop {
        let records = outstanding(gateway).await;
        let counted = usage(gateway, tree).await;
        if condition(&records, &counted) || start.elapsed() > RETURN_WAIT {
            return (records, counted);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// What "reconciled" means once an Envoy was killed (SIGKILL: it returns nothing).
//
// A budget is usage counted ahead, at every level charged. The dead Envoy's budgets are
// never returned: the control plane keeps each record for the lease TTL plus a 60 s
// grace (for a late return), then drops it, and what the budget reserved stays counted
// until its window resets (here the month). Usage can therefore not come back down to
// what was admitted, and a test cannot wait the grace out. What the test asserts, after
// the load and one lease TTL (every lease the surviving Envoy took has expired and been
// returned by then):
// 1. The surviving Envoy's leases are all returned: the budget records left in Redis
//    are the dead Envoy's only — granted before it died (expiring by the kill + the TTL,
//    with a second for a lease request in flight) and held by at most two gateway ids
//    (its two workers).
// 2. For every level (tenant and org) and resource:
//      received <= usage <= received + held + cut
//    where `received` is what reached the upstreams through both Envoys, `held` what the
//    budget records left still reserve at that level, and `cut` the cost of the
//    requests whose connection to the dead Envoy failed (admitted, maybe counted, maybe
//    partly forwarded, never answered). Never under what passed; over it by at most what
//    the dead Envoy held or had in flight: conservative, never over a hard limit.
// 3. No level is ever past its hard limit: sampled through the load, the kill and the
//    wait, and at the end.
// 4. The surviving Envoy keeps deciding: after the kill it admits and refuses, every
//    answer carries a decision, and what it admitted is exactly what reached its upstream.
#[tokio::test(flavor = "multi_thread")]
async fn an_envoy_killed_under_load_leaves_usage_under_every_hard_limit_and_never_under_what_passed(
) {
    let options = exactness_options();
    let gateway = start(options.clone()).await;
    let tree = Tree::new();
    tree.create(&gateway).await;
    let tenants = tree.tenants();
    // The second Envoy has an upstream of its own: what passed each is known apart.
    let doomed_upstream = Upstream::start().await.unwrap();
    let mut doomed = gateway
        .another_envoy_to(options, &doomed_upstream)
        .await
        .unwrap();
    let urls = vec![gateway.envoy.url(), doomed.url()];

    let done = Arc::new(AtomicUsize::new(0));
    let stop = AtomicBool::new(false);
    let killed_at = std::sync::Mutex::new(None);
    let run = async {
        let tally = load(urls, tenants.clone(), done.clone()).await;
        let loaded_ms = now_ms();
        (tally, loaded_ms)
    };
    let kill = async {
        // Mid-run: 40 % of the requests answered, through both Envoys.
        while done.load(Ordering::Relaxed) < REQUESTS * 2 / 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = survivor_decisions(&gateway.envoy).await;
        doomed.kill();
        *killed_at.lock().unwrap() = Some(now_ms());
        before
    };
    let watch = watch_hard_limits(&gateway, &tree, &stop);
    let after = async {
        let ((tally, loaded_ms), before) = tokio::join!(run, kill);
        let kill_ms = killed_at.lock().unwrap().unwrap();
        let after = survivor_decisions(&gateway.envoy).await;
        // Every lease the survivor took has expired by one TTL after the load.
        let returned_by = loaded_ms + LEASE_TTL_MS + 1_000;
        tokio::time::sleep(Duration::from_millis(returned_by.saturating_sub(now_ms()))).await;
        let dead_by = kill_ms + LEASE_TTL_MS + 1_000;
        let (records, counted) = settled(&gateway, &tree, |records, _| {
            records.iter().all(|r| r.expires_ms <= dead_by)
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        (tally, kill_ms, before, after, records, counted)
    };
    let ((tally, kill_ms, before, after, records, counted), (reads, past_during)) =
        tokio::join!(after, watch);

    // The survivor kept deciding, and what it admitted is exactly what reached its
    // upstream.
    let survivor = through(&tally, 0);
    let undecided: Vec<_> = (survivor.iter())
        .filter(|(_, s)| s.other > 0 || s.cut != [0, 0])
        .collect();
    assert!(
        undecided.is_empty(),
        "the survivor left undecided: {undecided:?}"
    );
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "after the kill the survivor admitted {} and refused {}",
        after.0 - before.0,
        after.1 - before.1
    );
    for (tenant, seen) in &survivor {
        let at_upstream = gateway.upstream.received(tenant);
        assert_eq!(
            [at_upstream.requests, at_upstream.bytes],
            seen.admitted,
            "{tenant}: the survivor's upstream received (requests, bytes) vs admitted"
        );
        assert_eq!(at_upstream.completed, at_upstream.requests, "{tenant}");
    }
    // The dead Envoy's clients saw at most what its upstream received (an answer may
    // have been lost with it), and some of them saw it die.
    let dead = through(&tally, 1);
    for (tenant, seen) in &dead {
        let at_upstream = doomed_upstream.received(tenant);
        assert!(
            at_upstream.requests >= seen.admitted[0] && at_upstream.bytes >= seen.admitted[1],
            "{tenant}: {seen:?} admitted by the dead Envoy, its upstream got {at_upstream:?}"
        );
        assert_eq!(seen.other, 0, "{tenant}: {seen:?}");
    }
    let cut_requests: u64 = dead.values().map(|s| s.cut[0]).sum();
    assert!(cut_requests > 0, "no client saw the Envoy die");

    // Reconciled (see above): the records left are the dead Envoy's.
    let dead_by = kill_ms + LEASE_TTL_MS + 1_000;
    let late: Vec<_> = records.iter().filter(|r| r.expires_ms > dead_by).collect();
    assert!(
        late.is_empty(),
        "leases the survivor never returned: {late:?}"
    );
    let holders: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.gateway.as_str()).collect();
    assert!(holders.len() <= 2, "budgets held by {holders:?}");
    let mut passed = received(&gateway.upstream, &tree);
    for (tenant, units) in received(&doomed_upstream, &tree) {
        add(passed.entry(tenant).or_insert([0, 0]), units);
    }
    let passed = tree.per_level(&passed);
    let held = reserved(&tree, &records);
    let cut = tree.per_level(&sum_seen(&tally, |s| s.cut));
    let report = table(&tree, &passed, &counted);
    println!(
        "killed after {} requests; {} budgets of the dead Envoy left, {cut_requests} \
         requests cut; {reads} usage reads\n(admitted = received by both upstreams)\n{report}",
        REQUESTS * 2 / 5,
        records.len()
    );
    for level in &tree.levels {
        let id = &level.id;
        for (r, resource) in RESOURCES.iter().enumerate() {
            let (used, got) = (counted[id][r], passed[id][r]);
            let slack = held[id][r] + cut[id][r];
            assert!(
                got <= used && used <= got + slack,
                "{id} {resource}: counted {used}, received {got}, held by the dead Envoy {}, \
                 cut {}\n{report}",
                held[id][r],
                cut[id][r]
            );
        }
    }

    // Never past a hard limit: during the load, the kill and the wait, and now.
    assert!(reads >= 50, "usage read only {reads} times");
    assert!(past_during.is_empty(), "past a hard limit: {past_during:?}");
    assert_eq!(past_hard(&tree, &counted), Vec::<String>::new());
}

/// What the survivor decided so far: (admitted, refused).
async fn survivor_decisions(envoy: &Envoy) -> (u64, u64) {
    let admitted = stat(envoy, "allowed").await + stat(envoy, "warned").await;
    (admitted, stat(envoy, "rejected").await)
}
