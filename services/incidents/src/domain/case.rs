//! A safeguarding case (`incident-<case_id>`), run through the procedure its type requires.
//!
//! ```text
//!  Open ─▶ Opened(checklist v1 for the type) ─┬─ RecordAction / MakeReferral / RecordReferralOutcome
//!                                             ├─ InformParents / DoNotInformParents (per learner)
//!                                             ├─ RecordImageryViewed / RecordMaterialDeletion
//!                                             ├─ Link / ChangeRisk / Escalate / Grant / Revoke
//!                                             └─ Close (nothing outstanding) ─▶ Closed ─ Reopen ─▶ …
//! ```
//! Rules the policy sets, enforced here:
//! - a case cannot close while a required action is outstanding or a referral awaits its
//!   outcome, and closing needs the outcome, a debrief and lessons learned (policy 10);
//! - when imagery has been viewed, the written record (when, who, who was present, why) must
//!   exist before the case proceeds (policy 11.2; second policy 12). Referrals, risk changes
//!   and escalation are never held back by it: a child's safety does not wait for paperwork;
//! - material is deleted only once the DSL confirms no agency needs it (11.2);
//! - an allegation's LADO discussion is due within one working day (10.2) and shows as overdue;
//! - reopening keeps every earlier event, closure included.

use std::collections::{BTreeMap, BTreeSet};

use haven_authz::{Role, UserId};
use haven_kernel::{Decider, SchoolId};

use super::checklist::{self, CHECKLIST_VERSION, DO_NOT_VIEW, Due, INFORM_PARENTS, OTHER_ACTION};
use super::ids::{AlertId, CaseId, ConcernId, ReferralId, SubjectId};
use super::types::{
    AccessPolicy, ActionStatus, Agency, AllegationOutcome, CaseType, ContactMethod, FourCs, MAX_IDS, MAX_SHORT_BYTES,
    MAX_TEXT_BYTES, ReferralOutcome, RiskLevel, UnixTime,
};
use super::validate::{Invalid, optional_text, required_text, within};
use super::working_days::add_working_days;

/// One action of a case's checklist (or recorded outside it, as `other`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChecklistItem {
    pub key: String,
    pub title: String,
    /// The policy section requiring it; empty for `other`.
    pub section: String,
    pub status: ActionStatus,
    pub note: String,
    pub due_at: Option<UnixTime>,
    /// A referral to this agency completes it.
    pub done_by_referral: Option<Agency>,
    /// Checklist actions are required; `other` actions are a record only.
    pub required: bool,
}

/// A referral, or advice sought, and what the agency decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referral {
    pub referral_id: ReferralId,
    pub agency: Agency,
    /// The agency's name when `agency` is `Other`.
    pub agency_other: String,
    pub reference_number: String,
    pub made_by: UserId,
    pub made_at: UnixTime,
    /// Who was spoken to (personal data).
    pub agency_contact: String,
    /// Why it was made.
    pub reason: String,
    pub follow_up_at: Option<UnixTime>,
    pub outcome: Option<RecordedOutcome>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedOutcome {
    pub outcome: ReferralOutcome,
    pub allegation_outcome: Option<AllegationOutcome>,
    pub detail: String,
    pub by: UserId,
    pub at: UnixTime,
}

/// The decision not to refer, with its rationale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralDeclined {
    pub agency: Agency,
    pub rationale: String,
    pub by: UserId,
    pub at: UnixTime,
}

/// The written record of imagery being viewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewingRecord {
    pub viewed_by: UserId,
    pub viewed_at: UnixTime,
    pub present: Vec<UserId>,
    /// Others present who are not users, by role ("police officer").
    pub others_present: Vec<String>,
    pub reason: String,
    pub description: String,
    pub custody_id: String,
}

/// Material deleted after the DSL's confirmations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub dsl: UserId,
    pub agencies_consulted: Vec<Agency>,
    pub description: String,
    pub deleted_by: String,
    pub learner_consented: bool,
    pub custody_id: String,
}

