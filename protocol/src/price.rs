//! The arithmetic of priced costs (`costs.priced`): a sum of weighted parts, in exact
//! integers, rounded up once.
//!
//! A response that reports `n₁ … nₖ` of its parts (prompt tokens, completion tokens,
//! cached tokens) at weights `w₁ … wₖ` (the model's prices, in the resource's unit per
//! `divisor` units of each part) costs
//!
//! ```text
//! ⌈ (w₁·n₁ + … + wₖ·nₖ) / divisor ⌉, at least 0 and at most AMOUNT_MAX
//! ```
//!
//! The sum is exact (128-bit: within the bounds the configuration allows, no term and no
//! sum can overflow) and is divided once, rounding up, so a request is never charged less
//! than its exact price, and by less than one unit more. A weight may be negative (a
//! discount, such as cached prompt tokens that the prompt count already includes); a sum
//! below zero costs 0.

use crate::check::AMOUNT_MAX;

/// The largest weight, either way: 10^15 units per `divisor` units of a part.
pub const WEIGHT_MAX: i64 = 1_000_000_000_000_000;

/// The largest divisor.
pub const DIVISOR_MAX: u64 = 1_000_000_000_000_000;

/// The most parts one priced cost may have.
pub const PARTS_MAX: usize = 16;

/// What `counts` of the parts cost at `weights`: `⌈Σ wᵢ·nᵢ / divisor⌉`, clamped to
/// `0..=AMOUNT_MAX` (a divisor of 0 counts as 1). Parts past the shorter slice count
/// nothing.
///
/// Exact while every |weight| is at most [`WEIGHT_MAX`] and there are at most
/// [`PARTS_MAX`] of them (each term is below 2^114, the sum below 2^118, far from
/// i128's 2^127); past that it saturates rather than wraps.
pub fn price(weights: &[i64], counts: &[u64], divisor: u64) -> u64 {
    let total = weights
        .iter()
        .zip(counts)
        .map(|(weight, count)| i128::from(*weight).saturating_mul(i128::from(*count)))
        .fold(0_i128, i128::saturating_add);
    if total <= 0 {
        return 0;
    }
    let divisor = i128::from(divisor.max(1));
    let rounded_up = total / divisor + i128::from(total % divisor != 0);
    u64::try_from(rounded_up).map_or(AMOUNT_MAX, |amount| amount.min(AMOUNT_MAX))
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    #[wasm_bindgen_test(unsupported = test)]
    fn parts_are_summed_exactly_at_their_weights() {
        // gpt-4o per token in micro-USD ×1000: 2.5, 10 and -1.25 µUSD.
        let weights = [2_500, 10_000, -1_250];
        assert_eq!(price(&weights, &[1_000, 500, 400], 1_000), 7_000);
        assert_eq!(price(&[3, 15], &[25, 15], 1), 300);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_fraction_is_rounded_up_once_never_per_part() {
        // 3 parts of 1/3 each: exactly 1, not 3.
        assert_eq!(price(&[1, 1, 1], &[1, 1, 1], 3), 1);
        assert_eq!(
            price(&[1], &[1], 1_000_000),
            1,
            "the smallest fraction costs 1"
        );
        assert_eq!(price(&[1], &[1_000_001], 1_000_000), 2);
        assert_eq!(price(&[1], &[2_000_000], 1_000_000), 2, "exact stays exact");
        assert_eq!(price(&[7], &[0], 3), 0);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_sum_below_zero_costs_nothing() {
        // More cached tokens reported than prompt tokens: garbage, and never a credit.
        assert_eq!(price(&[2, -1], &[1, 5], 1), 0);
        assert_eq!(price(&[2, -1], &[3, 5], 1), 1);
        assert_eq!(price(&[-WEIGHT_MAX], &[u64::MAX], 1), 0);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_largest_inputs_are_exact_or_clamped_never_wrapped() {
        let most = [WEIGHT_MAX; PARTS_MAX];
        let counts = [u64::MAX; PARTS_MAX];
        assert_eq!(price(&most, &counts, DIVISOR_MAX), AMOUNT_MAX);
        // The exact sum past the clamp: one part of 2^64-1 at 10^15 over 10^15 is 2^64-1.
        assert_eq!(price(&[WEIGHT_MAX], &[u64::MAX], DIVISOR_MAX), AMOUNT_MAX);
        // Just below the clamp: exact.
        let n = AMOUNT_MAX - 1;
        assert_eq!(price(&[1], &[n], 1), n);
        assert_eq!(price(&[WEIGHT_MAX], &[n], DIVISOR_MAX), n);
        // Large terms of both signs cancel exactly.
        let mixed = [WEIGHT_MAX, -WEIGHT_MAX, 1];
        assert_eq!(price(&mixed, &[u64::MAX, u64::MAX, 5], 1), 5);
        // Outside the configuration's bounds it saturates instead of wrapping.
        assert_eq!(price(&[i64::MAX; 4], &[u64::MAX; 4], 1), AMOUNT_MAX);
        assert_eq!(price(&[i64::MIN; 4], &[u64::MAX; 4], 1), 0);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_zero_divisor_divides_by_one_and_missing_parts_count_nothing() {
        assert_eq!(price(&[3], &[4], 0), 12);
        assert_eq!(price(&[3, 5], &[4], 1), 12);
        assert_eq!(price(&[3], &[4, 9], 1), 12);
        assert_eq!(price(&[], &[], 1), 0);
    }
}
