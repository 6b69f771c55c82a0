//! A budget slot as shared data holds it: a fixed binary record of [`RECORD_LEN`] (64)
//! bytes, read and compare-and-swapped on every request admitted from a budget, so it
//! holds only what spending needs. What a budget answers with in headers (the binding
//! policy at the grant) changes once per lease and lives apart (`terms`).
//!
//! Layout, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0 | format (1) |
//! | 1 | flags: bit 0, a lease is in the slot |
//! | 2–9 | the owner's fingerprint (tenant, roles, resource) |
//! | 10–17, 18–25 | the lease's id: its worker's prefix and number |
//! | 26–33 | granted |
//! | 34–41 | spent |
//! | 42–47 | the lease's expiry (ms since the epoch, 48 bits) |
//! | 48–53 | a refill is in flight until then (ms) |
//! | 54–59 | the control plane said "check each request" until then (ms) |
//! | 60–63 | which worker refills: a tag of its id |
//!
//! Instants take 48 bits (until the year 10889): larger ones are stored as that bound,
//! which compares the same against any clock.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The length of a record.
pub const RECORD_LEN: usize = 64;
/// The format written in byte 0; a record of another format reads as no slot.
const FORMAT: u8 = 1;
/// The largest instant a record holds.
const INSTANT_MAX: u64 = (1 << 48) - 1;

/// A lease's id as the filter makes them (`<prefix, 16 hex digits>-<number>`: a worker's
/// random prefix and a counter, [`crate::host::Host::unique_id`]), held in 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId {
    prefix: u64,
    number: u64,
}

impl LeaseId {
    /// Reads an id the filter made; `None` for any other text, and for any spelling of
    /// one but the filter's own (what is read is what is written back).
    pub fn parse(text: &str) -> Option<LeaseId> {
        let (prefix, number) = text.split_once('-')?;
        if prefix.len() != 16 {
            return None;
        }
        let id = LeaseId {
            prefix: u64::from_str_radix(prefix, 16).ok()?,
            number: number.parse().ok()?,
        };
        (id.to_string() == text).then_some(id)
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.prefix, self.number)
    }
}

/// The lease a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Its id, to return it.
    pub id: LeaseId,
    /// What the control plane reserved.
    pub granted: u64,
    /// What the workers spent of it.
    pub spent: u64,
    /// Until when it may be spent (ms since the epoch).
    pub expires_ms: u64,
}

/// One slot of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Whose budget it is: [`fingerprint`] of the owner.
    pub owner: u64,
    /// The lease being spent.
    pub lease: Option<Lease>,
    /// A refill is in flight until then.
    pub refill_until_ms: u64,
    /// The worker whose request refills it ([`worker_tag`]): its other requests wait
    /// for the answer.
    pub refiller: u32,
    /// The control plane said "check each request" until then.
    pub per_request_until_ms: u64,
}

impl Record {
    /// An owner's slot with nothing in it.
    pub fn empty(owner: u64) -> Record {
        Record {
            owner,
            lease: None,
            refill_until_ms: 0,
            refiller: 0,
            per_request_until_ms: 0,
        }
    }

    /// The record's bytes.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut bytes = [0; RECORD_LEN];
        bytes[0] = FORMAT;
        bytes[2..10].copy_from_slice(&self.owner.to_le_bytes());
        if let Some(lease) = self.lease {
            bytes[1] = 1;
            bytes[10..18].copy_from_slice(&lease.id.prefix.to_le_bytes());
            bytes[18..26].copy_from_slice(&lease.id.number.to_le_bytes());
            bytes[26..34].copy_from_slice(&lease.granted.to_le_bytes());
            bytes[34..42].copy_from_slice(&lease.spent.to_le_bytes());
            put_instant(&mut bytes[42..48], lease.expires_ms);
        }
        put_instant(&mut bytes[48..54], self.refill_until_ms);
        put_instant(&mut bytes[54..60], self.per_request_until_ms);
        bytes[60..64].copy_from_slice(&self.refiller.to_le_bytes());
        bytes
    }

    /// The record in `bytes`; `None` for anything else (another length or format).
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let bytes: &[u8; RECORD_LEN] = bytes.try_into().ok()?;
        if bytes[0] != FORMAT || bytes[1] > 1 {
            return None;
        }
        let lease = (bytes[1] == 1).then(|| Lease {
            id: LeaseId {
                prefix: u64_at(bytes, 10),
                number: u64_at(bytes, 18),
            },
            granted: u64_at(bytes, 26),
            spent: u64_at(bytes, 34),
            expires_ms: instant_at(bytes, 42),
        });
        Some(Record {
            owner: u64_at(bytes, 2),
            lease,
            refill_until_ms: instant_at(bytes, 48),
            refiller: u32::from_le_bytes([bytes[60], bytes[61], bytes[62], bytes[63]]),
            per_request_until_ms: instant_at(bytes, 54),
        })
    }
}

