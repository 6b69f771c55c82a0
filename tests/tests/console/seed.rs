//! What the browser tests look at: two tiers, a small tree with a tenant whose id is
//! 128 characters long, 100,000 tenants more, a role assignment, a year of monthly
//! history and some traffic.
//!
//! The 100,000 tenants are inserted with SQL (`generate_series`, a few seconds): through
//! the API they would take minutes. The console's listing serves any number from
//! indexes (`control-plane/tests/quota_model/tenant_search.rs` holds the query plans to
//! that); here the browser pages, expands and searches through all of them.

use serde_json::json;
use tollgate_e2e::Gateway;

/// The names the browser tests are given.
pub struct Fixtures {
    /// On tier `pro`; the tests send traffic as it.
    pub traffic_tenant: String,
    /// 128 characters, the longest id there is.
    pub long_tenant: String,
    /// One of the 100,000.
    pub find_tenant: String,
    /// The tier whose limit the tests change.
    pub tier: String,
}

pub async fn seed(gateway: &Gateway) -> Fixtures {
    let admin = |method, path: &'static str, body| async move {
        gateway
            .admin(method, path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e:#}"))
    };
    use reqwest::Method;
    admin(
        Method::POST,
        "/tiers",
        json!({"name": "pro", "description": "10 kB a month, 100 requests a minute", "limits": [
            {"resource": "request_bytes", "period": "month", "quota": 10_000, "overage": 2_000, "warn_at": 0.8},
            {"resource": "requests", "period": "minute", "quota": 100}
        ]}),
    )
    .await;
    admin(
        Method::POST,
        "/tiers",
        json!({"name": "org", "description": "what a whole organization may send", "limits": [
            {"resource": "requests", "period": "month", "quota": 100_000}
        ]}),
    )
    .await;
    admin(
        Method::POST,
        "/tenants",
        json!({"id": "acme", "tier": "org", "overcommit": 10}),
    )
    .await;
    admin(
        Method::POST,
        "/tenants",
        json!({"id": "acme/web", "parent_id": "acme", "tier": "pro", "labels": {"team": "web"}}),
    )
    .await;
    let long_tenant = format!(
        "acme/{}",
        "eu-west-1.production.analytics-ingestion-pipeline.customer-success-organisation".repeat(2)
    )[..128]
        .to_string();
    admin(
        Method::POST,
        "/tenants",
        json!({"id": long_tenant, "parent_id": "acme", "tier": "pro"}),
    )
    .await;
    admin(
        Method::POST,
        "/assignments",
        json!({"role": "beta", "tier": "pro"}),
    )
    .await;

    gateway
        .postgres
        .psql(
            "INSERT INTO tenants (id) SELECT format('org-%s', lpad(o::text, 4, '0')) \
               FROM generate_series(1, 1000) o; \
             INSERT INTO tenants (id, parent_id, tier) \
               SELECT format('org-%s/team-%s', lpad(o::text, 4, '0'), lpad(t::text, 2, '0')), \
                      format('org-%s', lpad(o::text, 4, '0')), 'pro' \
               FROM generate_series(1, 1000) o, generate_series(1, 99) t; \
             ANALYZE tenants;",
        )
        .expect("100,000 tenants inserted");
    let count = gateway
        .postgres
        .psql("SELECT count(*) FROM tenants")
        .unwrap();
    assert_eq!(count.trim(), "100003");

    // A year of the monthly series before this month, for the chart.
    gateway
        .postgres
        .psql(
            "INSERT INTO usage_history (tenant_id, resource, series, window_start, window_end, used) \
             SELECT 'acme/web', 'request_bytes', 'month', m, m + interval '1 month', \
                    4000 + (extract(month FROM m)::int * 523) % 7000 \
             FROM generate_series(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '12 months', \
                                  date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month', \
                                  interval '1 month') AS m",
        )
        .expect("history inserted");

    // Usage this month, so that the bar starts above zero.
    for bytes in [2_500, 1_500] {
        let status = gateway
            .send(Some("acme/web"), bytes)
            .await
            .unwrap()
            .status();
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    gateway
        .wait_usage("acme/web", "request_bytes", "month", 4_000)
        .await
        .unwrap();

    Fixtures {
        traffic_tenant: "acme/web".into(),
        long_tenant,
        find_tenant: "org-0777/team-42".into(),
        tier: "pro".into(),
    }
}
