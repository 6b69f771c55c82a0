//! TLS to the stores, end to end: the real `tollgate serve` against a Redis that speaks
//! only TLS and a PostgreSQL that admits TCP connections over TLS only, both presenting
//! certificates of a CA made for the test. The control plane must verify them (and
//! refuse a server its CA did not sign), and present a client certificate to a Redis
//! that demands one. A Redis Cluster over TLS too.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;
use tollgate_e2e::control_plane::{ControlPlane, ADMIN_TOKEN, DECISION_TOKEN};
use tollgate_e2e::postgres::Postgres;
use tollgate_e2e::redis::Redis;
use tollgate_e2e::redis_cluster::RedisCluster;
use tollgate_e2e::tls::Pki;

/// How long a control plane that must not become ready is watched.
const NEVER_READY_FOR: Duration = Duration::from_secs(5);

/// A TLS Redis and a TLS PostgreSQL with certificates of `pki`, and `other`: a CA that
/// signed neither.
struct Servers {
    dir: TempDir,
    pki: Pki,
    other: Pki,
    redis: Redis,
    postgres: Postgres,
}

impl Servers {
    async fn start(require_client_cert: bool) -> Servers {
        let mut dir = tempfile::Builder::new()
            .prefix("tollgate-e2e-tls-")
            .tempdir()
            .unwrap();
        dir.disable_cleanup(std::env::var_os("TOLLGATE_E2E_KEEP").is_some());
        let pki = Pki::generate(dir.path(), "trusted").unwrap();
        let other = Pki::generate(dir.path(), "other").unwrap();
        let (redis, postgres) = tokio::try_join!(
            Redis::start_tls(dir.path(), &pki, require_client_cert),
            Postgres::start_tls(dir.path(), &pki)
        )
        .unwrap();
        Servers {
            dir,
            pki,
            other,
            redis,
            postgres,
        }
    }

    /// Starts a control plane on these servers with `database_url` and more flags
    /// (owned, so that several can start at once).
    async fn control_plane(&self, database_url: String, flags: Vec<String>) -> ControlPlane {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ControlPlane::start_with(self.dir.path(), &database_url, &self.redis.url(), &flags)
            .await
            .unwrap()
    }
}

/// `--redis-ca-cert FILE` and any more flags.
fn trusting(ca_cert: &Path, more: &[&Path]) -> Vec<String> {
    let mut flags = vec!["--redis-ca-cert".to_string(), path(ca_cert)];
    let names = ["--redis-client-cert", "--redis-client-key"];
    for (name, file) in names.iter().zip(more) {
        flags.push(name.to_string());
        flags.push(path(file));
    }
    flags
}

