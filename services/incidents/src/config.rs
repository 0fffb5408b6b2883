//! Incidents' settings (`incidents.*` in Haven's configuration, ADR 0006).

use serde::{Deserialize, Serialize};

use crate::domain::{EscalationPolicy, SchoolHours};

/// Minutes after midnight of `HH:MM`.
fn minute_of_day(raw: &str) -> Option<u16> {
    let (hours, minutes) = raw.split_once(':')?;
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60 && raw.len() == 5).then_some(hours * 60 + minutes)
}

/// What an operator may tune.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentsConfig {
    /// Seconds a critical alert may go unacknowledged before each escalation step
    /// (deputies, then the principal, then the trust's safeguarding lead). Default 900.
    pub escalate_after_s: i64,
    /// Whether that time counts in school hours only (the policy's "15 minutes in school
    /// hours"): an alert raised out of hours is due that long into the next school day.
    pub escalate_in_school_hours: bool,
    /// The school day, `HH:MM` local time, Monday to Friday.
    pub school_day_starts: String,
    pub school_day_ends: String,
    pub time_zone: String,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        let hours = SchoolHours::default();
        let clock = |minute: u16| format!("{:02}:{:02}", minute / 60, minute % 60);
        IncidentsConfig {
            escalate_after_s: EscalationPolicy::default().acknowledge_within_seconds,
            escalate_in_school_hours: true,
            school_day_starts: clock(hours.starts_minute),
            school_day_ends: clock(hours.ends_minute),
            time_zone: hours.time_zone,
        }
    }
}

impl IncidentsConfig {
    /// Refuses settings out of range, naming the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(60..=86_400).contains(&self.escalate_after_s) {
            return Err(("escalate_after_s", format!("must be 60..=86400 seconds, not {}", self.escalate_after_s)));
        }
        let starts = minute_of_day(&self.school_day_starts).ok_or(("school_day_starts", "must be HH:MM".to_owned()))?;
        let ends = minute_of_day(&self.school_day_ends).ok_or(("school_day_ends", "must be HH:MM".to_owned()))?;
        if ends <= starts {
            return Err(("school_day_ends", "must be after school_day_starts".to_owned()));
        }
        jiff::tz::TimeZone::get(&self.time_zone).map_err(|_| ("time_zone", "not an IANA timezone name".to_owned()))?;
        Ok(())
    }

    /// The escalation policy these settings give.
    pub fn escalation(&self) -> EscalationPolicy {
        let school_hours = self.escalate_in_school_hours.then(|| SchoolHours {
            starts_minute: minute_of_day(&self.school_day_starts).unwrap_or(8 * 60),
            ends_minute: minute_of_day(&self.school_day_ends).unwrap_or(16 * 60),
            time_zone: self.time_zone.clone(),
        });
        EscalationPolicy {
            acknowledge_within_seconds: self.escalate_after_s,
            school_hours,
            ..EscalationPolicy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_school_day_is_checked_and_becomes_the_escalation_clock() {
        let config = IncidentsConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.escalation().school_hours, Some(SchoolHours::default()));
        let always = IncidentsConfig { escalate_in_school_hours: false, ..IncidentsConfig::default() };
        assert_eq!(always.escalation().school_hours, None);
        for (config, key) in [
            (IncidentsConfig { school_day_starts: "8am".into(), ..IncidentsConfig::default() }, "school_day_starts"),
            (IncidentsConfig { school_day_ends: "07:30".into(), ..IncidentsConfig::default() }, "school_day_ends"),
            (IncidentsConfig { time_zone: "Mars/Olympus".into(), ..IncidentsConfig::default() }, "time_zone"),
        ] {
            assert_eq!(config.validate().unwrap_err().0, key);
        }
    }
}
