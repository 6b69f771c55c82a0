//! Hostile input through the admin API, end to end (the real `tollgate serve` over real
//! Redis and PostgreSQL): tenant ids with `:`, `*`, `{}`, `..`, `.`, unicode, NUL, 1 MB,
//! empty, or `/` at depth; bodies of 1 MB and past the limit, malformed, of the wrong
//! shape or content type. Each refusal is a problem+json 4xx naming what is wrong (or the
//! id is accepted where the rule allows it), never a 5xx, and leaves nothing written.

// clippy's allow-*-in-tests covers `#[test]` bodies only, not the helpers beside them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tollgate_e2e::admin::{segment, AdminStack};

#[tokio::test(flavor = "multi_thread")]
async fn hostile_tenant_ids_are_refused_naming_the_field_and_leave_nothing_behind() {
    let stack = AdminStack::start().await;
    let create = |body: Value| stack.admin(Method::POST, "/tenants").json(&body);
    let before = stack.written().await;

    let one_mb = "a".repeat(1 << 20);
    let refused = [
        "", " ", ".", "..", "*", "a*b", "{}", "acme{id}", "ünï", "😀", "a b", "a\tb", "a\0b",
        "a%2Fb", "a?b", "a#b", "a\\b", &one_mb,
    ];
    for id in refused {
        stack.refused(create(json!({"id": id})), "id").await;
        stack
            .refused(create(json!({"id": "ok", "parent_id": id})), "parent_id")
            .await;
        let check = json!({"tenant": id, "amounts": {"requests": 1}});
        stack.refused(stack.check(&check), "tenant").await;
        // Nothing by that id exists, and asking is no 5xx (an id this long is no URL).
        if id.len() < 4096 {
            let (status, _) = stack
                .send(stack.admin(Method::GET, &format!("/tenants/{}", segment(id))))
                .await;
            assert!(
                [StatusCode::NOT_FOUND, StatusCode::UNPROCESSABLE_ENTITY].contains(&status),
                "{id:?}: {status}"
            );
        }
    }
    assert_eq!(
        stack.written().await,
        before,
        "a refused write left something"
    );

    // Valid by the rule (letters, digits, `._:@/-`; not `.` or `..`): created, and
    // addressed with `/` as `%2F`.
    let longest = "x".repeat(128);
    for id in [
        "a:b",
        "tenant:42@eu-west",
        "..a",
        "a..b",
        "acme/..",
        &longest,
    ] {
        let (status, body) = stack.send(create(json!({"id": id}))).await;
        assert_eq!(status, StatusCode::CREATED, "{id}: {body}");
        let (status, body) = stack
            .send(stack.admin(Method::GET, &format!("/tenants/{}", segment(id))))
            .await;
        assert_eq!((status, body["id"].as_str()), (StatusCode::OK, Some(id)));
    }
    stack
        .refused(create(json!({"id": "x".repeat(129)})), "id")
        .await;

    // Ids with `/` at depth: four levels, each under the one above; a fifth is refused
    // (409) and not written. Without `%2F` the path is another route.
    let mut parent: Option<String> = None;
    for id in ["org", "org/team", "org/team/sub", "org/team/sub/user"] {
        let (status, body) = stack
            .send(create(json!({"id": id, "parent_id": parent})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{id}: {body}");
        parent = Some(id.to_string());
    }
    let before = stack.written().await;
    let (status, body) = stack
        .send(create(
            json!({"id": "org/team/sub/user/x", "parent_id": parent}),
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        stack.written().await,
        before,
        "a refused write left something"
    );
    let (status, body) = stack
        .send(stack.admin(Method::GET, "/tenants/org%2Fteam%2Fsub%2Fuser"))
        .await;
    assert_eq!(
        (status, body["parent_id"].as_str()),
        (StatusCode::OK, Some("org/team/sub"))
    );
    let (status, _) = stack
        .send(stack.admin(Method::GET, "/tenants/org/team"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A change to a hostile parent is refused and changes nothing.
    for id in ["..", "ünï", "a*b"] {
        stack
            .refused(
                stack
                    .admin(Method::PATCH, "/tenants/org%2Fteam")
                    .json(&json!({"parent_id": id})),
                "parent_id",
            )
            .await;
    }
    let (_, team) = stack
        .send(stack.admin(Method::GET, "/tenants/org%2Fteam"))
        .await;
    assert_eq!(team["parent_id"], "org");
    assert_eq!(
        stack.written().await,
        before,
        "a refused change left something"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_oversized_and_mistyped_bodies_are_problems_that_write_nothing() {
    let stack = AdminStack::start().await;
    let before = stack.written().await;
    let post = || stack.admin(Method::POST, "/tenants");
    let json_body = |body: String| post().header("content-type", "application/json").body(body);

    // 1 MB is within the body limit: read, and the id refused.
    let one_mb = format!(r#"{{"id":"{}"}}"#, "a".repeat(1 << 20));
    stack.refused(json_body(one_mb), "id").await;
    // Past the 2 MiB limit: 413. The server answers before it has read the body, so the
    // answer is read while the body is still being written (reqwest may see only the
    // broken pipe).
    let oversized = stack.oversized_upload(3 << 20).await;
    assert_eq!(oversized.status, 413);
    assert_eq!(
        oversized.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(oversized.json().unwrap()["code"], "too_large");
    for malformed in [
        r#"{"id":"#,
        r#"{"id":"acme"}}"#,
        "",
        "nul\0",
        r#"{"id":"acme",}"#,
    ] {
        let (status, body) = stack.send(json_body(malformed.to_string())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed:?}: {body}");
    }
    // An array where the object belongs, an unknown field, labels that are no object.
    let (status, _) = stack.send(json_body(r#"["acme"]"#.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    stack
        .refused(
            json_body(r#"{"id":"acme","tire":"pro"}"#.to_string()),
            "tire",
        )
        .await;
    stack
        .refused(
            json_body(r#"{"id":"acme","labels":["a"]}"#.to_string()),
            "labels",
        )
        .await;
    // Not sent as JSON: 400, whatever the body.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = post().body(r#"{"id":"acme"}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, body) = stack.send(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{content_type:?}: {body}");
    }
    assert_eq!(
        stack.written().await,
        before,
        "a refused write left something"
    );
}