fn path(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// Polls `/ready` for [`NEVER_READY_FOR`], failing if it ever reports `store` (the one
/// it must not trust) reachable; returns its last body. (With Redis down it may still be
/// ready: it counts in PostgreSQL then.)
async fn never_ready(control_plane: &ControlPlane, store: &str) -> Value {
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let reply = http
            .get(format!("{}/ready", control_plane.url()))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .unwrap();
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body[store], "down", "{body}\n{}", control_plane.log());
        if start.elapsed() > NEVER_READY_FOR {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates tier `tier` (5000 request bytes a month) and tenant `tenant` on it.
async fn create_tenant(control_plane: &ControlPlane, tier: &str, tenant: &str) {
    let http = reqwest::Client::new();
    for (path, body) in [
        (
            "/tiers",
            json!({"name": tier, "limits": [
                {"resource": "request_bytes", "period": "month", "quota": 5000}]}),
        ),
        ("/tenants", json!({"id": tenant, "tier": tier})),
    ] {
        let reply = http
            .post(format!("{}/admin/v1{path}", control_plane.url()))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            reply.status().is_success(),
            "POST {path}: {}",
            reply.status()
        );
    }
}

/// `POST /v1/check` of `bytes` request bytes for `tenant`: the decision.
async fn check(control_plane: &ControlPlane, tenant: &str, bytes: u64) -> String {
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/v1/check", control_plane.decision_url()))
        .bearer_auth(DECISION_TOKEN)
        .json(&json!({"tenant": tenant, "amounts": {"request_bytes": bytes}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["decision"].as_str().unwrap_or_default().to_string()
}

/// The tenant's own monthly `request_bytes` usage from the admin API.
async fn usage(control_plane: &ControlPlane, tenant: &str) -> u64 {
    let body: Value = reqwest::Client::new()
        .get(format!(
            "{}/admin/v1/tenants/{tenant}/usage",
            control_plane.url()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["tenant"] == tenant && row["resource"] == "request_bytes")
        .and_then(|row| row["used"].as_u64())
        .unwrap_or_else(|| panic!("no request_bytes usage in {body}"))
}

/// Proves a ready control plane decides and counts: two checks of 3000 bytes against a
/// quota of 5000, the second refused, 3000 used.
async fn decides_and_counts(control_plane: &ControlPlane, tenant: &str) {
    control_plane
        .wait_ready(Duration::from_secs(30))
        .await
        .unwrap();
    create_tenant(control_plane, &format!("{tenant}-tier"), tenant).await;
    assert_eq!(check(control_plane, tenant, 3000).await, "allow");
    assert_eq!(check(control_plane, tenant, 3000).await, "reject");
    assert_eq!(usage(control_plane, tenant).await, 3000);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_to_redis_and_postgres_the_control_plane_is_ready_and_counts() {
    let servers = Servers::start(false).await;
    let control_plane = servers
        .control_plane(
            servers.postgres.tls_url(&servers.pki.ca_cert),
            trusting(&servers.pki.ca_cert, &[]),
        )
        .await;
    decides_and_counts(&control_plane, "acme").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_the_given_ca_did_not_sign_keeps_the_control_plane_unready() {
    let servers = Servers::start(false).await;
    let trusted = servers.postgres.tls_url(&servers.pki.ca_cert);
    let (redis_untrusted, postgres_untrusted, postgres_plain) = tokio::join!(
        servers.control_plane(trusted, trusting(&servers.other.ca_cert, &[])),
        servers.control_plane(
            servers.postgres.tls_url(&servers.other.ca_cert),
            trusting(&servers.pki.ca_cert, &[]),
        ),
        // Without TLS PostgreSQL turns the connection away: what is ready elsewhere used
        // TLS.
        servers.control_plane(
            format!("{}?sslmode=disable", servers.postgres.url()),
            trusting(&servers.pki.ca_cert, &[]),
        ),
    );
    let (redis_body, postgres_body, plain_body) = tokio::join!(
        never_ready(&redis_untrusted, "redis"),
        never_ready(&postgres_untrusted, "postgres"),
        never_ready(&postgres_plain, "postgres"),
    );

    assert_eq!(redis_body["redis"], "down", "{redis_body}");
    assert_eq!(redis_body["postgres"], "ok", "{redis_body}");
    let log = redis_untrusted.log();
    assert!(
        log.lines()
            .any(|l| l.contains("Redis is not reachable") && l.contains("UnknownIssuer")),
        "no certificate error in:\n{log}"
    );

    assert_eq!(postgres_body["postgres"], "down", "{postgres_body}");
    assert_eq!(postgres_body["redis"], "ok", "{postgres_body}");
    let log = postgres_untrusted.log();
    assert!(
        log.lines()
            .any(|l| l.contains("PostgreSQL not ready") && l.contains("UnknownIssuer")),
        "no certificate error in:\n{log}"
    );

    assert_eq!(plain_body["postgres"], "down", "{plain_body}");
    let log = postgres_plain.log();
    assert!(log.contains("no pg_hba.conf entry"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_demands_client_certificates_admits_only_a_control_plane_with_one() {
    let servers = Servers::start(true).await;
    let database_url = servers.postgres.tls_url(&servers.pki.ca_cert);
    let ca = &servers.pki.ca_cert;
    let (with_certificate, without) = tokio::join!(
        servers.control_plane(
            database_url.clone(),
            trusting(ca, &[&servers.pki.client_cert, &servers.pki.client_key]),
        ),
        servers.control_plane(database_url.clone(), trusting(ca, &[])),
    );
    let body = never_ready(&without, "redis").await;
    assert_eq!(body["redis"], "down", "{body}");
    let log = without.log();
    assert!(
        log.lines()
            .any(|l| l.contains("Redis is not reachable") && l.contains("CertificateRequired")),
        "no refused handshake in:
{log}"
    );
    decides_and_counts(&with_certificate, "initech").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_to_a_redis_cluster_the_control_plane_is_ready_and_counts() {
    let servers = Servers::start(false).await;
    let cluster = RedisCluster::start_tls(servers.dir.path(), &servers.pki)
        .await
        .unwrap();
    let database_url = servers.postgres.tls_url(&servers.pki.ca_cert);
    let start = |ca_cert: &Path| {
        let mut flags = trusting(ca_cert, &[]);
        flags.push("--redis-cluster".to_string());
        let (dir, database_url, nodes) = (servers.dir.path(), &database_url, cluster.url_list());
        async move {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            ControlPlane::start_with(dir, database_url, &nodes, &flags)
                .await
                .unwrap()
        }
    };
    let (trusting_the_ca, trusting_another) =
        tokio::join!(start(&servers.pki.ca_cert), start(&servers.other.ca_cert));
    let body = never_ready(&trusting_another, "redis").await;
    assert_eq!(body["redis"], "down", "{body}");
    decides_and_counts(&trusting_the_ca, "umbrella").await;
}
