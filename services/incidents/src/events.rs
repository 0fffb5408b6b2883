//! The protobuf forms of incidents' events: the only module that knows them. Event types are
//! `incidents.<MessageName>` (and ingest's `ingest.SafeguardingAlertRaised`, read from the
//! alert's stream), schema version 1. Who recorded an event and when travel in the envelope
//! (actor, occurred_at); the payload's `*_by_user_id` repeats the recorder for readers of the
//! payload alone.

use std::collections::BTreeSet;

use haven_authz::{Role, UserId};
use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use prost::Message;

use crate::Error;
use crate::domain::*;

pub const CONCERN_RAISED: &str = "incidents.ConcernRaised";
pub const CONCERN_TRIAGED: &str = "incidents.ConcernTriaged";
pub const CASE_OPENED: &str = "incidents.CaseOpened";
pub const CASE_ACTION_RECORDED: &str = "incidents.CaseActionRecorded";
pub const REFERRAL_MADE: &str = "incidents.ReferralMade";
pub const REFERRAL_DECLINED: &str = "incidents.ReferralDeclined";
pub const REFERRAL_OUTCOME_RECORDED: &str = "incidents.ReferralOutcomeRecorded";
pub const PARENTS_INFORMED: &str = "incidents.ParentsInformed";
pub const PARENTS_NOT_INFORMED: &str = "incidents.ParentsNotInformed";
pub const IMAGERY_VIEWED: &str = "incidents.ImageryViewed";
pub const MATERIAL_DELETION_RECORDED: &str = "incidents.MaterialDeletionRecorded";
pub const CASES_LINKED: &str = "incidents.CasesLinked";
pub const CASE_RISK_CHANGED: &str = "incidents.CaseRiskChanged";
pub const CASE_ESCALATED: &str = "incidents.CaseEscalated";
pub const CASE_ACCESS_GRANTED: &str = "incidents.CaseAccessGranted";
pub const CASE_ACCESS_REVOKED: &str = "incidents.CaseAccessRevoked";
pub const CASE_CLOSED: &str = "incidents.CaseClosed";
pub const CASE_REOPENED: &str = "incidents.CaseReopened";
pub const CASE_ACCESSED: &str = "incidents.CaseAccessed";
pub const ALERT_RAISED: &str = "ingest.SafeguardingAlertRaised";
pub const ALERT_ACKNOWLEDGED: &str = "incidents.SafeguardingAlertAcknowledged";
pub const ALERT_ESCALATED: &str = "incidents.AlertEscalated";

/// An event's type and protobuf payload.
pub type Encoded = (&'static str, Vec<u8>);

pub fn time_to_proto(time: UnixTime) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.0, nanos: 0 }
}

pub fn time_from_proto(time: Option<&prost_types::Timestamp>) -> UnixTime {
    UnixTime(time.map_or(0, |t| t.seconds))
}

// --- enums -----------------------------------------------------------------------------------

pub fn case_type_to_proto(case_type: CaseType) -> pb::CaseType {
    match case_type {
        CaseType::FilteringBreach => pb::CaseType::FilteringBreach,
        CaseType::OnlineSexualViolenceHarassment => pb::CaseType::OnlineSexualViolenceHarassment,
        CaseType::SharingNudes => pb::CaseType::SharingNudes,
        CaseType::OnlineAbuseExploitation => pb::CaseType::OnlineAbuseExploitation,
        CaseType::IndecentImagesOfChildren => pb::CaseType::IndecentImagesOfChildren,
        CaseType::Cyberbullying => pb::CaseType::Cyberbullying,
        CaseType::OnlineHate => pb::CaseType::OnlineHate,
        CaseType::RadicalisationExtremism => pb::CaseType::RadicalisationExtremism,
        CaseType::AllegationAgainstStaff => pb::CaseType::AllegationAgainstStaff,
        CaseType::LowLevelConcern => pb::CaseType::LowLevelConcern,
        CaseType::ConcernAboutParentCarer => pb::CaseType::ConcernAboutParentCarer,
        CaseType::Commerce => pb::CaseType::Commerce,
    }
}

pub fn case_type_from_proto(raw: i32) -> Option<CaseType> {
    CaseType::ALL.into_iter().find(|case_type| case_type_to_proto(*case_type) as i32 == raw)
}

pub fn four_cs_to_proto(c: FourCs) -> pb::FourCs {
    match c {
        FourCs::Content => pb::FourCs::Content,
        FourCs::Contact => pb::FourCs::Contact,
        FourCs::Conduct => pb::FourCs::Conduct,
        FourCs::Commerce => pb::FourCs::Commerce,
    }
}

pub fn four_cs_from_proto(raw: i32) -> Option<FourCs> {
    [FourCs::Content, FourCs::Contact, FourCs::Conduct, FourCs::Commerce]
        .into_iter()
        .find(|c| four_cs_to_proto(*c) as i32 == raw)
}

