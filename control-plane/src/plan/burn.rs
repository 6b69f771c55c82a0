//! Burn rates and forecasts for a tenant's view of its quota — without I/O, in exact
//! integers and milliseconds.
//!
//! **The rate** of a windowed limit is the usage counted from a point `since` until
//! now, divided by the time in between. A point can serve only where the usage of the
//! limit's counters is known there: the start of one of its windows (a calendar window,
//! or a rolling bucket), where its counter held zero, or a usage sample the history
//! flusher took of one (`store/samples.rs`). Counters that ended before the point are
//! taken as unchanged since (usage is only ever counted in the current one; a refund
//! into an older one is not seen, so the rate can only be higher for it), and counters
//! that started after it held zero there. A counter whose epoch moved (a reset, an
//! adjustment, a take-back) offers no point from before the move: its zero at its start
//! and its older samples say nothing of how usage grew since.
//!
//! Of the points in the last ten minutes (the samples kept) and at least a second ago,
//! the rate starts from the newest one at least [`RATE_LOOKBACK_MS`] (five minutes)
//! ago, so that it covers the whole lookback; without one, from the oldest one after
//! it. Without any, the rate is unknown (`null`): the limit was not used for ten
//! minutes, or only since the last flush, or its windows are too short to tell
//! anything (a per-second limit's).
//!
//! **The forecast** runs the rate forward from the usage now: the limit runs out when
//! `used + rate × t` reaches the hard limit. A calendar window that resets first, or
//! for a rolling window a period passing first (everything counted now has then left
//! the window, and a period of this rate fits), means it does not run out at this rate.

use chrono::{DateTime, Duration, Utc};
use tollgate_protocol::quota::{ForecastOutcome, RateBasis, RATE_LOOKBACK_MS};

use super::check::Planned;
use crate::model::window::{Series, Window, WindowKind};
use crate::store::counter_key;
use crate::store::samples::{Sampled, SAMPLES_KEPT_MS};

/// A rate needs at least this much time between its point and now.
pub const MIN_SPAN_MS: i64 = 1_000;

/// At most this many windows of a limit are read for its rate: the 61 buckets of a
/// rolling limit at most, and for a calendar limit the current window and enough
/// before it to reach back the ten minutes (a per-second limit gets a minute).
pub const MAX_RATE_WINDOWS: usize = 64;

/// A burn rate: `units` counted from `since_ms` (unix ms) over `span_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Usage counted over the span.
    pub units: u64,
    /// Where the span starts.
    pub since_ms: i64,
    /// How long it is (at least [`MIN_SPAN_MS`]).
    pub span_ms: u64,
    /// What the point it starts from is: a sample, or a window's start.
    pub basis: RateBasis,
}

impl Rate {
    /// Units per second, for display (the accounting stays in `units` and `span_ms`).
    pub fn per_second(&self) -> f64 {
        self.units as f64 * 1_000.0 / self.span_ms as f64
    }
}

/// The windows of `series` whose counters a rate at `now` reads, current first: the
/// rolling buckets, or the current calendar window and those before it, that ended
/// within the samples kept (ten minutes), [`MAX_RATE_WINDOWS`] at most.
pub fn rate_windows(series: Series, now: DateTime<Utc>) -> Vec<Window> {
    let horizon = now - Duration::milliseconds(SAMPLES_KEPT_MS);
    let recent = |w: &Window| w.end > horizon;
    match series.kind {
        WindowKind::Rolling => (series.windows_at(now).unwrap_or_default().into_iter())
            .take_while(recent)
            .take(MAX_RATE_WINDOWS)
            .collect(),
        WindowKind::Calendar => {
            let mut windows: Vec<Window> = Vec::new();
            let mut at = Some(now);
            while let Some(window) = at.and_then(|t| series.period.window_at(t)) {
                if !recent(&window) || windows.len() == MAX_RATE_WINDOWS {
                    break;
                }
                at = window.start.checked_sub_signed(Duration::seconds(1));
                windows.push(window);
            }
            windows
        }
    }
}

