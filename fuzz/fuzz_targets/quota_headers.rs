//! The quota headers (`tollgate_protocol::headers`) and the 429 problem body for any
//! policy the control plane may report: arbitrary u64 counts, names and resources.
//!
//! The draft `RateLimit-Policy` and `RateLimit` values parse as Structured Fields
//! (checked with the independent `sfv` parser), their integers are the exact value
//! clamped to 15 digits (999,999,999,999,999), the name survives as far as an
//! sf-string can carry it; the plain headers carry the exact numbers; every value is a
//! valid header value; the problem body is JSON with the exact numbers.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sfv::{BareItem, List, ListEntry, Parser};
use tollgate_protocol::config::HeadersConfig;
use tollgate_protocol::headers::{
    quota_headers, quota_unit, ratelimit, ratelimit_policy, CACHE_QUOTA_PREFIX, SF_INTEGER_MAX,
};
use tollgate_protocol::problem::Problem;
use tollgate_protocol::{PolicyStatus, QuotaStatus};

/// Counts near the interesting edges more often than uniformly.
#[derive(Arbitrary, Debug)]
enum Count {
    Any(u64),
    NearSfMax(i16),
    NearMax(u16),
    Small(u16),
}

impl Count {
    fn value(&self) -> u64 {
        match self {
            Count::Any(n) => *n,
            Count::NearSfMax(d) => SF_INTEGER_MAX.saturating_add_signed(i64::from(*d)),
            Count::NearMax(d) => u64::MAX - u64::from(*d),
            Count::Small(n) => u64::from(*n),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Resource {
    Requests,
    RequestBytes,
    ResponseBytes,
    Concurrent,
    Any(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    name: String,
    owner: Option<String>,
    tenant: String,
    resource: Resource,
    quota: Count,
    limit: Count,
    used: Count,
    remaining: Count,
    reset_after_s: Count,
    window_s: Option<Count>,
    /// `None`: the default `x-quota-`.
    prefix: Option<String>,
    draft: bool,
    cache_quota_names: bool,
    status: u8,
}

/// What `sf_string` makes of a name: printable ASCII kept, anything else `?`.
fn carried(name: &str) -> String {
    name.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

/// The one member of a List field value: its string and its integer parameters.
fn parse_member(value: &str) -> (String, Vec<(String, Option<i64>, Option<String>)>) {
    let list: List = Parser::new(value)
        .parse()
        .unwrap_or_else(|e| panic!("{value:?} is no Structured Fields list: {e:?}"));
    assert_eq!(list.len(), 1, "{value:?}");
    let ListEntry::Item(item) = &list[0] else {
        panic!("{value:?} is an inner list");
    };
    let BareItem::String(name) = &item.bare_item else {
        panic!("{value:?} does not start with a string");
    };
    let params = item
        .params
        .iter()
        .map(|(key, value)| {
            (
                key.as_str().to_string(),
                value.as_integer().map(i64::from),
                value.as_string().map(|s| s.as_str().to_string()),
            )
        })
        .collect();
    (name.as_str().to_string(), params)
}

fn sf(n: u64) -> Option<i64> {
    Some(i64::try_from(n.min(SF_INTEGER_MAX)).unwrap())
}

fuzz_target!(|input: Input| {
    let resource = match &input.resource {
        Resource::Requests => "requests".to_string(),
        Resource::RequestBytes => "request_bytes".to_string(),
        Resource::ResponseBytes => "response_bytes".to_string(),
        Resource::Concurrent => "concurrent_requests".to_string(),
        Resource::Any(name) => name.clone(),
    };
    let policy = PolicyStatus {
        name: input.name.clone(),
        tenant: input.owner.clone(),
        resource: resource.clone(),
        quota: input.quota.value(),
        limit: input.limit.value(),
        used: input.used.value(),
        remaining: input.remaining.value(),
        reset_after_s: input.reset_after_s.value(),
        window_s: input.window_s.as_ref().map(Count::value),
    };

    let (name, params) = parse_member(&ratelimit_policy(&policy));
    assert_eq!(name, carried(&policy.name));
    let mut expected = vec![("q".to_string(), sf(policy.limit), None)];
    if let Some(unit) = quota_unit(&resource) {
        expected.push(("qu".to_string(), None, Some(unit.to_string())));
    }
    if let Some(window) = policy.window_s {
        expected.push(("w".to_string(), sf(window), None));
    }
    assert_eq!(params, expected);

    let (name, params) = parse_member(&ratelimit(&policy));
    assert_eq!(name, carried(&policy.name));
    let expected = vec![
        ("r".to_string(), sf(policy.remaining), None),
        ("t".to_string(), sf(policy.reset_after_s), None),
    ];
    assert_eq!(params, expected);

    let config = HeadersConfig {
        prefix: input
            .prefix
            .clone()
            .unwrap_or_else(|| "x-quota-".to_string()),
        draft: input.draft,
        cache_quota_names: input.cache_quota_names,
        ..HeadersConfig::default()
    };
    let status = match input.status % 4 {
        0 => QuotaStatus::Ok,
        1 => QuotaStatus::Warning,
        2 => QuotaStatus::Exceeded,
        _ => QuotaStatus::Unknown,
    };
    let headers = quota_headers(&config, status, Some(&policy));
    for (_, value) in &headers {
        assert!(
            value.bytes().all(|b| (b' '..=b'~').contains(&b)),
            "not a header value: {value:?}"
        );
    }
    let family = |prefix: &str| {
        [
            ("limit", policy.limit.to_string()),
            ("used", policy.used.to_string()),
            ("remaining", policy.remaining.to_string()),
            ("reset", policy.reset_after_s.to_string()),
            ("status", status.as_str().to_string()),
        ]
        .map(|(name, value)| (format!("{prefix}{name}"), value))
    };
    let mut expected = Vec::new();
    if config.draft {
        expected.push(("ratelimit-policy".to_string(), ratelimit_policy(&policy)));
        expected.push(("ratelimit".to_string(), ratelimit(&policy)));
    }
    expected.extend(family(&config.prefix));
    if config.cache_quota_names && config.prefix != CACHE_QUOTA_PREFIX {
        expected.extend(family(CACHE_QUOTA_PREFIX));
    }
    assert_eq!(headers, expected);

    let problem = Problem::quota_exceeded(&input.tenant, &policy);
    let body: serde_json::Value =
        serde_json::from_slice(&problem.to_json()).expect("the problem body is JSON");
    assert_eq!(body["status"], 429);
    assert_eq!(body["limit"], policy.limit);
    assert_eq!(body["used"], policy.used);
    assert_eq!(body["reset_after_s"], policy.reset_after_s);
});
