//! Rejections remembered in proxy-wasm shared data, so every Envoy worker answers an
//! exhausted tenant's requests with 429 without asking the control plane again.
//!
//! Shared data has no delete, so its memory is bounded by design: a fixed table of
//! [`SLOTS`] hashed slots, each holding one entry with the tenant id and resource it is
//! for. A collision overwrites the older entry, which only costs a callout.
//!
//! An entry remembers the headroom left when the request was refused: a later request
//! is refused locally only when it needs more than that, so a request that would fit
//! (a GET with no body when the byte quota is spent) still goes to the control plane.
//! Headroom only shrinks until the window resets, which bounds the entry's life; an
//! admin reset or a refund in flight is noticed when the entry expires
//! (`reject_cache_max_s`).

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::{Deserialize, Serialize};
use tollgate_protocol::PolicyStatus;

use crate::host::Host;
use crate::identity::Identity;

/// The number of slots: at most this many rejections are remembered at once.
pub const SLOTS: u64 = 65_536;

/// One remembered rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    tenant: String,
    roles: Vec<String>,
    /// Until when (ms since the epoch) the entry may answer.
    until_ms: u64,
    /// When the policy's window resets (ms since the epoch).
    reset_at_ms: u64,
    /// The refusing policy as the control plane reported it.
    policy: PolicyStatus,
}

fn slot_key(tenant: &str, resource: &str) -> String {
    // Every worker runs the same module, so the same (unkeyed) hasher gives the same slot.
    let mut hasher = DefaultHasher::new();
    (tenant, resource).hash(&mut hasher);
    format!("tollgate.reject.{}", hasher.finish() % SLOTS)
}

/// Remembers that `identity` was refused by `policy` for `for_s` seconds (bounded by
/// the window's reset).
pub fn remember(host: &dyn Host, identity: &Identity, policy: &PolicyStatus, for_s: u64) {
    let now = host.now_ms();
    let for_ms = for_s.min(policy.reset_after_s).saturating_mul(1000);
    if for_ms == 0 {
        return;
    }
    let entry = Entry {
        tenant: identity.tenant.clone(),
        roles: identity.roles.clone(),
        until_ms: now.saturating_add(for_ms),
        reset_at_ms: now.saturating_add(policy.reset_after_s.saturating_mul(1000)),
        policy: policy.clone(),
    };
    if let Ok(bytes) = serde_json::to_vec(&entry) {
        host.shared_set(&slot_key(&identity.tenant, &policy.resource), &bytes);
    }
}

/// The remembered policy that refuses a request of `amounts` from `identity` now, with
/// its reset time brought up to date.
pub fn refusal(
    host: &dyn Host,
    identity: &Identity,
    amounts: &BTreeMap<String, u64>,
) -> Option<PolicyStatus> {
    let now = host.now_ms();
    amounts
        .iter()
        .filter(|(_, amount)| **amount > 0)
        .find_map(|(resource, amount)| {
            let bytes = host.shared_get(&slot_key(&identity.tenant, resource))?;
            let entry: Entry = serde_json::from_slice(&bytes).ok()?;
            let applies = entry.tenant == identity.tenant
                && entry.roles == identity.roles
                && entry.policy.resource == *resource
                && now < entry.until_ms
                && *amount > entry.policy.remaining;
            applies.then(|| PolicyStatus {
                reset_after_s: entry.reset_at_ms.saturating_sub(now).div_ceil(1000),
                ..entry.policy
            })
        })
}