/// The counter keys of `windows` of `planned`'s limit in the tree `root`.
pub fn rate_keys(planned: &Planned, root: &str, windows: &[Window]) -> Vec<String> {
    let Some(series) = planned.series() else {
        return Vec::new();
    };
    windows
        .iter()
        .map(|w| {
            counter_key(
                root,
                &planned.tenant,
                &planned.def.resource,
                &series.name(),
                w.start.timestamp(),
            )
        })
        .collect()
}

/// A point a rate can start from: when, what the limit's usage grew by from there
/// until now, and what it is.
#[derive(Debug, Clone, Copy)]
struct Point {
    at_ms: i64,
    units: u64,
    basis: RateBasis,
}

/// The burn rate of a limit whose `counters` (current first, as [`rate_windows`] lists
/// them, with what the store read of each) are as read at `now_ms`; `None` when no
/// point is known in the last ten minutes (see the module's documentation).
pub fn rate(counters: &[(Window, Sampled)], now_ms: i64) -> Option<Rate> {
    let mut points = Vec::new();
    // What every counter newer than the one at hand holds now: all of it is new.
    let mut newer: u64 = 0;
    for (window, sampled) in counters {
        let (start_ms, end_ms) = (
            window.start.timestamp_millis(),
            window.end.timestamp_millis(),
        );
        let (now_used, epoch) = sampled.now.map_or((0, 0), |n| (n.used, n.epoch));
        let grown = |base: u64| now_used.saturating_sub(base).saturating_add(newer);
        for sample in &sampled.samples {
            if sample.epoch == epoch && (start_ms..end_ms).contains(&sample.at_ms) {
                points.push(Point {
                    at_ms: sample.at_ms,
                    units: grown(sample.used),
                    basis: RateBasis::Sample,
                });
            }
        }
        if epoch == 0 {
            points.push(Point {
                at_ms: start_ms,
                units: grown(0),
                basis: RateBasis::WindowStart,
            });
        }
        newer = newer.saturating_add(now_used);
    }
    let horizon = now_ms.saturating_sub(SAMPLES_KEPT_MS);
    let target = now_ms.saturating_sub(RATE_LOOKBACK_MS as i64);
    let latest = now_ms.saturating_sub(MIN_SPAN_MS);
    let usable = points
        .into_iter()
        .filter(|p| (horizon..=latest).contains(&p.at_ms));
    // A sample before a window start at the same instant: it was measured.
    let rank = |p: &Point| (p.at_ms, p.basis == RateBasis::Sample);
    let (covering, after): (Vec<Point>, Vec<Point>) = usable.partition(|p| p.at_ms <= target);
    let chosen = match covering.into_iter().max_by_key(rank) {
        Some(point) => point,
        None => after
            .into_iter()
            .min_by_key(|p| (p.at_ms, p.basis != RateBasis::Sample))?,
    };
    Some(Rate {
        units: chosen.units,
        since_ms: chosen.at_ms,
        span_ms: u64::try_from(now_ms - chosen.at_ms).ok()?,
        basis: chosen.basis,
    })
}

/// When a limit's usage stops counting as it is, for its forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resets {
    /// A calendar window, which resets in this many milliseconds.
    In(u64),
    /// A rolling window of this period, in milliseconds: usage leaves it as it ages.
    Rolling(u64),
    /// A gauge: usage is what is held, it does not accumulate.
    Never,
}

/// What a forecast says: the case, and for [`ForecastOutcome::RunsOut`] and
/// [`ForecastOutcome::Exhausted`] how many milliseconds from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlook {
    /// The case.
    pub outcome: ForecastOutcome,
    /// Milliseconds until the hard limit is reached, rounded down.
    pub runs_out_in_ms: Option<u64>,
}

impl Outlook {
    fn only(outcome: ForecastOutcome) -> Outlook {
        Outlook {
            outcome,
            runs_out_in_ms: None,
        }
    }
}