fn u64_at(bytes: &[u8; RECORD_LEN], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn instant_at(bytes: &[u8; RECORD_LEN], at: usize) -> u64 {
    let mut word = [0; 8];
    word[..6].copy_from_slice(&bytes[at..at + 6]);
    u64::from_le_bytes(word)
}

fn put_instant(to: &mut [u8], ms: u64) {
    to.copy_from_slice(&ms.min(INSTANT_MAX).to_le_bytes()[..6]);
}

/// A 64-bit fingerprint of what `value` is, for telling owners (or workers) apart
/// without storing them: every worker runs the same module, so the same (unkeyed)
/// hasher gives the same fingerprint. Salted, so that it is not the slot's index.
pub fn fingerprint(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    ("tollgate.owner", value).hash(&mut hasher);
    hasher.finish()
}

/// A 32-bit tag of a worker's id.
pub fn worker_tag(worker: &str) -> u32 {
    let wide = fingerprint(&worker);
    // Folded, never 0 (0 is "nobody").
    (((wide >> 32) ^ wide) as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> LeaseId {
        LeaseId::parse(text).unwrap()
    }

    #[test]
    fn a_record_is_64_bytes_and_reads_back_as_written() {
        let lease = Lease {
            id: id("00ff00ff00ff00ff-18446744073709551615"),
            granted: u64::MAX,
            spent: 7,
            expires_ms: 1_765_000_000_000,
        };
        let record = Record {
            owner: 0xdead_beef,
            lease: Some(lease),
            refill_until_ms: 1_765_000_000_150,
            refiller: worker_tag("a1b2"),
            per_request_until_ms: 0,
        };
        let bytes = record.encode();
        assert_eq!(bytes.len(), 64);
        assert_eq!(Record::decode(&bytes), Some(record));
        let empty = Record::empty(1);
        assert_eq!(Record::decode(&empty.encode()), Some(empty));
    }

    #[test]
    fn instants_past_48_bits_are_kept_as_the_bound_and_other_bytes_are_no_record() {
        let mut record = Record::empty(1);
        record.per_request_until_ms = u64::MAX;
        let read = Record::decode(&record.encode()).unwrap();
        assert_eq!(read.per_request_until_ms, (1 << 48) - 1);
        assert!(
            read.per_request_until_ms > 253_402_300_799_000,
            "past year 9999"
        );
        assert_eq!(Record::decode(b"-"), None);
        assert_eq!(Record::decode(br#"{"owner": 1}"#), None);
        let mut other_format = record.encode();
        other_format[0] = 2;
        assert_eq!(Record::decode(&other_format), None);
    }

    #[test]
    fn only_the_ids_the_filter_makes_are_lease_ids() {
        let made = "0123456789abcdef-42";
        assert_eq!(id(made).to_string(), made);
        for other in [
            "s-1",
            "0123456789abcdef",
            "0123456789abcdef-",
            "0123456789ABCDEF-1",
            "0123456789abcdef-01",
            "0123456789abcdef-+1",
            "0123456789abcdef-1-2",
            "0123456789abcdef-18446744073709551616",
        ] {
            assert_eq!(LeaseId::parse(other), None, "{other}");
        }
    }

    #[test]
    fn fingerprints_tell_owners_and_workers_apart() {
        assert_ne!(
            fingerprint(&("acme", "requests")),
            fingerprint(&("acme", "bytes"))
        );
        assert_eq!(fingerprint(&("acme", 1)), fingerprint(&("acme", 1)));
        assert_ne!(worker_tag("a"), worker_tag("b"));
        assert_ne!(worker_tag(""), 0);
    }
}
