//! Observability as an operator gets it: a real Prometheus, run with the shipped scrape
//! config and rules (`observability/prometheus/`), scraping a gateway's control plane
//! and two Envoys (one checking every request, one spending budgets) while traffic
//! flows and faults happen.
//!
//! It holds the rules and the dashboard (`observability/grafana/`) to what Prometheus
//! really scraped: every metric name an expression reads must be among the names it
//! stored (or recorded by a rule), every recording rule must record something, every
//! dashboard query must return series, and the alerts for a Redis outage and a dead
//! control plane must go pending when those happen, and not before.
//!
//! # Layout
//! - this file — the gateway, the traffic, the faults and what Prometheus shows.
//! - [`sources`] — reading the rule files, the dashboard and docker-compose.yml.
//! - [`shipped`] — the shipped files checked as written: alerts' annotations, the
//!   dashboard's data source and descriptions, the compose mounts.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod shipped;
mod sources;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::prometheus::{Prometheus, Targets};
use tollgate_e2e::promql::metric_names;
use tollgate_e2e::{eventually, Gateway, GatewayOptions};

use sources::{
    dashboard, dashboard_queries, for_prometheus, recorded_names, rule_queries, variable_metrics,
};

/// How long Prometheus (scraping and evaluating every second) may take to show
/// something.
const SHOWS: Duration = Duration::from_secs(30);

/// GET /x through `envoy` as `tenant`; the status.
async fn get(envoy: &Envoy, tenant: &str) -> u16 {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/x", envoy.url()))
        .header("x-tenant-id", tenant)
        .send()
        .await
        .expect("the gateway answers");
    response.status().as_u16()
}

/// Whether `expr` returns at least one series.
async fn shows(prometheus: &Prometheus, expr: &str) -> bool {
    prometheus.query(expr).await.is_ok_and(|s| !s.is_empty())
}

