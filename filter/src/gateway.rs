//! One gateway id per Envoy, shared by its workers through shared data.
//!
//! The control plane sizes a budget as a share of the tenant's headroom for each gateway
//! holding one (`headroom / (2 × holders)`). Each worker runs its own VM with its own
//! random id; were that the gateway id, one Envoy with W workers would count as W
//! holders and be granted less. So the first worker to ask writes its id under one key,
//! only if no other worker has, and every worker uses the id found there.

use crate::host::Host;

/// The shared-data key of this Envoy's gateway id.
const GATEWAY_KEY: &str = "tollgate.gateway";

/// This Envoy's gateway id: the one its workers agreed on, or `mine` (this worker's)
/// if it is the first to ask. `mine` as well if shared data cannot say (it always can
/// in Envoy): budgets are then merely smaller.
pub fn agreed_gateway_id(host: &dyn Host, mine: &str) -> String {
    let read = |host: &dyn Host| {
        let (value, _) = host.shared_get_cas(GATEWAY_KEY);
        value
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|id| !id.is_empty())
    };
    if let Some(agreed) = read(host) {
        return agreed;
    }
    // Created only if still absent: another worker may be doing the same.
    host.shared_set_cas(GATEWAY_KEY, mine.as_bytes(), host.fresh_cas());
    read(host).unwrap_or_else(|| mine.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;

    #[test]
    fn the_first_worker_to_ask_names_the_gateway_for_all() {
        let first = FakeHost::default();
        let second = FakeHost::default().sharing(&first).on_worker("w2");
        assert_eq!(agreed_gateway_id(&first, "aaaa"), "aaaa");
        assert_eq!(agreed_gateway_id(&second, "bbbb"), "aaaa");
        assert_eq!(agreed_gateway_id(&first, "cccc"), "aaaa", "asked again");
        // Another Envoy (its own shared data) has its own.
        let other = FakeHost::default();
        assert_eq!(agreed_gateway_id(&other, "dddd"), "dddd");
    }

    #[test]
    fn a_worker_that_read_no_id_never_replaces_one_written_meanwhile() {
        let host = FakeHost::default();
        // Read absent, then another worker writes first; this worker's create is
        // refused and it reads the other's.
        let token = host.fresh_cas();
        host.shared_set(GATEWAY_KEY, b"first");
        assert!(!host.shared_set_cas(GATEWAY_KEY, b"second", token));
        assert_eq!(agreed_gateway_id(&host, "second"), "first");
    }
}
