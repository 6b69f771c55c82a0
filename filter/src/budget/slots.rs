//! The table of budgets in shared data: one slot per (tenant, roles, resource), each
//! holding the lease being spent, changed only by compare-and-swap.
//!
//! Each (tenant, roles, resource) has a slot in a fixed table of hashed keys: shared
//! data has no delete, so memory is bounded by design, whatever the number of tenants.
//! A slot holds the lease being spent (granted, spent, until when) and what the
//! control plane said about the binding policy when it granted it, for headers.
//!
//! Every change is a compare-and-swap, retried on conflict, so workers spending the
//! same budget at once never spend more than was granted; the first write of a key is
//! one too ([`update`]). A change that keeps losing to other workers ends as
//! [`Contended`], which no caller may mistake for "nothing there": a spend is checked
//! instead, a lease that could not land is given back, a lease that could not be taken
//! out is tried again on the next tick. At most one refill per slot is in flight: the
//! slot says so until a deadline, and whoever takes the refill freezes the old lease
//! first, so what it reports as spent is final.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde::{Deserialize, Serialize};
use tollgate_protocol::{LeaseRequest, LeaseResponse, LeaseReturn, PolicyStatus};

use crate::host::{Host, Metric};

/// The number of slots: at most this many (tenant, resource) budgets at once.
pub const SLOTS: u64 = 65_536;
/// Attempts of one compare-and-swap before it ends as [`Contended`].
const CAS_ATTEMPTS: usize = 16;

/// A compare-and-swap of a slot lost to other workers' writes on every attempt: the
/// slot is as they left it, this change is not in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contended;

/// A refill's answer put into its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refilled {
    /// Leases to give back, with their owners: the one the new lease displaced (once
    /// the refill's deadline passed, another worker's refill or another tenant may
    /// have landed first), or the new lease itself when it could not land.
    pub give_back: Vec<(Owner, LeaseReturn)>,
    /// Whether the granted lease is in the slot: the worker returns it when it expires.
    pub landed: bool,
}

/// What taking a lease out of its slot came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Taken out: what to return.
    Back(LeaseReturn),
    /// Not there (a refill already returned it with the next lease), or not due.
    Gone,
    /// Other workers' writes won every attempt: the lease is still in, try again.
    Contended,
}

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
/// (or `None` to leave it) and a result. [`Contended`] when the conflicts never ended
/// (counted: `budget_contention`).
fn update<T>(
    host: &dyn Host,
    owner: &Owner,
    mut change: impl FnMut(Option<Slot>) -> (Option<Slot>, T),
) -> Result<T, Contended> {
    let key = slot_key(owner);
    for _ in 0..CAS_ATTEMPTS {
        let (bytes, cas) = host.shared_get_cas(&key);
        let slot = bytes.and_then(|b| serde_json::from_slice::<Slot>(&b).ok());
        let (next, result) = change(slot);
        let Some(next) = next else {
            return Ok(result);
        };
        // A key nobody wrote yet has no token: write it with one no key can hold, which
        // creates it if it is still absent and is refused if another worker created it
        // meanwhile. A write without a token could erase that worker's slot.
        let Some(token) = cas.or_else(|| host.fresh_cas()) else {
            continue;
        };
        // A slot is plain data: serialising it cannot fail.
        let Ok(bytes) = serde_json::to_vec(&next) else {
            break;
        };
        if host.shared_set_cas(&key, &bytes, Some(token)) {
            return Ok(result);
        }
    }
    host.count(Metric::BudgetContention);
    Err(Contended)
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
                here: slot.refiller == host.worker_id(),
            }
        } else if slot.per_request_until_ms > now_ms {
            Spend::PerRequest
        } else {
            Spend::Empty
        };
        (None, state)
    });
    // Busy with other workers' spends: check this request rather than wait.
    result.unwrap_or(Spend::PerRequest)
}

/// Gives back `amount` spent from lease `lease` (another resource of the request could
/// not be spent); nothing if the lease is no longer the slot's. [`Contended`]: not
/// given back yet, the caller hands it to the worker's tick.
pub fn unspend(host: &dyn Host, owner: &Owner, lease: &str, amount: u64) -> Result<(), Contended> {
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
    })
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
        slot.refiller = host.worker_id();
        let previous = slot.lease.take().map(|lease| LeaseReturn {
            id: lease.id,
            spent: lease.spent,
        });
        (Some(slot), Some(previous))
    })
    .ok()
    .flatten()
}