pub fn risk_to_proto(risk: RiskLevel) -> pb::RiskLevel {
    match risk {
        RiskLevel::Low => pb::RiskLevel::Low,
        RiskLevel::Medium => pb::RiskLevel::Medium,
        RiskLevel::High => pb::RiskLevel::High,
        RiskLevel::Critical => pb::RiskLevel::Critical,
    }
}

pub fn risk_from_proto(raw: i32) -> Option<RiskLevel> {
    [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High, RiskLevel::Critical]
        .into_iter()
        .find(|r| risk_to_proto(*r) as i32 == raw)
}

pub fn about_to_proto(about: ConcernAbout) -> pb::ConcernAbout {
    match about {
        ConcernAbout::Learner => pb::ConcernAbout::Learner,
        ConcernAbout::Colleague => pb::ConcernAbout::Colleague,
        ConcernAbout::ParentCarer => pb::ConcernAbout::ParentCarer,
    }
}

pub fn about_from_proto(raw: i32) -> Option<ConcernAbout> {
    [ConcernAbout::Learner, ConcernAbout::Colleague, ConcernAbout::ParentCarer]
        .into_iter()
        .find(|a| about_to_proto(*a) as i32 == raw)
}

pub fn status_to_proto(status: ActionStatus) -> pb::ActionStatus {
    match status {
        ActionStatus::Done => pb::ActionStatus::Done,
        ActionStatus::NotApplicable => pb::ActionStatus::NotApplicable,
        ActionStatus::Outstanding => pb::ActionStatus::Outstanding,
    }
}

pub fn status_from_proto(raw: i32) -> Option<ActionStatus> {
    [ActionStatus::Done, ActionStatus::NotApplicable, ActionStatus::Outstanding]
        .into_iter()
        .find(|s| status_to_proto(*s) as i32 == raw)
}

const AGENCIES: [Agency; 9] = [
    Agency::Csws,
    Agency::Police101,
    Agency::Police999,
    Agency::Lado,
    Agency::Ceop,
    Agency::Iwf,
    Agency::PreventChannel,
    Agency::EducationSafeguardingService,
    Agency::Other,
];

pub fn agency_to_proto(agency: Agency) -> pb::ReferralAgency {
    match agency {
        Agency::Csws => pb::ReferralAgency::Csws,
        Agency::Police101 => pb::ReferralAgency::Police101,
        Agency::Police999 => pb::ReferralAgency::Police999,
        Agency::Lado => pb::ReferralAgency::Lado,
        Agency::Ceop => pb::ReferralAgency::Ceop,
        Agency::Iwf => pb::ReferralAgency::Iwf,
        Agency::PreventChannel => pb::ReferralAgency::PreventChannel,
        Agency::EducationSafeguardingService => pb::ReferralAgency::EducationSafeguardingService,
        Agency::Other => pb::ReferralAgency::Other,
    }
}

pub fn agency_from_proto(raw: i32) -> Option<Agency> {
    AGENCIES.into_iter().find(|a| agency_to_proto(*a) as i32 == raw)
}

const OUTCOMES: [ReferralOutcome; 7] = [
    ReferralOutcome::AdviceGiven,
    ReferralOutcome::AcceptedForAssessment,
    ReferralOutcome::InvestigationOpened,
    ReferralOutcome::ReferredOn,
    ReferralOutcome::ContentRemoved,
    ReferralOutcome::NoFurtherAction,
    ReferralOutcome::Other,
];

pub fn outcome_to_proto(outcome: ReferralOutcome) -> pb::ReferralOutcome {
    match outcome {
        ReferralOutcome::AdviceGiven => pb::ReferralOutcome::AdviceGiven,
        ReferralOutcome::AcceptedForAssessment => pb::ReferralOutcome::AcceptedForAssessment,
        ReferralOutcome::InvestigationOpened => pb::ReferralOutcome::InvestigationOpened,
        ReferralOutcome::ReferredOn => pb::ReferralOutcome::ReferredOn,
        ReferralOutcome::ContentRemoved => pb::ReferralOutcome::ContentRemoved,
        ReferralOutcome::NoFurtherAction => pb::ReferralOutcome::NoFurtherAction,
        ReferralOutcome::Other => pb::ReferralOutcome::Other,
    }
}

pub fn outcome_from_proto(raw: i32) -> Option<ReferralOutcome> {
    OUTCOMES.into_iter().find(|o| outcome_to_proto(*o) as i32 == raw)
}

const ALLEGATIONS: [AllegationOutcome; 5] = [
    AllegationOutcome::Substantiated,
    AllegationOutcome::Unsubstantiated,
    AllegationOutcome::Unfounded,
    AllegationOutcome::False,
    AllegationOutcome::Malicious,
];

