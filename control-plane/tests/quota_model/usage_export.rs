//! `GET /admin/v1/usage/export` through the router over a real PostgreSQL, the clock the
//! test's: which windows (`from` inclusive, `to` exclusive, by window start), in which
//! order (window start, tenant in byte order, resource, series) across pages, closed
//! or open, the three formats, the filters, the refusals, and the query plan of a page
//! at scale. History rows are inserted with SQL, as the flusher writes them; one test
//! counts through `/v1/check` and the flusher instead.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use sqlx::{PgPool, QueryBuilder};
use tollgate_control_plane::repo::{push_export, ExportFilter, ExportKey, TenantScope};

use crate::decisions::{tenant, tier, used};
use crate::support::{assert_invalid, Api, READ_TOKEN, TOKEN};

fn may(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, day, 0, 0, 0).unwrap()
}

/// Inserts one persisted window.
async fn window(
    pool: &PgPool,
    tenant: &str,
    resource: &str,
    series: &str,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    used: i64,
) {
    sqlx::query(
        "INSERT INTO usage_history (tenant_id, resource, series, window_start, window_end, used) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(resource)
    .bind(series)
    .bind(start)
    .bind(end)
    .bind(used)
    .execute(pool)
    .await
    .unwrap();
}

/// Daily windows of `requests` for `tenants` tenants (`t-00000`, …) from May 1 for
/// `days` days; each used as much as its tenant's number plus its day.
async fn daily_windows(pool: &PgPool, tenants: i32, days: i32) {
    sqlx::query(
        "INSERT INTO usage_history (tenant_id, resource, series, window_start, window_end, used) \
         SELECT format('t-%s', lpad(t::text, 5, '0')), 'requests', 'day', \
                timestamptz '2026-05-01 00:00:00+00' + d * interval '1 day', \
                timestamptz '2026-05-01 00:00:00+00' + (d + 1) * interval '1 day', t + d \
         FROM generate_series(0, $1 - 1) t, generate_series(0, $2 - 1) d",
    )
    .bind(tenants)
    .bind(days)
    .execute(pool)
    .await
    .unwrap();
}

/// The NDJSON export at `query` (without `format`), one object per line.
async fn ndjson(api: &Api, query: &str) -> Vec<Value> {
    let path = format!("/admin/v1/usage/export?{query}&format=ndjson");
    let (status, headers, body) = api.get_text(TOKEN, &path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    body.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn every_window_starting_in_the_range_comes_once_in_order_across_pages(pool: PgPool) {
    // 2,600 tenants over 3 days: 7,800 windows, four pages of 2,000.
    daily_windows(&pool, 2_600, 3).await;
    // Names out of byte order in most collations, and a monthly window.
    window(&pool, "acme-web", "requests", "day", (may(2), may(3)), 1).await;
    window(&pool, "acme/web", "requests", "day", (may(2), may(3)), 1).await;
    window(&pool, "acme/web", "requests", "month", (may(1), may(31)), 9).await;
    let api = Api::new(pool);
    api.clock.set(may(20));

    // [May 2, May 4): the second and third days; May 1's windows and the month are out.
    let rows = ndjson(&api, "from=2026-05-02T00:00:00Z&to=2026-05-04T00:00:00Z").await;
    assert_eq!(rows.len(), 2 * 2_600 + 2);
    let keys: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            let key = |f: &str| text(&r[f]).to_string();
            (
                key("window_start"),
                key("tenant"),
                key("resource"),
                key("series"),
            )
        })
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "not in order, or twice"
    );
    assert_eq!(keys[0].1, "acme-web");
    assert_eq!(keys[1].1, "acme/web");
    assert_eq!(keys[2].1, "t-00000");
    assert_eq!(text(&rows[0]["window_start"]), "2026-05-02T00:00:00Z");
    assert_eq!(
        text(&rows.last().unwrap()["window_start"]),
        "2026-05-03T00:00:00Z"
    );
    let total: u64 = rows.iter().map(|r| r["used"].as_u64().unwrap()).sum();
    // Tenant t on day d (0-based) used t + d: days 1 and 2, plus the two acme windows.
    let expected: u64 = (0..2_600u64).map(|t| (t + 1) + (t + 2)).sum::<u64>() + 2;
    assert_eq!(total, expected);

    // A window starting exactly at `from` is in, one starting exactly at `to` is out.
    let one_day = ndjson(&api, "from=2026-05-01T00:00:00Z&to=2026-05-02T00:00:00Z").await;
    assert_eq!(one_day.len(), 2_600 + 1);
    assert!(one_day
        .iter()
        .all(|r| { text(&r["window_start"]) == "2026-05-01T00:00:00Z" }));
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_window_is_closed_five_minutes_after_it_stops_counting_unless_still_reconciling(
    pool: PgPool,
) {
    let now = Utc.with_ymd_and_hms(2026, 5, 10, 0, 3, 0).unwrap();
    let hour = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 5, 9, h, m, 0).unwrap();
    // Ended a day ago; ended three minutes ago; still counting.
    window(&pool, "old", "requests", "day", (may(8), may(9)), 10).await;
    window(&pool, "settling", "requests", "day", (may(9), may(10)), 20).await;
    window(&pool, "current", "requests", "day", (may(10), may(11)), 30).await;
    // A rolling hour's bucket that ended an hour ago counts for a minute more.
    window(
        &pool,
        "rolling",
        "requests",
        "rolling-hour",
        (hour(23, 1), hour(23, 2)),
        40,
    )
    .await;
    // Long ended, but usage counted during a Redis outage has not reached it yet.
    window(
        &pool,
        "reconciling",
        "requests",
        "day",
        (may(8), may(9)),
        50,
    )
    .await;
    sqlx::query(
        "INSERT INTO fallback_counters \
             (counter_key, tenant_id, resource, series, window_start, window_end, pending) \
         VALUES ('tollgate:{reconciling}:c:x', 'reconciling', 'requests', 'day', $1, $2, 5)",
    )
    .bind(may(8))
    .bind(may(9))
    .execute(&pool)
    .await
    .unwrap();
    let api = Api::new(pool);
    api.clock.set(now);

    let range = "from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:00Z";
    let (status, headers, body) = api
        .get_text(TOKEN, &format!("/admin/v1/usage/export?{range}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-tollgate-as-of"], "2026-05-10T00:03:00Z");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let closed: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[7].to_string())
        })
        .collect();
    let flag = |tenant: &str| {
        closed
            .iter()
            .find(|(t, _)| t == tenant)
            .map(|(_, c)| c.as_str())
            .unwrap()
    };
    assert_eq!(closed.len(), 5, "{body}");
    assert_eq!(flag("old"), "true");
    assert_eq!(flag("settling"), "false");
    assert_eq!(flag("current"), "false");
    assert_eq!(flag("rolling"), "false");
    assert_eq!(flag("reconciling"), "false");

    // Two minutes on, the day that ended settled; the rolling bucket too (00:07).
    api.clock.set(now + Duration::minutes(4));
    let rows = ndjson(&api, range).await;
    let closed: HashSet<&str> = rows
        .iter()
        .filter(|r| r["closed"] == true)
        .map(|r| text(&r["tenant"]))
        .collect();
    assert_eq!(closed, HashSet::from(["old", "settling", "rolling"]));

    // Only closed windows become events.
    let (status, headers, body) = api
        .get_text(
            TOKEN,
            &format!("/admin/v1/usage/export?{range}&format=cloudevents"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "application/cloudevents-batch+json"
    );
    let events: Vec<Value> = serde_json::from_str(&body).unwrap();
    let subjects: HashSet<&str> = events.iter().map(|e| text(&e["subject"])).collect();
    assert_eq!(subjects, HashSet::from(["old", "settling", "rolling"]));
    let old = events.iter().find(|e| e["subject"] == "old").unwrap();
    assert_eq!(old["id"], "old|requests|day|2026-05-08T00:00:00Z|0");
    assert_eq!(old["time"], "2026-05-08T00:00:00Z");
    assert_eq!(old["data"]["used"], 10);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_tenant_its_subtree_a_resource_and_a_series_select_windows(pool: PgPool) {
    let api = Api::new(pool.clone());
    for (id, parent) in [
        ("acme", None),
        ("acme/web", Some("acme")),
        ("acme/web/eu", Some("acme/web")),
        ("beta", None),
    ] {
        tenant(&api, json!({"id": id, "parent_id": parent})).await;
    }
    // `gone` was deleted: its history stays, and is exported with everyone's.
    for id in ["acme", "acme/web", "acme/web/eu", "beta", "gone"] {
        window(&pool, id, "requests", "day", (may(1), may(2)), 1).await;
        window(&pool, id, "request_bytes", "day", (may(1), may(2)), 100).await;
        window(&pool, id, "request_bytes", "month", (may(1), may(31)), 100).await;
    }
    let range = "from=2026-05-01T00:00:00Z&to=2026-05-02T00:00:00Z";
    let tenants = |rows: &[Value]| -> Vec<String> {
        let mut ids: Vec<String> = rows
            .iter()
            .map(|r| text(&r["tenant"]).to_string())
            .collect();
        ids.dedup();
        ids
    };

    assert_eq!(
        tenants(&ndjson(&api, range).await),
        ["acme", "acme/web", "acme/web/eu", "beta", "gone"]
    );
    assert_eq!(
        tenants(&ndjson(&api, &format!("{range}&tenant=acme")).await),
        ["acme"]
    );
    assert_eq!(
        tenants(&ndjson(&api, &format!("{range}&tenant=acme&subtree=true")).await),
        ["acme", "acme/web", "acme/web/eu"]
    );
    assert_eq!(
        tenants(&ndjson(&api, &format!("{range}&tenant=acme%2Fweb&subtree=true")).await),
        ["acme/web", "acme/web/eu"]
    );
    // A tenant no longer registered still has its own history.
    assert_eq!(
        tenants(&ndjson(&api, &format!("{range}&tenant=gone&subtree=true")).await),
        ["gone"]
    );
    let bytes = ndjson(&api, &format!("{range}&tenant=beta&resource=request_bytes")).await;
    assert_eq!(bytes.len(), 2);
    assert!(bytes.iter().all(|r| r["resource"] == "request_bytes"));
    let monthly = ndjson(&api, &format!("{range}&series=month")).await;
    assert_eq!(monthly.len(), 5);
    assert!(monthly
        .iter()
        .all(|r| r["series"] == "month" && r["used"] == 100));
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn bad_parameters_are_refused_naming_each(pool: PgPool) {
    let api = Api::new(pool);
    let range = "from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:00Z";
    for (query, field) in [
        (format!("{range}&format=xml"), "format"),
        ("to=2026-06-01T00:00:00Z".to_string(), "from"),
        ("from=2026-05-01T00:00:00Z".to_string(), "to"),
        ("from=yesterday&to=2026-06-01T00:00:00Z".to_string(), "from"),
        (
            "from=2026-05-01T00:00:00Z&to=2026-05-01T00:00:00Z".to_string(),
            "to",
        ),
        (
            "from=2026-01-01T00:00:00Z&to=2027-01-02T00:00:01Z".to_string(),
            "to",
        ),
        (format!("{range}&tenant=a%20b"), "tenant"),
        (format!("{range}&subtree=true"), "subtree"),
        (format!("{range}&subtree=yes&tenant=acme"), "subtree"),
        (format!("{range}&resource=Requests"), "resource"),
        (format!("{range}&series=fortnight"), "series"),
        (format!("{range}&page=2"), ""),
    ] {
        let path = format!("/admin/v1/usage/export?{query}");
        let reply = api.admin(Method::GET, &path, None).await;
        assert_invalid(&reply, field, &json!(query));
    }
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn an_export_is_a_download_the_read_only_token_may_take(pool: PgPool) {
    window(&pool, "acme", "requests", "day", (may(1), may(2)), 7).await;
    let api = Api::new(pool);
    api.clock.set(may(20));
    let path = "/admin/v1/usage/export?from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:00Z";
    let (status, headers, body) = api.get_text(READ_TOKEN, path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "text/csv; charset=utf-8; header=present"
    );
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"tollgate-usage-20260501T000000Z-20260601T000000Z.csv\""
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(
        body,
        "tenant,resource,series,window_start,window_end,used,epoch,closed\n\
         acme,requests,day,2026-05-01T00:00:00Z,2026-05-02T00:00:00Z,7,0,true\n"
    );
    let (_, headers, _) = api
        .get_text(READ_TOKEN, &format!("{path}&format=cloudevents"))
        .await;
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"tollgate-usage-20260501T000000Z-20260601T000000Z.json\""
    );
    let reply = api.send_as(None, Method::GET, path, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn counted_usage_is_exported_open_then_closed_with_the_same_value(pool: PgPool) {
    let api = Api::new(pool);
    let today = Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).unwrap();
    api.clock.set(today);
    tier(
        &api,
        "metered",
        json!([{"resource": "requests", "period": "day", "quota": 1000}]),
    )
    .await;
    tenant(&api, json!({"id": "acme", "tier": "metered"})).await;
    for _ in 0..7 {
        api.check("acme", json!({"requests": 1})).await;
    }
    api.flush_usage().await;
    let live = used(&api, "acme", "requests").await;
    assert_eq!(live, [("acme".to_string(), 7)]);

    let range = "from=2026-05-10T00:00:00Z&to=2026-05-11T00:00:00Z";
    let rows = ndjson(&api, range).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["used"], 7);
    assert_eq!(rows[0]["closed"], false);

    api.clock.set(may(11) + Duration::minutes(5));
    let rows = ndjson(&api, range).await;
    assert_eq!(
        (rows[0]["used"].as_u64(), rows[0]["closed"].as_bool()),
        (Some(7), Some(true))
    );
}

/// The plan PostgreSQL makes for one page of `filter` after `after`.
async fn plan(pool: &PgPool, filter: &ExportFilter, after: Option<&ExportKey>) -> String {
    let mut query = QueryBuilder::new("EXPLAIN ");
    push_export(&mut query, filter, after, 2_000);
    let lines: Vec<(String,)> = query.build_query_as().fetch_all(pool).await.unwrap();
    lines
        .into_iter()
        .map(|(line,)| line)
        .collect::<Vec<_>>()
        .join("\n")
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_page_of_every_tenant_is_an_index_range_at_scale(pool: PgPool) {
    // 10,000 tenants over 60 days (600,000 windows); the export reads the second month.
    daily_windows(&pool, 10_000, 60).await;
    sqlx::query("ANALYZE usage_history")
        .execute(&pool)
        .await
        .unwrap();
    let filter = ExportFilter {
        from: may(1) + Duration::days(30),
        to: may(1) + Duration::days(60),
        tenants: TenantScope::All,
        resource: None,
        series: None,
    };
    let after = ExportKey {
        window_start: may(1) + Duration::days(40),
        tenant_id: "t-05000".into(),
        resource: "requests".into(),
        series: "day".into(),
    };
    for cursor in [None, Some(&after)] {
        let plan = plan(&pool, &filter, cursor).await;
        assert!(plan.contains("usage_history_export_idx"), "{plan}");
        assert!(!plan.contains("Seq Scan on usage_history"), "{plan}");
        assert!(!plan.contains("Sort"), "{plan}");
    }
    // With a few pending counters PostgreSQL hashes them once per page; after an outage
    // that left 200,000 of them, each window is an index probe instead (too many to
    // hash, and scanning them all for each window would take minutes a page).
    sqlx::query(
        "INSERT INTO fallback_counters \
             (counter_key, tenant_id, resource, series, window_start, window_end, pending) \
         SELECT format('tollgate:{t-%s}:c:x', t), format('t-%s', lpad(t::text, 5, '0')), \
                'requests', 'day', timestamptz '2026-06-29 00:00:00+00', \
                timestamptz '2026-06-30 00:00:00+00', 1 \
         FROM generate_series(0, 199999) t",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE fallback_counters")
        .execute(&pool)
        .await
        .unwrap();
    let plan = plan(&pool, &filter, Some(&after)).await;
    assert!(
        plan.contains("fallback_counters_pending_window_idx"),
        "{plan}"
    );
}
