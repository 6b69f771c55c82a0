//! Tenant and roles (`tollgate_filter::identity::identify`) from a header, from claims of
//! the base64url JSON payload `jwt_authn` forwards (dotted, nested claim paths), or from
//! a path pattern — with tenant configs that validation may or may not accept.
//!
//! Never a panic; a tenant found is a valid tenant id and comes from where the config
//! says (or is the default); "missing" only without a default; roles are at most 32
//! valid words, each taken from the roles claim.

#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value};
use tollgate_filter::identity::{identify, IdentityError};
use tollgate_protocol::config::{TenantConfig, TenantSource};
use tollgate_protocol::is_valid_tenant_id;

/// Claim names and path literals: a few that collide often, and any.
#[derive(Arbitrary, Debug)]
enum Name {
    Sub,
    Org,
    Id,
    Roles,
    Scope,
    Tenants,
    Any(String),
}

impl Name {
    fn text(&self) -> &str {
        match self {
            Name::Sub => "sub",
            Name::Org => "org",
            Name::Id => "id",
            Name::Roles => "roles",
            Name::Scope => "scope",
            Name::Tenants => "tenants",
            Name::Any(text) => text,
        }
    }
}

/// Tenant-like text: mostly valid ids and the edge cases around them, or anything.
#[derive(Arbitrary, Debug)]
enum Text {
    Known(u8),
    Any(String),
}

const KNOWN: &[&str] = &[
    "acme",
    "acme/research",
    "user@example.com",
    "a.b:c_d-e",
    ".",
    "..",
    "...",
    "",
    "a b",
    "caf\u{e9}",
    "read write",
    " admin ",
    "12345",
];

