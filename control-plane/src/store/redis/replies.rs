//! What the scripts answer, parsed: every reply is a flat list of strings, so that
//! numbers past 2^53 survive Lua.

use crate::store::call::{Outcome, Reply};
use crate::store::error::StoreError;
use crate::store::lease::{Grant, LeaseOutcome, LeaseReply, Leased};
use crate::store::settlement::{SettleOutcome, SettleReply, Settled};

/// A counter's `u` (usage) and `e` (epoch) fields as HMGET answers them.
pub(super) type CounterFields = (Option<String>, Option<String>);

/// The hash tag of a key: what lies between its first `{` and the next `}`.
pub(super) fn hash_tag(key: &str) -> &str {
    key.split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map_or(key, |(tag, _)| tag)
}

pub(super) fn parse_count(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Protocol(format!("counter value {text:?} is not a count")))
}

/// The markers a "seed" reply names (`reseed_reply` in `marker.lua`): `count`, then as
/// many 1-based indices at the start of `rest`; zero-based. `None` when malformed.
pub(super) fn missing_markers(count: &str, rest: &[String]) -> Option<Vec<usize>> {
    let count: usize = count.parse().ok()?;
    rest.get(..count)?
        .iter()
        .map(|m| m.parse::<usize>().ok()?.checked_sub(1))
        .collect()
}

/// `{status, violated, K, K marker indices, used_1..used_n, oldest_1..oldest_n}`.
pub(super) fn parse_reply(reply: &[String], ops: usize) -> Result<Reply, StoreError> {
    let bad = || StoreError::Protocol(format!("unexpected script reply {reply:?}"));
    let [status, violated, missing_count, rest @ ..] = reply else {
        return Err(bad());
    };
    if status == "late" {
        return Err(StoreError::PastDeadline);
    }
    if status == "seed" {
        return missing_markers(missing_count, rest)
            .map(Reply::NeedsSeed)
            .ok_or_else(bad);
    }
    if missing_count.parse::<usize>() != Ok(0) {
        return Err(bad());
    }
    let violated: usize = violated.parse().map_err(|_| bad())?;
    let (used, oldest) = parse_usage(rest, ops).ok_or_else(bad)?;
    Ok(Reply::Done(Outcome {
        admitted: status == "ok",
        violated: violated.checked_sub(1),
        used,
        oldest,
    }))
}

/// `used_1..used_n, oldest_1..oldest_n` (oldest 1-based, `0` for none), as the counting
/// scripts end their replies; `None` when malformed.
pub(super) fn parse_usage(rest: &[String], ops: usize) -> Option<(Vec<u64>, Vec<Option<usize>>)> {
    if rest.len() != 2 * ops {
        return None;
    }
    let (used, oldest) = rest.split_at(ops);
    let used = used.iter().map(|u| u.parse().ok()).collect::<Option<_>>()?;
    let oldest = oldest
        .iter()
        .map(|o| o.parse::<usize>().ok().map(|o| o.checked_sub(1)))
        .collect::<Option<_>>()?;
    Some((used, oldest))
}

/// `{"duplicate"}`, `{"seed", K, K marker indices}` or `{"ok", released, used_1..used_n}`.
pub(super) fn parse_settle_reply(
    reply: &[String],
    moves: usize,
) -> Result<SettleReply, StoreError> {
    let bad = || StoreError::Protocol(format!("unexpected settle reply {reply:?}"));
    if let [status] = reply {
        return match status.as_str() {
            "duplicate" => Ok(SettleReply::Done(SettleOutcome::Duplicate)),
            _ => Err(bad()),
        };
    }
    let [status, count, rest @ ..] = reply else {
        return Err(bad());
    };
    match status.as_str() {
        "seed" => missing_markers(count, rest)
            .map(SettleReply::NeedsSeed)
            .ok_or_else(bad),
        "ok" if rest.len() == moves => Ok(SettleReply::Done(SettleOutcome::Applied(Settled {
            used: rest
                .iter()
                .map(|u| parse_count(u))
                .collect::<Result<_, _>>()?,
            released: parse_count(count)?,
        }))),
        _ => Err(bad()),
    }
}