/// What was decided about one learner's parents/carers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParentsDecision {
    Informed { method: ContactMethod, summary: String, by: UserId, at: UnixTime },
    NotInformed { reason: String, by: UserId, at: UnixTime },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closure {
    pub by: UserId,
    pub at: UnixTime,
    pub outcome_summary: String,
    pub debrief: String,
    pub lessons_learned: String,
    pub changes_required: String,
    pub allegation_outcome: Option<AllegationOutcome>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escalation {
    pub role: Role,
    pub users: Vec<UserId>,
    pub reason: String,
    pub by: UserId,
    pub at: UnixTime,
}

/// Whether a case is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseStatus {
    Open,
    Closed,
}

/// What opening a case records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenCase {
    pub case_id: CaseId,
    pub school_id: SchoolId,
    pub case_type: CaseType,
    pub four_cs: BTreeSet<FourCs>,
    pub risk: RiskLevel,
    pub lead: UserId,
    pub subject_ids: Vec<SubjectId>,
    /// Staff the case is about; never able to see it.
    pub staff_ids: Vec<UserId>,
    pub concern_ids: Vec<ConcernId>,
    pub alert_ids: Vec<AlertId>,
    pub summary: String,
    /// Someone has already viewed imagery: the written record is due before anything else.
    pub imagery_viewed: bool,
}

/// A case as its stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub opened: OpenCase,
    pub opened_by: UserId,
    pub opened_at: UnixTime,
    pub access_policy: AccessPolicy,
    pub status: CaseStatus,
    pub risk: RiskLevel,
    pub lead: UserId,
    pub checklist_version: u32,
    pub checklist: Vec<ChecklistItem>,
    pub referrals: Vec<Referral>,
    pub declined_referrals: Vec<ReferralDeclined>,
    pub parents: BTreeMap<SubjectId, ParentsDecision>,
    pub viewings: Vec<ViewingRecord>,
    pub deletions: Vec<Deletion>,
    /// Linked cases and their schools.
    pub links: BTreeMap<CaseId, SchoolId>,
    pub grants: BTreeSet<UserId>,
    pub escalations: Vec<Escalation>,
    /// Every closing, oldest first: a reopened case keeps its earlier closures.
    pub closures: Vec<Closure>,
    pub reopenings: u32,
}

impl Case {
    pub fn case_id(&self) -> &CaseId {
        &self.opened.case_id
    }

    pub fn school_id(&self) -> &SchoolId {
        &self.opened.school_id
    }

    pub fn case_type(&self) -> CaseType {
        self.opened.case_type
    }

    /// Whether a written viewing record is still owed.
    pub fn viewing_record_owed(&self) -> bool {
        self.opened.imagery_viewed && self.viewings.is_empty()
    }

    /// Required actions not yet done or judged not applicable, in checklist order.
    pub fn outstanding(&self) -> impl Iterator<Item = &ChecklistItem> {
        self.checklist.iter().filter(|item| item.required && item.status == ActionStatus::Outstanding)
    }

    /// Referrals still waiting for the agency's decision.
    pub fn awaiting_outcome(&self) -> impl Iterator<Item = &Referral> {
        self.referrals.iter().filter(|referral| referral.outcome.is_none())
    }

    /// Outstanding actions whose deadline has passed at `now` (e.g. the LADO's one working day).
    pub fn overdue(&self, now: UnixTime) -> Vec<&ChecklistItem> {
        if self.status == CaseStatus::Closed {
            return Vec::new();
        }
        self.outstanding().filter(|item| item.due_at.is_some_and(|due| due < now)).collect()
    }

    fn item(&self, key: &str) -> Option<&ChecklistItem> {
        self.checklist.iter().find(|item| item.key == key)
    }
}

