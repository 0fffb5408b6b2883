//! Conversions between incidents' domain and `haven.v1` messages for the gRPC service, and the
//! statuses of its errors (ADR 0005).

use haven_authz::UserId;
use haven_kernel::{SchoolId, Version};
use haven_proto::v1 as pb;
use tonic::{Code, Status};

use crate::Error;
use crate::domain::*;
use crate::events::{
    agency_to_proto, case_type_to_proto, checklist_to_proto, four_cs_to_proto, outcome_to_proto, risk_to_proto,
    time_to_proto,
};

/// The gRPC status of an incidents error: its code decides, the message names the field or rule.
pub fn status(error: Error) -> Status {
    match error {
        // Need to know: a refusal does not reveal that the record exists.
        Error::Denied(_) => Status::not_found("no such record"),
        other => Status::new(Code::from_i32(other.code().grpc_code()), other.to_string()),
    }
}

pub fn invalid(field: &str, reason: impl Into<String>) -> Status {
    status(Error::invalid(field, reason))
}

pub fn not_found(what: impl std::fmt::Display) -> Status {
    status(Error::NotFound(what.to_string()))
}

pub fn school_id(raw: &str, field: &str) -> Result<SchoolId, Status> {
    SchoolId::parse(raw).map_err(|e| invalid(field, e.to_string()))
}

pub fn user_id(raw: &str, field: &str) -> Result<UserId, Status> {
    UserId::parse(raw).map_err(|e| invalid(field, e.to_string()))
}

pub fn user_ids(raw: &[String], field: &str) -> Result<Vec<UserId>, Status> {
    raw.iter().map(|id| user_id(id, field)).collect()
}

pub fn case_id(raw: &str, field: &str) -> Result<CaseId, Status> {
    CaseId::parse(raw).map_err(|e| invalid(field, e.to_string()))
}

pub fn concern_id(raw: &str) -> Result<ConcernId, Status> {
    ConcernId::parse(raw).map_err(|e| invalid("concern_id", e.to_string()))
}

pub fn subjects(raw: &[String]) -> Result<Vec<SubjectId>, Status> {
    raw.iter().map(|id| SubjectId::parse(id).map_err(|e| invalid("subject_ids", e.to_string()))).collect()
}

/// A required enum: UNSPECIFIED or unknown values are refused naming the field.
pub fn required<T>(value: Option<T>, field: &str) -> Result<T, Status> {
    value.ok_or_else(|| invalid(field, "is required (UNSPECIFIED or unknown value)"))
}

pub fn optional_time(raw: Option<&prost_types::Timestamp>) -> Option<UnixTime> {
    raw.map(|t| UnixTime(t.seconds))
}

fn triage_to_proto(triage: Option<&Triage>) -> (pb::TriageOutcome, String) {
    match triage.map(|triage| &triage.decision) {
        None => (pb::TriageOutcome::Unspecified, String::new()),
        Some(TriageDecision::Merged { case_id }) => (pb::TriageOutcome::Merged, case_id.to_string()),
        Some(TriageDecision::Linked { case_id }) => (pb::TriageOutcome::Linked, case_id.to_string()),
        Some(TriageDecision::CaseOpened { case_id }) => (pb::TriageOutcome::CaseOpened, case_id.to_string()),
        Some(TriageDecision::FalsePositive { .. }) => (pb::TriageOutcome::FalsePositive, String::new()),
        Some(TriageDecision::NoFurtherAction { .. }) => (pb::TriageOutcome::NoFurtherAction, String::new()),
    }
}

pub fn concern_to_proto(concern: &Concern, version: Version) -> pb::Concern {
    let details = &concern.details;
    let (outcome, case_id) = triage_to_proto(concern.triage.as_ref());
    pb::Concern {
        concern_id: details.concern_id.to_string(),
        school_id: details.school_id.to_string(),
        about: crate::events::about_to_proto(details.about) as i32,
        raised_by_user_id: details.raised_by.to_string(),
        raised_at: Some(time_to_proto(details.raised_at)),
        triage_outcome: outcome as i32,
        case_id,
        suspected_case_type: details.suspected_type.map_or(0, |t| case_type_to_proto(t) as i32),
        immediate_risk: details.immediate_risk,
        version: version.0,
    }
}

fn referral_to_proto(referral: &Referral) -> pb::Referral {
    pb::Referral {
        referral_id: referral.referral_id.to_string(),
        agency: agency_to_proto(referral.agency) as i32,
        agency_other: referral.agency_other.clone(),
        reference_number: referral.reference_number.clone(),
        made_at: Some(time_to_proto(referral.made_at)),
        outcome: referral.outcome.as_ref().map_or(0, |o| outcome_to_proto(o.outcome) as i32),
        outcome_at: referral.outcome.as_ref().map(|o| time_to_proto(o.at)),
    }
}