pub fn allegation_to_proto(outcome: Option<AllegationOutcome>) -> i32 {
    match outcome {
        None => pb::AllegationOutcome::Unspecified as i32,
        Some(AllegationOutcome::Substantiated) => pb::AllegationOutcome::Substantiated as i32,
        Some(AllegationOutcome::Unsubstantiated) => pb::AllegationOutcome::Unsubstantiated as i32,
        Some(AllegationOutcome::Unfounded) => pb::AllegationOutcome::Unfounded as i32,
        Some(AllegationOutcome::False) => pb::AllegationOutcome::False as i32,
        Some(AllegationOutcome::Malicious) => pb::AllegationOutcome::Malicious as i32,
    }
}

pub fn allegation_from_proto(raw: i32) -> Option<AllegationOutcome> {
    ALLEGATIONS.into_iter().find(|a| allegation_to_proto(Some(*a)) == raw)
}

pub fn method_to_proto(method: ContactMethod) -> pb::ContactMethod {
    match method {
        ContactMethod::InPerson => pb::ContactMethod::InPerson,
        ContactMethod::Phone => pb::ContactMethod::Phone,
        ContactMethod::Letter => pb::ContactMethod::Letter,
        ContactMethod::Email => pb::ContactMethod::Email,
    }
}

pub fn method_from_proto(raw: i32) -> Option<ContactMethod> {
    [ContactMethod::InPerson, ContactMethod::Phone, ContactMethod::Letter, ContactMethod::Email]
        .into_iter()
        .find(|m| method_to_proto(*m) as i32 == raw)
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Staff => pb::Role::Staff,
        Role::TechnicalStaff => pb::Role::TechnicalStaff,
        Role::Principal => pb::Role::Principal,
        Role::Dsl => pb::Role::Dsl,
        Role::DeputyDsl => pb::Role::DeputyDsl,
        Role::OnlineSafetyCoordinator => pb::Role::OnlineSafetyCoordinator,
        Role::Governor => pb::Role::Governor,
        Role::Auditor => pb::Role::Auditor,
        Role::TrustSafeguardingLead => pb::Role::TrustSafeguardingLead,
        Role::TrustAdmin => pb::Role::TrustAdmin,
    }
}

pub fn role_from_proto(raw: i32) -> Option<Role> {
    Role::ALL.into_iter().find(|r| role_to_proto(*r) as i32 == raw)
}

pub fn severity_from_proto(raw: i32) -> Option<Severity> {
    match pb::AlertSeverity::try_from(raw).ok()? {
        pb::AlertSeverity::Low => Some(Severity::Low),
        pb::AlertSeverity::Medium => Some(Severity::Medium),
        pb::AlertSeverity::High => Some(Severity::High),
        pb::AlertSeverity::Critical => Some(Severity::Critical),
        pb::AlertSeverity::Unspecified => None,
    }
}

pub fn severity_to_proto(severity: Severity) -> pb::AlertSeverity {
    match severity {
        Severity::Low => pb::AlertSeverity::Low,
        Severity::Medium => pb::AlertSeverity::Medium,
        Severity::High => pb::AlertSeverity::High,
        Severity::Critical => pb::AlertSeverity::Critical,
    }
}

// --- decoding helpers ------------------------------------------------------------------------

/// Reads one stored event back; a failure names its position and why.
struct Reader<'a> {
    envelope: &'a pb::EventEnvelope,
}

impl Reader<'_> {
    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::UnreadableEvent {
            position: self.envelope.position,
            event_type: self.envelope.event_type.clone(),
            reason: reason.into(),
        }
    }

    fn payload<M: Message + Default>(&self) -> Result<M, Error> {
        M::decode(self.envelope.payload.as_slice()).map_err(|e| self.fail(e.to_string()))
    }

    fn user(&self, raw: &str) -> Result<UserId, Error> {
        UserId::parse(raw).map_err(|e| self.fail(format!("user id {e}")))
    }

    fn users(&self, raw: &[String]) -> Result<Vec<UserId>, Error> {
        raw.iter().map(|id| self.user(id)).collect()
    }

    fn subjects(&self, raw: &[String]) -> Result<Vec<SubjectId>, Error> {
        raw.iter().map(|id| SubjectId::parse(id).map_err(|e| self.fail(format!("subject id {e}")))).collect()
    }

    fn school(&self, raw: &str) -> Result<SchoolId, Error> {
        SchoolId::parse(raw).map_err(|e| self.fail(format!("school id {e}")))
    }

    /// The recorder: the envelope's actor, `user-<id>`.
    fn actor(&self) -> Result<UserId, Error> {
        let principal = self.envelope.actor.as_ref().map(|actor| actor.principal_id.as_str()).unwrap_or_default();
        UserId::from_principal_id(principal).ok_or_else(|| self.fail("actor is not a user"))
    }

    fn at(&self) -> UnixTime {
        time_from_proto(self.envelope.occurred_at.as_ref())
    }

    fn some<T>(&self, value: Option<T>, what: &str) -> Result<T, Error> {
        value.ok_or_else(|| self.fail(format!("unknown {what}")))
    }
}

fn opt_time(time: Option<UnixTime>) -> Option<prost_types::Timestamp> {
    time.map(time_to_proto)
}

