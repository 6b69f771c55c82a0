//! The leases this worker took, by expiry: returned when they expire (so the control
//! plane refunds what was not spent), or all at once when the worker closes.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::budget::TakenLease;

/// Leases this worker took, the first to expire on top.
#[derive(Debug, Default)]
pub(super) struct TakenLeases {
    heap: BinaryHeap<Reverse<ByExpiry>>,
}

/// A taken lease, ordered by when it expires.
#[derive(Debug)]
struct ByExpiry(TakenLease);

impl PartialEq for ByExpiry {
    fn eq(&self, other: &Self) -> bool {
        self.0.expires_ms == other.0.expires_ms
    }
}
impl Eq for ByExpiry {}
impl PartialOrd for ByExpiry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByExpiry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.expires_ms.cmp(&other.0.expires_ms)
    }
}

impl TakenLeases {
    /// Remembers `leases`.
    pub(super) fn add(&mut self, leases: Vec<TakenLease>) {
        self.heap
            .extend(leases.into_iter().map(|lease| Reverse(ByExpiry(lease))));
    }

    /// Takes out at most `max` of the leases expired at `now_ms`, the earliest first.
    pub(super) fn take_expired(&mut self, now_ms: u64, max: usize) -> Vec<TakenLease> {
        let mut expired = Vec::new();
        while expired.len() < max {
            match self.heap.peek() {
                Some(Reverse(next)) if next.0.expires_ms <= now_ms => {}
                _ => break,
            }
            if let Some(Reverse(ByExpiry(lease))) = self.heap.pop() {
                expired.push(lease);
            }
        }
        expired
    }

    /// Takes out every lease, expired or not (the worker is closing), in no order.
    pub(super) fn take_all(&mut self) -> Vec<TakenLease> {
        let heap = std::mem::take(&mut self.heap);
        (heap.into_vec().into_iter())
            .map(|Reverse(ByExpiry(lease))| lease)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Owner;

    fn lease(id: &str, expires_ms: u64) -> TakenLease {
        TakenLease {
            owner: Owner {
                tenant: "acme".into(),
                roles: Vec::new(),
                resource: "requests".into(),
            },
            id: id.into(),
            expires_ms,
        }
    }

    fn ids(leases: Vec<TakenLease>) -> Vec<String> {
        leases.into_iter().map(|l| l.id).collect()
    }

    #[test]
    fn expired_leases_come_out_earliest_first_and_at_most_as_many_as_asked() {
        let mut taken = TakenLeases::default();
        taken.add(vec![lease("c", 300), lease("a", 100), lease("b", 200)]);
        assert!(taken.take_expired(99, 10).is_empty());
        assert_eq!(ids(taken.take_expired(300, 2)), ["a", "b"]);
        assert_eq!(ids(taken.take_expired(300, 2)), ["c"]);
        assert!(taken.take_all().is_empty());
    }

    #[test]
    fn a_closing_worker_takes_every_lease_expired_or_not() {
        let mut taken = TakenLeases::default();
        taken.add(vec![lease("a", 100), lease("b", 5_000)]);
        let mut all = ids(taken.take_all());
        all.sort();
        assert_eq!(all, ["a", "b"]);
        assert!(taken.take_expired(u64::MAX, 10).is_empty());
    }
}
