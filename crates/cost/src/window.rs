//! Time windows for allocation: `1h`, `24h`, `7d`, `today`, `month`, or `START,END` in RFC 3339.
//!
//! A window is split at calendar-month boundaries (UTC) into [`Segment`]s, because internet
//! egress tiers count the month's running volume: bytes late in a heavy month are cheaper than
//! bytes at its start, and a window across two months starts the count again in the second.

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan, tz::TimeZone};

/// A time window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

/// Part of a window inside one calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The first instant of the month the segment lies in.
    pub month_start: Timestamp,
    /// Segment start.
    pub start: Timestamp,
    /// Segment end.
    pub end: Timestamp,
}

impl Segment {
    /// The length of the segment's calendar month (UTC), in seconds.
    pub fn month_seconds(&self) -> i64 {
        next_month_start(self.month_start).as_second() - self.month_start.as_second()
    }
}

/// Why a window was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowError {
    /// The text is none of the accepted forms.
    #[error(
        "window {0:?} is not understood: use a duration like 1h, 24h or 7d, `today`, `month`, \
         or START,END in RFC 3339 (2026-11-01T00:00:00Z,2026-11-08T00:00:00Z)"
    )]
    Unrecognised(String),
    /// The end is not after the start.
    #[error("window {0:?} ends before it starts")]
    Empty(String),
    /// The window reaches into the future.
    #[error("window {0:?} ends in the future")]
    Future(String),
    /// The window is longer than [`MAX_WINDOW_DAYS`].
    #[error(
        "window {0:?} is longer than {max} days; ask for at most a year at a time",
        max = MAX_WINDOW_DAYS
    )]
    TooLong(String),
}

/// The longest window, in days: a leap year. Each calendar month in a window is one query per
/// series family, and a longer window reaches past any Prometheus retention in practice, so a
/// typo like `100000d` is refused instead of sending thousands of queries for empty months.
pub const MAX_WINDOW_DAYS: i64 = 366;

impl Window {
    /// Parses `text` relative to `now`.
    pub fn parse(text: &str, now: Timestamp) -> Result<Window, WindowError> {
        let trimmed = text.trim();
        let unrecognised = || WindowError::Unrecognised(text.to_owned());
        let window = match trimmed {
            "today" => Window {
                start: day_start(now),
                end: now,
            },
            "month" => Window {
                start: month_start(now),
                end: now,
            },
            _ if trimmed.contains(',') => {
                let (a, b) = trimmed.split_once(',').ok_or_else(unrecognised)?;
                let start: Timestamp = a.trim().parse().map_err(|_| unrecognised())?;
                let end: Timestamp = b.trim().parse().map_err(|_| unrecognised())?;
                Window { start, end }
            }
            _ => {
                let seconds = duration_seconds(trimmed).ok_or_else(unrecognised)?;
                let start = now
                    .checked_sub(seconds.seconds())
                    .map_err(|_| unrecognised())?;
                Window { start, end: now }
            }
        };
        if window.end <= window.start {
            return Err(WindowError::Empty(text.to_owned()));
        }
        if window.end > now {
            return Err(WindowError::Future(text.to_owned()));
        }
        if window.seconds() > MAX_WINDOW_DAYS * 86_400 {
            return Err(WindowError::TooLong(text.to_owned()));
        }
        Ok(window)
    }

    /// Length in seconds.
    pub fn seconds(&self) -> i64 {
        self.end.as_second() - self.start.as_second()
    }

    /// The window split at month boundaries (UTC), in order.
    pub fn segments(&self) -> Vec<Segment> {
        let mut out = Vec::new();
        let mut start = self.start;
        while start < self.end {
            let month = month_start(start);
            let next = next_month_start(start);
            let end = if next < self.end { next } else { self.end };
            out.push(Segment {
                month_start: month,
                start,
                end,
            });
            start = end;
        }
        out
    }
}

/// `1h`, `90m`, `24h`, `7d`, `2w`, `30s` as seconds.
/// Seconds in a duration like `90s`, `5m`, `1h`, `7d` or `2w`; `None` if malformed or not positive.
pub fn duration_seconds(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(scale).filter(|s| *s > 0)
}

fn utc_date(t: Timestamp) -> Date {
    t.to_zoned_datetime(TimeZone::UTC).date()
}

fn at_midnight(date: Date) -> Timestamp {
    date.to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn day_start(t: Timestamp) -> Timestamp {
    at_midnight(utc_date(t))
}

fn month_start(t: Timestamp) -> Timestamp {
    at_midnight(utc_date(t).first_of_month())
}

fn next_month_start(t: Timestamp) -> Timestamp {
    let first = utc_date(t).first_of_month();
    match first.checked_add(1.month()) {
        Ok(next) => at_midnight(next),
        Err(_) => Timestamp::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn durations_count_back_from_now() {
        let now = ts("2026-11-25T12:00:00Z");
        let w = Window::parse("7d", now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.start, ts("2026-11-18T12:00:00Z"));
        assert_eq!(w.seconds(), 7 * 86_400);
    }

    #[test]
    fn today_starts_at_utc_midnight() {
        let now = ts("2026-11-25T12:34:56Z");
        let w = Window::parse("today", now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.start, ts("2026-11-25T00:00:00Z"));
    }

    #[test]
    fn a_window_across_a_month_boundary_is_split_in_two() {
        let now = ts("2026-12-02T00:00:00Z");
        let w = Window::parse("2026-11-30T12:00:00Z,2026-12-01T12:00:00Z", now)
            .unwrap_or_else(|e| panic!("{e}"));
        let s = w.segments();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].month_start, ts("2026-11-01T00:00:00Z"));
        assert_eq!(s[0].end, ts("2026-12-01T00:00:00Z"));
        assert_eq!(s[1].month_start, ts("2026-12-01T00:00:00Z"));
        assert_eq!(s[1].end, ts("2026-12-01T12:00:00Z"));
    }

    #[test]
    fn a_window_longer_than_a_leap_year_is_refused_in_every_form() {
        let now = ts("2026-11-25T12:00:00Z");
        assert_eq!(
            Window::parse("100000d", now),
            Err(WindowError::TooLong("100000d".into()))
        );
        assert_eq!(
            Window::parse("367d", now),
            Err(WindowError::TooLong("367d".into()))
        );
        let range = "2024-11-25T12:00:00Z,2026-11-25T12:00:00Z";
        assert_eq!(
            Window::parse(range, now),
            Err(WindowError::TooLong(range.into()))
        );
        let year = Window::parse("366d", now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(year.seconds(), 366 * 86_400);
        let message = WindowError::TooLong("100000d".into()).to_string();
        assert!(message.contains("366 days"), "{message}");
    }

    #[test]
    fn bad_windows_say_what_is_accepted() {
        let now = ts("2026-11-25T12:00:00Z");
        let err = Window::parse("yesterday", now)
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("\"yesterday\"") && err.contains("RFC 3339"),
            "{err}"
        );
        assert_eq!(
            Window::parse("2026-11-25T10:00:00Z,2026-11-25T09:00:00Z", now),
            Err(WindowError::Empty(
                "2026-11-25T10:00:00Z,2026-11-25T09:00:00Z".into()
            ))
        );
        assert!(matches!(
            Window::parse("2026-11-25T10:00:00Z,2026-11-26T09:00:00Z", now),
            Err(WindowError::Future(_))
        ));
        assert!(Window::parse("0h", now).is_err());
    }
}