/// The control plane answered the refill: the new lease goes into the slot (or "check
/// each request" until its `ttl_ms` when nothing was granted). Answers what to give
/// back (nobody else would): the lease this displaces, or the new one if it could not
/// land ([`Refilled`]).
pub fn finish_refill(
    host: &dyn Host,
    owner: &Owner,
    id: &str,
    answer: &LeaseResponse,
    now_ms: u64,
) -> Refilled {
    let expires_ms = now_ms.saturating_add(answer.ttl_ms);
    let landed = update(host, owner, |slot| {
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
    });
    match landed {
        Ok(displaced) => Refilled {
            give_back: displaced.into_iter().collect(),
            landed: answer.granted > 0,
        },
        // Its slot was too busy to take it: the lease goes straight back, unspent, and
        // the refill is over (or its flag ends at its deadline).
        Err(Contended) if answer.granted > 0 => {
            host.count(Metric::LeasesRecovered);
            abandon_refill(host, owner);
            let back = LeaseReturn {
                id: id.to_string(),
                spent: 0,
            };
            Refilled {
                give_back: vec![(owner.clone(), back)],
                landed: false,
            }
        }
        // Nothing granted, and nothing said: the next request asks again.
        Err(Contended) => {
            abandon_refill(host, owner);
            Refilled {
                give_back: Vec::new(),
                landed: false,
            }
        }
    }
}

/// The refill failed: the next request may try again (when the slot was too busy to
/// say so now, once the refill's deadline passed).
pub fn abandon_refill(host: &dyn Host, owner: &Owner) {
    let _ = update(host, owner, |slot| match mine(slot, owner) {
        Some(mut slot) => {
            slot.refill_until_ms = 0;
            (Some(slot), ())
        }
        None => (None, ()),
    });
}

/// Takes lease `id` out of its slot if it expired by `now_ms`: what to return.
pub fn take_expired(host: &dyn Host, owner: &Owner, id: &str, now_ms: u64) -> Taken {
    take_if(host, owner, id, |lease| lease.expires_ms <= now_ms)
}

/// Takes lease `id` out of its slot, expired or not (the config it was leased under is
/// going): what to return.
pub fn take_back(host: &dyn Host, owner: &Owner, id: &str) -> Taken {
    take_if(host, owner, id, |_| true)
}