fn ids<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

// --- concerns --------------------------------------------------------------------------------

pub fn encode_concern(concern_id: &ConcernId, school_id: &SchoolId, event: &ConcernEvent) -> Encoded {
    match event {
        ConcernEvent::Raised(details) => (
            CONCERN_RAISED,
            pb::ConcernRaised {
                concern_id: details.concern_id.to_string(),
                school_id: details.school_id.to_string(),
                raised_by_user_id: details.raised_by.to_string(),
                about: about_to_proto(details.about) as i32,
                subject_ids: ids(&details.subject_ids),
                staff_user_ids: ids(&details.staff_ids),
                what_happened: details.what_happened.clone(),
                incident_occurred_at: opt_time(details.incident_occurred_at),
                suspected_case_type: details.suspected_type.map_or(0, |t| case_type_to_proto(t) as i32),
                immediate_risk: details.immediate_risk,
                dsl_told_verbally: details.dsl_told_verbally.is_some(),
                dsl_told_user_id: details.dsl_told_verbally.as_ref().map(ToString::to_string).unwrap_or_default(),
                alert_id: details.alert_id.as_ref().map(ToString::to_string).unwrap_or_default(),
                device_ids: details.device_ids.clone(),
            }
            .encode_to_vec(),
        ),
        ConcernEvent::Triaged(triage) => {
            let (outcome, rationale) = match &triage.decision {
                TriageDecision::Merged { .. } => (pb::TriageOutcome::Merged, ""),
                TriageDecision::Linked { .. } => (pb::TriageOutcome::Linked, ""),
                TriageDecision::FalsePositive { reason } => (pb::TriageOutcome::FalsePositive, reason.as_str()),
                TriageDecision::NoFurtherAction { reason } => (pb::TriageOutcome::NoFurtherAction, reason.as_str()),
                TriageDecision::CaseOpened { .. } => (pb::TriageOutcome::CaseOpened, ""),
            };
            (
                CONCERN_TRIAGED,
                pb::ConcernTriaged {
                    concern_id: concern_id.to_string(),
                    school_id: school_id.to_string(),
                    triaged_by_user_id: triage.by.to_string(),
                    outcome: outcome as i32,
                    case_id: triage.decision.case_id().map(ToString::to_string).unwrap_or_default(),
                    rationale: rationale.to_owned(),
                }
                .encode_to_vec(),
            )
        }
    }
}

pub fn decode_concern(envelope: &pb::EventEnvelope) -> Result<ConcernEvent, Error> {
    let r = Reader { envelope };
    match envelope.event_type.as_str() {
        CONCERN_RAISED => {
            let p: pb::ConcernRaised = r.payload()?;
            Ok(ConcernEvent::Raised(ConcernDetails {
                concern_id: ConcernId::parse(&p.concern_id).map_err(|e| r.fail(format!("concern id {e}")))?,
                school_id: r.school(&p.school_id)?,
                raised_by: r.user(&p.raised_by_user_id)?,
                raised_at: r.at(),
                about: r.some(about_from_proto(p.about), "concern about")?,
                subject_ids: r.subjects(&p.subject_ids)?,
                staff_ids: r.users(&p.staff_user_ids)?,
                what_happened: p.what_happened,
                incident_occurred_at: p.incident_occurred_at.as_ref().map(|t| time_from_proto(Some(t))),
                suspected_type: case_type_from_proto(p.suspected_case_type),
                immediate_risk: p.immediate_risk,
                dsl_told_verbally: if p.dsl_told_verbally { Some(r.user(&p.dsl_told_user_id)?) } else { None },
                alert_id: if p.alert_id.is_empty() {
                    None
                } else {
                    Some(AlertId::parse(&p.alert_id).map_err(|e| r.fail(format!("alert id {e}")))?)
                },
                device_ids: p.device_ids,
            }))
        }
        CONCERN_TRIAGED => {
            let p: pb::ConcernTriaged = r.payload()?;
            let case = || CaseId::parse(&p.case_id).map_err(|e| r.fail(format!("case id {e}")));
            let decision = match pb::TriageOutcome::try_from(p.outcome).ok() {
                Some(pb::TriageOutcome::Merged) => TriageDecision::Merged { case_id: case()? },
                Some(pb::TriageOutcome::Linked) => TriageDecision::Linked { case_id: case()? },
                Some(pb::TriageOutcome::CaseOpened) => TriageDecision::CaseOpened { case_id: case()? },
                Some(pb::TriageOutcome::FalsePositive) => TriageDecision::FalsePositive { reason: p.rationale.clone() },
                Some(pb::TriageOutcome::NoFurtherAction) => {
                    TriageDecision::NoFurtherAction { reason: p.rationale.clone() }
                }
                _ => return Err(r.fail("unknown triage outcome")),
            };
            Ok(ConcernEvent::Triaged(Triage { by: r.user(&p.triaged_by_user_id)?, at: r.at(), decision }))
        }
        other => Err(r.fail(format!("{other} is not a concern event"))),
    }
}