/// A change to a case, past tense.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseChange {
    Opened {
        case: OpenCase,
        checklist_version: u32,
        checklist: Vec<ChecklistItem>,
    },
    ActionRecorded {
        key: String,
        title: String,
        status: ActionStatus,
        note: String,
    },
    /// A new referral, or a reference number / contact arriving later for the same id.
    ReferralMade(Referral),
    ReferralDeclined {
        agency: Agency,
        rationale: String,
    },
    ReferralOutcomeRecorded {
        referral_id: ReferralId,
        outcome: ReferralOutcome,
        allegation_outcome: Option<AllegationOutcome>,
        detail: String,
    },
    ParentsInformed {
        subject_ids: Vec<SubjectId>,
        method: ContactMethod,
        summary: String,
    },
    ParentsNotInformed {
        subject_ids: Vec<SubjectId>,
        reason: String,
    },
    ImageryViewed(ViewingRecord),
    MaterialDeleted(Deletion),
    Linked {
        linked_case_id: CaseId,
        linked_school_id: SchoolId,
        reason: String,
    },
    RiskChanged {
        previous: RiskLevel,
        risk: RiskLevel,
        reason: String,
    },
    Escalated {
        role: Role,
        users: Vec<UserId>,
        reason: String,
    },
    AccessGranted {
        user: UserId,
        reason: String,
    },
    AccessRevoked {
        user: UserId,
    },
    Closed(Closure),
    Reopened {
        reason: String,
    },
}

/// An event of a case: who recorded it, when it happened, what changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseEvent {
    pub by: UserId,
    pub at: UnixTime,
    pub change: CaseChange,
}

/// What a caller asks of a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseRequest {
    Open(OpenCase),
    RecordAction {
        key: String,
        title: String,
        status: ActionStatus,
        note: String,
    },
    MakeReferral {
        referral_id: ReferralId,
        agency: Agency,
        agency_other: String,
        reference_number: String,
        agency_contact: String,
        reason: String,
        follow_up_at: Option<UnixTime>,
    },
    DeclineReferral {
        agency: Agency,
        rationale: String,
    },
    RecordReferralOutcome {
        referral_id: ReferralId,
        outcome: ReferralOutcome,
        allegation_outcome: Option<AllegationOutcome>,
        detail: String,
    },
    InformParents {
        subject_ids: Vec<SubjectId>,
        method: ContactMethod,
        summary: String,
    },
    DoNotInformParents {
        subject_ids: Vec<SubjectId>,
        reason: String,
    },
    RecordImageryViewed(ViewingRecord),
    RecordMaterialDeletion {
        /// Looked up by the shell: whether the caller is a DSL or deputy of the case's school.
        by_dsl: bool,
        dsl_confirmed_no_agency_needs_it: bool,
        dsl_confirmed_safe_to_delete: bool,
        deletion: Deletion,
    },
    Link {
        linked_case_id: CaseId,
        linked_school_id: SchoolId,
        reason: String,
    },
    ChangeRisk {
        risk: RiskLevel,
        reason: String,
    },
    Escalate {
        role: Role,
        users: Vec<UserId>,
        reason: String,
    },
    GrantAccess {
        user: UserId,
        reason: String,
        /// Looked up by the shell: whether the caller is the principal of the case's school.
        by_principal: bool,
    },
    RevokeAccess {
        user: UserId,
        by_principal: bool,
    },
    Close {
        outcome_summary: String,
        debrief: String,
        lessons_learned: String,
        changes_required: String,
        allegation_outcome: Option<AllegationOutcome>,
    },
    Reopen {
        reason: String,
    },
}

