//! A lease's terms: what a budget answers with in the quota headers — the binding policy
//! at the grant and the usage past which the status is `warning`. They change once per
//! lease, so they live apart from the slot's record, as JSON under the slot's key with
//! `.terms` added, written by the worker whose refill was granted; and each worker keeps
//! the terms it read last per slot, so that a spend reads them from shared data only
//! when its slot holds a lease the worker has not seen yet.
//!
//! The terms name their lease: a slot whose terms are another lease's (two refills of
//! one slot finishing at once, the loser's written last) answers without a policy, as a
//! lease granted with none does. Headers then lack the policy's numbers; the counting
//! is the record's alone.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use tollgate_protocol::PolicyStatus;

use super::record::LeaseId;
use crate::host::Host;

/// Slots whose terms a worker keeps at most; past it the worker forgets them all and
/// reads them again as they come.
const KEPT: usize = 4_096;

/// A lease's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The lease they are of.
    pub lease: String,
    /// The binding policy at the grant, its usage not counting the lease.
    pub policy: Option<PolicyStatus>,
    /// The binding policy's usage past which the status is `warning`.
    pub warn_after: Option<u64>,
}

thread_local! {
    /// This worker's (VM's) terms, by slot key: the lease they are of and the terms.
    static SEEN: RefCell<HashMap<String, (LeaseId, Rc<Terms>)>> = RefCell::default();
}

/// The shared-data key of the terms of the slot `slot_key`.
fn terms_key(slot_key: &str) -> String {
    format!("{slot_key}.terms")
}

/// Writes the terms of lease `lease` of slot `slot_key`, before the lease goes into the
/// slot: whoever then spends from it finds them.
pub fn write(host: &dyn Host, slot_key: &str, lease: LeaseId, terms: Terms) {
    if let Ok(bytes) = serde_json::to_vec(&terms) {
        host.shared_set(&terms_key(slot_key), &bytes);
    }
    remember(slot_key, lease, Rc::new(terms));
}

/// The terms of lease `lease` of slot `slot_key`: this worker's copy, or read from
/// shared data if the worker has not seen that lease; `None` when the slot's terms are
/// another lease's.
pub fn read(host: &dyn Host, slot_key: &str, lease: LeaseId) -> Option<Rc<Terms>> {
    let kept = SEEN.with(|seen| {
        let seen = seen.try_borrow().ok()?;
        let (of, terms) = seen.get(slot_key)?;
        (*of == lease).then(|| terms.clone())
    });
    if kept.is_some() {
        return kept;
    }
    let bytes = host.shared_get(&terms_key(slot_key))?;
    let terms: Terms = serde_json::from_slice(&bytes).ok()?;
    if LeaseId::parse(&terms.lease) != Some(lease) {
        return None;
    }
    let terms = Rc::new(terms);
    remember(slot_key, lease, terms.clone());
    Some(terms)
}

fn remember(slot_key: &str, lease: LeaseId, terms: Rc<Terms>) {
    SEEN.with(|seen| {
        if let Ok(mut seen) = seen.try_borrow_mut() {
            if seen.len() >= KEPT && !seen.contains_key(slot_key) {
                seen.clear();
            }
            seen.insert(slot_key.to_string(), (lease, terms));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;

    /// Forgets what this thread's worker has seen: the fake hosts of a test share one
    /// thread, where Envoy's workers each have their own.
    fn forget() {
        SEEN.with(|seen| seen.borrow_mut().clear());
    }

    fn terms(lease: &str, used: u64) -> Terms {
        Terms {
            lease: lease.into(),
            policy: Some(PolicyStatus {
                name: "daily".into(),
                tenant: None,
                resource: "requests".into(),
                quota: 100,
                limit: 100,
                used,
                remaining: 100 - used,
                reset_after_s: 60,
                window_s: Some(86_400),
            }),
            warn_after: Some(80),
        }
    }

    #[test]
    fn another_worker_reads_the_terms_once_per_lease() {
        let writer = FakeHost::default();
        let reader = FakeHost::default().sharing(&writer).on_worker("w2");
        let first = writer.unique_id();
        let id = LeaseId::parse(&first).unwrap();
        write(
            &writer,
            "tollgate.budget.terms-test-1",
            id,
            terms(&first, 40),
        );
        forget();
        let read = read(&reader, "tollgate.budget.terms-test-1", id).unwrap();
        assert_eq!(read.policy.as_ref().unwrap().used, 40);
        // Not the slot's lease: no terms.
        let other = LeaseId::parse(&writer.unique_id()).unwrap();
        assert_eq!(
            super::read(&reader, "tollgate.budget.terms-test-1", other),
            None
        );
    }

    #[test]
    fn terms_of_another_lease_answer_nothing() {
        let host = FakeHost::default();
        let (first, second) = (host.unique_id(), host.unique_id());
        let first_id = LeaseId::parse(&first).unwrap();
        // The slot holds `first`, but `second`'s terms were written last.
        let bytes = serde_json::to_vec(&terms(&second, 10)).unwrap();
        host.shared_set("tollgate.budget.terms-test-2.terms", &bytes);
        assert_eq!(read(&host, "tollgate.budget.terms-test-2", first_id), None);
    }
}