impl Text {
    fn text(&self) -> String {
        match self {
            Text::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].to_string(),
            Text::Any(text) => text.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Claim {
    Text(Text),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Null,
    Array(Vec<Claim>),
    Object(Vec<(Name, Claim)>),
}

impl Claim {
    fn value(&self) -> Value {
        match self {
            Claim::Text(text) => Value::String(text.text()),
            Claim::Int(n) => Value::from(*n),
            Claim::UInt(n) => Value::from(*n),
            Claim::Float(x) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
            Claim::Bool(b) => Value::Bool(*b),
            Claim::Null => Value::Null,
            Claim::Array(items) => Value::Array(items.iter().map(Claim::value).collect()),
            Claim::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(name, claim)| (name.text().to_string(), claim.value()))
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Encoding {
    UrlNoPad,
    UrlPadded,
    /// Standard base64 (`+` and `/`): not what `jwt_authn` forwards.
    Standard,
    /// Surrounded by whitespace, as a header value may be.
    Spaced,
    /// Not base64 of the claims at all.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Source {
    Header,
    Jwt,
    Path,
}

#[derive(Arbitrary, Debug)]
enum Segment {
    Placeholder,
    Literal(Name),
    Empty,
}

#[derive(Arbitrary, Debug)]
struct Input {
    from: Source,
    claim: Option<Vec<Name>>,
    roles_claim: Option<Vec<Name>>,
    pattern: Option<(Vec<Segment>, bool)>,
    default: Option<Text>,
    header: Option<Text>,
    claims: Option<(Vec<(Vec<Name>, Claim)>, Encoding)>,
    path: Vec<PathPart>,
    query: Option<String>,
}

#[derive(Arbitrary, Debug)]
enum PathPart {
    Name(Name),
    Tenant(Text),
}

fn dotted(names: &[Name]) -> String {
    names.iter().map(Name::text).collect::<Vec<_>>().join(".")
}

/// Sets `value` at a dotted path, making objects on the way (replacing what is not one).
fn insert(root: &mut Value, names: &[Name], value: Value) {
    let Some((last, parents)) = names.split_last() else {
        return;
    };
    let mut here = root;
    for name in parents {
        if !here.is_object() {
            *here = Value::Object(Map::new());
        }
        here = here
            .as_object_mut()
            .unwrap()
            .entry(name.text())
            .or_insert(Value::Object(Map::new()));
    }
    if !here.is_object() {
        *here = Value::Object(Map::new());
    }
    here.as_object_mut()
        .unwrap()
        .insert(last.text().to_string(), value);
}

/// The value at a dotted claim path, as the filter walks it.
fn at<'a>(payload: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(payload, |value, name| value.get(name))
}

fuzz_target!(|input: Input| {
    let config = TenantConfig {
        from: match input.from {
            Source::Header => TenantSource::Header,
            Source::Jwt => TenantSource::Jwt,
            Source::Path => TenantSource::Path,
        },
        claim: input.claim.as_deref().map(dotted),
        roles_claim: input.roles_claim.as_deref().map(dotted),
        path_pattern: input.pattern.as_ref().map(|(segments, trailing)| {
            let mut pattern = String::new();
            for segment in segments {
                pattern.push('/');
                match segment {
                    Segment::Placeholder => pattern.push_str("{tenant}"),
                    Segment::Literal(name) => pattern.push_str(name.text()),
                    Segment::Empty => {}
                }
            }
            if *trailing {
                pattern.push('/');
            }
            pattern
        }),
        default: input.default.as_ref().map(Text::text),
        ..TenantConfig::default()
    };

    // The claims, when they were sent as the forwarded payload.
    let mut claims = None;
    let payload = input.claims.as_ref().map(|(members, encoding)| {
        let mut root = Value::Object(Map::new());
        for (path, claim) in members {
            insert(&mut root, path, claim.value());
        }
        let json = serde_json::to_vec(&root).unwrap();
        claims = Some(root);
        match encoding {
            Encoding::UrlNoPad => URL_SAFE_NO_PAD.encode(&json),
            Encoding::UrlPadded => URL_SAFE.encode(&json),
            Encoding::Standard => STANDARD.encode(&json),
            Encoding::Spaced => format!(" {}\t", URL_SAFE_NO_PAD.encode(&json)),
            Encoding::Raw(text) => {
                claims = None;
                text.clone()
            }
        }
    });
    let header = input.header.as_ref().map(Text::text);
    let mut path = String::new();
    for part in &input.path {
        path.push('/');
        match part {
            PathPart::Name(name) => path.push_str(name.text()),
            PathPart::Tenant(text) => path.push_str(&text.text()),
        }
    }
    if let Some(query) = &input.query {
        path.push('?');
        path.push_str(query);
    }

    let result = identify(&config, &path, |name| {
        if name == config.header {
            header.clone()
        } else if name == config.jwt_payload_header {
            payload.clone()
        } else {
            None
        }
    });

    let identity = match result {
        Ok(identity) => identity,
        Err(IdentityError::Missing(_)) => {
            assert!(
                config.default.is_none(),
                "missing although a default is set"
            );
            return;
        }
        Err(IdentityError::Invalid(_)) => return,
    };
    let tenant = identity.tenant.as_str();
    assert!(is_valid_tenant_id(tenant), "invalid tenant {tenant:?}");
    let is_default = config.default.as_deref() == Some(tenant);
    match config.from {
        TenantSource::Header => assert!(header.as_deref() == Some(tenant) || is_default),
        TenantSource::Path => {
            let without_query = path.split(['?', '#']).next().unwrap();
            assert!(is_default || without_query.split('/').any(|s| s == tenant));
        }
        TenantSource::Jwt => {
            if let Some(claims) = &claims {
                let found = at(claims, config.claim.as_deref().unwrap_or_default());
                let from_claim = match found {
                    Some(Value::String(s)) => s == tenant,
                    Some(Value::Number(n)) => n.to_string() == tenant,
                    _ => false,
                };
                assert!(from_claim || is_default, "tenant {tenant:?} from nowhere");
            }
        }
    }
    assert!(identity.roles.len() <= 32);
    for role in &identity.roles {
        assert!(is_valid_tenant_id(role), "invalid role {role:?}");
    }
    // Raw payload text may decode to claims too; only built claims are checked.
    if let (false, Some(claims)) = (identity.roles.is_empty(), &claims) {
        let words: Vec<&str> = match at(claims, config.roles_claim.as_deref().unwrap()) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(text)) => text.split_ascii_whitespace().collect(),
            other => panic!("roles from a claim that has none: {other:?}"),
        };
        for role in &identity.roles {
            assert!(
                words.contains(&role.as_str()),
                "role {role:?} not in the claim"
            );
        }
    }
});