// --- cases -----------------------------------------------------------------------------------

fn item_to_proto(item: &ChecklistItem) -> pb::ChecklistItem {
    pb::ChecklistItem {
        action_key: item.key.clone(),
        title: item.title.clone(),
        status: status_to_proto(item.status) as i32,
        due_at: opt_time(item.due_at),
        section: item.section.clone(),
        done_by_referral: item.done_by_referral.map_or(0, |a| agency_to_proto(a) as i32),
        required: item.required,
        note: item.note.clone(),
    }
}

/// A case's checklist in its protobuf form (for the read side as well).
pub fn checklist_to_proto(items: &[ChecklistItem]) -> Vec<pb::ChecklistItem> {
    items.iter().map(item_to_proto).collect()
}

/// Encodes a case event; `case_id` and `school_id` are repeated in every payload.
pub fn encode_case(case_id: &CaseId, school_id: &SchoolId, event: &CaseEvent) -> Encoded {
    let case_id = case_id.to_string();
    let school_id = school_id.to_string();
    let by = event.by.to_string();
    match &event.change {
        CaseChange::Opened { case, checklist_version, checklist } => (
            CASE_OPENED,
            pb::CaseOpened {
                case_id,
                school_id,
                case_type: case_type_to_proto(case.case_type) as i32,
                checklist_version: *checklist_version,
                checklist: checklist_to_proto(checklist),
                four_cs: case.four_cs.iter().map(|c| four_cs_to_proto(*c) as i32).collect(),
                risk_level: risk_to_proto(case.risk) as i32,
                access_policy: match case.case_type.access_policy() {
                    AccessPolicy::SafeguardingTeam => pb::CaseAccessPolicy::SafeguardingTeam as i32,
                    AccessPolicy::PrincipalAndGrantees => pb::CaseAccessPolicy::PrincipalAndGrantees as i32,
                },
                opened_by_user_id: by,
                lead_user_id: case.lead.to_string(),
                subject_ids: ids(&case.subject_ids),
                staff_user_ids: ids(&case.staff_ids),
                concern_ids: ids(&case.concern_ids),
                alert_ids: ids(&case.alert_ids),
                summary: case.summary.clone(),
                imagery_viewed: case.imagery_viewed,
            }
            .encode_to_vec(),
        ),
        CaseChange::ActionRecorded { key, title, status, note } => (
            CASE_ACTION_RECORDED,
            pb::CaseActionRecorded {
                case_id,
                school_id,
                action_key: key.clone(),
                title: title.clone(),
                status: status_to_proto(*status) as i32,
                recorded_by_user_id: by,
                note: note.clone(),
            }
            .encode_to_vec(),
        ),
        CaseChange::ReferralMade(referral) => (
            REFERRAL_MADE,
            pb::ReferralMade {
                case_id,
                school_id,
                referral_id: referral.referral_id.to_string(),
                agency: agency_to_proto(referral.agency) as i32,
                agency_other: referral.agency_other.clone(),
                reference_number: referral.reference_number.clone(),
                made_by_user_id: by,
                agency_contact: referral.agency_contact.clone(),
                summary: referral.reason.clone(),
                follow_up_at: opt_time(referral.follow_up_at),
            }
            .encode_to_vec(),
        ),
        CaseChange::ReferralDeclined { agency, rationale } => (
            REFERRAL_DECLINED,
            pb::ReferralDeclined {
                case_id,
                school_id,
                agency: agency_to_proto(*agency) as i32,
                rationale: rationale.clone(),
                decided_by_user_id: by,
            }
            .encode_to_vec(),
        ),
        CaseChange::ReferralOutcomeRecorded { referral_id, outcome, allegation_outcome, detail } => (
            REFERRAL_OUTCOME_RECORDED,
            pb::ReferralOutcomeRecorded {
                case_id,
                school_id,
                referral_id: referral_id.to_string(),
                outcome: outcome_to_proto(*outcome) as i32,
                allegation_outcome: allegation_to_proto(*allegation_outcome),
                recorded_by_user_id: by,
                detail: detail.clone(),
            }
            .encode_to_vec(),
        ),
        CaseChange::ParentsInformed { subject_ids, method, summary } => (
            PARENTS_INFORMED,
            pb::ParentsInformed {
                case_id,
                school_id,
                subject_ids: ids(subject_ids),
                informed_by_user_id: by,
                method: method_to_proto(*method) as i32,
                summary: summary.clone(),
            }
            .encode_to_vec(),
        ),
        CaseChange::ParentsNotInformed { subject_ids, reason } => (
            PARENTS_NOT_INFORMED,
            pb::ParentsNotInformed {
                case_id,
                school_id,
                subject_ids: ids(subject_ids),
                decided_by_user_id: by,
                reason: reason.clone(),
            }
            .encode_to_vec(),
        ),
        CaseChange::ImageryViewed(record) => (
            IMAGERY_VIEWED,
            pb::ImageryViewed {
                case_id,
                school_id,
                viewed_by_user_id: record.viewed_by.to_string(),
                viewed_at: Some(time_to_proto(record.viewed_at)),
                present_user_ids: ids(&record.present),
                others_present: record.others_present.clone(),
                reason: record.reason.clone(),
                description: record.description.clone(),
                custody_id: record.custody_id.clone(),
            }
            .encode_to_vec(),
        ),
        CaseChange::MaterialDeleted(deletion) => (
            MATERIAL_DELETION_RECORDED,
            pb::MaterialDeletionRecorded {
                case_id,
                school_id,
                dsl_user_id: deletion.dsl.to_string(),
                dsl_confirmed_no_agency_needs_it: true,
                dsl_confirmed_safe_to_delete: true,
                agencies_consulted: deletion.agencies_consulted.iter().map(|a| agency_to_proto(*a) as i32).collect(),
                description: deletion.description.clone(),
                deleted_by: deletion.deleted_by.clone(),
                learner_consented: deletion.learner_consented,
                custody_id: deletion.custody_id.clone(),
            }
            .encode_to_vec(),
        ),
        CaseChange::Linked { linked_case_id, linked_school_id, reason } => (
            CASES_LINKED,
            pb::CasesLinked {
                case_id,
                school_id,
                linked_case_id: linked_case_id.to_string(),
                linked_school_id: linked_school_id.to_string(),
                linked_by_user_id: by,
                reason: reason.clone(),
            }
            .encode_to_vec(),
        ),
        CaseChange::RiskChanged { previous, risk, reason } => (
            CASE_RISK_CHANGED,
            pb::CaseRiskChanged {
                case_id,
                school_id,
                previous_risk_level: risk_to_proto(*previous) as i32,
                risk_level: risk_to_proto(*risk) as i32,
                changed_by_user_id: by,
                reason: reason.clone(),
            }
            .encode_to_vec(),
        ),
        CaseChange::Escalated { role, users, reason } => (
            CASE_ESCALATED,
            pb::CaseEscalated {
                case_id,
                school_id,
                escalated_by_user_id: by,
                escalated_to_role: role_to_proto(*role) as i32,
                escalated_to_user_ids: ids(users),
                reason: reason.clone(),
            }
            .encode_to_vec(),
        ),
        CaseChange::AccessGranted { user, reason } => (
            CASE_ACCESS_GRANTED,
            pb::CaseAccessGranted {
                case_id,
                school_id,
                user_id: user.to_string(),
                granted_by_user_id: by,
                reason: reason.clone(),
            }
            .encode_to_vec(),
        ),
        CaseChange::AccessRevoked { user } => (
            CASE_ACCESS_REVOKED,
            pb::CaseAccessRevoked { case_id, school_id, user_id: user.to_string(), revoked_by_user_id: by }
                .encode_to_vec(),
        ),
        CaseChange::Closed(closure) => (
            CASE_CLOSED,
            pb::CaseClosed {
                case_id,
                school_id,
                closed_by_user_id: by,
                outcome_summary: closure.outcome_summary.clone(),
                debrief: closure.debrief.clone(),
                lessons_learned: closure.lessons_learned.clone(),
                changes_required: closure.changes_required.clone(),
                allegation_outcome: allegation_to_proto(closure.allegation_outcome),
            }
            .encode_to_vec(),
        ),
        CaseChange::Reopened { reason } => (
            CASE_REOPENED,
            pb::CaseReopened { case_id, school_id, reopened_by_user_id: by, reason: reason.clone() }.encode_to_vec(),
        ),
    }
}

