//! The table of budgets in shared data: one slot per (tenant, roles, resource), each
//! holding the lease being spent, changed only by compare-and-swap.
//!
//! Each (tenant, roles, resource) has a slot in a fixed table of hashed keys: shared
//! data has no delete, so memory is bounded by design, whatever the number of tenants.
//! A slot holds the lease being spent (granted, spent, until when) and what the
//! control plane said about the binding policy when it granted it, for headers.
//!
//! Every change is a compare-and-swap, retried on conflict, so workers spending the
//! same budget at once never spend more than was granted. At most one refill per slot
//! is in flight: the slot says so until a deadline, and whoever takes the refill
//! freezes the old lease first, so what it reports as spent is final.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde::{Deserialize, Serialize};
use tollgate_protocol::{LeaseRequest, LeaseResponse, LeaseReturn, PolicyStatus};

use crate::host::Host;

/// The number of slots: at most this many (tenant, resource) budgets at once.
pub const SLOTS: u64 = 65_536;
/// Attempts of one compare-and-swap before giving up (the request is then checked).
const CAS_ATTEMPTS: usize = 16;
/// What a slot key holds before its first budget: not a slot.
const EMPTY: &[u8] = b"-";

/// Whose budget a slot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The tenant.
    pub tenant: String,
    /// Its roles (they choose its limits).
    pub roles: Vec<String>,
    /// The resource budgeted.
    pub resource: String,
}

impl Owner {
    /// The lease call (`id`, from `gateway`) that only gives `lease` back: it asks for
    /// nothing more, so the control plane refunds what was not spent.
    pub fn giving_back(self, id: String, gateway: String, lease: LeaseReturn) -> LeaseRequest {
        LeaseRequest {
            id,
            gateway,
            tenant: self.tenant,
            roles: self.roles,
            resource: self.resource,
            want: 0,
            previous: Some(lease),
        }
    }
}

/// A lease being spent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Its id, to return it.
    pub id: String,
    /// What the control plane reserved.
    pub granted: u64,
    /// What the workers spent of it.
    pub spent: u64,
    /// Until when it may be spent (ms since the epoch).
    pub expires_ms: u64,
    /// The binding policy at the grant, its usage not counting the lease.
    pub policy: Option<PolicyStatus>,
    /// The binding policy's usage past which the status is `warning`.
    pub warn_after: Option<u64>,
}

/// One slot of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    owner: Owner,
    lease: Option<Lease>,
    /// A refill is in flight until then.
    refill_until_ms: u64,
    /// The worker (VM) whose request refills it: its other requests wait for the answer.
    refiller: String,
    /// The control plane said "check each request" until then.
    per_request_until_ms: u64,
}

/// What spending from a budget came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// Spent: the binding policy's usage, this request included, for headers.
    Spent {
        /// The lease spent from (to take it back if another resource fails).
        lease: String,
        /// Usage of the binding policy including all spent of the lease.
        used: Option<u64>,
        /// The binding policy at the grant.
        policy: Option<PolicyStatus>,
        /// Past this usage the status is `warning`.
        warn_after: Option<u64>,
    },
    /// No budget left and nobody refilling: the caller may refill.
    Empty,
    /// Another request is refilling it; `here` when that request is on this worker,
    /// so this one can wait for its answer.
    Refilling { here: bool },
    /// Check this request with the control plane.
    PerRequest,
}

/// The slot key of a budget.
pub fn slot_key(owner: &Owner) -> String {
    // Every worker runs the same module, so the same (unkeyed) hasher gives the same slot.
    let mut hasher = DefaultHasher::new();
    owner.hash(&mut hasher);
    format!("tollgate.budget.{}", hasher.finish() % SLOTS)
}

impl Hash for Owner {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (&self.tenant, &self.roles, &self.resource).hash(state);
    }
}

impl Slot {
    fn empty(owner: &Owner) -> Slot {
        Slot {
            owner: owner.clone(),
            lease: None,
            refill_until_ms: 0,
            refiller: String::new(),
            per_request_until_ms: 0,
        }
    }