/// When a limit whose hard limit is `limit` (`unlimited`: it never rejects) and whose
/// usage is `used` now runs out at `rate`, given when it `resets`.
pub fn forecast(
    limit: u64,
    unlimited: bool,
    used: u64,
    rate: Option<&Rate>,
    resets: Resets,
) -> Outlook {
    if unlimited {
        return Outlook::only(ForecastOutcome::Unlimited);
    }
    if used >= limit {
        return Outlook {
            outcome: ForecastOutcome::Exhausted,
            runs_out_in_ms: Some(0),
        };
    }
    let Some(rate) = rate.filter(|_| resets != Resets::Never) else {
        return Outlook::only(ForecastOutcome::NoRate);
    };
    if rate.units == 0 {
        return Outlook::only(ForecastOutcome::NotBurning);
    }
    // used + units / span × t = limit  ⇔  t = (limit - used) × span / units.
    let left = u128::from(limit - used) * u128::from(rate.span_ms) / u128::from(rate.units);
    let left = u64::try_from(left).unwrap_or(u64::MAX);
    let resets_first = match resets {
        Resets::In(ms) | Resets::Rolling(ms) => left >= ms,
        Resets::Never => true,
    };
    if resets_first {
        return Outlook::only(ForecastOutcome::ResetsFirst);
    }
    Outlook {
        outcome: ForecastOutcome::RunsOut,
        runs_out_in_ms: Some(left),
    }
}

