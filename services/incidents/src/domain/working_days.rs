//! Working days (Monday to Friday, UTC) for deadlines such as the LADO's one working day.
//!
//! Bank holidays are not known here: a deadline over one falls a day early, which errs on the
//! side of acting sooner.

use super::types::UnixTime;

const DAY_SECONDS: i64 = 86_400;

/// 0 = Monday … 6 = Sunday. 1970-01-01 was a Thursday.
fn weekday(at: UnixTime) -> i64 {
    (at.0.div_euclid(DAY_SECONDS) + 3).rem_euclid(7)
}

/// `days` working days after `from`, at the same time of day. From a weekend, the count
/// starts on the Monday, so one working day from a Saturday is the end of Monday.
pub fn add_working_days(from: UnixTime, days: u32) -> UnixTime {
    let mut at = from;
    // A weekend start counts from Monday 00:00 plus the time of day of a full working day.
    while weekday(at) >= 5 {
        at = UnixTime(at.0.div_euclid(DAY_SECONDS) * DAY_SECONDS + DAY_SECONDS);
    }
    if at != from {
        // Started at a weekend: the first working day ends at the end of Monday.
        at = at.plus_seconds(DAY_SECONDS - 1);
    }
    let mut left = days;
    if at != from {
        left = left.saturating_sub(1);
    }
    while left > 0 {
        at = at.plus_seconds(DAY_SECONDS);
        if weekday(at) < 5 {
            left -= 1;
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-07 was a Monday.
    const MONDAY_NOON: UnixTime = UnixTime(1_796_644_800);

    #[test]
    fn weekday_anchor() {
        assert_eq!(weekday(MONDAY_NOON), 0);
    }

    #[test]
    fn next_working_day() {
        assert_eq!(add_working_days(MONDAY_NOON, 1), MONDAY_NOON.plus_seconds(DAY_SECONDS));
        let friday = MONDAY_NOON.plus_seconds(4 * DAY_SECONDS);
        assert_eq!(add_working_days(friday, 1), MONDAY_NOON.plus_seconds(7 * DAY_SECONDS));
    }

    #[test]
    fn from_a_weekend_the_end_of_monday() {
        let saturday = MONDAY_NOON.plus_seconds(5 * DAY_SECONDS);
        let next_monday_end = UnixTime(MONDAY_NOON.0 - 12 * 3600 + 8 * DAY_SECONDS - 1);
        assert_eq!(add_working_days(saturday, 1), next_monday_end);
    }
}