    /// Whether another owner may take the slot over: no lease in it (an expired one
    /// waits to be returned by the worker that took it) and no refill in flight.
    fn is_free(&self, now_ms: u64) -> bool {
        self.lease.is_none() && self.refill_until_ms <= now_ms
    }
}

/// Reads `owner`'s slot and, with its compare-and-swap token, lets `change` write it
/// back; retried when another worker wrote in between. `change` gets the slot as it is
/// (another owner's on a hash collision, `None` when empty) and answers the new slot
/// (or `None` to leave it) and a result. `None` when the conflicts never ended.
fn update<T>(
    host: &dyn Host,
    owner: &Owner,
    mut change: impl FnMut(Option<Slot>) -> (Option<Slot>, T),
) -> Option<T> {
    let key = slot_key(owner);
    for _ in 0..CAS_ATTEMPTS {
        let (bytes, Some(cas)) = host.shared_get_cas(&key) else {
            // A write without a token is unconditional: create the key first (with a
            // placeholder that reads as no slot), so that the change below races on its
            // token like every other.
            host.shared_set_cas(&key, EMPTY, None);
            continue;
        };
        let slot = bytes.and_then(|b| serde_json::from_slice::<Slot>(&b).ok());
        let (next, result) = change(slot);
        let Some(next) = next else {
            return Some(result);
        };
        let Ok(bytes) = serde_json::to_vec(&next) else {
            return None;
        };
        if host.shared_set_cas(&key, &bytes, Some(cas)) {
            return Some(result);
        }
    }
    None
}

/// `owner`'s slot, when the slot is theirs.
fn mine(slot: Option<Slot>, owner: &Owner) -> Option<Slot> {
    slot.filter(|slot| slot.owner == *owner)
}

/// Spends `amount` from `owner`'s budget at `now_ms`.
pub fn spend(host: &dyn Host, owner: &Owner, amount: u64, now_ms: u64) -> Spend {
    let result = update(host, owner, |slot| {
        let Some(mut slot) = mine(slot.clone(), owner) else {
            // Empty, or another tenant's: free to take over, or busy (check instead).
            let free = slot.is_none_or(|other| other.is_free(now_ms));
            return (
                None,
                if free {
                    Spend::Empty
                } else {
                    Spend::PerRequest
                },
            );
        };
        if let Some(lease) = slot.lease.as_mut() {
            let left = lease.granted.saturating_sub(lease.spent);
            if lease.expires_ms > now_ms && left >= amount {
                lease.spent += amount;
                let spent = Spend::Spent {
                    lease: lease.id.clone(),
                    used: lease
                        .policy
                        .as_ref()
                        .map(|p| p.used.saturating_add(lease.spent)),
                    policy: lease.policy.clone(),
                    warn_after: lease.warn_after,
                };
                return (Some(slot), spent);
            }
        }
        let state = if slot.refill_until_ms > now_ms {
            Spend::Refilling {
                here: slot.refiller == host.gateway_id(),
            }
        } else if slot.per_request_until_ms > now_ms {
            Spend::PerRequest
        } else {
            Spend::Empty
        };
        (None, state)
    });
    result.unwrap_or(Spend::PerRequest)
}

/// Gives back `amount` spent from lease `lease` (another resource of the request could
/// not be spent); nothing if the lease is no longer the slot's.
pub fn unspend(host: &dyn Host, owner: &Owner, lease: &str, amount: u64) {
    update(host, owner, |slot| {
        let Some(mut slot) = mine(slot, owner) else {
            return (None, ());
        };
        match slot.lease.as_mut() {
            Some(held) if held.id == lease => {
                held.spent = held.spent.saturating_sub(amount);
                (Some(slot), ())
            }
            _ => (None, ()),
        }
    });
}

