//! Escalation of ingest's safeguarding alerts (`alert-<alert_id>`): a critical alert nobody
//! acknowledges in time goes to the deputies, then the principal, then the trust's
//! safeguarding lead — one `AlertEscalated` per step.
//!
//! ```text
//!  ingest.SafeguardingAlertRaised ─▶ Alert ─▶ escalations_due(alert, now, policy) ─▶ [Escalated…]
//!                                         └─ Acknowledge ─▶ Acknowledged (no more escalation)
//! ```
//! Escalation is a pure function of (state, now): the shell's timer calls it and appends what
//! it returns with the version it read, so two timers racing write each step once.

use haven_authz::{Role, UserId};
use haven_kernel::{Decider, SchoolId};

use super::ids::{AlertId, ConcernId};
use super::types::{MAX_TEXT_BYTES, UnixTime};
use super::validate::optional_text;

/// An alert's severity, as ingest set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// The school day the escalation clock runs in: Monday to Friday, from `starts` to `ends`
/// (minutes after local midnight) in `time_zone`. Outside it the clock stands still, so an
/// alert raised in the evening is due 15 school minutes into the next school day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchoolHours {
    pub starts_minute: u16,
    pub ends_minute: u16,
    /// An IANA zone name; an unknown name counts as UTC.
    pub time_zone: String,
}

impl Default for SchoolHours {
    fn default() -> Self {
        SchoolHours { starts_minute: 8 * 60, ends_minute: 16 * 60, time_zone: "Europe/London".into() }
    }
}

impl SchoolHours {
    /// `seconds` of school time after `from`.
    pub fn add(&self, from: UnixTime, seconds: i64) -> UnixTime {
        use jiff::civil::Weekday;
        let zone = jiff::tz::TimeZone::get(&self.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let local = |date: jiff::civil::Date, minute: u16| {
            date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0)
                .to_zoned_datetime(zone.clone())
                .map(|zoned| zoned.timestamp().as_second())
        };
        let (mut at, mut left) = (from.0, seconds.max(0));
        // Bounded: a year of days, whatever the settings.
        for _ in 0..400 {
            let Ok(now) = jiff::Timestamp::from_second(at) else { break };
            let date = now.to_zoned_datetime(zone.clone()).date();
            let (Ok(start), Ok(end)) = (local(date, self.starts_minute), local(date, self.ends_minute)) else { break };
            let weekend = matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday);
            if weekend || at >= end || start >= end {
                let Ok(next) = date.tomorrow() else { break };
                let Ok(next_start) = local(next, self.starts_minute) else { break };
                at = next_start;
                continue;
            }
            at = at.max(start);
            if left <= end - at {
                return UnixTime(at + left);
            }
            left -= end - at;
            at = end;
        }
        from.plus_seconds(seconds)
    }
}

/// When and to whom unacknowledged alerts escalate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalationPolicy {
    /// Time allowed for each step before the next fires (default 15 minutes).
    pub acknowledge_within_seconds: i64,
    /// The clock runs in school hours only (default); `None`: at every hour.
    pub school_hours: Option<SchoolHours>,
    /// Who each step goes to, in order.
    pub ladder: Vec<Role>,
    /// Alerts at or above this severity escalate.
    pub min_severity: Severity,
}

impl Default for EscalationPolicy {
    fn default() -> Self {
        EscalationPolicy {
            acknowledge_within_seconds: 15 * 60,
            school_hours: Some(SchoolHours::default()),
            ladder: vec![Role::DeputyDsl, Role::Principal, Role::TrustSafeguardingLead],
            min_severity: Severity::Critical,
        }
    }
}

