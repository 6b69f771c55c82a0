//! What [`super::openapi`] adds to the document utoipa generates from the handlers'
//! annotations: what the extractors answer on every operation that uses them, and the
//! links from each creating operation to the ones that take what it created.

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, Ref, RefOr};

/// Where what a `POST` creates is used next: (the creating operation, the parameters the
/// others take with where each value is — in the 201 body or the creating request's
/// path —, those operations). Clients and stateful test generators (schemathesis)
/// follow these links.
type Link = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

const LINKS: [Link; 6] = [
    (
        "create_tenant",
        &[("id", "$response.body#/id")],
        &[
            "get_tenant",
            "update_tenant",
            "delete_tenant",
            "effective_quota",
            "live_usage",
            "reset_usage",
            "adjust_usage",
            "usage_history",
            "list_grants",
            "create_grant",
        ],
    ),
    (
        "create_tier",
        &[("name", "$response.body#/name")],
        &["get_tier", "update_tier", "delete_tier"],
    ),
    (
        "create_limit",
        &[("id", "$response.body#/id")],
        &["get_limit", "update_limit", "delete_limit"],
    ),
    (
        "create_assignment",
        &[("id", "$response.body#/id")],
        &["get_assignment", "update_assignment", "delete_assignment"],
    ),
    (
        "create_grant",
        &[
            ("id", "$request.path.id"),
            ("grant_id", "$response.body#/id"),
        ],
        &["get_grant", "revoke_grant"],
    ),
    (
        "create_webhook",
        &[("id", "$response.body#/id")],
        &[
            "get_webhook",
            "update_webhook",
            "delete_webhook",
            "list_deliveries",
        ],
    ),
];

/// Adds the rejections and the links to `document`.
pub(super) fn complete(document: &mut OpenApi) {
    rejections(document);
    links(document);
}

fn operations(document: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    document.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// Documents what the extractors answer, on every operation that uses them, so that no
/// handler's annotation can leave it out: a body ([`ApiJson`](super::ApiJson)) can be
/// malformed (400), too large (413) or invalid (422), a path or query parameter
/// ([`ApiPath`](super::ApiPath), [`ApiQuery`](super::ApiQuery)) invalid (422). Responses
/// an operation documents itself are kept.
fn rejections(document: &mut OpenApi) {
    let reference = |name: &str| RefOr::Ref(Ref::from_response_name(name));
    for operation in operations(document) {
        let has_parameters = operation.parameters.iter().flatten().any(|p| {
            matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
        });
        let has_body = operation.request_body.is_some();
        let responses = &mut operation.responses.responses;
        if has_body {
            responses
                .entry("400".into())
                .or_insert_with(|| reference("Malformed"));
            responses
                .entry("413".into())
                .or_insert_with(|| reference("TooLarge"));
        }
        if has_body || has_parameters {
            responses
                .entry("422".into())
                .or_insert_with(|| reference("Invalid"));
        }
    }
}

/// Adds [`LINKS`] to the 201 answers of the creating operations.
fn links(document: &mut OpenApi) {
    for operation in operations(document) {
        let Some((_, parameters, targets)) = LINKS
            .iter()
            .find(|(from, ..)| operation.operation_id.as_deref() == Some(*from))
        else {
            continue;
        };
        let Some(RefOr::T(created)) = operation.responses.responses.get_mut("201") else {
            continue;
        };
        for target in *targets {
            let link = parameters
                .iter()
                .fold(
                    LinkBuilder::new().operation_id(*target),
                    |link, (name, value)| link.parameter(*name, *value),
                )
                .build();
            created.links.insert((*target).to_string(), RefOr::T(link));
        }
    }
}