/// Takes the refill of `owner`'s budget until `until_ms`, unless another request has
/// it (or another tenant's budget holds the slot). The old lease is frozen and taken
/// out of the slot: what is returned is what to report as `previous`. `None` when this
/// request may not refill.
pub fn begin_refill(
    host: &dyn Host,
    owner: &Owner,
    now_ms: u64,
    until_ms: u64,
) -> Option<Option<LeaseReturn>> {
    update(host, owner, |slot| {
        let mut slot = match mine(slot.clone(), owner) {
            Some(slot) => slot,
            None if slot.is_none_or(|other| other.is_free(now_ms)) => Slot::empty(owner),
            None => return (None, None),
        };
        if slot.refill_until_ms > now_ms {
            return (None, None);
        }
        slot.refill_until_ms = until_ms;
        slot.refiller = host.gateway_id();
        let previous = slot.lease.take().map(|lease| LeaseReturn {
            id: lease.id,
            spent: lease.spent,
        });
        (Some(slot), Some(previous))
    })
    .flatten()
}

/// The control plane answered the refill: the new lease goes into the slot (or "check
/// each request" until its `ttl_ms` when nothing was granted). Answers the lease this
/// displaces, with its owner, for the caller to return: once this refill's deadline
/// had passed, another worker may have refilled the same budget and landed first, or
/// another tenant taken the slot over. Nobody else would return that lease.
pub fn finish_refill(
    host: &dyn Host,
    owner: &Owner,
    id: &str,
    answer: &LeaseResponse,
    now_ms: u64,
) -> Option<(Owner, LeaseReturn)> {
    let expires_ms = now_ms.saturating_add(answer.ttl_ms);
    update(host, owner, |slot| {
        let (mut slot, mut displaced) = match slot {
            Some(slot) if slot.owner == *owner => (slot, None),
            // Another tenant's lease stays where it is unless there is one to replace it.
            Some(other) if answer.granted == 0 && other.lease.is_some() => return (None, None),
            Some(other) => (Slot::empty(owner), other.lease.map(|l| (other.owner, l))),
            None => (Slot::empty(owner), None),
        };
        slot.refill_until_ms = 0;
        if answer.granted > 0 {
            let lease = Lease {
                id: id.to_string(),
                granted: answer.granted,
                spent: 0,
                expires_ms,
                policy: answer.policy.clone(),
                warn_after: answer.warn_after,
            };
            if let Some(old) = slot.lease.replace(lease) {
                displaced = Some((owner.clone(), old));
            }
        } else {
            slot.per_request_until_ms = expires_ms;
        }
        let back = displaced.map(|(owner, lease)| {
            let back = LeaseReturn {
                id: lease.id,
                spent: lease.spent,
            };
            (owner, back)
        });
        (Some(slot), back)
    })
    .flatten()
}

/// The refill failed: the next request may try again.
pub fn abandon_refill(host: &dyn Host, owner: &Owner) {
    update(host, owner, |slot| match mine(slot, owner) {
        Some(mut slot) => {
            slot.refill_until_ms = 0;
            (Some(slot), ())
        }
        None => (None, ()),
    });
}

/// Takes lease `id` out of its slot if it expired by `now_ms`: what to return.
pub fn take_expired(host: &dyn Host, owner: &Owner, id: &str, now_ms: u64) -> Option<LeaseReturn> {
    take_if(host, owner, id, |lease| lease.expires_ms <= now_ms)
}

/// Takes lease `id` out of its slot, expired or not (the config it was leased under is
/// going): what to return.
pub fn take_back(host: &dyn Host, owner: &Owner, id: &str) -> Option<LeaseReturn> {
    take_if(host, owner, id, |_| true)
}

