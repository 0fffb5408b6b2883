//! Time as reporting buckets it: whole seconds since the Unix epoch (UTC), clock hours, weeks
//! starting Monday 00:00 Europe/London, and school terms (ADR 0015).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use prost_types::Timestamp;

pub const HOUR_SECS: i64 = 3_600;
pub const DAY_SECS: i64 = 86_400;
pub const WEEK_SECS: i64 = 7 * DAY_SECS;

/// Seconds of a protobuf timestamp (nanos dropped); unset is 0.
pub fn secs(timestamp: Option<&Timestamp>) -> i64 {
    timestamp.map_or(0, |t| t.seconds)
}

pub fn timestamp(secs: i64) -> Timestamp {
    Timestamp { seconds: secs, nanos: 0 }
}

/// The start of the clock hour holding `secs`.
pub fn hour_start(secs: i64) -> i64 {
    secs.div_euclid(HOUR_SECS) * HOUR_SECS
}

fn london() -> TimeZone {
    TimeZone::get("Europe/London").unwrap_or(TimeZone::UTC)
}

/// The hour of the day (0..=23) in Europe/London: when in the school day a breach happened.
pub fn hour_of_day(secs: i64) -> u8 {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.to_zoned_datetime(london()).hour() as u8,
        Err(_) => 0,
    }
}

/// The start (Monday 00:00 Europe/London) of the week holding `secs`.
pub fn week_start(secs: i64) -> i64 {
    let Ok(t) = jiff::Timestamp::from_second(secs) else { return 0 };
    let zone = london();
    let date = t.to_zoned_datetime(zone.clone()).date();
    let back = date.weekday().to_monday_zero_offset();
    let monday = date.checked_sub(jiff::Span::new().days(back)).unwrap_or(date);
    midnight(monday, &zone)
}

fn midnight(date: Date, zone: &TimeZone) -> i64 {
    date.to_zoned_datetime(zone.clone()).map(|z| z.timestamp().as_second()).unwrap_or(0)
}

/// The school term: Autumn 1 September to 31 December, Spring 1 January to 31 March, Summer
/// 1 April to 31 August (Europe/London midnights). Returns `[start, end)` in seconds.
pub fn term_bounds(academic_year: &str, term: Term) -> Result<(i64, i64), crate::Error> {
    let field = "academic_year";
    let (first, second) =
        academic_year.split_once('-').ok_or_else(|| crate::Error::invalid(field, "expected the form 2024-25"))?;
    let start_year: i16 = first.parse().map_err(|_| crate::Error::invalid(field, "expected the form 2024-25"))?;
    let end_short: i16 = second.parse().map_err(|_| crate::Error::invalid(field, "expected the form 2024-25"))?;
    if !(2000..=2200).contains(&start_year) || second.len() != 2 || (start_year + 1) % 100 != end_short {
        return Err(crate::Error::invalid(field, "expected two consecutive years, e.g. 2024-25"));
    }
    let zone = london();
    let at = |year: i16, month: i8| midnight(Date::new(year, month, 1).unwrap_or_default(), &zone);
    Ok(match term {
        Term::Autumn => (at(start_year, 9), at(start_year + 1, 1)),
        Term::Spring => (at(start_year + 1, 1), at(start_year + 1, 4)),
        Term::Summer => (at(start_year + 1, 4), at(start_year + 1, 9)),
    })
}

/// The term before, for comparisons.
pub fn previous_term(academic_year: &str, term: Term) -> Option<(String, Term)> {
    match term {
        Term::Summer => Some((academic_year.to_owned(), Term::Spring)),
        Term::Spring => Some((academic_year.to_owned(), Term::Autumn)),
        Term::Autumn => {
            let start: i16 = academic_year.split_once('-')?.0.parse().ok()?;
            Some((format!("{}-{:02}", start - 1, start % 100), Term::Summer))
        }
    }
}

/// A school term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Term {
    Autumn,
    Spring,
    Summer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_midnight_in_london() {
        // Wednesday 2025-01-15 12:00 UTC (GMT) → Monday 2025-01-13 00:00 UTC.
        assert_eq!(week_start(1_736_942_400), 1_736_726_400);
        // Wednesday 2025-07-16 12:00 UTC (BST) → Monday 2025-07-14 00:00 BST = 13th 23:00 UTC.
        assert_eq!(week_start(1_752_667_200), 1_752_447_600);
        assert_eq!(hour_of_day(1_752_667_200), 13);
    }

    #[test]
    fn terms_follow_the_academic_year() {
        let (start, end) = term_bounds("2024-25", Term::Autumn).unwrap();
        assert_eq!(start, 1_725_145_200); // 2024-09-01 00:00 BST
        assert_eq!(end, 1_735_689_600); // 2025-01-01 00:00 GMT
        assert!(term_bounds("2024-26", Term::Autumn).is_err());
        assert_eq!(previous_term("2024-25", Term::Autumn), Some(("2023-24".to_owned(), Term::Summer)));
    }
}
