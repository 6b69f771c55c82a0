//! A request body's bytes against what the control plane has counted for it.
//!
//! `content-length` is reserved at the headers. Envoy then hands the body over in
//! chunks; while the filter keeps it paused (waiting for a decision) Envoy buffers, and each
//! callback reports everything buffered so far. Bytes past the reservation are checked
//! before they are let through, so an over-quota body is refused before the upstream
//! sees its end, whatever `content-length` said or whether there was one.
//!
//! Each check asks ahead, twice as far as the last one (up to [`MAX_GROWTH`] times
//! `stream_reserve_bytes`): a long upload pauses a handful of times, not once per
//! chunk, and every pause is a chance for Envoy's buffer to fill (see envoy/README.md).

use tollgate_protocol::check::AMOUNT_MAX;

/// How many times `stream_reserve_bytes` one check may ask ahead at most.
pub const MAX_GROWTH: u64 = 16;

/// Request body bookkeeping of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyMeter {
    /// `request_bytes` the control plane counted for this request.
    reserved: u64,
    /// Bytes let through to the upstream.
    released: u64,
    /// Bytes Envoy buffers for the filter, not yet let through.
    buffered: u64,
    /// Whether the body has ended.
    ended: bool,
    /// The last reservation's size.
    last_reserved: u64,
}

impl BodyMeter {
    /// Envoy reports a body callback: `buffered` is everything it now buffers for the
    /// filter (the new chunk included).
    pub fn on_data(&mut self, buffered: u64, end_of_stream: bool) {
        self.buffered = buffered;
        self.ended |= end_of_stream;
    }

    /// The body ended (trailers arrived).
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The control plane counted `amount` more bytes for this request.
    pub fn reserve(&mut self, amount: u64) {
        self.reserved = self.reserved.saturating_add(amount);
        self.last_reserved = amount;
    }

    /// What Envoy buffers goes on to the upstream.
    pub fn release(&mut self) {
        self.released = self.released.saturating_add(self.buffered);
        self.buffered = 0;
    }

    /// Bytes seen but not yet counted.
    pub fn shortfall(&self) -> u64 {
        self.released
            .saturating_add(self.buffered)
            .saturating_sub(self.reserved)
    }

    /// What Envoy buffers for the filter: bytes `from..from + buffered` of the body,
    /// `from` being what it already let through.
    pub fn window(&self) -> (u64, u64) {
        (self.released, self.buffered)
    }

    /// Whether the body has ended.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes still counted and not yet seen.
    pub fn headroom(&self) -> u64 {
        self.reserved
            .saturating_sub(self.released.saturating_add(self.buffered))
    }

    /// Whether the next reservation is due: nothing is left, or less than half of the
    /// last one. Asking earlier would keep two reservations ahead of a slow body (a
    /// trickle would cost a check more and buffer three times what it sends); asking
    /// later would pause a fast one while the answer travels.
    pub fn running_low(&self) -> bool {
        let left = self.headroom();
        left == 0 || left < self.last_reserved / 2
    }

    /// How far the next check asks ahead: at least `base`, twice the last reservation,
    /// at most `MAX_GROWTH` times `base`, and never more than a check may ask for.
    pub fn ahead(&self, base: u64) -> u64 {
        self.last_reserved
            .saturating_mul(2)
            .clamp(base, base.saturating_mul(MAX_GROWTH))
            .min(AMOUNT_MAX)
    }

    /// How much to ask for to cover the shortfall: exactly it once the body has ended,
    /// else at least `base` bytes ahead, growing with each check up to `MAX_GROWTH`
    /// times `base`; never more than a check may ask for ([`AMOUNT_MAX`]).
    pub fn ask(&self, base: u64) -> u64 {
        let need = self.shortfall();
        let ask = if self.ended {
            need
        } else {
            need.max(self.ahead(base))
        };
        ask.min(AMOUNT_MAX)
    }

    /// What the settlement corrects: bytes that reached the upstream minus bytes
    /// counted (negative: a refund of what was reserved and never sent).
    pub fn correction(&self) -> i64 {
        let released = i64::try_from(self.released).unwrap_or(i64::MAX);
        let reserved = i64::try_from(self.reserved).unwrap_or(i64::MAX);
        released.saturating_sub(reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_matching_its_content_length_needs_nothing_more() {
        let mut body = BodyMeter::default();
        body.reserve(100);
        body.on_data(60, false);
        assert_eq!(body.shortfall(), 0);
        body.release();
        body.on_data(40, true);
        assert_eq!(body.shortfall(), 0);
        body.release();
        assert_eq!(body.correction(), 0);
    }

    #[test]
    fn streaming_body_asks_ahead_until_it_ends_then_exactly() {
        let mut body = BodyMeter::default();
        body.on_data(10, false);
        assert_eq!(body.ask(64), 64);
        body.reserve(64);
        body.release();
        body.on_data(100, true);
        assert_eq!(body.shortfall(), 46);
        assert_eq!(body.ask(64), 46);
    }

    #[test]
    fn a_long_upload_asks_further_ahead_each_time_up_to_a_bound() {
        let mut body = BodyMeter::default();
        let mut asks = Vec::new();
        for _ in 0..7 {
            body.release();
            body.on_data(body.reserved - body.released + 1, false);
            let ask = body.ask(10);
            asks.push(ask);
            body.reserve(ask);
        }
        assert_eq!(asks, vec![10, 20, 40, 80, 160, 160, 160]);
    }

    #[test]
    fn the_next_reservation_is_due_once_half_of_the_last_is_spent() {
        let mut body = BodyMeter::default();
        body.reserve(0); // the admission of a body without content-length
        assert!(body.running_low(), "nothing is reserved yet");
        body.reserve(1000);
        body.on_data(500, false);
        body.release();
        assert!(!body.running_low(), "half is left");
        body.on_data(1, false);
        body.release();
        assert!(body.running_low());
        body.reserve(2000);
        assert!(!body.running_low());
    }

    #[test]
    fn asks_never_pass_what_the_control_plane_counts() {
        let mut body = BodyMeter::default();
        body.reserve(AMOUNT_MAX);
        assert_eq!(body.ahead(AMOUNT_MAX), AMOUNT_MAX, "16 times the base");
        assert_eq!(body.ask(AMOUNT_MAX), AMOUNT_MAX);
        body.on_data(u64::MAX, true);
        assert_eq!(body.ask(1), AMOUNT_MAX, "a shortfall past it");
    }

    #[test]
    fn shorter_body_than_announced_is_refunded() {
        let mut body = BodyMeter::default();
        body.reserve(1000);
        body.on_data(300, false);
        body.release();
        assert_eq!(body.correction(), -700);
    }

    #[test]
    fn buffered_bytes_that_never_went_upstream_are_not_counted() {
        let mut body = BodyMeter::default();
        body.reserve(64);
        body.on_data(64, false);
        body.release();
        body.on_data(500, false); // buffered while a check was refused
        assert_eq!(body.shortfall(), 500);
        assert_eq!(body.correction(), 0);
    }
}
