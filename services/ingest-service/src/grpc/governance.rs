//! The filtering record's handlers of `haven.v1.Ingest`: authorise against the school the
//! request (or the change it names) belongs to, parse and name the bad field, then hand a
//! command to the [`GovernanceApp`]. Nothing of a request is logged: reasons, risk
//! assessments and findings are free text, and user ids are personal data.
//!
//! ```text
//!  request ─▶ caller ─▶ school (or load the change) ─▶ check(action, school) ─▶ command
//!          ─▶ GovernanceApp: decide ─▶ append ─▶ response (ids derived from request_id)
//! ```

use haven_authz::grpc::check;
use haven_authz::{Action, Caller, Resource, UserId};
use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use tonic::Status;

use crate::governance::domain::{Change, ChangeCommand, RecordCommand};
use crate::governance::report::{self, status_to_proto};
use crate::governance::{CommandContext, Error, GovernanceApp, GovernanceIndex, derived_id};

/// Longest client request id, in characters.
const MAX_REQUEST_ID_CHARS: usize = 100;
/// The default and largest page of `ListFilteringChanges`.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 200;
/// A review is due again a year after it was held, unless the request says otherwise.
const YEAR_S: i64 = 365 * 24 * 3600;

/// The filtering record's app and read model, as the service holds them.
#[derive(Clone, Debug)]
pub struct Governance {
    pub app: GovernanceApp,
    pub index: GovernanceIndex,
}

fn status(error: Error) -> Status {
    error.status()
}