/// A command: who asks, when, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseCommand {
    pub by: UserId,
    pub at: UnixTime,
    pub request: CaseRequest,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error("the case is open already")]
    AlreadyOpened,
    #[error("no such case")]
    NotOpened,
    #[error("the case is closed; reopen it first")]
    Closed,
    #[error("the case is open")]
    NotClosed,
    #[error("cannot close while required actions are outstanding: {}", .0.join(", "))]
    OutstandingActions(Vec<String>),
    #[error("cannot close while {0} referral(s) await their outcome")]
    ReferralsAwaitOutcome(usize),
    #[error("the written record of the imagery viewed (when, who, who was present, why) must come first")]
    ViewingRecordRequired,
    #[error("material is deleted only once the DSL confirms no agency needs it and it is safe to delete")]
    DeletionNotConfirmed,
    #[error("only a DSL (or deputy) of the school records the deletion of material")]
    DeletionByDslOnly,
    #[error("no action `{0}` in this case's checklist")]
    UnknownAction(String),
    #[error("no referral {0} in this case")]
    UnknownReferral(ReferralId),
    #[error("referral {0} was made to another agency")]
    ReferralAgencyChanged(ReferralId),
    #[error("referral {0} already has its outcome")]
    OutcomeAlreadyRecorded(ReferralId),
    #[error("an allegation's LADO outcome needs its allegation outcome")]
    AllegationOutcomeRequired,
    #[error("only LADO referrals of an allegation carry an allegation outcome")]
    AllegationOutcomeNotExpected,
    #[error("learner {0} is not named in this case")]
    SubjectNotInCase(SubjectId),
    #[error("a case about staff must name the member of staff")]
    StaffRequired,
    #[error("a case cannot be linked to itself")]
    LinkedToItself,
    #[error("the risk level is {0:?} already")]
    SameRisk(RiskLevel),
    #[error("the person the case is about can never be given access to it")]
    GranteeIsSubject,
    #[error("only the principal grants or withdraws access to a case about staff")]
    PrincipalGrantsOnly,
    #[error("user {0} holds no grant on this case")]
    NotGranted(UserId),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl From<Invalid> for CaseError {
    fn from(invalid: Invalid) -> Self {
        CaseError::Invalid { field: invalid.field, reason: invalid.reason }
    }
}

fn invalid(field: &'static str, reason: &str) -> CaseError {
    CaseError::Invalid { field, reason: reason.to_owned() }
}

#[derive(Debug)]
pub struct CaseDecider;

impl Decider for CaseDecider {
    type State = Option<Case>;
    type Command = CaseCommand;
    type Event = CaseEvent;
    type Error = CaseError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        let changes = match (state, &command.request) {
            (None, CaseRequest::Open(open)) => vec![open_case(open, command.at)?],
            (Some(_), CaseRequest::Open(_)) => return Err(CaseError::AlreadyOpened),
            (None, _) => return Err(CaseError::NotOpened),
            (Some(case), CaseRequest::Reopen { reason }) => {
                if case.status != CaseStatus::Closed {
                    return Err(CaseError::NotClosed);
                }
                required_text("reason", reason, MAX_TEXT_BYTES)?;
                vec![CaseChange::Reopened { reason: reason.clone() }]
            }
            (Some(case), _) if case.status == CaseStatus::Closed => return Err(CaseError::Closed),
            (Some(case), request) => decide_open(case, &command.by, command.at, request)?,
        };
        Ok(changes.into_iter().map(|change| CaseEvent { by: command.by.clone(), at: command.at, change }).collect())
    }

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State {
        match (state, &event.change) {
            (None, CaseChange::Opened { case, checklist_version, checklist }) => Some(Case {
                opened: case.clone(),
                opened_by: event.by.clone(),
                opened_at: event.at,
                access_policy: case.case_type.access_policy(),
                status: CaseStatus::Open,
                risk: case.risk,
                lead: case.lead.clone(),
                checklist_version: *checklist_version,
                checklist: checklist.clone(),
                referrals: Vec::new(),
                declined_referrals: Vec::new(),
                parents: BTreeMap::new(),
                viewings: Vec::new(),
                deletions: Vec::new(),
                links: BTreeMap::new(),
                grants: BTreeSet::new(),
                escalations: Vec::new(),
                closures: Vec::new(),
                reopenings: 0,
            }),
            (Some(mut case), change) => {
                apply(&mut case, &event.by, event.at, change);
                Some(case)
            }
            // A history the decider never produces (a change before the opening); ignored.
            (None, _) => None,
        }
    }
}