fn access_policy_to_proto(policy: AccessPolicy) -> pb::CaseAccessPolicy {
    match policy {
        AccessPolicy::SafeguardingTeam => pb::CaseAccessPolicy::SafeguardingTeam,
        AccessPolicy::PrincipalAndGrantees => pb::CaseAccessPolicy::PrincipalAndGrantees,
    }
}

pub fn case_status_to_proto(status: CaseStatus) -> pb::CaseStatus {
    match status {
        CaseStatus::Open => pb::CaseStatus::Open,
        CaseStatus::Closed => pb::CaseStatus::Closed,
    }
}

fn strings<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

pub fn case_to_proto(case: &Case, version: Version) -> pb::Case {
    let open = &case.opened;
    pb::Case {
        case_id: open.case_id.to_string(),
        school_id: open.school_id.to_string(),
        case_type: case_type_to_proto(open.case_type) as i32,
        status: case_status_to_proto(case.status) as i32,
        risk_level: risk_to_proto(case.risk) as i32,
        four_cs: open.four_cs.iter().map(|c| four_cs_to_proto(*c) as i32).collect(),
        access_policy: access_policy_to_proto(case.access_policy) as i32,
        lead_user_id: case.lead.to_string(),
        subject_ids: strings(&open.subject_ids),
        staff_user_ids: strings(&open.staff_ids),
        concern_ids: strings(&open.concern_ids),
        alert_ids: strings(&open.alert_ids),
        summary: open.summary.clone(),
        checklist_version: case.checklist_version,
        checklist: checklist_to_proto(&case.checklist),
        referrals: case.referrals.iter().map(referral_to_proto).collect(),
        linked_case_ids: case.links.keys().map(ToString::to_string).collect(),
        opened_at: Some(time_to_proto(case.opened_at)),
        closed_at: match case.status {
            CaseStatus::Closed => case.closures.last().map(|closure| time_to_proto(closure.at)),
            CaseStatus::Open => None,
        },
        version: version.0,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub fn case_summary(case: &Case, now: UnixTime) -> pb::CaseSummary {
    pb::CaseSummary {
        case_id: case.case_id().to_string(),
        school_id: case.school_id().to_string(),
        case_type: case_type_to_proto(case.case_type()) as i32,
        status: case_status_to_proto(case.status) as i32,
        risk_level: risk_to_proto(case.risk) as i32,
        lead_user_id: case.lead.to_string(),
        opened_at: Some(time_to_proto(case.opened_at)),
        outstanding_actions: count(case.outstanding().count()),
        overdue_actions: count(case.overdue(now).len()),
        open_referrals: count(case.awaiting_outcome().count()),
    }
}

/// One line for people, from a case event (no more personal data than the case holds).
pub fn describe(event: &CaseEvent) -> String {
    match &event.change {
        CaseChange::Opened { case, checklist_version, checklist } => format!(
            "case opened: {:?}, risk {:?}, checklist v{checklist_version} with {} actions",
            case.case_type,
            case.risk,
            checklist.len()
        ),
        CaseChange::ActionRecorded { key, status, .. } => format!("action {key}: {status:?}"),
        CaseChange::ReferralMade(referral) => {
            format!(
                "referral {} to {:?} (reference {:?})",
                referral.referral_id, referral.agency, referral.reference_number
            )
        }
        CaseChange::ReferralDeclined { agency, .. } => format!("decided not to refer to {agency:?}"),
        CaseChange::ReferralOutcomeRecorded { referral_id, outcome, .. } => {
            format!("referral {referral_id}: outcome {outcome:?}")
        }
        CaseChange::ParentsInformed { subject_ids, method, .. } => {
            format!("parents/carers of {} learner(s) informed ({method:?})", subject_ids.len())
        }
        CaseChange::ParentsNotInformed { subject_ids, .. } => {
            format!("decided not to inform parents/carers of {} learner(s)", subject_ids.len())
        }
        CaseChange::ImageryViewed(record) => format!("imagery viewing recorded (viewed by {})", record.viewed_by),
        CaseChange::MaterialDeleted(deletion) => format!("material deleted, confirmed by {}", deletion.dsl),
        CaseChange::Linked { linked_case_id, linked_school_id, .. } => {
            format!("linked to case {linked_case_id} ({linked_school_id})")
        }
        CaseChange::RiskChanged { previous, risk, .. } => format!("risk {previous:?} → {risk:?}"),
        CaseChange::Escalated { role, users, .. } => format!("escalated to {role} and {} named", users.len()),
        CaseChange::AccessGranted { user, .. } => format!("access granted to {user}"),
        CaseChange::AccessRevoked { user } => format!("access withdrawn from {user}"),
        CaseChange::Closed(closure) => match closure.allegation_outcome {
            Some(outcome) => format!("closed (allegation {outcome:?})"),
            None => "closed".to_owned(),
        },
        CaseChange::Reopened { .. } => "reopened".to_owned(),
    }
}
