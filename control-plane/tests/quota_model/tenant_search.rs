//! The tenant listing at 100,000 tenants: `?prefix=`, `?root=`, `?parent=` and the
//! cursor, through the router, and the query plan of each shape, read with `EXPLAIN` on
//! the very SQL the repository sends (`push_listing`): an index range in the listing's
//! order, never a scan of the table or a sort of it.
//!
//! The tenants are inserted with one `INSERT … SELECT generate_series` (about two
//! seconds here), not through the API, which would take minutes.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{PgPool, QueryBuilder};
use tollgate_control_plane::model::Mode;
use tollgate_control_plane::repo::{push_listing, Paging, TenantFilter};

use crate::support::{assert_invalid, enc, Api};

/// 1,000 organizations of 99 teams each, and one tenant with a name of 128 characters.
async fn hundred_thousand_tenants(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO tenants (id) SELECT format('org-%s', lpad(o::text, 4, '0')) \
         FROM generate_series(1, 1000) o",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO tenants (id, parent_id) \
         SELECT format('org-%s/team-%s', lpad(o::text, 4, '0'), lpad(t::text, 2, '0')), \
                format('org-%s', lpad(o::text, 4, '0')) \
         FROM generate_series(1, 1000) o, generate_series(1, 99) t",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE tenants").execute(pool).await.unwrap();
}

/// Every page of `query` (a listing path with its filters), following the cursors.
async fn every_page(api: &Api, query: &str) -> (Vec<String>, usize) {
    let (mut ids, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let path = match &cursor {
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_string(),
        };
        let reply = api.admin(Method::GET, &path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        pages += 1;
        for item in reply.body["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_string());
        }
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return (ids, pages),
        }
    }
}

fn assert_in_byte_order_once_each(ids: &[String]) {
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "not in byte order");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_prefix_the_roots_and_a_parent_page_through_100_000_tenants(pool: PgPool) {
    hundred_thousand_tenants(&pool).await;
    let api = Api::new(pool);

    let (teams, pages) = every_page(&api, "/admin/v1/tenants?prefix=org-0500/&limit=25").await;
    assert_eq!(teams.len(), 99);
    assert_eq!(pages, 4);
    assert_in_byte_order_once_each(&teams);
    assert!(teams.iter().all(|id| id.starts_with("org-0500/")));

    // `org-05` is a prefix of 100 organizations and of their teams, and of no other.
    let (under, _) = every_page(&api, "/admin/v1/tenants?prefix=org-05&limit=500").await;
    assert_eq!(under.len(), 100 * 100);

    let (roots, pages) = every_page(&api, "/admin/v1/tenants?root=true&limit=500").await;
    assert_eq!((roots.len(), pages), (1_000, 2));
    assert_in_byte_order_once_each(&roots);

    let (children, _) = every_page(
        &api,
        &format!("/admin/v1/tenants?parent={}&limit=40", enc("org-0999")),
    )
    .await;
    assert_eq!(children.len(), 99);

    let none = api
        .admin(Method::GET, "/admin/v1/tenants?prefix=zzz", None)
        .await;
    assert_eq!(none.body, json!({"items": []}));
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_bad_prefix_or_root_is_refused_naming_the_field(pool: PgPool) {
    let api = Api::new(pool);
    for (query, field) in [
        ("prefix=a%20b", "prefix"),
        ("prefix=", "prefix"),
        (&format!("prefix={}", "a".repeat(129)) as &str, "prefix"),
        ("root=maybe", "root"),
        ("root=true&parent=acme", "root"),
    ] {
        let reply = api
            .admin(Method::GET, &format!("/admin/v1/tenants?{query}"), None)
            .await;
        assert_invalid(&reply, field, &Value::String(query.into()));
    }
}

/// The plan of the listing for `filter` after `after`, as PostgreSQL's JSON.
async fn plan(pool: &PgPool, filter: &TenantFilter, after: Option<&str>) -> Value {
    let paging = Paging {
        after: after.map(str::to_string),
        limit: 25,
    };
    let mut query = QueryBuilder::new("EXPLAIN (FORMAT JSON) ");
    push_listing(&mut query, filter, &paging);
    let (plan,): (Value,) = query.build_query_as().fetch_one(pool).await.unwrap();
    plan
}

/// Every node type of a plan, depth first, with the index it scans.
fn nodes(node: &Value, into: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or_default();
    match node["Index Name"].as_str() {
        Some(index) => into.push(format!("{kind} using {index}")),
        None => into.push(kind.to_string()),
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        nodes(child, into);
    }
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn every_listing_shape_is_an_index_range_in_the_listing_order(pool: PgPool) {
    hundred_thousand_tenants(&pool).await;
    let shapes = [
        (
            TenantFilter::default(),
            Some("org-0500"),
            "tenants_id_bytes_idx",
        ),
        (
            TenantFilter {
                prefix: Some("org-0500/".into()),
                ..TenantFilter::default()
            },
            Some("org-0500/team-10"),
            "tenants_id_bytes_idx",
        ),
        (
            TenantFilter {
                root: Some(true),
                ..TenantFilter::default()
            },
            Some("org-0500"),
            "tenants_roots_bytes_idx",
        ),
        (
            TenantFilter {
                parent: Some("org-0700".into()),
                ..TenantFilter::default()
            },
            Some("org-0700/team-50"),
            "tenants_parent_id_bytes_idx",
        ),
        (
            TenantFilter {
                prefix: Some("org-07".into()),
                root: Some(true),
                mode: Some(Mode::Enforce),
                ..TenantFilter::default()
            },
            None,
            "tenants_roots_bytes_idx",
        ),
    ];
    for (filter, after, index) in shapes {
        let plan = plan(&pool, &filter, after).await;
        let mut seen = Vec::new();
        nodes(&plan[0]["Plan"], &mut seen);
        assert_eq!(
            seen,
            ["Limit".to_string(), format!("Index Scan using {index}")],
            "{filter:?}: {plan}"
        );
    }
}
