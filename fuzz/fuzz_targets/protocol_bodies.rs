//! The decision protocol's JSON bodies: the answers the filter parses from the control
//! plane (check, lease, settle, release) and the requests the control plane parses from
//! the filter. The first byte picks the type, the rest is the body.
//!
//! Parsing never panics; the control plane's way of parsing (`serde_path_to_error`, then
//! the end of input, as `control-plane/src/http/json.rs` does) accepts exactly what plain
//! `serde_json` accepts, with the same value; and what was parsed round-trips through its
//! own JSON.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tollgate_protocol::{
    CheckRequest, CheckResponse, LeaseRequest, LeaseResponse, ReleaseRequest, ReleaseResponse,
    SettleRequest, SettleResponse,
};

fn body<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let plain = serde_json::from_slice::<T>(data).ok();
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let tracked = serde_path_to_error::deserialize::<_, T>(&mut deserializer)
        .ok()
        .filter(|_| deserializer.end().is_ok());
    assert_eq!(
        plain, tracked,
        "serde_path_to_error disagrees with serde_json"
    );
    let Some(value) = plain else {
        return;
    };
    let json = serde_json::to_vec(&value).expect("a parsed body serialises");
    let again = serde_json::from_slice::<T>(&json).expect("a body's own JSON parses");
    assert_eq!(again, value);
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 8 {
        // What the filter parses.
        0 => body::<CheckResponse>(rest),
        1 => body::<LeaseResponse>(rest),
        2 => body::<SettleResponse>(rest),
        3 => body::<ReleaseResponse>(rest),
        // What the control plane parses.
        4 => body::<CheckRequest>(rest),
        5 => body::<LeaseRequest>(rest),
        6 => body::<SettleRequest>(rest),
        _ => body::<ReleaseRequest>(rest),
    }
});
