//! The shape every store relies on in a call, checked before it runs: the Redis scripts
//! and the memory store refuse the same malformed calls.

use super::call::{Call, OpKind, COUNTER_MAX};
use super::error::StoreError;
use super::lease::LeaseCall;
use super::settlement::{Change, Settlement};

/// Checks the shape of a settlement both stores rely on.
pub(crate) fn validate_settlement(settlement: &Settlement) -> Result<(), StoreError> {
    if settlement.id_key.is_empty() {
        return Err(StoreError::Invalid("a settlement needs its id key".into()));
    }
    for (i, m) in settlement.moves.iter().enumerate() {
        let amount = match m.change {
            Change::Add(amount) | Change::Refund(amount) => amount,
        };
        if amount > COUNTER_MAX {
            return Err(StoreError::Invalid(format!(
                "amounts are at most {COUNTER_MAX}"
            )));
        }
        if m.marker
            .is_some_and(|marker| marker >= settlement.markers.len())
        {
            return Err(StoreError::Invalid("a move names a missing marker".into()));
        }
        if settlement.moves[..i].iter().any(|other| other.key == m.key) {
            return Err(StoreError::Invalid(
                "a settlement moves each counter once".into(),
            ));
        }
    }
    Ok(())
}

/// Checks the shape of a budget call both stores rely on.
pub(crate) fn validate_lease(budget: &LeaseCall) -> Result<(), StoreError> {
    for op in &budget.ops {
        match &op.kind {
            OpKind::Window { keys, marker, .. } => {
                if keys.is_empty() {
                    return Err(StoreError::Invalid("a window op needs a counter".into()));
                }
                if marker.is_some_and(|m| m >= budget.markers.len()) {
                    return Err(StoreError::Invalid("an op names a missing marker".into()));
                }
            }
            OpKind::Gauge { .. } => {
                return Err(StoreError::Invalid("a gauge cannot be budgeted".into()))
            }
        }
        if op.cap > COUNTER_MAX {
            return Err(StoreError::Invalid(format!(
                "caps are at most {COUNTER_MAX}"
            )));
        }
    }
    let previous_spent = budget.previous.as_ref().map_or(0, |p| p.spent);
    if budget.want > COUNTER_MAX || previous_spent > COUNTER_MAX {
        return Err(StoreError::Invalid(format!(
            "amounts are at most {COUNTER_MAX}"
        )));
    }
    for (i, level) in budget.levels.iter().enumerate() {
        if level.ops.is_empty() || level.ops.iter().any(|&op| op >= budget.ops.len()) {
            return Err(StoreError::Invalid(
                "a budget level names at least one op, and only ops of the call".into(),
            ));
        }
        if budget.levels[..i]
            .iter()
            .any(|other| other.holders_key == level.holders_key)
        {
            return Err(StoreError::Invalid(
                "each budget level has its own holders".into(),
            ));
        }
    }
    if budget.ttl_ms < 0 || budget.record_ttl_ms < budget.ttl_ms {
        return Err(StoreError::Invalid(
            "a budget's record outlives its lease".into(),
        ));
    }
    Ok(())
}

/// Checks the shape of a call both stores rely on.
pub(crate) fn validate_call(call: &Call) -> Result<(), StoreError> {
    for op in &call.ops {
        match &op.kind {
            OpKind::Window { keys, .. } if keys.is_empty() => {
                return Err(StoreError::Invalid("a window op needs a counter".into()))
            }
            OpKind::Gauge { .. } if op.amount > 0 && call.hold.is_none() => {
                return Err(StoreError::Invalid(
                    "a gauge can only be acquired with a request id".into(),
                ))
            }
            _ => {}
        }
        if op.amount > COUNTER_MAX || op.cap > COUNTER_MAX {
            return Err(StoreError::Invalid(format!(
                "amounts and caps are at most {COUNTER_MAX}"
            )));
        }
    }
    Ok(())
}