fn open_case(open: &OpenCase, at: UnixTime) -> Result<CaseChange, CaseError> {
    within("subject_ids", open.subject_ids.len(), MAX_IDS)?;
    within("staff_user_ids", open.staff_ids.len(), MAX_IDS)?;
    within("concern_ids", open.concern_ids.len(), MAX_IDS)?;
    within("alert_ids", open.alert_ids.len(), MAX_IDS)?;
    optional_text("summary", &open.summary, MAX_TEXT_BYTES)?;
    if open.case_type.is_about_staff() && open.staff_ids.is_empty() {
        return Err(CaseError::StaffRequired);
    }
    if open.staff_ids.contains(&open.lead) {
        return Err(CaseError::GranteeIsSubject);
    }
    let checklist = checklist::rows_for(open.case_type, !open.staff_ids.is_empty())
        .map(|row| ChecklistItem {
            key: row.key.to_owned(),
            title: row.title.to_owned(),
            section: row.section.to_owned(),
            status: ActionStatus::Outstanding,
            note: String::new(),
            due_at: match row.due {
                Due::NoDeadline => None,
                Due::WorkingDays(days) => Some(add_working_days(at, days)),
            },
            done_by_referral: row.done_by_referral,
            required: true,
        })
        .collect();
    Ok(CaseChange::Opened { case: open.clone(), checklist_version: CHECKLIST_VERSION, checklist })
}

