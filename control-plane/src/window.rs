//! Calendar-aligned UTC windows (SPEC §1): a `month` quota resets at 00:00 UTC on the
//! 1st, a `day` quota at midnight UTC, and so on. A new window is a new counter, so no
//! reset job is ever needed.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

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
    /// One calendar month, from 00:00 UTC on the 1st.
    Month,
}

/// One window of a period: `start <= t < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first instant of the window; it names the counter.
    pub start: DateTime<Utc>,
    /// The first instant of the next window.
    pub end: DateTime<Utc>,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 5] = [
        Period::Second,
        Period::Minute,
        Period::Hour,
        Period::Day,
        Period::Month,
    ];

    /// The name stored in PostgreSQL, used in the API and in counter keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The policy name clients see in `RateLimit-Policy`.
    pub fn policy_name(self) -> &'static str {
        match self {
            Period::Second => "per-second",
            Period::Minute => "per-minute",
            Period::Hour => "hourly",
            Period::Day => "daily",
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
            Period::Month => None,
        }
    }

    /// The window containing `now`; `None` only at the edge of chrono's date range.
    pub fn window_at(self, now: DateTime<Utc>) -> Option<Window> {
        match self.fixed_len_s() {
            Some(len) => {
                let len = i64::try_from(len).ok()?;
                let start_s = now.timestamp().div_euclid(len) * len;
                Some(Window {
                    start: DateTime::from_timestamp(start_s, 0)?,
                    end: DateTime::from_timestamp(start_s.checked_add(len)?, 0)?,
                })
            }
            None => {
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
        }
    }
}

fn first_of_month(year: i32, month: u32) -> Option<DateTime<Utc>> {
    let midnight = NaiveDate::from_ymd_opt(year, month, 1)?.and_hms_opt(0, 0, 0)?;
    Some(Utc.from_utc_datetime(&midnight))
}

impl Window {
    /// Whole seconds until the window resets, rounded up and at least 1, so a client
    /// that waits that long is always in the next window.
    pub fn reset_after_s(&self, now: DateTime<Utc>) -> u64 {
        let ms = (self.end - now).num_milliseconds();
        let secs = ms.saturating_add(999).div_euclid(1000);
        u64::try_from(secs).unwrap_or(0).max(1)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A period name that is not one of `second`, `minute`, `hour`, `day`, `month`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown period {0:?}: expected second, minute, hour, day or month")]
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
    fn month_reset_counts_to_the_next_first() {
        let w = Period::Month.window_at(at(2026, 12, 31, 0, 0, 0)).unwrap();
        assert_eq!(w.reset_after_s(at(2026, 12, 31, 0, 0, 0)), 86_400);
    }

    #[test]
    fn period_names_round_trip_and_unknown_names_are_refused() {
        for period in Period::ALL {
            assert_eq!(period.as_str().parse::<Period>(), Ok(period));
        }
        assert!("week".parse::<Period>().is_err());
        assert_eq!(Period::Month.fixed_len_s(), None);
        assert_eq!(Period::Hour.policy_name(), "hourly");
    }
}
