//! The three families of source time (FORMATS.md §0): UTC epochs, local times with their
//! offset, and local times without one, which are placed in the source's configured zone. A
//! local time in the hour repeated when clocks go back cannot be placed and is refused.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};

use crate::breach::TimeBasis;
use crate::error::{ParseError, QuarantineReason};

/// When something happened and what that rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    pub at: Timestamp,
    pub basis: TimeBasis,
}

impl Observed {
    pub fn utc(at: Timestamp) -> Self {
        Observed { at, basis: TimeBasis::Utc }
    }
}

const BAD_TIME: ParseError = ParseError::invalid("time", "not a valid time");

/// A run of ASCII digits as a number; `None` if empty, too long or not all digits.
pub(crate) fn digits(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 19 {
        return None;
    }
    raw.iter().try_fold(0u64, |n, &b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// An epoch whose unit is told by its size, as FortiOS `eventtime` (seconds, microseconds or
/// nanoseconds by firmware) and CEF `rt` (milliseconds) need: up to 11 digits seconds, up to
/// 14 milliseconds, up to 17 microseconds, else nanoseconds.
pub(crate) fn epoch_scaled(raw: &str) -> Result<Timestamp, ParseError> {
    let value = digits(raw.as_bytes()).ok_or(BAD_TIME)?;
    let (seconds, nanos) = match raw.len() {
        0..=11 => (value, 0),
        12..=14 => (value / 1_000, (value % 1_000) * 1_000_000),
        15..=17 => (value / 1_000_000, (value % 1_000_000) * 1_000),
        _ => (value / 1_000_000_000, value % 1_000_000_000),
    };
    timestamp(seconds, nanos)
}

/// `1570784654.576` or `1726124251`: seconds with an optional fraction (Squid `%ts.%03tu`).
pub(crate) fn epoch_seconds(raw: &str) -> Result<Timestamp, ParseError> {
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    let seconds = digits(whole.as_bytes()).filter(|_| whole.len() <= 11).ok_or(BAD_TIME)?;
    let nanos = match fraction.len() {
        0 => 0,
        1..=9 => digits(fraction.as_bytes()).ok_or(BAD_TIME)? * 10u64.pow(9 - fraction.len() as u32),
        _ => return Err(BAD_TIME),
    };
    timestamp(seconds, nanos)
}

fn timestamp(seconds: u64, nanos: u64) -> Result<Timestamp, ParseError> {
    let seconds = i64::try_from(seconds).map_err(|_| BAD_TIME)?;
    Timestamp::new(seconds, nanos as i32).map_err(|_| BAD_TIME)
}

/// `YYYY?MM?DD?HH:MM:SS` with any single separators (`2021-02-14 00:02:30`,
/// `2021/07/20 23:59:02`, Sophos UTM's `2015:03:02-00:39:22`); returns the rest after it.
pub(crate) fn ymd_hms(raw: &str) -> Option<(DateTime, &str)> {
    let b = raw.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| digits(&b[range]);
    let separators_ok = [4, 7, 10, 13, 16].iter().all(|&i| !b[i].is_ascii_digit()) && b[13] == b':' && b[16] == b':';
    if !separators_ok {
        return None;
    }
    let datetime = civil(num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?)?;
    Some((datetime, &raw[19..]))
}

/// `MMM dd yyyy HH:mm:ss`, anything after the seconds ignored (CEF `rt`, LEEF `devTime`).
pub(crate) fn month_day_year_hms(raw: &str) -> Option<DateTime> {
    let mut parts = raw.split_ascii_whitespace();
    let (month_name, day, year, clock) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let (hour, minute, second) = hms(clock.get(..8)?)?;
    civil(digits(year.as_bytes())?, month(month_name)?, digits(day.as_bytes())?, hour, minute, second)
}

/// A calendar date and wall-clock time, validated.
pub(crate) fn civil(year: u64, month: u64, day: u64, hour: u64, minute: u64, second: u64) -> Option<DateTime> {
    let date = Date::new(i16::try_from(year).ok()?, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()?;
    let time = Time::new(i8::try_from(hour).ok()?, i8::try_from(minute).ok()?, i8::try_from(second).ok()?, 0).ok()?;
    Some(date.to_datetime(time))
}

/// `HH:MM:SS`.
pub(crate) fn hms(raw: &str) -> Option<(u64, u64, u64)> {
    let b = raw.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    Some((digits(&b[0..2])?, digits(&b[3..5])?, digits(&b[6..8])?))
}

/// `Jan`..`Dec` (case-insensitive) as 1..=12.
pub(crate) fn month(raw: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    MONTHS.iter().position(|m| m.eq_ignore_ascii_case(raw)).map(|i| i as u64 + 1)
}

/// `+0530`, `-07:00`, `Z`, `+00` as seconds east of UTC.
pub(crate) fn offset(raw: &str) -> Option<Offset> {
    if raw == "Z" || raw == "z" {
        return Some(Offset::UTC);
    }
    let (sign, rest) = match raw.as_bytes().first()? {
        b'+' => (1, &raw[1..]),
        b'-' => (-1, &raw[1..]),
        _ => return None,
    };
    let rest = rest.replace(':', "");
    let (hours, minutes) = match rest.len() {
        2 => (digits(rest.as_bytes())?, 0),
        4 => (digits(&rest.as_bytes()[..2])?, digits(&rest.as_bytes()[2..])?),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60) as i32).ok()
}

/// A local time with its offset.
pub(crate) fn at_offset(datetime: DateTime, offset: Offset) -> Result<Observed, ParseError> {
    let at = offset.to_timestamp(datetime).map_err(|_| BAD_TIME)?;
    Ok(Observed { at, basis: TimeBasis::Offset })
}

/// A local time without an offset, in the source's zone. Refused when the zone repeats that
/// hour (clocks going back) or skips it (clocks going forward: no such time).
pub(crate) fn in_zone(datetime: DateTime, zone: &TimeZone) -> Result<Observed, ParseError> {
    let ambiguous = zone.to_ambiguous_timestamp(datetime);
    match ambiguous.offset() {
        jiff::tz::AmbiguousOffset::Unambiguous { .. } => {
            let at = ambiguous.compatible().map_err(|_| BAD_TIME)?;
            Ok(Observed { at, basis: TimeBasis::SourceZone })
        }
        jiff::tz::AmbiguousOffset::Fold { .. } => Err(ParseError::new(
            QuarantineReason::AmbiguousLocalTime,
            Some("time"),
            "a local time in the hour repeated when clocks went back; the source gives no offset",
        )),
        jiff::tz::AmbiguousOffset::Gap { .. } => {
            Err(ParseError::invalid("time", "a local time skipped when clocks went forward"))
        }
    }
}

/// A month, day and time without a year (RFC 3164, `Jan  6 19:47:37`), in the source's zone:
/// the latest year that does not put it more than a day after the line was received (a
/// relay's clock may run a little ahead; a log line is not from months in the future).
pub(crate) fn without_year(
    month: u64,
    day: u64,
    (hour, minute, second): (u64, u64, u64),
    zone: &TimeZone,
    received_at: Timestamp,
) -> Result<Observed, ParseError> {
    let latest = received_at.saturating_add(jiff::SignedDuration::from_hours(24)).map_err(|_| BAD_TIME)?;
    let received_year = zone.to_datetime(received_at).year();
    let mut error = BAD_TIME;
    for year in
        [received_year + 1, received_year, received_year - 1, received_year - 2, received_year - 3, received_year - 4]
    {
        // 29 February needs a leap year: look back far enough to meet one.
        let Some(datetime) = civil(year as u64, month, day, hour, minute, second) else { continue };
        match in_zone(datetime, zone) {
            Ok(observed) if observed.at <= latest => return Ok(observed),
            Ok(_) => {}
            Err(e) => error = e,
        }
    }
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> TimeZone {
        TimeZone::get("Europe/London").unwrap()
    }

    #[test]
    fn epochs_in_every_unit() {
        let expected: Timestamp = "2021-01-06T19:17:02Z".parse().unwrap();
        assert_eq!(epoch_scaled("1609960622").unwrap(), expected);
        assert_eq!(epoch_scaled("1609960622000").unwrap(), expected);
        assert_eq!(epoch_scaled("1609960622000000").unwrap(), expected);
        assert_eq!(epoch_scaled("1609960622000000000").unwrap(), expected);
        assert_eq!(epoch_seconds("1570784654.576").unwrap().to_string(), "2019-10-11T09:04:14.576Z");
        assert_eq!(epoch_seconds("1726124251").unwrap().to_string(), "2024-09-12T06:57:31Z");
        for bad in ["", "12a", "1.2.3", "99999999999999999999", "-5", "1.0000000001"] {
            assert!(epoch_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_times_in_london_across_both_changes() {
        let summer = ymd_hms("2026-07-01 12:00:00").unwrap().0;
        assert_eq!(in_zone(summer, &london()).unwrap().at.to_string(), "2026-07-01T11:00:00Z");
        let winter = ymd_hms("2026-12-01 12:00:00").unwrap().0;
        assert_eq!(in_zone(winter, &london()).unwrap().at.to_string(), "2026-12-01T12:00:00Z");
        // Clocks go back at 02:00 BST on 25 October 2026: 01:30 happens twice.
        let repeated = ymd_hms("2026-10-25 01:30:00").unwrap().0;
        assert_eq!(in_zone(repeated, &london()).unwrap_err().reason, QuarantineReason::AmbiguousLocalTime);
        // Clocks go forward at 01:00 GMT on 29 March 2026: 01:30 never happens.
        let skipped = ymd_hms("2026-03-29 01:30:00").unwrap().0;
        assert_eq!(in_zone(skipped, &london()).unwrap_err().reason, QuarantineReason::InvalidField);
    }

    #[test]
    fn a_year_less_time_takes_the_latest_year_not_after_receipt() {
        let received: Timestamp = "2027-01-01T00:10:00Z".parse().unwrap();
        let observed = without_year(12, 31, (23, 59, 0), &london(), received).unwrap();
        assert_eq!(observed.at.to_string(), "2026-12-31T23:59:00Z");
        let observed = without_year(1, 1, (0, 5, 0), &london(), received).unwrap();
        assert_eq!(observed.at.to_string(), "2027-01-01T00:05:00Z");
        // A few hours ahead of receipt is clock skew; months ahead is last year.
        let observed = without_year(1, 1, (3, 0, 0), &london(), received).unwrap();
        assert_eq!(observed.at.to_string(), "2027-01-01T03:00:00Z");
        let observed = without_year(3, 31, (8, 0, 0), &london(), received).unwrap();
        assert_eq!(observed.at.to_string(), "2026-03-31T07:00:00Z");
        let observed = without_year(2, 29, (12, 0, 0), &london(), received).unwrap();
        assert_eq!(observed.at.to_string(), "2024-02-29T12:00:00Z");
        assert!(without_year(2, 30, (0, 0, 0), &london(), received).is_err());
    }

    #[test]
    fn month_day_year() {
        let expected = ymd_hms("2026-11-25 09:15:02").unwrap().0;
        assert_eq!(month_day_year_hms("Nov 25 2026 09:15:02"), Some(expected));
        assert_eq!(month_day_year_hms("Nov 25 2026 09:15:02.123 GMT"), Some(expected));
        assert_eq!(month_day_year_hms("Nov 25 2026"), None);
        assert_eq!(month_day_year_hms("Foo 25 2026 09:15:02"), None);
    }

    #[test]
    fn offsets() {
        assert_eq!(offset("+0530").unwrap().seconds(), 19_800);
        assert_eq!(offset("-07:00").unwrap().seconds(), -25_200);
        assert_eq!(offset("Z").unwrap().seconds(), 0);
        for bad in ["0530", "+5", "+2460", "+ab:cd", ""] {
            assert!(offset(bad).is_none(), "{bad}");
        }
    }
}