fn decide_open(case: &Case, by: &UserId, at: UnixTime, request: &CaseRequest) -> Result<Vec<CaseChange>, CaseError> {
    let holds_for_viewing_record = matches!(
        request,
        CaseRequest::RecordAction { .. }
            | CaseRequest::InformParents { .. }
            | CaseRequest::DoNotInformParents { .. }
            | CaseRequest::RecordMaterialDeletion { .. }
            | CaseRequest::Close { .. }
    );
    if holds_for_viewing_record && case.viewing_record_owed() {
        return Err(CaseError::ViewingRecordRequired);
    }
    let change = match request {
        CaseRequest::Open(_) | CaseRequest::Reopen { .. } => return Err(CaseError::AlreadyOpened),
        CaseRequest::RecordAction { key, title, status, note } => {
            optional_text("note", note, MAX_TEXT_BYTES)?;
            if key == OTHER_ACTION {
                required_text("title", title, MAX_SHORT_BYTES)?;
            } else if case.item(key).is_none() {
                return Err(CaseError::UnknownAction(key.clone()));
            }
            if *status == ActionStatus::NotApplicable {
                required_text("note", note, MAX_TEXT_BYTES)
                    .map_err(|_| invalid("note", "must say why it does not apply"))?;
                if key == DO_NOT_VIEW && case.viewings.is_empty() {
                    return Err(CaseError::ViewingRecordRequired);
                }
            }
            CaseChange::ActionRecorded { key: key.clone(), title: title.clone(), status: *status, note: note.clone() }
        }
        CaseRequest::MakeReferral {
            referral_id,
            agency,
            agency_other,
            reference_number,
            agency_contact,
            reason,
            follow_up_at,
        } => {
            optional_text("reference_number", reference_number, MAX_SHORT_BYTES)?;
            optional_text("agency_contact", agency_contact, MAX_SHORT_BYTES)?;
            optional_text("agency_other", agency_other, MAX_SHORT_BYTES)?;
            let existing = case.referrals.iter().find(|referral| &referral.referral_id == referral_id);
            let referral = match existing {
                Some(earlier) => {
                    if earlier.agency != *agency {
                        return Err(CaseError::ReferralAgencyChanged(referral_id.clone()));
                    }
                    Referral {
                        reference_number: if reference_number.is_empty() {
                            earlier.reference_number.clone()
                        } else {
                            reference_number.clone()
                        },
                        agency_contact: if agency_contact.is_empty() {
                            earlier.agency_contact.clone()
                        } else {
                            agency_contact.clone()
                        },
                        follow_up_at: follow_up_at.or(earlier.follow_up_at),
                        ..earlier.clone()
                    }
                }
                None => {
                    required_text("summary", reason, MAX_TEXT_BYTES)?;
                    if *agency == Agency::Other {
                        required_text("agency_other", agency_other, MAX_SHORT_BYTES)?;
                    }
                    Referral {
                        referral_id: referral_id.clone(),
                        agency: *agency,
                        agency_other: agency_other.clone(),
                        reference_number: reference_number.clone(),
                        made_by: by.clone(),
                        made_at: at,
                        agency_contact: agency_contact.clone(),
                        reason: reason.clone(),
                        follow_up_at: *follow_up_at,
                        outcome: None,
                    }
                }
            };
            CaseChange::ReferralMade(referral)
        }
        CaseRequest::DeclineReferral { agency, rationale } => {
            required_text("rationale", rationale, MAX_TEXT_BYTES)?;
            CaseChange::ReferralDeclined { agency: *agency, rationale: rationale.clone() }
        }
        CaseRequest::RecordReferralOutcome { referral_id, outcome, allegation_outcome, detail } => {
            optional_text("detail", detail, MAX_TEXT_BYTES)?;
            let referral = case
                .referrals
                .iter()
                .find(|referral| &referral.referral_id == referral_id)
                .ok_or_else(|| CaseError::UnknownReferral(referral_id.clone()))?;
            if referral.outcome.is_some() {
                return Err(CaseError::OutcomeAlreadyRecorded(referral_id.clone()));
            }
            let lado_of_allegation =
                referral.agency == Agency::Lado && case.case_type() == CaseType::AllegationAgainstStaff;
            match (lado_of_allegation, allegation_outcome) {
                (true, None) => return Err(CaseError::AllegationOutcomeRequired),
                (false, Some(_)) if referral.agency != Agency::Lado => {
                    return Err(CaseError::AllegationOutcomeNotExpected);
                }
                _ => {}
            }
            CaseChange::ReferralOutcomeRecorded {
                referral_id: referral_id.clone(),
                outcome: *outcome,
                allegation_outcome: *allegation_outcome,
                detail: detail.clone(),
            }
        }
        CaseRequest::InformParents { subject_ids, method, summary } => {
            check_subjects(case, subject_ids)?;
            required_text("summary", summary, MAX_TEXT_BYTES)?;
            CaseChange::ParentsInformed { subject_ids: subject_ids.clone(), method: *method, summary: summary.clone() }
        }
        CaseRequest::DoNotInformParents { subject_ids, reason } => {
            check_subjects(case, subject_ids)?;
            required_text("reason", reason, MAX_TEXT_BYTES)?;
            CaseChange::ParentsNotInformed { subject_ids: subject_ids.clone(), reason: reason.clone() }
        }
        CaseRequest::RecordImageryViewed(record) => {
            required_text("reason", &record.reason, MAX_TEXT_BYTES)?;
            optional_text("description", &record.description, MAX_TEXT_BYTES)?;
            optional_text("custody_id", &record.custody_id, MAX_SHORT_BYTES)?;
            within("present_user_ids", record.present.len(), MAX_IDS)?;
            within("others_present", record.others_present.len(), MAX_IDS)?;
            if record.others_present.iter().any(|other| other.trim().is_empty() || other.len() > MAX_SHORT_BYTES) {
                return Err(invalid("others_present", "each must name a role in at most 200 bytes"));
            }
            if record.present.is_empty() && record.others_present.is_empty() {
                return Err(invalid("present_user_ids", "the record must say who else was present"));
            }
            CaseChange::ImageryViewed(record.clone())
        }
        CaseRequest::RecordMaterialDeletion {
            by_dsl,
            dsl_confirmed_no_agency_needs_it,
            dsl_confirmed_safe_to_delete,
            deletion,
        } => {
            if !*by_dsl {
                return Err(CaseError::DeletionByDslOnly);
            }
            if !(*dsl_confirmed_no_agency_needs_it && *dsl_confirmed_safe_to_delete) {
                return Err(CaseError::DeletionNotConfirmed);
            }
            required_text("description", &deletion.description, MAX_TEXT_BYTES)?;
            optional_text("deleted_by", &deletion.deleted_by, MAX_SHORT_BYTES)?;
            optional_text("custody_id", &deletion.custody_id, MAX_SHORT_BYTES)?;
            within("agencies_consulted", deletion.agencies_consulted.len(), MAX_IDS)?;
            CaseChange::MaterialDeleted(deletion.clone())
        }
        CaseRequest::Link { linked_case_id, linked_school_id, reason } => {
            if linked_case_id == case.case_id() {
                return Err(CaseError::LinkedToItself);
            }
            required_text("reason", reason, MAX_TEXT_BYTES)?;
            if case.links.contains_key(linked_case_id) {
                return Ok(Vec::new());
            }
            CaseChange::Linked {
                linked_case_id: linked_case_id.clone(),
                linked_school_id: linked_school_id.clone(),
                reason: reason.clone(),
            }
        }
        CaseRequest::ChangeRisk { risk, reason } => {
            if *risk == case.risk {
                return Err(CaseError::SameRisk(*risk));
            }
            required_text("reason", reason, MAX_TEXT_BYTES)?;
            CaseChange::RiskChanged { previous: case.risk, risk: *risk, reason: reason.clone() }
        }
        CaseRequest::Escalate { role, users, reason } => {
            required_text("reason", reason, MAX_TEXT_BYTES)?;
            within("escalated_to_user_ids", users.len(), MAX_IDS)?;
            if users.iter().any(|user| case.opened.staff_ids.contains(user)) {
                return Err(CaseError::GranteeIsSubject);
            }
            CaseChange::Escalated { role: *role, users: users.clone(), reason: reason.clone() }
        }
        CaseRequest::GrantAccess { user, reason, by_principal } => {
            if case.opened.staff_ids.contains(user) {
                return Err(CaseError::GranteeIsSubject);
            }
            if case.access_policy == AccessPolicy::PrincipalAndGrantees && !by_principal {
                return Err(CaseError::PrincipalGrantsOnly);
            }
            required_text("reason", reason, MAX_TEXT_BYTES)?;
            if case.grants.contains(user) {
                return Ok(Vec::new());
            }
            CaseChange::AccessGranted { user: user.clone(), reason: reason.clone() }
        }
        CaseRequest::RevokeAccess { user, by_principal } => {
            if case.access_policy == AccessPolicy::PrincipalAndGrantees && !by_principal {
                return Err(CaseError::PrincipalGrantsOnly);
            }
            if !case.grants.contains(user) {
                return Err(CaseError::NotGranted(user.clone()));
            }
            CaseChange::AccessRevoked { user: user.clone() }
        }
        CaseRequest::Close { outcome_summary, debrief, lessons_learned, changes_required, allegation_outcome } => {
            let outstanding: Vec<String> = case.outstanding().map(|item| item.key.clone()).collect();
            if !outstanding.is_empty() {
                return Err(CaseError::OutstandingActions(outstanding));
            }
            let awaiting = case.awaiting_outcome().count();
            if awaiting > 0 {
                return Err(CaseError::ReferralsAwaitOutcome(awaiting));
            }
            required_text("outcome_summary", outcome_summary, MAX_TEXT_BYTES)?;
            required_text("debrief", debrief, MAX_TEXT_BYTES)?;
            required_text("lessons_learned", lessons_learned, MAX_TEXT_BYTES)?;
            optional_text("changes_required", changes_required, MAX_TEXT_BYTES)?;
            match (case.case_type() == CaseType::AllegationAgainstStaff, allegation_outcome) {
                (true, None) => return Err(CaseError::AllegationOutcomeRequired),
                (false, Some(_)) => return Err(CaseError::AllegationOutcomeNotExpected),
                _ => {}
            }
            CaseChange::Closed(Closure {
                by: by.clone(),
                at,
                outcome_summary: outcome_summary.clone(),
                debrief: debrief.clone(),
                lessons_learned: lessons_learned.clone(),
                changes_required: changes_required.clone(),
                allegation_outcome: *allegation_outcome,
            })
        }
    };
    Ok(vec![change])
}