/// Waits until alert `name` is pending or firing.
async fn wait_active(prometheus: &Prometheus, name: &str) {
    eventually(SHOWS, &format!("{name} pending or firing"), || async {
        !prometheus.alert_states(name).await.unwrap().is_empty()
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", prometheus.log()));
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_finds_every_metric_the_rules_and_dashboard_read_and_alerts_follow_faults() {
    // A generous deadline: on a busy machine a slow check must not count as a callout
    // error before the faults (the control plane's death fails callouts at once).
    let options = GatewayOptions {
        timeout_ms: 2_000,
        ..GatewayOptions::default()
    };
    let mut gateway = Gateway::start(GatewayOptions {
        control_plane_args: vec!["--metrics-tenant-labels"],
        ..options.clone()
    })
    .await
    .expect("gateway starts");
    let budgets = gateway
        .another_envoy(GatewayOptions {
            filter: json!({"budgets": {"enabled": true, "want": 100}}),
            ..options
        })
        .await
        .unwrap();
    // A month: no window resets between acme's requests.
    let per_month = json!([{"resource": "requests", "period": "month", "quota": 5}]);
    gateway.create_tier("small", per_month).await.unwrap();
    let per_day = json!([{"resource": "requests", "period": "day", "quota": 100_000}]);
    gateway.create_tier("large", per_day).await.unwrap();
    gateway.create_tenant("acme", "small").await.unwrap();
    gateway.create_tenant("beta", "large").await.unwrap();

    let targets = Targets {
        control_planes: vec![gateway.control_plane.port],
        envoys: vec![gateway.envoy.admin_port, budgets.admin_port],
    };
    let prometheus = Prometheus::start(gateway.dir.path(), &targets)
        .await
        .unwrap();
    // Every target scraped once before the traffic, so that it shows as increases.
    eventually(SHOWS, "every target up", || async {
        prometheus
            .query("up == 1")
            .await
            .is_ok_and(|s| s.len() == 3)
    })
    .await
    .unwrap();

    // Traffic: acme allowed, warned, then rejected (by checks, then the reject cache);
    // beta admitted from budgets.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(get(&gateway.envoy, "acme").await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    for _ in 0..20 {
        assert_eq!(get(&budgets, "beta").await, 200);
    }
    eventually(SHOWS, "allowed checks recorded", || {
        shows(
            &prometheus,
            r#"job_decision:tollgate_checks:rate1m{decision="allow"} > 0"#,
        )
    })
    .await
    .unwrap();
    for alert in [
        "TollgateRedisCircuitOpen",
        "TollgateFallbackUnavailable",
        "TollgateControlPlaneDown",
        "TollgateRequestsFailedOpen",
        "TollgateCalloutErrors",
    ] {
        let states = prometheus.alert_states(alert).await.unwrap();
        assert!(
            states.is_empty(),
            "{alert} is {states:?} with nothing wrong"
        );
    }

    // Redis stops: the circuit opens and checks are counted in PostgreSQL.
    gateway.redis.stop();
    eventually(SHOWS, "the Redis circuit open", || async {
        get(&gateway.envoy, "beta").await;
        shows(&prometheus, "tollgate_redis_circuit_open == 1").await
    })
    .await
    .unwrap();
    eventually(SHOWS, "checks counted in PostgreSQL", || async {
        get(&gateway.envoy, "beta").await;
        let admitted =
            r#"job_op_outcome:tollgate_fallback_calls:rate5m{op="check", outcome="admitted"} > 0"#;
        shows(&prometheus, admitted).await
    })
    .await
    .unwrap();
    wait_active(&prometheus, "TollgateRedisCircuitOpen").await;

    // Everything scraped so far: every name a rule or a panel reads is among it.
    let scraped = prometheus.label_values("__name__", None).await.unwrap();
    let recorded = recorded_names();
    let dashboard = dashboard();
    let mut queries = rule_queries();
    queries.extend(dashboard_queries(&dashboard));
    let mut read = BTreeSet::new();
    let mut missing = Vec::new();
    for query in &queries {
        for name in metric_names(&query.expr) {
            if !scraped.contains(&name) && !recorded.contains(&name) {
                missing.push(format!("{name} (in {})", query.source));
            }
            read.insert(name);
        }
    }
    for (variable, metric) in variable_metrics(&dashboard) {
        if !scraped.contains(&metric) {
            missing.push(format!("{metric} (in dashboard variable {variable})"));
        }
        let tenants = prometheus
            .label_values("tenant", Some(&metric))
            .await
            .unwrap();
        assert!(tenants.contains("acme"), "{variable} offers {tenants:?}");
    }
    assert!(
        missing.is_empty(),
        "named by a rule or the dashboard but never scraped:\n{}\n(Tollgate's names scraped: {:?})",
        missing.join("\n"),
        scraped
            .iter()
            .filter(|n| n.starts_with("tollgate"))
            .collect::<Vec<_>>()
    );
    // The extraction read the names it should (a tokenizer that finds nothing passes
    // the check above).
    for name in [
        "up",
        "tollgate_checks_total",
        "tollgate_callouts",
        "envoy_cluster_upstream_rq_time_bucket",
    ] {
        assert!(
            read.contains(name),
            "{name} not found in the expressions: {read:?}"
        );
    }
    assert!(read.len() >= 40, "only {} names read: {read:?}", read.len());

    // Every rule loaded and evaluates without error, and every recording records.
    let rules = prometheus.rules().await.unwrap();
    assert_eq!(rules.len(), rule_queries().len(), "rules loaded");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    for name in &recorded {
        eventually(SHOWS, &format!("{name} recorded"), || {
            shows(&prometheus, name)
        })
        .await
        .unwrap();
    }
    assert!(shows(&prometheus, "instance:tollgate_budget_hits:rate5m > 0").await);

    // Every panel shows data, the tenant panels acme.
    for query in dashboard_queries(&dashboard) {
        let expr = for_prometheus(&query.expr);
        let samples = prometheus
            .query(&expr)
            .await
            .unwrap_or_else(|e| panic!("{}: {expr}: {e:#}", query.source));
        assert!(
            !samples.is_empty(),
            "{}: {expr} returns nothing",
            query.source
        );
        if expr.contains("tollgate_tenant_decisions_total") {
            let tenants: Vec<_> = samples.iter().map(|s| s.labels["tenant"].clone()).collect();
            assert!(
                tenants.contains(&json!("acme")),
                "{}: {tenants:?}",
                query.source
            );
        }
    }

    // The control plane dies: the gateway fails open, and the alerts say so.
    gateway.control_plane.kill();
    for _ in 0..40 {
        assert_eq!(get(&gateway.envoy, "beta").await, 200, "failure mode open");
    }
    for alert in [
        "TollgateControlPlaneDown",
        "TollgateRequestsFailedOpen",
        "TollgateCalloutErrors",
    ] {
        wait_active(&prometheus, alert).await;
    }
}