fn take_if(host: &dyn Host, owner: &Owner, id: &str, due: impl Fn(&Lease) -> bool) -> Taken {
    let taken = update(host, owner, |slot| {
        let Some(mut slot) = mine(slot, owner) else {
            return (None, Taken::Gone);
        };
        match slot.lease.take() {
            Some(lease) if lease.id == id && due(&lease) => {
                let back = LeaseReturn {
                    id: lease.id,
                    spent: lease.spent,
                };
                (Some(slot), Taken::Back(back))
            }
            _ => (None, Taken::Gone),
        }
    });
    taken.unwrap_or(Taken::Contended)
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

    fn taken_out(taken: Taken) -> LeaseReturn {
        match taken {
            Taken::Back(back) => back,
            other => panic!("not taken out: {other:?}"),
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
        unspend(&host, &acme, &lease, 2).unwrap();
        assert!(matches!(spend(&host, &acme, 5, 10), Spend::Spent { .. }));
        assert_eq!(
            take_expired(&host, &acme, "g-1", 999),
            Taken::Gone,
            "not yet"
        );
        let back = taken_out(take_expired(&host, &acme, "g-1", 1_000));
        assert_eq!(back.spent, 5);
        assert_eq!(take_expired(&host, &acme, "g-1", 1_000), Taken::Gone);
        assert_eq!(spend(&host, &acme, 1, 1_000), Spend::Empty);
    }

    #[test]
    fn a_lease_taken_back_before_it_expires_reports_what_was_spent_once() {
        let host = FakeHost::default();
        let acme = owner("acme");
        begin_refill(&host, &acme, 0, 200);
        finish_refill(&host, &acme, "g-1", &granted(10, 1_000), 0);
        assert!(matches!(spend(&host, &acme, 3, 10), Spend::Spent { .. }));
        assert_eq!(
            take_back(&host, &acme, "g-2"),
            Taken::Gone,
            "not this lease"
        );
        let back = taken_out(take_back(&host, &acme, "g-1"));
        assert_eq!((back.id.as_str(), back.spent), ("g-1", 3));
        assert_eq!(take_back(&host, &acme, "g-1"), Taken::Gone, "returned once");
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
        assert!(first.landed && first.give_back.is_empty(), "{first:?}");
        assert!(matches!(spend(&host, &acme, 2, 270), Spend::Spent { .. }));
        let displaced = finish_refill(&host, &acme, "w1-1", &granted(3, 1_000), 280);
        let back = LeaseReturn {
            id: "w2-1".into(),
            spent: 2,
        };
        assert_eq!(displaced.give_back, vec![(acme.clone(), back)]);
        // The slot holds the late one, whole; the other worker's expiry finds nothing.
        assert_eq!(take_expired(&host, &acme, "w2-1", 5_000), Taken::Gone);
        let rest = taken_out(take_expired(&host, &acme, "w1-1", 5_000));
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
        let none = finish_refill(&host, &globex, "x-1", &granted(0, 500), 10);
        assert!(!none.landed && none.give_back.is_empty(), "{none:?}");
        let displaced = finish_refill(&host, &globex, "x-2", &granted(4, 1_000), 10);
        let back = LeaseReturn {
            id: "g-1".into(),
            spent: 0,
        };
        assert_eq!(displaced.give_back, vec![(acme, back)]);
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

    /// Every compare-and-swap attempt of a change of `owner`'s slot loses to another
    /// worker's write.
    fn contend(host: &FakeHost, owner: &Owner) {
        host.interfere(&slot_key(owner), CAS_ATTEMPTS as u32);
    }

    #[test]
    fn the_first_write_of_a_slot_creates_it_and_never_erases_one_another_worker_made() {
        let host = FakeHost::default();
        let acme = owner("acme");
        assert_eq!(spend(&host, &acme, 1, 0), Spend::Empty);
        assert!(
            !host.shared_keys().contains(&slot_key(&acme)),
            "reading writes nothing"
        );
        assert_eq!(begin_refill(&host, &acme, 0, 200), Some(None));
        finish_refill(&host, &acme, "g-1", &granted(5, 1_000), 0);
        // A worker that read the key absent before acme's refill made it now writes
        // with a fresh token: refused, where a write without one would erase the lease.
        let token = host.fresh_cas();
        assert!(!host.shared_set_cas(&slot_key(&acme), b"x", token));
        assert!(matches!(spend(&host, &acme, 5, 10), Spend::Spent { .. }));
        // The same token creates a key that is still absent.
        assert!(host.shared_set_cas("tollgate.budget.elsewhere", b"x", host.fresh_cas()));
    }

    #[test]
    fn a_spend_that_keeps_losing_the_slot_is_checked_and_spends_nothing() {
        let host = FakeHost::default();
        let acme = owner("acme");
        finish_refill(&host, &acme, "g-1", &granted(2, 1_000), 0);
        contend(&host, &acme);
        assert_eq!(spend(&host, &acme, 1, 10), Spend::PerRequest);
        assert_eq!(host.counted(Metric::BudgetContention), 1);
        assert!(matches!(spend(&host, &acme, 2, 10), Spend::Spent { .. }));
        assert_eq!(taken_out(take_back(&host, &acme, "g-1")).spent, 2);
    }

    #[test]
    fn a_give_back_that_keeps_losing_the_slot_says_so_and_lands_later() {
        let host = FakeHost::default();
        let acme = owner("acme");
        finish_refill(&host, &acme, "g-1", &granted(5, 1_000), 0);
        assert!(matches!(spend(&host, &acme, 3, 10), Spend::Spent { .. }));
        contend(&host, &acme);
        assert_eq!(unspend(&host, &acme, "g-1", 3), Err(Contended));
        unspend(&host, &acme, "g-1", 3).unwrap();
        assert_eq!(taken_out(take_back(&host, &acme, "g-1")).spent, 0);
    }

    #[test]
    fn a_lease_granted_while_its_slot_is_busy_is_given_back_unspent() {
        let host = FakeHost::default();
        let acme = owner("acme");
        assert_eq!(begin_refill(&host, &acme, 0, 200), Some(None));
        contend(&host, &acme);
        let refilled = finish_refill(&host, &acme, "g-1", &granted(5, 1_000), 10);
        let unspent = LeaseReturn {
            id: "g-1".into(),
            spent: 0,
        };
        assert_eq!(refilled.give_back, vec![(acme.clone(), unspent)]);
        assert!(!refilled.landed);
        assert_eq!(host.counted(Metric::LeasesRecovered), 1);
        // Not in the slot: nothing spends from it, nobody else returns it.
        assert_eq!(take_back(&host, &acme, "g-1"), Taken::Gone);
        // Nothing granted under contention: nothing to give back.
        contend(&host, &acme);
        let none = finish_refill(&host, &acme, "g-2", &granted(0, 1_000), 10);
        assert!(none.give_back.is_empty() && !none.landed, "{none:?}");
    }

    #[test]
    fn a_refill_or_a_take_out_that_keeps_losing_the_slot_leaves_the_lease_in_place() {
        let host = FakeHost::default();
        let acme = owner("acme");
        finish_refill(&host, &acme, "g-1", &granted(5, 1_000), 0);
        assert!(matches!(spend(&host, &acme, 5, 10), Spend::Spent { .. }));
        contend(&host, &acme);
        assert_eq!(begin_refill(&host, &acme, 20, 220), None, "nothing frozen");
        contend(&host, &acme);
        assert_eq!(take_expired(&host, &acme, "g-1", 1_000), Taken::Contended);
        contend(&host, &acme);
        assert_eq!(take_back(&host, &acme, "g-1"), Taken::Contended);
        assert_eq!(taken_out(take_expired(&host, &acme, "g-1", 1_000)).spent, 5);
        // A refill whose end could not be written stays in flight until its deadline.
        assert_eq!(begin_refill(&host, &acme, 1_000, 1_200), Some(None));
        assert_eq!(host.counted(Metric::BudgetContention), 3);
        contend(&host, &acme);
        abandon_refill(&host, &acme);
        assert_eq!(host.counted(Metric::BudgetContention), 4);
        assert_eq!(
            spend(&host, &acme, 1, 1_100),
            Spend::Refilling { here: true }
        );
        assert_eq!(spend(&host, &acme, 1, 1_200), Spend::Empty);
    }
}
