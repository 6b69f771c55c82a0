//! Requests paused on a callout, by context id, with the time they may wait until.
//!
//! Envoy's own callout timeout normally answers first (a synthetic 504). This registry
//! is the filter's guarantee that no request hangs even when Envoy never calls back:
//! the periodic tick takes what expired and applies the failure mode.

use std::collections::HashMap;

/// Pending requests of one VM (one Envoy worker).
#[derive(Debug)]
pub struct Deadlines<T> {
    pending: HashMap<u32, (u64, T)>,
}

impl<T> Default for Deadlines<T> {
    fn default() -> Self {
        Deadlines {
            pending: HashMap::new(),
        }
    }
}

impl<T> Deadlines<T> {
    /// Remembers that `context_id` waits until `deadline_ms`.
    pub fn insert(&mut self, context_id: u32, deadline_ms: u64, waiting: T) {
        self.pending.insert(context_id, (deadline_ms, waiting));
    }

    /// Forgets a request that got its answer or went away.
    pub fn remove(&mut self, context_id: u32) {
        self.pending.remove(&context_id);
    }

    /// Takes every request whose deadline is at or before `now_ms`.
    pub fn take_expired(&mut self, now_ms: u64) -> Vec<(u32, T)> {
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|(_, waiting)| (id, waiting)))
            .collect()
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_expired_requests_are_taken_and_only_once() {
        let mut deadlines = Deadlines::default();
        deadlines.insert(1, 100, "a");
        deadlines.insert(2, 200, "b");
        assert_eq!(deadlines.take_expired(150), vec![(1, "a")]);
        assert!(deadlines.take_expired(150).is_empty());
        assert_eq!(deadlines.len(), 1);
    }

    #[test]
    fn removed_request_never_expires() {
        let mut deadlines = Deadlines::default();
        deadlines.insert(1, 100, ());
        deadlines.remove(1);
        assert!(deadlines.take_expired(1_000).is_empty());
        assert!(deadlines.is_empty());
    }
}
