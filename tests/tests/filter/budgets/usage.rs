//! What the control plane counted and still holds: usage from the admin API (read once,
//! or sampled round and round during a load), what reached an upstream, the budget
//! records left in Redis, and its metrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_e2e::control_plane::{ControlPlane, ADMIN_TOKEN};
use tollgate_e2e::gateway::path_segment;
use tollgate_e2e::upstream::Upstream;

use super::tree::{past_hard, Tree, Units, RESOURCES};
use crate::{http, Gateway};

/// How long usage may take to settle after the load: a lease expires after its TTL,
/// the next tick of the worker that took it returns it, and the return is a callout.
pub(super) const RETURN_WAIT: Duration = Duration::from_secs(10);

/// What `upstream` received per tenant: requests (their headers arrived) and body bytes.
pub(super) fn received(upstream: &Upstream, tree: &Tree) -> BTreeMap<String, Units> {
    (tree.tenants().into_iter())
        .map(|tenant| {
            let r = upstream.received(&tenant);
            (tenant, [r.requests, r.bytes])
        })
        .collect()
}

/// Every level's monthly usage of both resources, from the admin API (each tenant's
/// usage shows its organization's too).
pub(super) async fn usage(gateway: &Gateway, tree: &Tree) -> BTreeMap<String, Units> {
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

/// Reads usage round and round (every tenant in turn, its organization with it) until
/// `stop`, through the admin API of each control plane in turn: how many reads were made
/// and every level seen past its hard limit.
pub(super) async fn watch_hard_limits(
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

/// A budget the control plane reserved and nobody returned yet (a record in Redis).
#[derive(Debug)]
pub(super) struct Outstanding {
    /// The gateway (Envoy worker) that holds it.
    pub(super) gateway: String,
    /// When its lease expires (ms since the epoch).
    pub(super) expires_ms: u64,
    /// What was reserved, at every level charged.
    pub(super) granted: u64,
    /// The counters charged (`tollgate:{root}:c:<tenant>:<resource>:…`).
    counters: Vec<String>,
}

/// Every budget record left in Redis (`tollgate:{root}:b:<lease id>`).
pub(super) async fn outstanding(gateway: &Gateway) -> Vec<Outstanding> {
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
        if fields.is_empty() || fields.contains_key("r") {
            continue; // returned (only the mark of the return is left)
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
pub(super) fn reserved(tree: &Tree, records: &[Outstanding]) -> BTreeMap<String, Units> {
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

/// Waits until `condition` holds of the budgets outstanding and the usage of every level,
/// at most [`RETURN_WAIT`]; answers the last of both either way.
pub(super) async fn settled(
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