/// How `series`' usage stops counting, from `current` (its current window) at `now`.
pub fn resets(series: Series, current: &Window, now: DateTime<Utc>) -> Resets {
    match series.kind {
        WindowKind::Calendar => {
            let ms = (current.end - now).num_milliseconds();
            Resets::In(u64::try_from(ms).unwrap_or(0))
        }
        WindowKind::Rolling => {
            let period = series.period.rolling_len_s().saturating_mul(1_000);
            Resets::Rolling(u64::try_from(period).unwrap_or(u64::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::window::Period;
    use crate::store::{Sample, Snapshot};

    /// 2026-11-17 13:05:09 UTC, in ms.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 17, 13, 5, 9).unwrap()
    }

    fn ms(at: DateTime<Utc>) -> i64 {
        at.timestamp_millis()
    }

    fn ago(seconds: i64) -> i64 {
        ms(now()) - seconds * 1_000
    }

    fn sampled(used: u64, epoch: u64, samples: &[(i64, u64)]) -> Sampled {
        Sampled {
            now: Some(Snapshot { used, epoch }),
            samples: (samples.iter())
                .map(|&(at_ms, used)| Sample {
                    at_ms,
                    used,
                    epoch: 0,
                })
                .collect(),
        }
    }

    fn counters(series: Series, read: Vec<Sampled>) -> Vec<(Window, Sampled)> {
        rate_windows(series, now()).into_iter().zip(read).collect()
    }

    fn month() -> Series {
        Series::calendar(Period::Month)
    }

    #[test]
    fn the_rate_starts_from_the_newest_sample_that_covers_the_five_minutes() {
        // 100 at -6 min, 160 at -4 min, 200 now: 100 units over 6 minutes.
        let read = sampled(200, 0, &[(ago(360), 100), (ago(240), 160)]);
        let rate = rate(&counters(month(), vec![read]), ms(now())).unwrap();
        assert_eq!(
            rate,
            Rate {
                units: 100,
                since_ms: ago(360),
                span_ms: 360_000,
                basis: RateBasis::Sample
            }
        );
        assert!((rate.per_second() - 100.0 / 360.0).abs() < 1e-12);
    }

    #[test]
    fn without_a_sample_that_old_the_rate_starts_from_the_oldest_after_it() {
        let read = sampled(80, 0, &[(ago(120), 50), (ago(60), 70)]);
        let rate = rate(&counters(month(), vec![read]), ms(now())).unwrap();
        assert_eq!((rate.units, rate.span_ms), (30, 120_000));
        // Samples past the ten minutes kept, or under a second old, serve for nothing.
        let stale = sampled(80, 0, &[(ago(601), 10)]);
        assert_eq!(
            super::rate(&counters(month(), vec![stale]), ms(now())),
            None
        );
        let fresh = sampled(80, 0, &[(ms(now()) - 999, 79)]);
        assert_eq!(
            super::rate(&counters(month(), vec![fresh]), ms(now())),
            None
        );
    }

    #[test]
    fn a_window_that_started_lately_counts_from_zero_at_its_start() {
        // The hour began 5 min 9 s ago: all of its 90 units since then.
        let hour = Series::calendar(Period::Hour);
        let windows = rate_windows(hour, now());
        assert_eq!(windows.len(), 2, "and the hour before, ended 5 min ago");
        let read = vec![sampled(90, 0, &[]), sampled(1_000, 0, &[])];
        let rate = rate(&counters(hour, read), ms(now())).unwrap();
        assert_eq!(
            (rate.units, rate.since_ms, rate.basis),
            (90, ago(309), RateBasis::WindowStart)
        );
    }

    #[test]
    fn short_windows_tell_the_rate_from_their_starts() {
        // Per-minute windows: the current one (9 s old) and ten before it. The newest
        // start at least five minutes back is 13:00:00, 5 min 9 s ago: 6 windows since.
        let minute = Series::calendar(Period::Minute);
        let windows = rate_windows(minute, now());
        assert_eq!(windows.len(), 11);
        assert_eq!(ms(windows[10].start), ago(609));
        let read = (0..11).map(|i| sampled(10 + i, 0, &[])).collect();
        let rate = rate(&counters(minute, read), ms(now())).unwrap();
        assert_eq!(rate.since_ms, ago(309));
        assert_eq!(rate.units, 10 + 11 + 12 + 13 + 14 + 15);
        assert_eq!(rate.basis, RateBasis::WindowStart);
    }

    #[test]
    fn a_rolling_minute_counts_over_its_own_buckets() {
        let rolling = Series {
            period: Period::Minute,
            kind: WindowKind::Rolling,
        };
        let windows = rate_windows(rolling, now());
        assert_eq!(windows.len(), 61, "every bucket ended within ten minutes");
        let read = (0..61).map(|_| sampled(2, 0, &[])).collect();
        let rate = rate(&counters(rolling, read), ms(now())).unwrap();
        // The current bucket began just now, the oldest a minute ago.
        assert_eq!(
            (rate.units, rate.span_ms),
            (122, 60_000),
            "since the oldest"
        );
    }

    #[test]
    fn a_long_rolling_bucket_uses_its_samples_and_the_newer_buckets_whole() {
        // Rolling days count in 24-minute buckets: at 13:05:09 the current one began at
        // 12:48:00, and the one before ended over ten minutes ago.
        let rolling = Series {
            period: Period::Day,
            kind: WindowKind::Rolling,
        };
        let windows = rate_windows(rolling, now());
        assert_eq!(windows.len(), 1);
        assert_eq!(ms(windows[0].start), ago(17 * 60 + 9));
        // A bucket that began 69 s ago and the one before it, sampled at -6 min (40)
        // and holding 55 now: 15 more there, and the 7 of the new one.
        let start = now() - Duration::seconds(69);
        let bucket = Duration::minutes(24);
        let current = Window {
            start,
            end: start + bucket,
        };
        let before = Window {
            start: start - bucket,
            end: start,
        };
        let read = vec![
            (current, sampled(7, 0, &[(ago(30), 3)])),
            (before, sampled(55, 0, &[(ago(360), 40)])),
        ];
        let rate = rate(&read, ms(now())).unwrap();
        assert_eq!((rate.units, rate.since_ms), (15 + 7, ago(360)));
    }

    #[test]
    fn samples_from_before_a_reset_or_an_adjustment_say_nothing() {
        // Epoch 1 now: the sample of epoch 0 and the window's zero at its start are
        // from before the change.
        let read = sampled(5, 1, &[(ago(360), 900)]);
        assert_eq!(rate(&counters(month(), vec![read]), ms(now())), None);
        let mut after = sampled(25, 1, &[(ago(360), 900)]);
        after.samples.push(Sample {
            at_ms: ago(100),
            used: 5,
            epoch: 1,
        });
        let rate = rate(&counters(month(), vec![after]), ms(now())).unwrap();
        assert_eq!((rate.units, rate.span_ms), (20, 100_000));
    }

    #[test]
    fn a_limit_nobody_used_for_ten_minutes_has_no_rate() {
        let read = Sampled::default();
        assert_eq!(rate(&counters(month(), vec![read]), ms(now())), None);
    }

    fn per_minute(units: u64) -> Rate {
        Rate {
            units,
            since_ms: 0,
            span_ms: 60_000,
            basis: RateBasis::Sample,
        }
    }

    #[test]
    fn a_limit_runs_out_when_the_rate_fills_its_headroom_before_the_reset() {
        // 600 left at 100 a minute: 6 minutes.
        let outlook = forecast(
            1_000,
            false,
            400,
            Some(&per_minute(100)),
            Resets::In(3_600_000),
        );
        assert_eq!(
            outlook,
            Outlook {
                outcome: ForecastOutcome::RunsOut,
                runs_out_in_ms: Some(360_000)
            }
        );
        // 1 left at 3 a minute: 20 s, rounded down.
        let soon = forecast(10, false, 9, Some(&per_minute(3)), Resets::In(3_600_000));
        assert_eq!(soon.runs_out_in_ms, Some(20_000));
        let odd = forecast(10, false, 9, Some(&per_minute(7)), Resets::In(3_600_000));
        assert_eq!(odd.runs_out_in_ms, Some(8_571), "60000 / 7");
    }

    #[test]
    fn a_window_that_resets_first_never_runs_out_at_this_rate() {
        let rate = per_minute(100);
        let first = forecast(1_000, false, 400, Some(&rate), Resets::In(360_000));
        assert_eq!(first.outcome, ForecastOutcome::ResetsFirst);
        assert_eq!(first.runs_out_in_ms, None);
        let just = forecast(1_000, false, 400, Some(&rate), Resets::In(360_001));
        assert_eq!(just.outcome, ForecastOutcome::RunsOut);
    }

    #[test]
    fn a_rolling_window_runs_out_only_when_a_period_of_the_rate_does_not_fit() {
        let hour = Resets::Rolling(3_600_000);
        let fast = forecast(1_000, false, 400, Some(&per_minute(100)), hour);
        assert_eq!(fast.runs_out_in_ms, Some(360_000));
        // 1 a minute: 600 minutes to fill, but within an hour all that is counted now
        // has left, and 60 fit.
        let slow = forecast(1_000, false, 400, Some(&per_minute(1)), hour);
        assert_eq!(slow.outcome, ForecastOutcome::ResetsFirst);
    }

    #[test]
    fn the_other_cases_say_which_they_are() {
        let rate = per_minute(100);
        let resets = Resets::In(3_600_000);
        let case = |limit, unlimited, used, rate: Option<&Rate>, resets| {
            forecast(limit, unlimited, used, rate, resets).outcome
        };
        assert_eq!(
            case(10, true, 50, Some(&rate), resets),
            ForecastOutcome::Unlimited
        );
        assert_eq!(
            case(10, false, 10, None, resets),
            ForecastOutcome::Exhausted
        );
        assert_eq!(
            forecast(10, false, 12, None, resets).runs_out_in_ms,
            Some(0)
        );
        assert_eq!(case(10, false, 5, None, resets), ForecastOutcome::NoRate);
        assert_eq!(
            case(10, false, 5, Some(&per_minute(0)), resets),
            ForecastOutcome::NotBurning
        );
        assert_eq!(
            case(10, false, 5, Some(&rate), Resets::Never),
            ForecastOutcome::NoRate
        );
    }

    #[test]
    fn huge_limits_are_forecast_exactly() {
        // (2^64 - 2) left at 2^62 per 3 s: just under 12 s, though the product of
        // what is left and the span does not fit 64 bits.
        let rate = Rate {
            units: 1 << 62,
            since_ms: 0,
            span_ms: 3_000,
            basis: RateBasis::Sample,
        };
        let outlook = forecast(u64::MAX, false, 1, Some(&rate), Resets::In(u64::MAX));
        assert_eq!(outlook.runs_out_in_ms, Some(11_999));
        // Longer than 64 bits of milliseconds: the reset comes first.
        let slow = Rate {
            units: 1,
            span_ms: u64::MAX,
            ..rate
        };
        let outlook = forecast(u64::MAX, false, 0, Some(&slow), Resets::In(u64::MAX));
        assert_eq!(outlook.outcome, ForecastOutcome::ResetsFirst);
    }
}