fn take_if(
    host: &dyn Host,
    owner: &Owner,
    id: &str,
    due: impl Fn(&Lease) -> bool,
) -> Option<LeaseReturn> {
    update(host, owner, |slot| {
        let Some(mut slot) = mine(slot, owner) else {
            return (None, None);
        };
        match slot.lease.take() {
            Some(lease) if lease.id == id && due(&lease) => {
                let back = LeaseReturn {
                    id: lease.id,
                    spent: lease.spent,
                };
                (Some(slot), Some(back))
            }
            _ => (None, None),
        }
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_protocol::Decision;

    use crate::testing::FakeHost;

    fn owner(tenant: &str) -> Owner {
        Owner {
            tenant: tenant.into(),
            roles: Vec::new(),
            resource: "requests".into(),
        }
    }

    fn granted(amount: u64, ttl_ms: u64) -> LeaseResponse {
        LeaseResponse {
            decision: Decision::Allow,
            reason: None,
            tenant: "acme".into(),
            granted: amount,
            ttl_ms,
            policy: Some(PolicyStatus {
                name: "daily".into(),
                tenant: None,
                resource: "requests".into(),
                quota: 100,
                limit: 100,
                used: 40,
                remaining: 60,
                reset_after_s: 600,
                window_s: Some(86_400),
            }),
            warn_after: Some(80),
            cache_reject_for_s: 0,
            refunded: 0,
        }
    }

    #[test]
    fn a_budget_is_spent_exactly_to_what_was_granted() {
        let host = FakeHost::default();
        let acme = owner("acme");
        assert_eq!(spend(&host, &acme, 1, 0), Spend::Empty);
        assert_eq!(begin_refill(&host, &acme, 0, 200), Some(None));
        assert_eq!(spend(&host, &acme, 1, 10), Spend::Refilling { here: true });
        assert_eq!(begin_refill(&host, &acme, 10, 210), None, "single flight");
        finish_refill(&host, &acme, "g-1", &granted(3, 1_000), 20);
        let used: Vec<Option<u64>> = (0..3)
            .map(|_| match spend(&host, &acme, 1, 30) {
                Spend::Spent { used, .. } => used,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(used, vec![Some(41), Some(42), Some(43)]);
        assert_eq!(spend(&host, &acme, 1, 30), Spend::Empty);
        // The next refill reports all three spent.
        let previous = begin_refill(&host, &acme, 40, 240).unwrap().unwrap();
        assert_eq!((previous.id.as_str(), previous.spent), ("g-1", 3));
    }

    #[test]
    fn a_refused_spend_is_given_back_and_an_expired_lease_is_returned_once() {
        let host = FakeHost::default();
        let acme = owner("acme");
        begin_refill(&host, &acme, 0, 200);
        finish_refill(&host, &acme, "g-1", &granted(5, 1_000), 0);
        let Spend::Spent { lease, .. } = spend(&host, &acme, 2, 10) else {
            panic!("spent");
        };
        unspend(&host, &acme, &lease, 2);
        assert!(matches!(spend(&host, &acme, 5, 10), Spend::Spent { .. }));
        assert_eq!(take_expired(&host, &acme, "g-1", 999), None, "not yet");
        let back = take_expired(&host, &acme, "g-1", 1_000).unwrap();
        assert_eq!(back.spent, 5);
        assert_eq!(take_expired(&host, &acme, "g-1", 1_000), None);
        assert_eq!(spend(&host, &acme, 1, 1_000), Spend::Empty);
    }

    #[test]
    fn a_lease_taken_back_before_it_expires_reports_what_was_spent_once() {
        let host = FakeHost::default();
        let acme = owner("acme");
        begin_refill(&host, &acme, 0, 200);
        finish_refill(&host, &acme, "g-1", &granted(10, 1_000), 0);
        assert!(matches!(spend(&host, &acme, 3, 10), Spend::Spent { .. }));
        assert_eq!(take_back(&host, &acme, "g-2"), None, "not this lease");
        let back = take_back(&host, &acme, "g-1").unwrap();
        assert_eq!((back.id.as_str(), back.spent), ("g-1", 3));
        assert_eq!(take_back(&host, &acme, "g-1"), None, "returned once");
        assert_eq!(
            spend(&host, &acme, 1, 20),
            Spend::Empty,
            "nothing left to spend"
        );
    }

    #[test]
    fn nothing_granted_means_check_each_request_until_the_answer_expires() {
        let host = FakeHost::default();
        let acme = owner("acme");
        begin_refill(&host, &acme, 0, 200);
        finish_refill(&host, &acme, "g-1", &granted(0, 500), 0);
        assert_eq!(spend(&host, &acme, 1, 499), Spend::PerRequest);
        assert_eq!(spend(&host, &acme, 1, 500), Spend::Empty);
        begin_refill(&host, &acme, 600, 800);
        abandon_refill(&host, &acme);
        assert_eq!(
            spend(&host, &acme, 1, 700),
            Spend::Empty,
            "a failed refill frees the slot"
        );
    }

    #[test]
    fn a_late_refill_that_lands_on_another_workers_lease_hands_that_one_back() {
        let host = FakeHost::default();
        let acme = owner("acme");
        assert_eq!(begin_refill(&host, &acme, 0, 200), Some(None));
        // Its answer is late: past its deadline another worker refills and lands first.
        assert_eq!(begin_refill(&host, &acme, 250, 450), Some(None));
        let first = finish_refill(&host, &acme, "w2-1", &granted(5, 1_000), 260);
        assert_eq!(first, None);
        assert!(matches!(spend(&host, &acme, 2, 270), Spend::Spent { .. }));
        let displaced = finish_refill(&host, &acme, "w1-1", &granted(3, 1_000), 280);
        let back = LeaseReturn {
            id: "w2-1".into(),
            spent: 2,
        };
        assert_eq!(displaced, Some((acme.clone(), back)));
        // The slot holds the late one, whole; the other worker's expiry finds nothing.
        assert_eq!(take_expired(&host, &acme, "w2-1", 5_000), None);
        let rest = take_expired(&host, &acme, "w1-1", 5_000).unwrap();
        assert_eq!((rest.id.as_str(), rest.spent), ("w1-1", 0));
    }

    #[test]
    fn a_lease_that_takes_over_a_colliding_slot_hands_the_other_tenants_back() {
        let host = FakeHost::default();
        let (acme, globex) = (owner("acme"), owner("globex"));
        finish_refill(&host, &acme, "g-1", &granted(5, 1_000), 0);
        // Force a collision: acme's slot under globex's key.
        let (value, _) = host.shared_get_cas(&slot_key(&acme));
        host.shared_set(&slot_key(&globex), &value.unwrap());
        // Nothing granted: acme's lease stays.
        assert_eq!(
            finish_refill(&host, &globex, "x-1", &granted(0, 500), 10),
            None
        );
        let displaced = finish_refill(&host, &globex, "x-2", &granted(4, 1_000), 10);
        let back = LeaseReturn {
            id: "g-1".into(),
            spent: 0,
        };
        assert_eq!(displaced, Some((acme, back)));
        assert!(matches!(spend(&host, &globex, 4, 20), Spend::Spent { .. }));
    }

    #[test]
    fn a_colliding_tenant_never_reads_another_tenants_budget() {
        let host = FakeHost::default();
        let acme = owner("acme");
        begin_refill(&host, &acme, 0, 200);
        finish_refill(&host, &acme, "g-1", &granted(5, 1_000), 0);
        // Force a collision: write acme's slot under globex's key.
        let globex = owner("globex");
        let (value, _) = host.shared_get_cas(&slot_key(&acme));
        host.shared_set(&slot_key(&globex), &value.unwrap());
        assert_eq!(spend(&host, &globex, 1, 10), Spend::PerRequest);
        assert_eq!(
            begin_refill(&host, &globex, 10, 210),
            None,
            "acme's lease is live"
        );
        // Once acme's lease is returned the slot is free to take over.
        take_expired(&host, &acme, "g-1", 1_000);
        let (value, _) = host.shared_get_cas(&slot_key(&acme));
        host.shared_set(&slot_key(&globex), &value.unwrap());
        assert_eq!(spend(&host, &globex, 1, 1_000), Spend::Empty);
        assert_eq!(begin_refill(&host, &globex, 1_000, 1_200), Some(None));
    }

    #[test]
    fn a_stale_compare_and_swap_token_is_refused_and_retried() {
        let host = FakeHost::default();
        let acme = owner("acme");
        begin_refill(&host, &acme, 0, 200);
        finish_refill(&host, &acme, "g-1", &granted(2, 1_000), 0);
        let (_, stale) = host.shared_get_cas(&slot_key(&acme));
        assert!(matches!(spend(&host, &acme, 1, 10), Spend::Spent { .. }));
        assert!(
            !host.shared_set_cas(&slot_key(&acme), b"{}", stale),
            "stale token"
        );
        assert!(matches!(spend(&host, &acme, 1, 10), Spend::Spent { .. }));
        assert_eq!(spend(&host, &acme, 1, 10), Spend::Empty);
    }
}