/// `{"seed", K, K marker indices}`, `{"overspent", granted}` or `{status, refunded,
/// granted, ttl ms, violated, R, R refunded counters, used_1..used_n, oldest_1..oldest_n}`
/// (`lease.lua`).
pub(super) fn parse_budget_reply(reply: &[String], ops: usize) -> Result<LeaseReply, StoreError> {
    let bad = || StoreError::Protocol(format!("unexpected budget reply {reply:?}"));
    match reply {
        [status, count, rest @ ..] if status == "seed" => {
            return missing_markers(count, rest)
                .map(LeaseReply::NeedsSeed)
                .ok_or_else(bad)
        }
        [status, granted] if status == "overspent" => {
            return Ok(LeaseReply::Done(LeaseOutcome::Overspent {
                granted: parse_count(granted)?,
            }))
        }
        _ => {}
    }
    let [status, refunded, granted, ttl_ms, violated, moved, rest @ ..] = reply else {
        return Err(bad());
    };
    let moved: usize = moved.parse().map_err(|_| bad())?;
    if rest.len() < moved {
        return Err(bad());
    }
    let (refunded_keys, rest) = rest.split_at(moved);
    let (used, oldest) = parse_usage(rest, ops).ok_or_else(bad)?;
    let granted = parse_count(granted)?;
    let ttl_ms: i64 = ttl_ms.parse().map_err(|_| bad())?;
    let grant = match status.as_str() {
        "ok" => Grant::Reserved { granted, ttl_ms },
        "duplicate" => Grant::Duplicate { granted, ttl_ms },
        "exhausted" => Grant::Exhausted {
            violated: violated
                .parse::<usize>()
                .ok()
                .and_then(|v| v.checked_sub(1))
                .ok_or_else(bad)?,
        },
        _ => return Err(bad()),
    };
    Ok(LeaseReply::Done(LeaseOutcome::Done(Leased {
        grant,
        refunded: parse_count(refunded)?,
        refunded_keys: refunded_keys.to_vec(),
        used,
        oldest,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rejected_reply_names_the_violating_op_zero_based() {
        let reply = parse_reply(&strings(&["reject", "2", "0", "5", "9", "1", "0"]), 2).unwrap();
        let Reply::Done(outcome) = reply else {
            panic!("expected an outcome");
        };
        assert!(!outcome.admitted);
        assert_eq!(outcome.violated, Some(1));
        assert_eq!(outcome.used, vec![5, 9]);
        assert_eq!(outcome.oldest, vec![Some(0), None]);
    }

    #[test]
    fn seed_reply_lists_missing_markers_zero_based() {
        let reply = parse_reply(&strings(&["seed", "0", "2", "1", "3"]), 4).unwrap();
        assert_eq!(reply, Reply::NeedsSeed(vec![0, 2]));
    }

    #[test]
    fn reply_with_the_wrong_number_of_ops_is_a_protocol_error() {
        assert!(matches!(
            parse_reply(&strings(&["ok", "0", "0", "5"]), 2),
            Err(StoreError::Protocol(_))
        ));
        assert!(matches!(
            parse_reply(&strings(&["ok"]), 0),
            Err(StoreError::Protocol(_))
        ));
    }

    #[test]
    fn settle_replies_parse_into_usage_duplicates_or_missing_markers() {
        let done = parse_settle_reply(&strings(&["ok", "2", "5", "0"]), 2).unwrap();
        assert_eq!(
            done,
            SettleReply::Done(SettleOutcome::Applied(Settled {
                used: vec![5, 0],
                released: 2
            }))
        );
        let duplicate = parse_settle_reply(&strings(&["duplicate"]), 2).unwrap();
        assert_eq!(duplicate, SettleReply::Done(SettleOutcome::Duplicate));
        assert!(matches!(
            parse_settle_reply(&strings(&["ok"]), 0),
            Err(StoreError::Protocol(_))
        ));
        let seed = parse_settle_reply(&strings(&["seed", "1", "2"]), 3).unwrap();
        assert_eq!(seed, SettleReply::NeedsSeed(vec![1]));
        assert!(matches!(
            parse_settle_reply(&strings(&["ok", "0", "5"]), 2),
            Err(StoreError::Protocol(_))
        ));
    }

    #[test]
    fn budget_replies_parse_into_grants_refunds_and_usage() {
        let reply = strings(&["ok", "7", "50", "9000", "0", "1", "k1", "3", "4", "1", "0"]);
        assert_eq!(
            parse_budget_reply(&reply, 2).unwrap(),
            LeaseReply::Done(LeaseOutcome::Done(Leased {
                grant: Grant::Reserved {
                    granted: 50,
                    ttl_ms: 9000
                },
                refunded: 7,
                refunded_keys: strings(&["k1"]),
                used: vec![3, 4],
                oldest: vec![Some(0), None],
            }))
        );
        let exhausted = strings(&["exhausted", "0", "0", "0", "2", "0", "1", "9", "1", "1"]);
        let Ok(LeaseReply::Done(LeaseOutcome::Done(done))) = parse_budget_reply(&exhausted, 2)
        else {
            panic!("expected an outcome");
        };
        assert_eq!(done.grant, Grant::Exhausted { violated: 1 });
        assert_eq!(
            parse_budget_reply(&strings(&["overspent", "12"]), 1).unwrap(),
            LeaseReply::Done(LeaseOutcome::Overspent { granted: 12 })
        );
        assert_eq!(
            parse_budget_reply(&strings(&["seed", "1", "2"]), 1).unwrap(),
            LeaseReply::NeedsSeed(vec![1])
        );
        assert!(matches!(
            parse_budget_reply(&strings(&["ok", "0", "1", "1", "0", "0", "5"]), 2),
            Err(StoreError::Protocol(_))
        ));
    }

    #[test]
    fn hash_tag_is_the_first_braced_part() {
        assert_eq!(
            hash_tag("tollgate:{acme}:c:acme/x:requests:month:0"),
            "acme"
        );
        assert_eq!(hash_tag("plain"), "plain");
    }
}