fn item_from_proto(r: &Reader<'_>, item: pb::ChecklistItem) -> Result<ChecklistItem, Error> {
    Ok(ChecklistItem {
        key: item.action_key,
        title: item.title,
        section: item.section,
        status: r.some(status_from_proto(item.status), "action status")?,
        note: item.note,
        due_at: item.due_at.as_ref().map(|t| time_from_proto(Some(t))),
        done_by_referral: agency_from_proto(item.done_by_referral),
        required: item.required,
    })
}

pub fn decode_case(envelope: &pb::EventEnvelope) -> Result<CaseEvent, Error> {
    let r = Reader { envelope };
    let by = r.actor()?;
    let at = r.at();
    let referral_id = |raw: &str| ReferralId::parse(raw).map_err(|e| r.fail(format!("referral id {e}")));
    let case_id = |raw: &str| CaseId::parse(raw).map_err(|e| r.fail(format!("case id {e}")));
    let change = match envelope.event_type.as_str() {
        CASE_OPENED => {
            let p: pb::CaseOpened = r.payload()?;
            let checklist = p.checklist.into_iter().map(|item| item_from_proto(&r, item)).collect::<Result<_, _>>()?;
            let four_cs: BTreeSet<FourCs> = p.four_cs.iter().filter_map(|c| four_cs_from_proto(*c)).collect();
            CaseChange::Opened {
                case: OpenCase {
                    case_id: case_id(&p.case_id)?,
                    school_id: r.school(&p.school_id)?,
                    case_type: r.some(case_type_from_proto(p.case_type), "case type")?,
                    four_cs,
                    risk: r.some(risk_from_proto(p.risk_level), "risk level")?,
                    lead: r.user(&p.lead_user_id)?,
                    subject_ids: r.subjects(&p.subject_ids)?,
                    staff_ids: r.users(&p.staff_user_ids)?,
                    concern_ids: p
                        .concern_ids
                        .iter()
                        .map(|id| ConcernId::parse(id).map_err(|e| r.fail(format!("concern id {e}"))))
                        .collect::<Result<_, _>>()?,
                    alert_ids: p
                        .alert_ids
                        .iter()
                        .map(|id| AlertId::parse(id).map_err(|e| r.fail(format!("alert id {e}"))))
                        .collect::<Result<_, _>>()?,
                    summary: p.summary,
                    imagery_viewed: p.imagery_viewed,
                },
                checklist_version: p.checklist_version,
                checklist,
            }
        }
        CASE_ACTION_RECORDED => {
            let p: pb::CaseActionRecorded = r.payload()?;
            CaseChange::ActionRecorded {
                key: p.action_key,
                title: p.title,
                status: r.some(status_from_proto(p.status), "action status")?,
                note: p.note,
            }
        }
        REFERRAL_MADE => {
            let p: pb::ReferralMade = r.payload()?;
            CaseChange::ReferralMade(Referral {
                referral_id: referral_id(&p.referral_id)?,
                agency: r.some(agency_from_proto(p.agency), "agency")?,
                agency_other: p.agency_other,
                reference_number: p.reference_number,
                made_by: by.clone(),
                made_at: at,
                agency_contact: p.agency_contact,
                reason: p.summary,
                follow_up_at: p.follow_up_at.as_ref().map(|t| time_from_proto(Some(t))),
                outcome: None,
            })
        }
        REFERRAL_DECLINED => {
            let p: pb::ReferralDeclined = r.payload()?;
            CaseChange::ReferralDeclined {
                agency: r.some(agency_from_proto(p.agency), "agency")?,
                rationale: p.rationale,
            }
        }
        REFERRAL_OUTCOME_RECORDED => {
            let p: pb::ReferralOutcomeRecorded = r.payload()?;
            CaseChange::ReferralOutcomeRecorded {
                referral_id: referral_id(&p.referral_id)?,
                outcome: r.some(outcome_from_proto(p.outcome), "referral outcome")?,
                allegation_outcome: allegation_from_proto(p.allegation_outcome),
                detail: p.detail,
            }
        }
        PARENTS_INFORMED => {
            let p: pb::ParentsInformed = r.payload()?;
            CaseChange::ParentsInformed {
                subject_ids: r.subjects(&p.subject_ids)?,
                method: r.some(method_from_proto(p.method), "contact method")?,
                summary: p.summary,
            }
        }
        PARENTS_NOT_INFORMED => {
            let p: pb::ParentsNotInformed = r.payload()?;
            CaseChange::ParentsNotInformed { subject_ids: r.subjects(&p.subject_ids)?, reason: p.reason }
        }
        IMAGERY_VIEWED => {
            let p: pb::ImageryViewed = r.payload()?;
            CaseChange::ImageryViewed(ViewingRecord {
                viewed_by: r.user(&p.viewed_by_user_id)?,
                viewed_at: time_from_proto(p.viewed_at.as_ref()),
                present: r.users(&p.present_user_ids)?,
                others_present: p.others_present,
                reason: p.reason,
                description: p.description,
                custody_id: p.custody_id,
            })
        }
        MATERIAL_DELETION_RECORDED => {
            let p: pb::MaterialDeletionRecorded = r.payload()?;
            CaseChange::MaterialDeleted(Deletion {
                dsl: r.user(&p.dsl_user_id)?,
                agencies_consulted: p.agencies_consulted.iter().filter_map(|a| agency_from_proto(*a)).collect(),
                description: p.description,
                deleted_by: p.deleted_by,
                learner_consented: p.learner_consented,
                custody_id: p.custody_id,
            })
        }
        CASES_LINKED => {
            let p: pb::CasesLinked = r.payload()?;
            CaseChange::Linked {
                linked_case_id: case_id(&p.linked_case_id)?,
                linked_school_id: r.school(&p.linked_school_id)?,
                reason: p.reason,
            }
        }
        CASE_RISK_CHANGED => {
            let p: pb::CaseRiskChanged = r.payload()?;
            CaseChange::RiskChanged {
                previous: r.some(risk_from_proto(p.previous_risk_level), "risk level")?,
                risk: r.some(risk_from_proto(p.risk_level), "risk level")?,
                reason: p.reason,
            }
        }
        CASE_ESCALATED => {
            let p: pb::CaseEscalated = r.payload()?;
            CaseChange::Escalated {
                role: r.some(role_from_proto(p.escalated_to_role), "role")?,
                users: r.users(&p.escalated_to_user_ids)?,
                reason: p.reason,
            }
        }
        CASE_ACCESS_GRANTED => {
            let p: pb::CaseAccessGranted = r.payload()?;
            CaseChange::AccessGranted { user: r.user(&p.user_id)?, reason: p.reason }
        }
        CASE_ACCESS_REVOKED => {
            let p: pb::CaseAccessRevoked = r.payload()?;
            CaseChange::AccessRevoked { user: r.user(&p.user_id)? }
        }
        CASE_CLOSED => {
            let p: pb::CaseClosed = r.payload()?;
            CaseChange::Closed(Closure {
                by: by.clone(),
                at,
                outcome_summary: p.outcome_summary,
                debrief: p.debrief,
                lessons_learned: p.lessons_learned,
                changes_required: p.changes_required,
                allegation_outcome: allegation_from_proto(p.allegation_outcome),
            })
        }
        CASE_REOPENED => {
            let p: pb::CaseReopened = r.payload()?;
            CaseChange::Reopened { reason: p.reason }
        }
        other => return Err(r.fail(format!("{other} is not a case event"))),
    };
    Ok(CaseEvent { by, at, change })
}

