//! The table of budgets in shared data: one slot per (tenant, roles, resource), each
//! holding the lease being spent, changed only by compare-and-swap.
//!
//! Each (tenant, roles, resource) has a slot in a fixed table of hashed keys: shared
//! data has no delete, so memory is bounded by design, whatever the number of tenants.
//! A slot is a 64-byte record (`record`): the owner's fingerprint, the lease being
//! spent (granted, spent, until when), the refill in flight and its worker. What the
//! control plane said about the binding policy, for headers, is the lease's `terms`,
//! kept apart and read when the lease changes.
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
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use tollgate_protocol::{LeaseRequest, LeaseResponse, LeaseReturn};

use super::record::{fingerprint, worker_tag, Lease, LeaseId, Record};
use super::terms::{self, Terms};
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
    /// Leases to give back: the one the new lease displaced (once the refill's deadline
    /// passed, another worker's refill may have landed first), or the new lease itself
    /// when it could not land.
    pub give_back: Vec<LeaseReturn>,
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

    /// Its slot's key and its fingerprint in the slot, worked out once per call.
    fn slot(&self) -> (String, u64) {
        (slot_key(self), fingerprint(self))
    }
}

/// What spending from a budget came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// Spent: the binding policy's usage, this request included, for headers.
    Spent {
        /// The lease spent from (to take it back if another resource fails).
        lease: LeaseId,
        /// Usage of the binding policy including all spent of the lease.
        used: Option<u64>,
        /// The lease's terms (`None` when they could not be read).
        terms: Option<Rc<Terms>>,
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

/// Whether another owner may take the slot over: no lease in it (an expired one waits
/// to be returned by the worker that took it) and no refill in flight.
fn is_free(record: &Record, now_ms: u64) -> bool {
    record.lease.is_none() && record.refill_until_ms <= now_ms
}

/// Reads the slot `key` and, with its compare-and-swap token, lets `change` write it
/// back; retried when another worker wrote in between. `change` gets the record as it
/// is (another owner's on a hash collision, `None` when empty) and answers the new
/// record (or `None` to leave it) and a result. [`Contended`] when the conflicts never
/// ended (counted: `budget_contention`).
fn update<T>(
    host: &dyn Host,
    key: &str,
    mut change: impl FnMut(Option<Record>) -> (Option<Record>, T),
) -> Result<T, Contended> {
    for _ in 0..CAS_ATTEMPTS {
        let (bytes, cas) = host.shared_get_cas(key);
        let record = bytes.and_then(|b| Record::decode(&b));
        let (next, result) = change(record);
        let Some(next) = next else {
            return Ok(result);
        };
        // A key nobody wrote yet has no token: write it with one no key can hold, which
        // creates it if it is still absent and is refused if another worker created it
        // meanwhile. A write without a token could erase that worker's slot.
        let Some(token) = cas.or_else(|| host.fresh_cas()) else {
            continue;
        };
        if host.shared_set_cas(key, &next.encode(), Some(token)) {
            return Ok(result);
        }
    }
    host.count(Metric::BudgetContention);
    Err(Contended)
}

/// `owner`'s record, when the slot is theirs.
fn mine(record: Option<Record>, owner: u64) -> Option<Record> {
    record.filter(|record| record.owner == owner)
}

fn returned(lease: Lease) -> LeaseReturn {
    LeaseReturn {
        id: lease.id.to_string(),
        spent: lease.spent,
    }
}

/// Spends `amount` from `owner`'s budget at `now_ms`.
pub fn spend(host: &dyn Host, owner: &Owner, amount: u64, now_ms: u64) -> Spend {
    let (key, me) = owner.slot();
    // `Ok`: spent from the lease, with all spent of it now; `Err`: why not.
    let result = update(host, &key, |record| {
        let Some(mut record) = mine(record, me) else {
            // Empty, or another tenant's: free to take over, or busy (check instead).
            let free = record.is_none_or(|other| is_free(&other, now_ms));
            let why = if free {
                Spend::Empty
            } else {
                Spend::PerRequest
            };
            return (None, Err(why));
        };
        if let Some(lease) = record.lease.as_mut() {
            let left = lease.granted.saturating_sub(lease.spent);
            if lease.expires_ms > now_ms && left >= amount {
                lease.spent += amount;
                let spent = Ok((lease.id, lease.spent));
                return (Some(record), spent);
            }
        }
        let why = if record.refill_until_ms > now_ms {
            Spend::Refilling {
                here: record.refiller == worker_tag(&host.worker_id()),
            }
        } else if record.per_request_until_ms > now_ms {
            Spend::PerRequest
        } else {
            Spend::Empty
        };
        (None, Err(why))
    });
    match result {
        // The terms are read once spent, out of the compare-and-swap loop.
        Ok(Ok((lease, spent))) => {
            let terms = terms::read(host, &key, lease);
            let used = terms
                .as_ref()
                .and_then(|t| t.policy.as_ref())
                .map(|policy| policy.used.saturating_add(spent));
            Spend::Spent { lease, used, terms }
        }
        Ok(Err(why)) => why,
        // Busy with other workers' spends: check this request rather than wait.
        Err(Contended) => Spend::PerRequest,
    }
}

/// Gives back `amount` spent from lease `lease` (another resource of the request could
/// not be spent); nothing if the lease is no longer the slot's. [`Contended`]: not
/// given back yet, the caller hands it to the worker's tick.
pub fn unspend(
    host: &dyn Host,
    owner: &Owner,
    lease: LeaseId,
    amount: u64,
) -> Result<(), Contended> {
    let (key, me) = owner.slot();
    update(host, &key, |record| {
        let Some(mut record) = mine(record, me) else {
            return (None, ());
        };
        match record.lease.as_mut() {
            Some(held) if held.id == lease => {
                held.spent = held.spent.saturating_sub(amount);
                (Some(record), ())
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
    let (key, me) = owner.slot();
    let refiller = worker_tag(&host.worker_id());
    update(host, &key, |record| {
        let mut record = match mine(record, me) {
            Some(record) => record,
            None if record.is_none_or(|other| is_free(&other, now_ms)) => Record::empty(me),
            None => return (None, None),
        };
        if record.refill_until_ms > now_ms {
            return (None, None);
        }
        record.refill_until_ms = until_ms;
        record.refiller = refiller;
        let previous = record.lease.take().map(returned);
        (Some(record), Some(previous))
    })
    .ok()
    .flatten()
}

/// The control plane answered the refill: the new lease goes into the slot (or "check
/// each request" until its `ttl_ms` when nothing was granted), its terms beside it.
/// Answers what to give back (nobody else would): the lease this displaces, or the new
/// one if it could not land ([`Refilled`]). Another tenant's lease (a hash collision
/// that took the slot once this refill's deadline had passed) stays: the new one goes
/// back unspent.
pub fn finish_refill(
    host: &dyn Host,
    owner: &Owner,
    id: &str,
    answer: &LeaseResponse,
    now_ms: u64,
) -> Refilled {
    let (key, me) = owner.slot();
    let expires_ms = now_ms.saturating_add(answer.ttl_ms);
    let unspent = LeaseReturn {
        id: id.to_string(),
        spent: 0,
    };
    let granted = match LeaseId::parse(id) {
        _ if answer.granted == 0 => None,
        Some(lease) => Some(lease),
        // Not an id this filter made (it makes every one): no slot can hold it.
        None => {
            abandon_refill(host, owner);
            return Refilled {
                give_back: vec![unspent],
                landed: false,
            };
        }
    };
    if let Some(lease) = granted {
        let terms = Terms {
            lease: id.to_string(),
            policy: answer.policy.clone(),
            warn_after: answer.warn_after,
        };
        terms::write(host, &key, lease, terms);
    }
    let landed = update(host, &key, |record| {
        let mut record = match record {
            Some(record) if record.owner == me => record,
            Some(other) if other.owner != me && other.lease.is_some() => {
                return (None, (false, None));
            }
            _ => Record::empty(me),
        };
        record.refill_until_ms = 0;
        let mut displaced = None;
        match granted {
            Some(lease) => {
                let lease = Lease {
                    id: lease,
                    granted: answer.granted,
                    spent: 0,
                    expires_ms,
                };
                displaced = record.lease.replace(lease).map(returned);
            }
            None => record.per_request_until_ms = expires_ms,
        }
        (Some(record), (true, displaced))
    });
    match landed {
        Ok((true, displaced)) => Refilled {
            landed: granted.is_some(),
            give_back: displaced.into_iter().collect(),
        },
        // Another tenant's live lease holds the slot.
        Ok((false, _)) => Refilled {
            give_back: (answer.granted > 0)
                .then_some(unspent)
                .into_iter()
                .collect(),
            landed: false,
        },
        // Its slot was too busy to take it: the lease goes straight back, unspent, and
        // the refill is over (or its flag ends at its deadline).
        Err(Contended) => {
            abandon_refill(host, owner);
            if answer.granted == 0 {
                return Refilled {
                    give_back: Vec::new(),
                    landed: false,
                };
            }
            host.count(Metric::LeasesRecovered);
            Refilled {
                give_back: vec![unspent],
                landed: false,
            }
        }
    }
}

/// The refill failed: the next request may try again (when the slot was too busy to
/// say so now, once the refill's deadline passed).
pub fn abandon_refill(host: &dyn Host, owner: &Owner) {
    let (key, me) = owner.slot();
    let _ = update(host, &key, |record| match mine(record, me) {
        Some(mut record) => {
            record.refill_until_ms = 0;
            (Some(record), ())
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
    let Some(id) = LeaseId::parse(id) else {
        return Taken::Gone; // never in a slot
    };
    let (key, me) = owner.slot();
    let taken = update(host, &key, |record| {
        let Some(mut record) = mine(record, me) else {
            return (None, Taken::Gone);
        };
        match record.lease.take() {
            Some(lease) if lease.id == id && due(&lease) => {
                (Some(record), Taken::Back(returned(lease)))
            }
            _ => (None, Taken::Gone),
        }
    });
    taken.unwrap_or(Taken::Contended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_protocol::{Decision, PolicyStatus};

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

    fn back(id: &str, spent: u64) -> LeaseReturn {
        LeaseReturn {
            id: id.into(),
            spent,
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

    /// `owner`'s budget refilled with `amount` under a new lease at `now_ms`: its id.
    fn lease(host: &FakeHost, owner: &Owner, amount: u64, now_ms: u64) -> String {
        let id = host.unique_id();
        let refilled = finish_refill(host, owner, &id, &granted(amount, 1_000), now_ms);
        assert!(refilled.landed, "{refilled:?}");
        id
    }

    fn spent_from(spend: Spend) -> LeaseId {
        match spend {
            Spend::Spent { lease, .. } => lease,
            other => panic!("not spent: {other:?}"),
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
        let id = lease(&host, &acme, 3, 20);
        let used: Vec<Option<u64>> = (0..3)
            .map(|_| match spend(&host, &acme, 1, 30) {
                Spend::Spent { used, terms, .. } => {
                    assert_eq!(terms.unwrap().warn_after, Some(80));
                    used
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(used, vec![Some(41), Some(42), Some(43)]);
        assert_eq!(spend(&host, &acme, 1, 30), Spend::Empty);
        // The next refill reports all three spent.
        let previous = begin_refill(&host, &acme, 40, 240).unwrap().unwrap();
        assert_eq!(previous, back(&id, 3));
    }

    #[test]
    fn a_refused_spend_is_given_back_and_an_expired_lease_is_returned_once() {
        let host = FakeHost::default();
        let acme = owner("acme");
        begin_refill(&host, &acme, 0, 200);
        let id = lease(&host, &acme, 5, 0);
        let spent = spent_from(spend(&host, &acme, 2, 10));
        unspend(&host, &acme, spent, 2).unwrap();
        assert!(matches!(spend(&host, &acme, 5, 10), Spend::Spent { .. }));
        assert_eq!(take_expired(&host, &acme, &id, 999), Taken::Gone, "not yet");
        assert_eq!(
            taken_out(take_expired(&host, &acme, &id, 1_000)),
            back(&id, 5)
        );
        assert_eq!(take_expired(&host, &acme, &id, 1_000), Taken::Gone);
        assert_eq!(spend(&host, &acme, 1, 1_000), Spend::Empty);
    }

    #[test]
    fn a_lease_taken_back_before_it_expires_reports_what_was_spent_once() {
        let host = FakeHost::default();
        let acme = owner("acme");
        begin_refill(&host, &acme, 0, 200);
        let id = lease(&host, &acme, 10, 0);
        assert!(matches!(spend(&host, &acme, 3, 10), Spend::Spent { .. }));
        let other = host.unique_id();
        assert_eq!(
            take_back(&host, &acme, &other),
            Taken::Gone,
            "not this lease"
        );
        assert_eq!(take_back(&host, &acme, "not-a-lease-id"), Taken::Gone);
        assert_eq!(taken_out(take_back(&host, &acme, &id)), back(&id, 3));
        assert_eq!(take_back(&host, &acme, &id), Taken::Gone, "returned once");
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
        let none = finish_refill(&host, &acme, &host.unique_id(), &granted(0, 500), 0);
        assert!(!none.landed && none.give_back.is_empty(), "{none:?}");
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
        let first = lease(&host, &acme, 5, 260);
        assert!(matches!(spend(&host, &acme, 2, 270), Spend::Spent { .. }));
        let late = host.unique_id();
        let displaced = finish_refill(&host, &acme, &late, &granted(3, 1_000), 280);
        assert_eq!(displaced.give_back, vec![back(&first, 2)]);
        assert!(displaced.landed);
        // The slot holds the late one, whole; the other worker's expiry finds nothing.
        assert_eq!(take_expired(&host, &acme, &first, 5_000), Taken::Gone);
        assert_eq!(
            taken_out(take_expired(&host, &acme, &late, 5_000)),
            back(&late, 0)
        );
    }

    #[test]
    fn a_refill_that_finds_another_tenants_lease_in_its_slot_gives_its_own_back() {
        let host = FakeHost::default();
        let (acme, globex) = (owner("acme"), owner("globex"));
        lease(&host, &acme, 5, 0);
        // Force a collision: acme's slot under globex's key.
        let (value, _) = host.shared_get_cas(&slot_key(&acme));
        host.shared_set(&slot_key(&globex), &value.unwrap());
        let none = finish_refill(&host, &globex, &host.unique_id(), &granted(0, 500), 10);
        assert!(!none.landed && none.give_back.is_empty(), "{none:?}");
        let mine = host.unique_id();
        let refused = finish_refill(&host, &globex, &mine, &granted(4, 1_000), 10);
        assert_eq!(
            (refused.landed, refused.give_back),
            (false, vec![back(&mine, 0)])
        );
        assert_eq!(
            spend(&host, &globex, 1, 20),
            Spend::PerRequest,
            "acme's lease is live"
        );
    }

    #[test]
    fn a_colliding_tenant_never_reads_another_tenants_budget() {
        let host = FakeHost::default();
        let acme = owner("acme");
        begin_refill(&host, &acme, 0, 200);
        let id = lease(&host, &acme, 5, 0);
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
        take_expired(&host, &acme, &id, 1_000);
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
        lease(&host, &acme, 2, 0);
        let (_, stale) = host.shared_get_cas(&slot_key(&acme));
        assert!(matches!(spend(&host, &acme, 1, 10), Spend::Spent { .. }));
        assert!(
            !host.shared_set_cas(&slot_key(&acme), b"{}", stale),
            "stale token"
        );
        assert!(matches!(spend(&host, &acme, 1, 10), Spend::Spent { .. }));
        assert_eq!(spend(&host, &acme, 1, 10), Spend::Empty);
    }

    #[test]
    fn a_slot_is_a_64_byte_record() {
        let host = FakeHost::default();
        let acme = owner("acme");
        lease(&host, &acme, 5, 0);
        let (value, _) = host.shared_get_cas(&slot_key(&acme));
        assert_eq!(value.unwrap().len(), 64);
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
        lease(&host, &acme, 5, 0);
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
        let id = lease(&host, &acme, 2, 0);
        contend(&host, &acme);
        assert_eq!(spend(&host, &acme, 1, 10), Spend::PerRequest);
        assert_eq!(host.counted(Metric::BudgetContention), 1);
        assert!(matches!(spend(&host, &acme, 2, 10), Spend::Spent { .. }));
        assert_eq!(taken_out(take_back(&host, &acme, &id)), back(&id, 2));
    }

    #[test]
    fn a_give_back_that_keeps_losing_the_slot_says_so_and_lands_later() {
        let host = FakeHost::default();
        let acme = owner("acme");
        let id = lease(&host, &acme, 5, 0);
        let spent = spent_from(spend(&host, &acme, 3, 10));
        contend(&host, &acme);
        assert_eq!(unspend(&host, &acme, spent, 3), Err(Contended));
        unspend(&host, &acme, spent, 3).unwrap();
        assert_eq!(taken_out(take_back(&host, &acme, &id)), back(&id, 0));
    }

    #[test]
    fn a_lease_granted_while_its_slot_is_busy_is_given_back_unspent() {
        let host = FakeHost::default();
        let acme = owner("acme");
        assert_eq!(begin_refill(&host, &acme, 0, 200), Some(None));
        contend(&host, &acme);
        let id = host.unique_id();
        let refilled = finish_refill(&host, &acme, &id, &granted(5, 1_000), 10);
        assert_eq!(refilled.give_back, vec![back(&id, 0)]);
        assert!(!refilled.landed);
        assert_eq!(host.counted(Metric::LeasesRecovered), 1);
        // Not in the slot: nothing spends from it, nobody else returns it.
        assert_eq!(take_back(&host, &acme, &id), Taken::Gone);
        // Nothing granted under contention: nothing to give back.
        contend(&host, &acme);
        let none = finish_refill(&host, &acme, &host.unique_id(), &granted(0, 1_000), 10);
        assert!(none.give_back.is_empty() && !none.landed, "{none:?}");
    }

    #[test]
    fn a_refill_or_a_take_out_that_keeps_losing_the_slot_leaves_the_lease_in_place() {
        let host = FakeHost::default();
        let acme = owner("acme");
        let id = lease(&host, &acme, 5, 0);
        assert!(matches!(spend(&host, &acme, 5, 10), Spend::Spent { .. }));
        contend(&host, &acme);
        assert_eq!(begin_refill(&host, &acme, 20, 220), None, "nothing frozen");
        contend(&host, &acme);
        assert_eq!(take_expired(&host, &acme, &id, 1_000), Taken::Contended);
        contend(&host, &acme);
        assert_eq!(take_back(&host, &acme, &id), Taken::Contended);
        assert_eq!(
            taken_out(take_expired(&host, &acme, &id, 1_000)),
            back(&id, 5)
        );
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

    #[test]
    fn a_lease_id_the_filter_did_not_make_never_lands_and_goes_back() {
        let host = FakeHost::default();
        let acme = owner("acme");
        let refilled = finish_refill(&host, &acme, "made-elsewhere", &granted(5, 1_000), 0);
        assert_eq!(refilled.give_back, vec![back("made-elsewhere", 0)]);
        assert!(!refilled.landed);
    }
}
