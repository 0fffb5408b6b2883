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

/// When and to whom unacknowledged alerts escalate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalationPolicy {
    /// Time allowed for each step before the next fires (default 15 minutes).
    pub acknowledge_within_seconds: i64,
    /// Who each step goes to, in order.
    pub ladder: Vec<Role>,
    /// Alerts at or above this severity escalate.
    pub min_severity: Severity,
}

impl Default for EscalationPolicy {
    fn default() -> Self {
        EscalationPolicy {
            acknowledge_within_seconds: 15 * 60,
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
        alert.raised_at.plus_seconds(policy.acknowledge_within_seconds.saturating_mul(steps))
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