// --- alerts ----------------------------------------------------------------------------------

pub fn encode_alert(alert_id: &AlertId, school_id: &SchoolId, event: &AlertEvent) -> Encoded {
    match event {
        // Written by ingest, never here; encoded only so tests can seed an alert's stream.
        AlertEvent::Raised { severity, raised_at, .. } => (
            ALERT_RAISED,
            pb::SafeguardingAlertRaised {
                alert_id: alert_id.to_string(),
                school_id: school_id.to_string(),
                severity: severity_to_proto(*severity) as i32,
                first_occurred_at: Some(time_to_proto(*raised_at)),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        AlertEvent::Acknowledged(ack) => (
            ALERT_ACKNOWLEDGED,
            pb::SafeguardingAlertAcknowledged {
                alert_id: alert_id.to_string(),
                school_id: school_id.to_string(),
                acknowledged_by_user_id: ack.by.to_string(),
                within_deadline: ack.within_deadline,
                concern_id: ack.concern_id.as_ref().map(ToString::to_string).unwrap_or_default(),
                note: ack.note.clone(),
            }
            .encode_to_vec(),
        ),
        AlertEvent::Escalated(step) => (
            ALERT_ESCALATED,
            pb::AlertEscalated {
                alert_id: alert_id.to_string(),
                school_id: school_id.to_string(),
                severity: 0,
                level: step.level,
                acknowledge_by: Some(time_to_proto(step.acknowledge_by)),
                escalated_to_role: role_to_proto(step.role) as i32,
                escalated_to_user_ids: vec![],
                next_acknowledge_by: opt_time(step.next_acknowledge_by),
            }
            .encode_to_vec(),
        ),
    }
}

pub fn decode_alert(envelope: &pb::EventEnvelope) -> Result<AlertEvent, Error> {
    let r = Reader { envelope };
    match envelope.event_type.as_str() {
        ALERT_RAISED => {
            let p: pb::SafeguardingAlertRaised = r.payload()?;
            Ok(AlertEvent::Raised {
                alert_id: AlertId::parse(&p.alert_id).map_err(|e| r.fail(format!("alert id {e}")))?,
                school_id: r.school(&p.school_id)?,
                severity: r.some(severity_from_proto(p.severity), "severity")?,
                // The alert's clock starts when it was raised (the envelope's time).
                raised_at: r.at(),
            })
        }
        ALERT_ACKNOWLEDGED => {
            let p: pb::SafeguardingAlertAcknowledged = r.payload()?;
            Ok(AlertEvent::Acknowledged(Acknowledgement {
                by: r.user(&p.acknowledged_by_user_id)?,
                at: r.at(),
                within_deadline: p.within_deadline,
                concern_id: if p.concern_id.is_empty() {
                    None
                } else {
                    Some(ConcernId::parse(&p.concern_id).map_err(|e| r.fail(format!("concern id {e}")))?)
                },
                note: p.note,
            }))
        }
        ALERT_ESCALATED => {
            let p: pb::AlertEscalated = r.payload()?;
            Ok(AlertEvent::Escalated(EscalationStep {
                level: p.level,
                role: r.some(role_from_proto(p.escalated_to_role), "role")?,
                acknowledge_by: time_from_proto(p.acknowledge_by.as_ref()),
                next_acknowledge_by: p.next_acknowledge_by.as_ref().map(|t| time_from_proto(Some(t))),
            }))
        }
        // Other events on the alert's stream (none yet) do not change its escalation.
        other => Err(r.fail(format!("{other} is not an alert event"))),
    }
}