fn check_subjects(case: &Case, subject_ids: &[SubjectId]) -> Result<(), CaseError> {
    if subject_ids.is_empty() {
        return Err(invalid("subject_ids", "name the learners whose parents/carers this is about"));
    }
    within("subject_ids", subject_ids.len(), MAX_IDS)?;
    match subject_ids.iter().find(|subject| !case.opened.subject_ids.contains(subject)) {
        Some(stranger) => Err(CaseError::SubjectNotInCase(stranger.clone())),
        None => Ok(()),
    }
}

fn apply(case: &mut Case, by: &UserId, at: UnixTime, change: &CaseChange) {
    match change {
        CaseChange::Opened { .. } => {}
        CaseChange::ActionRecorded { key, title, status, note } => {
            match case.checklist.iter_mut().find(|item| &item.key == key && key != OTHER_ACTION) {
                Some(item) => {
                    item.status = *status;
                    item.note = note.clone();
                }
                None => case.checklist.push(ChecklistItem {
                    key: key.clone(),
                    title: title.clone(),
                    section: String::new(),
                    status: *status,
                    note: note.clone(),
                    due_at: None,
                    done_by_referral: None,
                    required: false,
                }),
            }
        }
        CaseChange::ReferralMade(referral) => {
            match case.referrals.iter_mut().find(|earlier| earlier.referral_id == referral.referral_id) {
                Some(earlier) => {
                    earlier.reference_number = referral.reference_number.clone();
                    earlier.agency_contact = referral.agency_contact.clone();
                    earlier.follow_up_at = referral.follow_up_at;
                }
                None => {
                    case.referrals.push(Referral { made_by: by.clone(), made_at: at, ..referral.clone() });
                    for item in case.checklist.iter_mut() {
                        if item.done_by_referral == Some(referral.agency) && item.status == ActionStatus::Outstanding {
                            item.status = ActionStatus::Done;
                        }
                    }
                }
            }
        }
        CaseChange::ReferralDeclined { agency, rationale } => case.declined_referrals.push(ReferralDeclined {
            agency: *agency,
            rationale: rationale.clone(),
            by: by.clone(),
            at,
        }),
        CaseChange::ReferralOutcomeRecorded { referral_id, outcome, allegation_outcome, detail } => {
            if let Some(referral) = case.referrals.iter_mut().find(|referral| &referral.referral_id == referral_id) {
                referral.outcome = Some(RecordedOutcome {
                    outcome: *outcome,
                    allegation_outcome: *allegation_outcome,
                    detail: detail.clone(),
                    by: by.clone(),
                    at,
                });
            }
        }
        CaseChange::ParentsInformed { subject_ids, method, summary } => {
            for subject in subject_ids {
                case.parents.insert(
                    subject.clone(),
                    ParentsDecision::Informed { method: *method, summary: summary.clone(), by: by.clone(), at },
                );
            }
            settle_inform_parents(case);
        }
        CaseChange::ParentsNotInformed { subject_ids, reason } => {
            for subject in subject_ids {
                case.parents.insert(
                    subject.clone(),
                    ParentsDecision::NotInformed { reason: reason.clone(), by: by.clone(), at },
                );
            }
            settle_inform_parents(case);
        }
        CaseChange::ImageryViewed(record) => case.viewings.push(record.clone()),
        CaseChange::MaterialDeleted(deletion) => case.deletions.push(deletion.clone()),
        CaseChange::Linked { linked_case_id, linked_school_id, .. } => {
            case.links.insert(linked_case_id.clone(), linked_school_id.clone());
        }
        CaseChange::RiskChanged { risk, .. } => case.risk = *risk,
        CaseChange::Escalated { role, users, reason } => case.escalations.push(Escalation {
            role: *role,
            users: users.clone(),
            reason: reason.clone(),
            by: by.clone(),
            at,
        }),
        CaseChange::AccessGranted { user, .. } => {
            case.grants.insert(user.clone());
        }
        CaseChange::AccessRevoked { user } => {
            case.grants.remove(user);
        }
        CaseChange::Closed(closure) => {
            case.status = CaseStatus::Closed;
            case.closures.push(Closure { by: by.clone(), at, ..closure.clone() });
        }
        CaseChange::Reopened { .. } => {
            case.status = CaseStatus::Open;
            case.reopenings = case.reopenings.saturating_add(1);
        }
    }
}

/// Once every learner of the case has a decision about their parents, `inform-parents` is
/// settled: done if anyone was told, not applicable (with the reasons kept) if nobody was.
fn settle_inform_parents(case: &mut Case) {
    let all_decided = case.opened.subject_ids.iter().all(|subject| case.parents.contains_key(subject));
    if !all_decided {
        return;
    }
    let anyone_told = case.parents.values().any(|decision| matches!(decision, ParentsDecision::Informed { .. }));
    if let Some(item) = case.checklist.iter_mut().find(|item| item.key == INFORM_PARENTS) {
        item.status = if anyone_told { ActionStatus::Done } else { ActionStatus::NotApplicable };
    }
}