/// One step of escalation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalationStep {
    /// 1 for the first step.
    pub level: u32,
    pub role: Role,
    /// The deadline that was missed.
    pub acknowledge_by: UnixTime,
    /// When the next step fires; `None` at the last.
    pub next_acknowledge_by: Option<UnixTime>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acknowledgement {
    pub by: UserId,
    pub at: UnixTime,
    pub within_deadline: bool,
    pub concern_id: Option<ConcernId>,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub alert_id: AlertId,
    pub school_id: SchoolId,
    pub severity: Severity,
    pub raised_at: UnixTime,
    pub acknowledged: Option<Acknowledgement>,
    pub escalations: Vec<EscalationStep>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertEvent {
    /// Ingest raised it (its event, read from the same stream).
    Raised {
        alert_id: AlertId,
        school_id: SchoolId,
        severity: Severity,
        raised_at: UnixTime,
    },
    Acknowledged(Acknowledgement),
    Escalated(EscalationStep),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertCommand {
    Acknowledge {
        by: UserId,
        at: UnixTime,
        concern_id: Option<ConcernId>,
        note: String,
        /// The first deadline under the policy in force.
        policy: EscalationPolicy,
    },
    /// The timer's tick: escalate whatever is due at `now`.
    Escalate { now: UnixTime, policy: EscalationPolicy },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("no such alert")]
    NotRaised,
    #[error("the alert was acknowledged already")]
    AlreadyAcknowledged,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// The escalation steps due at `now` that have not been taken: none once acknowledged, none
/// below the policy's severity, and at most one per rung of the ladder. Step `k` fires when
/// `k` deadlines have passed since the alert was raised.
pub fn escalations_due(alert: &Alert, now: UnixTime, policy: &EscalationPolicy) -> Vec<EscalationStep> {
    if alert.acknowledged.is_some() || alert.severity < policy.min_severity || policy.acknowledge_within_seconds <= 0 {
        return Vec::new();
    }
    let deadline = |level: usize| {
        let steps = i64::try_from(level).unwrap_or(i64::MAX);
        let wait = policy.acknowledge_within_seconds.saturating_mul(steps);
        match &policy.school_hours {
            Some(hours) => hours.add(alert.raised_at, wait),
            None => alert.raised_at.plus_seconds(wait),
        }
    };
    let last = policy.ladder.len();
    (alert.escalations.len()..last)
        .take_while(|&index| deadline(index + 1) <= now)
        .map(|index| EscalationStep {
            level: u32::try_from(index + 1).unwrap_or(u32::MAX),
            role: policy.ladder[index],
            acknowledge_by: deadline(index + 1),
            next_acknowledge_by: (index + 1 < last).then(|| deadline(index + 2)),
        })
        .collect()
}

#[derive(Debug)]
pub struct AlertDecider;

impl Decider for AlertDecider {
    type State = Option<Alert>;
    type Command = AlertCommand;
    type Event = AlertEvent;
    type Error = AlertError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        let alert = state.as_ref().ok_or(AlertError::NotRaised)?;
        match command {
            AlertCommand::Acknowledge { by, at, concern_id, note, policy } => {
                if alert.acknowledged.is_some() {
                    return Err(AlertError::AlreadyAcknowledged);
                }
                optional_text("note", note, MAX_TEXT_BYTES)
                    .map_err(|invalid| AlertError::Invalid { field: invalid.field, reason: invalid.reason })?;
                let first_deadline = alert.raised_at.plus_seconds(policy.acknowledge_within_seconds);
                Ok(vec![AlertEvent::Acknowledged(Acknowledgement {
                    by: by.clone(),
                    at: *at,
                    within_deadline: *at <= first_deadline,
                    concern_id: concern_id.clone(),
                    note: note.clone(),
                })])
            }
            AlertCommand::Escalate { now, policy } => {
                Ok(escalations_due(alert, *now, policy).into_iter().map(AlertEvent::Escalated).collect())
            }
        }
    }

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State {
        match (state, event) {
            (None, AlertEvent::Raised { alert_id, school_id, severity, raised_at }) => Some(Alert {
                alert_id: alert_id.clone(),
                school_id: school_id.clone(),
                severity: *severity,
                raised_at: *raised_at,
                acknowledged: None,
                escalations: Vec::new(),
            }),
            (Some(mut alert), AlertEvent::Acknowledged(acknowledgement)) => {
                alert.acknowledged = Some(acknowledgement.clone());
                Some(alert)
            }
            (Some(mut alert), AlertEvent::Escalated(step)) => {
                alert.escalations.push(step.clone());
                Some(alert)
            }
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod school_hours_tests {
    use super::*;

    /// 2026-12-07, a Monday, 12:00 UTC (12:00 in London in winter).
    const MONDAY_NOON: UnixTime = UnixTime(1_796_644_800);
    const MINUTE: i64 = 60;
    const HOUR: i64 = 3_600;

    #[test]
    fn the_clock_runs_in_school_hours_only() {
        let hours = SchoolHours::default();
        assert_eq!(hours.add(MONDAY_NOON, 15 * MINUTE), MONDAY_NOON.plus_seconds(15 * MINUTE), "in hours");
        // 15:55 on Monday: 5 minutes left today, 10 more from 08:00 on Tuesday.
        let late = MONDAY_NOON.plus_seconds(3 * HOUR + 55 * MINUTE);
        assert_eq!(hours.add(late, 15 * MINUTE), MONDAY_NOON.plus_seconds(20 * HOUR + 10 * MINUTE));
        // Raised on Friday evening: due at 08:15 on Monday.
        let friday_evening = MONDAY_NOON.plus_seconds(4 * 24 * HOUR + 8 * HOUR);
        assert_eq!(
            hours.add(friday_evening, 15 * MINUTE),
            MONDAY_NOON.plus_seconds(7 * 24 * HOUR - 4 * HOUR + 15 * MINUTE)
        );
        // Before school: due 15 minutes after it starts.
        let early = MONDAY_NOON.plus_seconds(-6 * HOUR);
        assert_eq!(hours.add(early, 15 * MINUTE), MONDAY_NOON.plus_seconds(-4 * HOUR + 15 * MINUTE));
    }

    #[test]
    fn school_hours_follow_the_zone_through_summer_time() {
        // 2026-06-15, a Monday, 06:59 UTC = 07:59 in London (BST): the day starts at 07:00 UTC.
        let before = UnixTime(1_781_506_740);
        assert_eq!(SchoolHours::default().add(before, 15 * MINUTE), UnixTime(1_781_506_800 + 15 * MINUTE));
        let utc = SchoolHours { time_zone: "UTC".into(), ..SchoolHours::default() };
        assert_eq!(utc.add(before, 15 * MINUTE), UnixTime(1_781_510_400 + 15 * MINUTE), "08:00 UTC");
    }

    #[test]
    fn escalation_waits_for_school_time_and_none_means_every_hour() {
        let evening = MONDAY_NOON.plus_seconds(8 * HOUR);
        let alert = Alert {
            alert_id: AlertId::parse("a-1").unwrap(),
            school_id: SchoolId::parse("oak").unwrap(),
            severity: Severity::Critical,
            raised_at: evening,
            acknowledged: None,
            escalations: vec![],
        };
        let policy = EscalationPolicy::default();
        assert!(escalations_due(&alert, evening.plus_seconds(4 * HOUR), &policy).is_empty(), "nobody is in school");
        let next_morning = MONDAY_NOON.plus_seconds(20 * HOUR + 15 * MINUTE);
        assert_eq!(escalations_due(&alert, next_morning, &policy).len(), 1, "15 school minutes into Tuesday");
        let always = EscalationPolicy { school_hours: None, ..EscalationPolicy::default() };
        assert_eq!(escalations_due(&alert, evening.plus_seconds(45 * MINUTE), &always).len(), 3);
    }
}
