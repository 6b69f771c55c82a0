//! Counter windows in UTC.
//!
//! A **calendar** window is aligned to the UTC calendar: a `month` quota resets at 00:00
//! UTC on the 1st, a `week` quota at 00:00 UTC on Monday, a `day` quota at midnight. A new
//! window is a new counter, so no reset job is ever needed.
//!
//! A **rolling** window counts the trailing period. It is kept as [`ROLLING_BUCKETS`]` + 1`
//! buckets of `period / ROLLING_BUCKETS` each: the current bucket and the ones before
//! it. The buckets cover between one period and one period plus one bucket, so a rolling
//! limit is never more generous than the exact trailing window — counted usage can reach
//! the hard limit a little early, never late.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// How many buckets make one rolling period.
pub const ROLLING_BUCKETS: i64 = 60;

/// How long a limit's window lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    /// One UTC second.
    Second,
    /// One UTC minute.
    Minute,
    /// One UTC hour.
    Hour,
    /// One UTC day, from midnight.
    Day,
    /// One ISO week, from 00:00 UTC on Monday.
    Week,
    /// One calendar month, from 00:00 UTC on the 1st.
    Month,
}

/// Whether a limit counts the calendar window or the trailing period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum WindowKind {
    /// Calendar-aligned windows (the default).
    #[default]
    Calendar,
    /// The trailing period, in buckets.
    Rolling,
}

/// One window: `start <= t < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// The first instant of the window; it names the counter.
    pub start: DateTime<Utc>,
    /// The first instant of the next window.
    pub end: DateTime<Utc>,
}

/// The counters one windowed limit is kept in: its period and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Series {
    /// The period.
    pub period: Period,
    /// Calendar or rolling.
    pub kind: WindowKind,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 6] = [
        Period::Second,
        Period::Minute,
        Period::Hour,
        Period::Day,
        Period::Week,
        Period::Month,
    ];

    /// The name stored in PostgreSQL and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// The policy name clients see in `RateLimit-Policy` for a calendar window.
    pub fn policy_name(self) -> &'static str {
        match self {
            Period::Second => "per-second",
            Period::Minute => "per-minute",
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
        }
    }

    /// The window length in seconds for fixed-length periods; `None` for `month`, whose
    /// length varies (the ratelimit draft's `w` is only sent when this is `Some`).
    pub fn fixed_len_s(self) -> Option<u64> {
        match self {
            Period::Second => Some(1),
            Period::Minute => Some(60),
            Period::Hour => Some(3_600),
            Period::Day => Some(86_400),
            Period::Week => Some(604_800),
            Period::Month => None,
        }
    }

    /// The length of the trailing period a rolling limit counts: the fixed length, and
    /// 30 days for a month.
    pub fn rolling_len_s(self) -> i64 {
        match self.fixed_len_s() {
            Some(len) => len as i64,
            None => 30 * 86_400,
        }
    }

    /// The calendar window containing `now`; `None` only at the edge of chrono's range.
    pub fn window_at(self, now: DateTime<Utc>) -> Option<Window> {
        match self {
            Period::Month => {
                let (year, month) = (now.year(), now.month());
                let (next_year, next_month) = if month == 12 {
                    (year.checked_add(1)?, 1)
                } else {
                    (year, month + 1)
                };
                Some(Window {
                    start: first_of_month(year, month)?,
                    end: first_of_month(next_year, next_month)?,
                })
            }
            Period::Week => {
                let monday = now
                    .date_naive()
                    .checked_sub_signed(Duration::days(i64::from(
                        now.weekday().num_days_from_monday(),
                    )))?;
                let start = Utc.from_utc_datetime(&monday.and_hms_opt(0, 0, 0)?);
                Some(Window {
                    start,
                    end: start.checked_add_signed(Duration::days(7))?,
                })
            }
            _ => aligned(now.timestamp(), self.rolling_len_s()),
        }
    }
}

