//! The decision table, in exact integer arithmetic: ALLOW up to the warning threshold
//! (`warn_at × quota`), WARN up to the hard limit (`quota + overage`), REJECT past it; an
//! unlimited limit always allows.
//!
//! `warn_at` is a fraction of the quota, kept in parts per million so that no floating
//! point ever touches accounting: `used + amount <= warn_at × quota` is evaluated as
//! `(used + amount) × 1_000_000 <= warn_at_ppm × quota` in `u128`, which cannot overflow.

use serde::{Deserialize, Serialize};

/// Parts per million in one whole.
const PPM: u128 = 1_000_000;

/// A fraction of a quota in parts per million (`800_000` = 0.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WarnAt(u32);

impl WarnAt {
    /// The default threshold: warn from 80 % of the quota.
    pub const DEFAULT: WarnAt = WarnAt(800_000);

    /// A threshold from parts per million; `None` above one whole.
    pub fn from_ppm(ppm: u32) -> Option<WarnAt> {
        (u128::from(ppm) <= PPM).then_some(WarnAt(ppm))
    }

    /// A threshold from the fraction operators write (`0.8`); `None` outside `0..=1` or
    /// for NaN. Rounded to the nearest part per million, once, at the API boundary.
    pub fn from_fraction(fraction: f64) -> Option<WarnAt> {
        if !(0.0..=1.0).contains(&fraction) {
            return None;
        }
        Self::from_ppm((fraction * 1_000_000.0).round() as u32)
    }

    /// Parts per million.
    pub fn ppm(self) -> u32 {
        self.0
    }

    /// The fraction, for display only.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 1_000_000.0
    }
}

impl Default for WarnAt {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One limit as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The included amount per window.
    pub quota: u64,
    /// How far past `quota` usage may go, with a warning.
    pub overage: u64,
    /// Where the status turns from `ok` to `warning`.
    pub warn_at: WarnAt,
    /// Always allow, still count.
    pub unlimited: bool,
}

impl Limit {
    /// The point past which requests are rejected: `quota + overage`.
    pub fn hard(&self) -> u64 {
        self.quota.saturating_add(self.overage)
    }

    /// The decision for a request costing `amount` when `used` is already counted.
    pub fn decide(&self, used: u64, amount: u64) -> Decision {
        if self.unlimited {
            return Decision::Allow;
        }
        let after = u128::from(used) + u128::from(amount);
        if !fits(used, amount, self.hard()) {
            Decision::Reject
        } else if after * PPM <= u128::from(self.warn_at.ppm()) * u128::from(self.quota) {
            Decision::Allow
        } else {
            Decision::Warn
        }
    }

    /// What may still be admitted before the hard limit (`u64::MAX` when unlimited).
    pub fn remaining(&self, used: u64) -> u64 {
        if self.unlimited {
            u64::MAX
        } else {
            self.hard().saturating_sub(used)
        }
    }
}

/// Whether `amount` more may be counted onto `used` without passing `cap`:
/// `used + amount <= cap`, exactly, whatever the sizes.
///
/// The one admission rule: [`Limit::decide`] rejects by it, the control plane's memory
/// store admits by it, and its Redis scripts mirror it in decimal strings (Lua numbers
/// are doubles, exact only up to 2^53); a table-driven test holds the three to the same
/// cases (`control-plane/tests/counter_store.rs`).
pub fn fits(used: u64, amount: u64, cap: u64) -> bool {
    u128::from(used) + u128::from(amount) <= u128::from(cap)
}

/// The outcome of a check, ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Decision {
    /// Counted, below the warning threshold.
    Allow,
    /// Counted, past the warning threshold (possibly into overage).
    Warn,
    /// Not counted; answer 429.
    Reject,
}

impl Decision {
    /// The status clients see in `X-Quota-Status`.
    pub fn status(self) -> QuotaStatus {
        match self {
            Decision::Allow => QuotaStatus::Ok,
            Decision::Warn => QuotaStatus::Warning,
            Decision::Reject => QuotaStatus::Exceeded,
        }
    }

    /// The more severe of two decisions (for a request checked against several limits).
    pub fn worst(self, other: Decision) -> Decision {
        self.max(other)
    }
}

/// `X-Quota-Status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaStatus {
    /// Below the warning threshold.
    Ok,
    /// Past the warning threshold.
    Warning,
    /// Past the hard limit.
    Exceeded,
    /// No decision could be had (control plane unreachable, failure mode open).
    Unknown,
}

impl QuotaStatus {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaStatus::Ok => "ok",
            QuotaStatus::Warning => "warning",
            QuotaStatus::Exceeded => "exceeded",
            QuotaStatus::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn limit(quota: u64, overage: u64) -> Limit {
        Limit {
            quota,
            overage,
            warn_at: WarnAt::DEFAULT,
            unlimited: false,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn usage_up_to_the_warning_threshold_is_allowed() {
        let l = limit(1000, 0);
        assert_eq!(l.decide(0, 1), Decision::Allow);
        assert_eq!(l.decide(700, 100), Decision::Allow);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn usage_past_the_threshold_up_to_the_hard_limit_warns() {
        let l = limit(1000, 200);
        assert_eq!(l.decide(700, 101), Decision::Warn);
        assert_eq!(l.decide(1000, 0), Decision::Warn);
        assert_eq!(l.decide(1000, 200), Decision::Warn);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn usage_past_the_hard_limit_is_rejected() {
        let l = limit(1000, 200);
        assert_eq!(l.decide(1000, 201), Decision::Reject);
        assert_eq!(l.decide(1200, 1), Decision::Reject);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn zero_amount_at_the_hard_limit_is_still_admitted() {
        assert_eq!(limit(10, 0).decide(10, 0), Decision::Warn);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn unlimited_allows_any_amount() {
        let l = Limit {
            unlimited: true,
            ..limit(0, 0)
        };
        assert_eq!(l.decide(u64::MAX, u64::MAX), Decision::Allow);
        assert_eq!(l.remaining(5), u64::MAX);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn huge_numbers_do_not_overflow() {
        let l = limit(u64::MAX, u64::MAX);
        assert_eq!(l.hard(), u64::MAX);
        assert_eq!(l.decide(u64::MAX, 1), Decision::Reject);
        assert_eq!(l.decide(u64::MAX - 1, 1), Decision::Warn);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn warn_threshold_is_exact_at_its_boundary() {
        let l = Limit {
            warn_at: WarnAt::from_fraction(0.333333).unwrap(),
            ..limit(1_000_000, 0)
        };
        assert_eq!(l.decide(333_333, 0), Decision::Allow);
        assert_eq!(l.decide(333_333, 1), Decision::Warn);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn warn_at_outside_zero_to_one_is_refused() {
        assert_eq!(WarnAt::from_fraction(1.5), None);
        assert_eq!(WarnAt::from_fraction(-0.1), None);
        assert_eq!(WarnAt::from_fraction(f64::NAN), None);
        assert_eq!(WarnAt::from_fraction(0.8), Some(WarnAt::DEFAULT));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn remaining_counts_down_to_zero_at_the_hard_limit() {
        let l = limit(100, 20);
        assert_eq!(l.remaining(0), 120);
        assert_eq!(l.remaining(120), 0);
        assert_eq!(l.remaining(500), 0);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn worst_decision_wins() {
        assert_eq!(Decision::Allow.worst(Decision::Warn), Decision::Warn);
        assert_eq!(Decision::Reject.worst(Decision::Warn), Decision::Reject);
    }
}
