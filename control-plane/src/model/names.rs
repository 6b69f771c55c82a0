//! What may name a tenant, a resource, a role or an id, with the sentence an error
//! answers when a name breaks the rule: one rule for the decision API, the admin API
//! and the command line.

pub use tollgate_protocol::is_valid_tenant_id;

/// Why a tenant id was refused.
pub const TENANT_RULE: &str = "tenant ids are 1-128 characters of letters, digits and ._:@/-";
/// Why a resource name was refused.
pub const RESOURCE_RULE: &str = "resource names are 1-64 characters of a-z, 0-9, _, . and -";
/// Why a role was refused.
pub const ROLE_RULE: &str = "roles are 1-128 printable characters without spaces";
/// Why a request id was refused.
pub const REQUEST_ID_RULE: &str = "request ids are 1-128 characters of letters, digits and ._:-";
/// Why a settlement id was refused.
pub const SETTLEMENT_ID_RULE: &str =
    "settlement ids are 1-128 characters of letters, digits and ._:-";
/// Why a lease id was refused.
pub const LEASE_ID_RULE: &str = "lease ids are 1-128 characters of letters, digits and ._:-";
/// Why a gateway id was refused.
pub const GATEWAY_RULE: &str = "gateway ids are 1-128 characters of letters, digits and ._:-";

/// Why a tier name was refused.
pub const TIER_RULE: &str = "1-64 characters of a-z, 0-9, _ and -";

/// Whether `name` may name a tier: 1–64 characters of `a-z 0-9 _ -`.
pub fn is_valid_tier_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `name` may name a resource: 1–64 characters of `a-z 0-9 _ . -`. No `:`, so
/// counter keys stay unambiguous.
pub fn is_valid_resource(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-'
        })
}

/// Whether `role` may name a role: 1–128 printable ASCII characters without spaces.
pub fn is_valid_role(role: &str) -> bool {
    (1..=128).contains(&role.len()) && role.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `id` may be a request id (also a settlement, lease or gateway id): 1–128
/// characters of letters, digits and `._:-`.
pub fn is_valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}