/// The window of `len` seconds, aligned to the Unix epoch, that contains `at`.
fn aligned(at: i64, len: i64) -> Option<Window> {
    let start_s = at.div_euclid(len).checked_mul(len)?;
    Some(Window {
        start: DateTime::from_timestamp(start_s, 0)?,
        end: DateTime::from_timestamp(start_s.checked_add(len)?, 0)?,
    })
}

fn first_of_month(year: i32, month: u32) -> Option<DateTime<Utc>> {
    let midnight = NaiveDate::from_ymd_opt(year, month, 1)?.and_hms_opt(0, 0, 0)?;
    Some(Utc.from_utc_datetime(&midnight))
}

impl Series {
    /// A calendar series.
    pub fn calendar(period: Period) -> Series {
        Series {
            period,
            kind: WindowKind::Calendar,
        }
    }

    /// The series a name in counter keys and usage history stands for.
    pub fn parse(name: &str) -> Option<Series> {
        match name.strip_prefix("rolling-") {
            Some(period) => Some(Series {
                period: period.parse().ok()?,
                kind: WindowKind::Rolling,
            }),
            None => Some(Series::calendar(name.parse().ok()?)),
        }
    }

    /// Whether usage counted in `window` (one of this series' windows) still counts at
    /// `now`.
    pub fn still_counts(self, window: &Window, now: DateTime<Utc>) -> bool {
        match self.kind {
            WindowKind::Calendar => window.end > now,
            WindowKind::Rolling => {
                window.end + Duration::seconds(self.bucket_len_s() * ROLLING_BUCKETS) > now
            }
        }
    }

    /// The series name in counter keys and usage history: the period (`month`), or
    /// `rolling-<period>` for the buckets of a rolling limit.
    pub fn name(self) -> String {
        match self.kind {
            WindowKind::Calendar => self.period.as_str().to_string(),
            WindowKind::Rolling => format!("rolling-{}", self.period),
        }
    }

    /// The policy name clients see (`monthly`, `rolling-hour`).
    pub fn policy_name(self) -> String {
        match self.kind {
            WindowKind::Calendar => self.period.policy_name().to_string(),
            WindowKind::Rolling => self.name(),
        }
    }

    /// The window length for the `w` of the ratelimit headers, when it is fixed.
    pub fn window_len_s(self) -> Option<u64> {
        match self.kind {
            WindowKind::Calendar => self.period.fixed_len_s(),
            WindowKind::Rolling => u64::try_from(self.period.rolling_len_s()).ok(),
        }
    }

    /// The length of one rolling bucket in seconds.
    pub fn bucket_len_s(self) -> i64 {
        (self.period.rolling_len_s() / ROLLING_BUCKETS).max(1)
    }

    /// The counter windows that make up the usage at `now`, current first: one calendar
    /// window, or the current rolling bucket and the [`ROLLING_BUCKETS`] before it.
    pub fn windows_at(self, now: DateTime<Utc>) -> Option<Vec<Window>> {
        match self.kind {
            WindowKind::Calendar => Some(vec![self.period.window_at(now)?]),
            WindowKind::Rolling => {
                let len = self.bucket_len_s();
                let current = aligned(now.timestamp(), len)?;
                (0..=ROLLING_BUCKETS)
                    .map(|back| {
                        let start = current.start.timestamp().checked_sub(back * len)?;
                        aligned(start, len)
                    })
                    .collect()
            }
        }
    }

    /// Seconds from `now` until the usage counted in `window` stops counting, at least 1:
    /// the window's end for calendar windows, and for a rolling bucket the moment it
    /// slides out of the trailing period.
    pub fn frees_after_s(self, window: &Window, now: DateTime<Utc>) -> u64 {
        seconds_until(self.frees_at(window), now)
    }

    /// When the usage counted in `window` stops counting: the window's end for calendar
    /// windows, and for a rolling bucket the moment it slides out of the trailing period.
    pub fn frees_at(self, window: &Window) -> DateTime<Utc> {
        match self.kind {
            WindowKind::Calendar => window.end,
            WindowKind::Rolling => {
                window.end + Duration::seconds(self.bucket_len_s() * ROLLING_BUCKETS)
            }
        }
    }
}

