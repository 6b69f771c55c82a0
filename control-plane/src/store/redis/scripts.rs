//! The Lua scripts, one per store call, each assembled from the shared pieces it uses
//! (decimal arithmetic past 2^53, windows, seed markers, deadlines, refunds, holds).
//! `EVALSHA` runs them; the redis crate reloads one a restarted Redis forgot.

use redis::Script;

/// Every script of the store.
#[derive(Clone)]
pub(super) struct Scripts {
    /// A check or read over every limit of a request (`check.lua`).
    pub(super) check: Script,
    /// Counters re-created from the history (`seed.lua`).
    pub(super) seed: Script,
    /// A hand-made reset or adjustment (`adjust.lua`).
    pub(super) adjust: Script,
    /// A settlement (`settle.lua`).
    pub(super) settle: Script,
    /// A lease's return and the next budget (`lease.lua`).
    pub(super) lease: Script,
    /// Gauge holds given back (`release.lua`).
    pub(super) release: Script,
    /// A refused request's check taken back (`cancel.lua`).
    pub(super) cancel: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            check: Script::new(concat!(
                include_str!("scripts/decimal.lua"),
                include_str!("scripts/window.lua"),
                include_str!("scripts/marker.lua"),
                include_str!("scripts/deadline.lua"),
                include_str!("scripts/check.lua")
            )),
            seed: Script::new(include_str!("scripts/seed.lua")),
            adjust: Script::new(concat!(
                include_str!("scripts/decimal.lua"),
                include_str!("scripts/adjust.lua")
            )),
            settle: Script::new(concat!(
                include_str!("scripts/decimal.lua"),
                include_str!("scripts/refund.lua"),
                include_str!("scripts/hold.lua"),
                include_str!("scripts/marker.lua"),
                include_str!("scripts/settle.lua")
            )),
            lease: Script::new(concat!(
                include_str!("scripts/decimal.lua"),
                include_str!("scripts/window.lua"),
                include_str!("scripts/refund.lua"),
                include_str!("scripts/marker.lua"),
                include_str!("scripts/deadline.lua"),
                include_str!("scripts/lease.lua")
            )),
            release: Script::new(concat!(
                include_str!("scripts/hold.lua"),
                include_str!("scripts/release.lua")
            )),
            cancel: Script::new(concat!(
                include_str!("scripts/decimal.lua"),
                include_str!("scripts/refund.lua"),
                include_str!("scripts/hold.lua"),
                include_str!("scripts/cancel.lua")
            )),
        }
    }
}
