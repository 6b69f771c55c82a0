//! The filter's JSON configuration (`FilterConfig::from_json`): parsing and validation
//! never panic, and a config that was accepted is accepted again, unchanged, from the
//! JSON it serialises to (the control plane validates filter configs the same way). A
//! priced cost (`costs.priced`) keeps the bounds its arithmetic is exact within, and no
//! model is priced above the weights an unknown one pays.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_protocol::check::AMOUNT_MAX;
use tollgate_protocol::price::{DIVISOR_MAX, PARTS_MAX, WEIGHT_MAX};
use tollgate_protocol::FilterConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = FilterConfig::from_json(data) else {
        return;
    };
    let json = serde_json::to_vec(&config).expect("a config serialises");
    let again = FilterConfig::from_json(&json).expect("a valid config's own JSON is valid");
    assert_eq!(again, config);

    // What validation promises the filter.
    assert!((1..=60_000).contains(&config.control_plane.timeout_ms));
    assert!(!config.control_plane.cluster.is_empty());
    assert!(!config.matching.include_paths.is_empty());
    // Amounts the filter asks for: the control plane counts no more than AMOUNT_MAX.
    let amounts = 1..=AMOUNT_MAX;
    assert!(amounts.contains(&config.costs.stream_reserve_bytes));
    assert!(amounts.contains(&config.budgets.want));
    assert!(config.costs.response_reserve <= AMOUNT_MAX);
    // A priced cost: the bounds its arithmetic is exact within, and what it holds.
    if let Some(priced) = &config.costs.priced {
        assert!((1..=PARTS_MAX).contains(&priced.parts.len()));
        assert!((1..=DIVISOR_MAX).contains(&priced.divisor));
        for weights in priced.prices.values() {
            assert!(weights
                .values()
                .all(|w| w.unsigned_abs() <= WEIGHT_MAX as u64));
        }
        let highest = priced.highest_weights();
        assert_eq!(highest.len(), priced.parts.len());
        for (resource, reserve) in priced.reserves() {
            assert!(reserve <= AMOUNT_MAX, "{resource}");
        }
        let resources: Vec<&str> = priced.resources().collect();
        let mut unique = resources.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), resources.len(), "each priced resource once");
        for model in ["gpt-4o", "", "*", "claude-sonnet-4-5-20250929"] {
            if let Some(weights) = priced.weights_of(Some(model)) {
                // Never above the highest, which an unknown model pays.
                assert!(weights.iter().zip(&highest).all(|(w, h)| w <= h));
            }
        }
        priced.includes_usage_at("/v1/chat/completions?stream=1");
    }
    for (method, path) in [
        ("GET", "/"),
        ("", ""),
        ("POST", "?/x"),
        ("GET", "/health?a"),
    ] {
        config.counts(method, path);
    }
});
