//! A concern (`concern-<concern_id>`): raised by any member of staff, or from an alert, then
//! triaged once by the DSL (or deputy) — or, for a concern about a colleague, the principal.
//!
//! ```text
//!  Raise ─▶ ConcernRaised ─▶ Triage ─▶ ConcernTriaged(merged | linked | false positive |
//!                                                     no further action | case opened)
//! ```

use haven_authz::UserId;
use haven_kernel::{Decider, SchoolId};

use super::ids::{AlertId, CaseId, ConcernId, SubjectId};
use super::types::{CaseType, ConcernAbout, MAX_IDS, MAX_TEXT_BYTES, UnixTime};
use super::validate::{required_text, within};

/// What the raiser says, as the command carries and the event records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcernDetails {
    pub concern_id: ConcernId,
    pub school_id: SchoolId,
    pub raised_by: UserId,
    pub raised_at: UnixTime,
    pub about: ConcernAbout,
    /// Learners involved, or whose parent/carer it is about.
    pub subject_ids: Vec<SubjectId>,
    /// Colleagues it is about.
    pub staff_ids: Vec<UserId>,
    /// In the raiser's words (personal data).
    pub what_happened: String,
    pub incident_occurred_at: Option<UnixTime>,
    pub suspected_type: Option<CaseType>,
    pub immediate_risk: bool,
    /// The DSL (or deputy) the raiser also told in person, as the policy asks.
    pub dsl_told_verbally: Option<UserId>,
    pub alert_id: Option<AlertId>,
    pub device_ids: Vec<String>,
}

/// What triage decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriageDecision {
    /// The same incident as an existing case.
    Merged { case_id: CaseId },
    /// Related to an existing case but its own matter.
    Linked { case_id: CaseId },
    /// Not a safeguarding matter after all; the reason is required.
    FalsePositive { reason: String },
    /// Genuine, recorded on the chronology, needing no case; the reason is required.
    NoFurtherAction { reason: String },
    /// A new case was opened (the shell opens it in its own stream).
    CaseOpened { case_id: CaseId },
}

impl TriageDecision {
    pub fn case_id(&self) -> Option<&CaseId> {
        match self {
            TriageDecision::Merged { case_id }
            | TriageDecision::Linked { case_id }
            | TriageDecision::CaseOpened { case_id } => Some(case_id),
            TriageDecision::FalsePositive { .. } | TriageDecision::NoFurtherAction { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Triage {
    pub by: UserId,
    pub at: UnixTime,
    pub decision: TriageDecision,
}

/// A concern as its stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concern {
    pub details: ConcernDetails,
    pub triage: Option<Triage>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConcernCommand {
    Raise(ConcernDetails),
    Triage {
        by: UserId,
        at: UnixTime,
        /// Looked up by the shell: whether `by` is the school's principal (a concern about a
        /// colleague is the principal's to triage, policy 10.2).
        by_principal: bool,
        decision: TriageDecision,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConcernEvent {
    Raised(ConcernDetails),
    Triaged(Triage),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConcernError {
    #[error("the concern was raised already")]
    AlreadyRaised,
    #[error("no such concern")]
    NotRaised,
    #[error("the concern was triaged already")]
    AlreadyTriaged,
    #[error("a concern about {0} must name at least one")]
    NobodyNamed(&'static str),
    #[error("a concern about a colleague cannot name its raiser")]
    AboutTheRaiser,
    #[error("a concern about a colleague is triaged by the principal")]
    PrincipalTriages,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl From<super::validate::Invalid> for ConcernError {
    fn from(invalid: super::validate::Invalid) -> Self {
        ConcernError::Invalid { field: invalid.field, reason: invalid.reason }
    }
}

#[derive(Debug)]
pub struct ConcernDecider;

impl Decider for ConcernDecider {
    type State = Option<Concern>;
    type Command = ConcernCommand;
    type Event = ConcernEvent;
    type Error = ConcernError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        match command {
            ConcernCommand::Raise(details) => {
                if state.is_some() {
                    return Err(ConcernError::AlreadyRaised);
                }
                validate_raise(details)?;
                Ok(vec![ConcernEvent::Raised(details.clone())])
            }
            ConcernCommand::Triage { by, at, by_principal, decision } => {
                let concern = state.as_ref().ok_or(ConcernError::NotRaised)?;
                if concern.triage.is_some() {
                    return Err(ConcernError::AlreadyTriaged);
                }
                if concern.details.about == ConcernAbout::Colleague && !by_principal {
                    return Err(ConcernError::PrincipalTriages);
                }
                match decision {
                    TriageDecision::FalsePositive { reason } | TriageDecision::NoFurtherAction { reason } => {
                        required_text("reason", reason, MAX_TEXT_BYTES)?;
                    }
                    TriageDecision::Merged { .. }
                    | TriageDecision::Linked { .. }
                    | TriageDecision::CaseOpened { .. } => {}
                }
                Ok(vec![ConcernEvent::Triaged(Triage { by: by.clone(), at: *at, decision: decision.clone() })])
            }
        }
    }

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State {
        match (state, event) {
            (None, ConcernEvent::Raised(details)) => Some(Concern { details: details.clone(), triage: None }),
            (Some(concern), ConcernEvent::Triaged(triage)) => Some(Concern { triage: Some(triage.clone()), ..concern }),
            // A history the decider never produces; keep what is known.
            (state, _) => state,
        }
    }
}

fn validate_raise(details: &ConcernDetails) -> Result<(), ConcernError> {
    required_text("what_happened", &details.what_happened, MAX_TEXT_BYTES)?;
    within("subject_ids", details.subject_ids.len(), MAX_IDS)?;
    within("staff_user_ids", details.staff_ids.len(), MAX_IDS)?;
    within("device_ids", details.device_ids.len(), MAX_IDS)?;
    match details.about {
        ConcernAbout::Learner | ConcernAbout::ParentCarer if details.subject_ids.is_empty() => {
            return Err(ConcernError::NobodyNamed("a learner or parent/carer: their learner"));
        }
        ConcernAbout::Colleague if details.staff_ids.is_empty() => {
            return Err(ConcernError::NobodyNamed("a colleague: the colleague"));
        }
        ConcernAbout::Colleague if details.staff_ids.contains(&details.raised_by) => {
            return Err(ConcernError::AboutTheRaiser);
        }
        _ => {}
    }
    Ok(())
}