fn invalid(field: &str, reason: impl Into<String>) -> Status {
    status(Error::invalid(field, reason))
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn school(raw: &str) -> Result<SchoolId, Status> {
    SchoolId::parse(raw).map_err(|e| invalid("school_id", e.to_string()))
}

fn request_id(raw: &str) -> Result<String, Status> {
    if raw.is_empty() || raw.chars().count() > MAX_REQUEST_ID_CHARS || raw.chars().any(char::is_control) {
        return Err(invalid(
            "request_id",
            "1 to 100 characters without control characters (a UUID), so a retry is safe",
        ));
    }
    Ok(raw.to_owned())
}

fn user_ids(raw: &[String], field: &str) -> Result<Vec<String>, Status> {
    raw.iter()
        .map(|id| UserId::parse(id).map(|id| id.as_str().to_owned()).map_err(|e| invalid(field, e.to_string())))
        .collect()
}

/// The caller as a person; school systems never reach here (the policy refuses them).
fn me(caller: &Caller) -> Result<String, Status> {
    caller
        .principal
        .user_id()
        .map(|id| id.as_str().to_owned())
        .ok_or_else(|| Status::permission_denied("only people keep the filtering record"))
}

fn context(caller: &Caller, request_id: String) -> CommandContext {
    CommandContext { actor: actor(caller), request_id }
}

/// The caller as the actor of the events it causes.
pub(super) fn actor(caller: &Caller) -> pb::Actor {
    let principal = &caller.principal;
    pb::Actor {
        principal_id: principal.id.clone(),
        kind: match principal.kind {
            haven_authz::PrincipalKind::User => pb::ActorKind::User,
            haven_authz::PrincipalKind::SchoolSystem => pb::ActorKind::SchoolSystem,
        } as i32,
        roles: principal.grants.iter().map(|grant| grant.role.as_str().to_owned()).collect(),
    }
}

fn time(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

pub fn change_to_proto(change: &Change, version: u64) -> pb::FilteringChange {
    let requested = &change.requested;
    let applied = change.applied.as_ref();
    pb::FilteringChange {
        change_id: requested.change_id.clone(),
        school_id: requested.school_id.clone(),
        status: status_to_proto(change.status) as i32,
        kind: requested.kind,
        url_host: requested.url_host.clone(),
        category: requested.category,
        desired_action: requested.desired_action,
        filter_groups: requested.filter_groups.clone(),
        reason: requested.reason.clone(),
        requested_by_user_id: requested.requested_by_user_id.clone(),
        requested_at: Some(time(change.requested_at)),
        decided_by_user_id: change.decided_by.clone().unwrap_or_default(),
        decided_at: change.decided_at.map(time),
        risk_assessment: requested.risk_assessment.clone(),
        effective_at: applied.and_then(|a| a.effective_at),
        version,
        risk_assessed_by_user_ids: requested.risk_assessed_by_user_ids.clone(),
        overblocking_report_ids: requested.overblocking_report_ids.clone(),
        decision_notes: change.decision_notes.clone(),
        leadership_consent: change.leadership_consent,
        applied_by_user_id: applied.map(|a| a.applied_by_user_id.clone()).unwrap_or_default(),
        applied_at: change.applied_at.map(time),
        filter_reference: applied.map(|a| a.filter_reference.clone()).unwrap_or_default(),
    }
}

impl Governance {
    /// A change, which must exist; `action` checked against its school.
    async fn change(&self, caller: &Caller, action: Action, change_id: &str) -> Result<Change, Status> {
        crate::governance::app::change_stream(change_id).map_err(status)?;
        let change = self
            .app
            .change(change_id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(crate::governance::domain::GovernanceError::NoSuchChange.into()))?;
        let school = school(&change.requested.school_id)?;
        check(caller, action, &Resource::school(school))?;
        Ok(change)
    }

    /// Records `command` on a change that exists, after checking `action` on its school.
    async fn decide(
        &self,
        caller: &Caller,
        action: Action,
        raw_request_id: &str,
        change_id: &str,
        command: impl FnOnce(String, i64) -> ChangeCommand,
    ) -> Result<u64, Status> {
        let change = self.change(caller, action, change_id).await?;
        let request_id = request_id(raw_request_id)?;
        let command = command(me(caller)?, now());
        let outcome = self
            .app
            .change_command(&context(caller, request_id), change_id, &change.requested.school_id, command)
            .await
            .map_err(status)?;
        Ok(outcome.position)
    }

    pub async fn request_change(
        &self,
        caller: &Caller,
        r: pb::RequestFilteringChangeRequest,
    ) -> Result<pb::RequestFilteringChangeResponse, Status> {
        let school = school(&r.school_id)?;
        check(caller, Action::RequestFilteringChange, &Resource::school(school.clone()))?;
        let request_id = request_id(&r.request_id)?;
        let requester = me(caller)?;
        let mut assessors = vec![requester.clone()];
        for id in user_ids(&r.risk_assessed_by_user_ids, "risk_assessed_by_user_ids")? {
            if !assessors.contains(&id) {
                assessors.push(id);
            }
        }
        let school_reports = if r.overblocking_report_ids.is_empty() {
            Default::default()
        } else {
            self.app.school_reports(&school).await.map_err(status)?
        };
        let change_id = derived_id("change", &request_id);
        let event = pb::FilteringChangeRequested {
            change_id: change_id.clone(),
            school_id: school.to_string(),
            requested_by_user_id: requester,
            kind: r.kind,
            url_host: r.url_host,
            category: r.category,
            desired_action: r.desired_action,
            filter_groups: r.filter_groups,
            reason: r.reason,
            risk_assessment: r.risk_assessment,
            risk_assessed_by_user_ids: assessors,
            overblocking_report_ids: r.overblocking_report_ids,
        };
        let command = ChangeCommand::Request { event, school_reports, at: now() };
        let outcome = self
            .app
            .change_command(&context(caller, request_id), &change_id, school.as_str(), command)
            .await
            .map_err(status)?;
        Ok(pb::RequestFilteringChangeResponse { change_id, position: outcome.position })
    }

    pub async fn approve(
        &self,
        caller: &Caller,
        r: pb::ApproveFilteringChangeRequest,
    ) -> Result<pb::ApproveFilteringChangeResponse, Status> {
        let position = self
            .decide(caller, Action::DecideFilteringChange, &r.request_id, &r.change_id, |by, at| {
                ChangeCommand::Approve { by, leadership_consent: r.leadership_consent, notes: r.notes, at }
            })
            .await?;
        Ok(pb::ApproveFilteringChangeResponse { position })
    }

    pub async fn reject(
        &self,
        caller: &Caller,
        r: pb::RejectFilteringChangeRequest,
    ) -> Result<pb::RejectFilteringChangeResponse, Status> {
        let position = self
            .decide(caller, Action::DecideFilteringChange, &r.request_id, &r.change_id, |by, at| {
                ChangeCommand::Reject { by, reason: r.reason, at }
            })
            .await?;
        Ok(pb::RejectFilteringChangeResponse { position })
    }

    pub async fn apply(
        &self,
        caller: &Caller,
        r: pb::ApplyFilteringChangeRequest,
    ) -> Result<pb::ApplyFilteringChangeResponse, Status> {
        let position =
            self.decide(caller, Action::ApplyFilteringChange, &r.request_id, &r.change_id, |by, at| {
                ChangeCommand::Apply { by, filter_reference: r.filter_reference, effective_at: r.effective_at, at }
            })
            .await?;
        Ok(pb::ApplyFilteringChangeResponse { position })
    }

    pub fn list(
        &self,
        caller: &Caller,
        r: pb::ListFilteringChangesRequest,
    ) -> Result<pb::ListFilteringChangesResponse, Status> {
        let school = school(&r.school_id)?;
        check(caller, Action::ListFilteringChanges, &Resource::school(school.clone()))?;
        let mut wanted = Vec::with_capacity(r.statuses.len());
        for raw in &r.statuses {
            match pb::FilteringChangeStatus::try_from(*raw) {
                Ok(status) if status != pb::FilteringChangeStatus::Unspecified => wanted.push(status as i32),
                _ => return Err(invalid("statuses", format!("unknown status {raw}"))),
            }
        }
        let page_size = match r.page_size as usize {
            0 => DEFAULT_PAGE,
            n if n <= MAX_PAGE => n,
            _ => return Err(invalid("page_size", format!("at most {MAX_PAGE}"))),
        };
        let offset = if r.page_token.is_empty() {
            0
        } else {
            r.page_token.parse::<usize>().map_err(|_| invalid("page_token", "not a token this service gave"))?
        };
        let matching: Vec<_> = self
            .index
            .changes(school.as_str())
            .into_iter()
            .map(|(change, version)| change_to_proto(&change, version))
            .filter(|change| wanted.is_empty() || wanted.contains(&change.status))
            .collect();
        let end = offset.saturating_add(page_size).min(matching.len());
        let changes = matching.get(offset..end).map(<[_]>::to_vec).unwrap_or_default();
        let next_page_token = if end < matching.len() { end.to_string() } else { String::new() };
        Ok(pb::ListFilteringChangesResponse { changes, next_page_token })
    }

    pub async fn record_check(
        &self,
        caller: &Caller,
        r: pb::RecordFilterCheckRequest,
    ) -> Result<pb::RecordFilterCheckResponse, Status> {
        let school = school(&r.school_id)?;
        check(caller, Action::RecordFilterCheck, &Resource::school(school.clone()))?;
        let request_id = request_id(&r.request_id)?;
        let check_id = derived_id("check", &request_id);
        let event = pb::FilterCheckRecorded {
            check_id: check_id.clone(),
            school_id: school.to_string(),
            checked_by_user_id: me(caller)?,
            method: r.method,
            outcome: r.outcome,
            results: r.results,
            device_id: r.device_id,
            filter_groups: r.filter_groups,
            notes: r.notes,
            next_check_due_at: r.next_check_due_at,
        };
        let command = RecordCommand::RecordCheck { event, at: now() };
        let outcome = self.app.record_command(&context(caller, request_id), &school, command).await.map_err(status)?;
        Ok(pb::RecordFilterCheckResponse { check_id, position: outcome.position })
    }

    pub async fn report_overblocking(
        &self,
        caller: &Caller,
        r: pb::ReportOverblockingRequest,
    ) -> Result<pb::ReportOverblockingResponse, Status> {
        let school = school(&r.school_id)?;
        check(caller, Action::ReportOverblocking, &Resource::school(school.clone()))?;
        let request_id = request_id(&r.request_id)?;
        let report_id = derived_id("overblocking", &request_id);
        let event = pb::OverblockingReported {
            report_id: report_id.clone(),
            school_id: school.to_string(),
            reported_by_user_id: me(caller)?,
            url_host: r.url_host,
            category: r.category,
            impact: r.impact,
        };
        let command = RecordCommand::ReportOverblocking { event, at: now() };
        let outcome = self.app.record_command(&context(caller, request_id), &school, command).await.map_err(status)?;
        Ok(pb::ReportOverblockingResponse { report_id, position: outcome.position })
    }

    pub async fn record_review(
        &self,
        caller: &Caller,
        r: pb::RecordFilteringReviewRequest,
    ) -> Result<pb::RecordFilteringReviewResponse, Status> {
        let school = school(&r.school_id)?;
        check(caller, Action::RecordFilteringReview, &Resource::school(school.clone()))?;
        let request_id = request_id(&r.request_id)?;
        let governor = user_ids(std::slice::from_ref(&r.governor_user_id), "governor_user_id")?.remove(0);
        let participants = user_ids(&r.participant_user_ids, "participant_user_ids")?;
        let governor_holds_role = self.app.holds_governor_role(&governor, &school).await.map_err(status)?;
        let at = now();
        let held_at = r.held_at.unwrap_or(time(at));
        if held_at.seconds > at {
            return Err(invalid("held_at", "a review is recorded once it has been held"));
        }
        let review_id = derived_id("review", &request_id);
        let event = pb::FilteringReviewRecorded {
            review_id: review_id.clone(),
            school_id: school.to_string(),
            recorded_by_user_id: me(caller)?,
            governor_user_id: governor,
            participant_user_ids: participants,
            findings: r.findings,
            actions: r.actions,
            held_at: Some(held_at),
            next_review_due_at: Some(r.next_review_due_at.unwrap_or(time(held_at.seconds + YEAR_S))),
        };
        let command = RecordCommand::RecordReview { event, governor_holds_role, at };
        let outcome = self.app.record_command(&context(caller, request_id), &school, command).await.map_err(status)?;
        Ok(pb::RecordFilteringReviewResponse { review_id, position: outcome.position })
    }

    pub fn report(
        &self,
        caller: &Caller,
        r: pb::GetFilteringReportRequest,
    ) -> Result<pb::GetFilteringReportResponse, Status> {
        let school = school(&r.school_id)?;
        check(caller, Action::ListFilteringChanges, &Resource::school(school.clone()))?;
        let from = r.from.map_or(i64::MIN, |t| t.seconds);
        let to = r.to.map_or_else(|| now() + 1, |t| t.seconds);
        if from >= to {
            return Err(invalid("to", "must be after from"));
        }
        let record = self.index.record(school.as_str());
        let changes = self.index.changes(school.as_str());
        Ok(report::build(school.as_str(), &record, &changes, from, to))
    }
}