/// Whole seconds from `now` until `then`, rounded up and at least 1, so that a client
/// that waits that long is always past it.
pub fn seconds_until(then: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let ms = (then - now).num_milliseconds();
    let secs = ms.saturating_add(999).div_euclid(1000);
    u64::try_from(secs).unwrap_or(0).max(1)
}

impl Window {
    /// Whole seconds until the window resets, rounded up and at least 1.
    pub fn reset_after_s(&self, now: DateTime<Utc>) -> u64 {
        seconds_until(self.end, now)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WindowKind::Calendar => "calendar",
            WindowKind::Rolling => "rolling",
        })
    }
}

/// A period name that is not one of `second`, `minute`, `hour`, `day`, `week`, `month`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown period {0:?}: expected second, minute, hour, day, week or month")]
pub struct UnknownPeriod(pub String);

impl FromStr for Period {
    type Err = UnknownPeriod;

    fn from_str(s: &str) -> Result<Period, UnknownPeriod> {
        Period::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPeriod(s.to_string()))
    }
}

/// A window kind that is not `calendar` or `rolling`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown window {0:?}: expected calendar or rolling")]
pub struct UnknownWindowKind(pub String);

impl FromStr for WindowKind {
    type Err = UnknownWindowKind;

    fn from_str(s: &str) -> Result<WindowKind, UnknownWindowKind> {
        match s {
            "calendar" => Ok(WindowKind::Calendar),
            "rolling" => Ok(WindowKind::Rolling),
            other => Err(UnknownWindowKind(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn month_window_runs_from_the_first_to_the_next_first() {
        let w = Period::Month.window_at(at(2026, 11, 17, 13, 5, 9)).unwrap();
        assert_eq!(w.start, at(2026, 11, 1, 0, 0, 0));
        assert_eq!(w.end, at(2026, 12, 1, 0, 0, 0));
    }

    #[test]
    fn december_window_ends_on_the_first_of_january() {
        let w = Period::Month
            .window_at(at(2026, 12, 31, 23, 59, 59))
            .unwrap();
        assert_eq!(w.start, at(2026, 12, 1, 0, 0, 0));
        assert_eq!(w.end, at(2027, 1, 1, 0, 0, 0));
    }

    #[test]
    fn leap_february_has_twenty_nine_days() {
        let w = Period::Month.window_at(at(2028, 2, 29, 12, 0, 0)).unwrap();
        assert_eq!(w.start, at(2028, 2, 1, 0, 0, 0));
        assert_eq!(w.end, at(2028, 3, 1, 0, 0, 0));
        assert_eq!((w.end - w.start).num_days(), 29);
        let plain = Period::Month.window_at(at(2027, 2, 10, 0, 0, 0)).unwrap();
        assert_eq!((plain.end - plain.start).num_days(), 28);
    }

    #[test]
    fn midnight_on_the_first_starts_a_new_month() {
        let w = Period::Month.window_at(at(2027, 1, 1, 0, 0, 0)).unwrap();
        assert_eq!(w.start, at(2027, 1, 1, 0, 0, 0));
    }

    #[test]
    fn week_runs_from_monday_midnight_to_the_next_monday() {
        // 2026-11-23 is a Monday.
        let sunday_night = Period::Week
            .window_at(at(2026, 11, 22, 23, 59, 59))
            .unwrap();
        assert_eq!(sunday_night.start, at(2026, 11, 16, 0, 0, 0));
        assert_eq!(sunday_night.end, at(2026, 11, 23, 0, 0, 0));
        let monday = Period::Week.window_at(at(2026, 11, 23, 0, 0, 0)).unwrap();
        assert_eq!(monday.start, at(2026, 11, 23, 0, 0, 0));
        // A week across a month and a year boundary.
        let new_year = Period::Week.window_at(at(2027, 1, 1, 12, 0, 0)).unwrap();
        assert_eq!(new_year.start, at(2026, 12, 28, 0, 0, 0));
        assert_eq!(new_year.end, at(2027, 1, 4, 0, 0, 0));
    }

    #[test]
    fn fixed_windows_are_aligned_to_utc() {
        let now = at(2026, 11, 17, 13, 5, 9);
        let cases = [
            (
                Period::Second,
                at(2026, 11, 17, 13, 5, 9),
                at(2026, 11, 17, 13, 5, 10),
            ),
            (
                Period::Minute,
                at(2026, 11, 17, 13, 5, 0),
                at(2026, 11, 17, 13, 6, 0),
            ),
            (
                Period::Hour,
                at(2026, 11, 17, 13, 0, 0),
                at(2026, 11, 17, 14, 0, 0),
            ),
            (
                Period::Day,
                at(2026, 11, 17, 0, 0, 0),
                at(2026, 11, 18, 0, 0, 0),
            ),
        ];
        for (period, start, end) in cases {
            assert_eq!(
                period.window_at(now),
                Some(Window { start, end }),
                "{period}"
            );
        }
    }

    #[test]
    fn reset_after_rounds_up_and_is_never_zero() {
        let w = Period::Minute
            .window_at(at(2026, 11, 17, 13, 5, 0))
            .unwrap();
        assert_eq!(w.reset_after_s(at(2026, 11, 17, 13, 5, 0)), 60);
        assert_eq!(w.reset_after_s(at(2026, 11, 17, 13, 5, 59)), 1);
        let half_second = at(2026, 11, 17, 13, 5, 58) + chrono::Duration::milliseconds(500);
        assert_eq!(w.reset_after_s(half_second), 2);
        assert_eq!(w.reset_after_s(at(2026, 11, 17, 13, 6, 0)), 1);
    }

    #[test]
    fn rolling_hour_is_sixty_one_minute_buckets_current_first() {
        let series = Series {
            period: Period::Hour,
            kind: WindowKind::Rolling,
        };
        let now = at(2026, 11, 17, 13, 5, 9);
        let windows = series.windows_at(now).unwrap();
        assert_eq!(windows.len(), 61);
        assert_eq!(windows[0].start, at(2026, 11, 17, 13, 5, 0));
        assert_eq!(windows[0].end, at(2026, 11, 17, 13, 6, 0));
        assert_eq!(windows[60].start, at(2026, 11, 17, 12, 5, 0));
        // Usage in the oldest bucket stops counting when it slides out, 61 minutes after
        // that bucket began.
        assert_eq!(
            series.frees_after_s(&windows[60], now),
            (at(2026, 11, 17, 13, 6, 0) - now).num_seconds() as u64
        );
        assert_eq!(series.name(), "rolling-hour");
        assert_eq!(Series::parse("rolling-hour"), Some(series));
        assert_eq!(
            Series::parse("month"),
            Some(Series::calendar(Period::Month))
        );
        assert_eq!(Series::parse("rolling-fortnight"), None);
        assert!(series.still_counts(&windows[60], now));
        assert!(!series.still_counts(&windows[60], now + Duration::minutes(1)));
        assert_eq!(series.window_len_s(), Some(3_600));
    }

    #[test]
    fn rolling_month_counts_thirty_days() {
        let series = Series {
            period: Period::Month,
            kind: WindowKind::Rolling,
        };
        assert_eq!(series.bucket_len_s(), 43_200);
        assert_eq!(series.window_len_s(), Some(2_592_000));
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for period in Period::ALL {
            assert_eq!(period.as_str().parse::<Period>(), Ok(period));
        }
        assert!("fortnight".parse::<Period>().is_err());
        assert_eq!("rolling".parse::<WindowKind>(), Ok(WindowKind::Rolling));
        assert!("sliding".parse::<WindowKind>().is_err());
        assert_eq!(Period::Month.fixed_len_s(), None);
        assert_eq!(Period::Week.policy_name(), "weekly");
    }
}
