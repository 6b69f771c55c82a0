//! The filter's JSON configuration (`FilterConfig::from_json`): parsing and validation
//! never panic, and a config that was accepted is accepted again, unchanged, from the
//! JSON it serialises to (the control plane validates filter configs the same way).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_protocol::check::AMOUNT_MAX;
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
    for (method, path) in [
        ("GET", "/"),
        ("", ""),
        ("POST", "?/x"),
        ("GET", "/health?a"),
    ] {
        config.counts(method, path);
    }
});
