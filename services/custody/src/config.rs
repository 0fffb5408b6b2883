//! Custody's configuration: the school day the end-of-day sweep follows. Nested under
//! `custody` in `haven`'s configuration (`HAVEN_CUSTODY__SCHOOL_DAY_ENDS=15:45`).

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::domain::{SchoolDay, UnixTime};

/// Everything custody can be configured with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustodyConfig {
    /// When the school day starts, local time `HH:MM`: devices seized from then on count.
    pub school_day_starts: String,
    /// When the school day ends, local time `HH:MM`: the sweep runs after it.
    pub school_day_ends: String,
    /// The schools' time zone (IANA name).
    pub time_zone: String,
    /// How often the scheduler looks whether a school day has ended, in seconds (1..=3600).
    pub sweep_check_s: u64,
}

impl Default for CustodyConfig {
    fn default() -> Self {
        CustodyConfig {
            school_day_starts: "08:00".into(),
            school_day_ends: "15:30".into(),
            time_zone: "Europe/London".into(),
            sweep_check_s: 60,
        }
    }
}

fn clock(raw: &str) -> Option<Time> {
    let (hours, minutes) = raw.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    Time::new(hours.parse().ok()?, minutes.parse().ok()?, 0, 0).ok()
}

impl CustodyConfig {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let starts = clock(&self.school_day_starts)
            .ok_or(("school_day_starts", format!("{:?} is not a time HH:MM", self.school_day_starts)))?;
        let ends = clock(&self.school_day_ends)
            .ok_or(("school_day_ends", format!("{:?} is not a time HH:MM", self.school_day_ends)))?;
        if ends <= starts {
            return Err(("school_day_ends", "must be after school_day_starts".into()));
        }
        TimeZone::get(&self.time_zone)
            .map_err(|_| ("time_zone", format!("{:?} is not a known time zone", self.time_zone)))?;
        if !(1..=3600).contains(&self.sweep_check_s) {
            return Err(("sweep_check_s", "must be 1 to 3600".into()));
        }
        Ok(())
    }

    /// The schools' time zone (UTC if the configuration was not validated).
    pub fn zone(&self) -> TimeZone {
        TimeZone::get(&self.time_zone).unwrap_or(TimeZone::UTC)
    }

    /// The school day of `date`, in the schools' time zone; `None` if the configuration is
    /// not valid.
    pub fn school_day(&self, date: Date) -> Option<SchoolDay> {
        let zone = self.zone();
        let at = |time: Time| {
            date.to_datetime(time).to_zoned_datetime(zone.clone()).ok().map(|z| UnixTime(z.timestamp().as_second()))
        };
        Some(SchoolDay { starts_at: at(clock(&self.school_day_starts)?)?, ends_at: at(clock(&self.school_day_ends)?)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_is_refused_naming_its_key() {
        assert!(CustodyConfig::default().validate().is_ok());
        let bad = |config: CustodyConfig| config.validate().unwrap_err().0;
        assert_eq!(bad(CustodyConfig { school_day_ends: "25:00".into(), ..Default::default() }), "school_day_ends");
        assert_eq!(bad(CustodyConfig { school_day_starts: "9".into(), ..Default::default() }), "school_day_starts");
        assert_eq!(bad(CustodyConfig { school_day_ends: "07:00".into(), ..Default::default() }), "school_day_ends");
        assert_eq!(bad(CustodyConfig { time_zone: "Mars/Olympus".into(), ..Default::default() }), "time_zone");
        assert_eq!(bad(CustodyConfig { sweep_check_s: 0, ..Default::default() }), "sweep_check_s");
    }

    #[test]
    fn the_school_day_follows_the_local_clock_across_summer_time() {
        let config = CustodyConfig::default();
        // 1 July 2026: BST (UTC+1), so 15:30 local is 14:30 UTC.
        let summer = config.school_day(jiff::civil::date(2026, 7, 1)).unwrap();
        assert_eq!(
            summer.ends_at.0,
            jiff::civil::date(2026, 7, 1)
                .at(14, 30, 0, 0)
                .to_zoned_datetime(TimeZone::UTC)
                .unwrap()
                .timestamp()
                .as_second()
        );
        // 1 December 2026: GMT, so 15:30 local is 15:30 UTC.
        let winter = config.school_day(jiff::civil::date(2026, 12, 1)).unwrap();
        assert_eq!(
            winter.ends_at.0,
            jiff::civil::date(2026, 12, 1)
                .at(15, 30, 0, 0)
                .to_zoned_datetime(TimeZone::UTC)
                .unwrap()
                .timestamp()
                .as_second()
        );
        assert_eq!(winter.ends_at.0 - winter.starts_at.0, 7 * 3600 + 30 * 60);
    }
}
