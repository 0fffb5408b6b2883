//! `haven.v1.Incidents` over gRPC. Served inside haven-authz's `AuthLayer`, which authenticates
//! and applies the method table; each handler then checks its action against the record's
//! school (`haven_authz::grpc::check`) and the record's need to know (`domain::access`).
//!
//! ```text
//!  request ─▶ AuthLayer (rule, token) ─▶ handler: load the record ─▶ check(action, its school)
//!          ─▶ may_see (not about the caller; allegations: the principal and grantees)
//!          ─▶ app: load ─▶ decide ─▶ append(version) ─▶ response
//! ```
//! A need-to-know refusal answers NOT_FOUND, so it does not reveal that an allegation exists.
//! Requests carrying `expected_version` (ChangeCaseRisk, CloseCase) are refused with ABORTED
//! when the case moved on since the caller read it; 0 means "not checked".

mod convert;

use haven_authz::grpc::{caller, check};
use haven_authz::{Action, Caller, Resource, Role, Scope, UserId, policy};
use haven_eventlog_client::ReadStream;
use haven_kernel::{SchoolId, Version};
use haven_proto::v1 as pb;
use haven_proto::v1::incidents_server::{Incidents, IncidentsServer};
use tonic::{Request, Response, Status};

use self::convert::*;
use crate::domain::*;
use crate::events::{
    agency_from_proto, allegation_from_proto, case_type_from_proto, four_cs_from_proto, method_from_proto,
    outcome_from_proto, risk_from_proto, role_from_proto, status_from_proto,
};
use crate::index::IncidentsIndex;
use crate::{CommandContext, Error, EventIds, IncidentsApp};

pub use self::convert::case_summary;

/// Cases and concerns per page when the request does not say.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// The gRPC face of incidents.
#[derive(Clone, Debug)]
pub struct IncidentsService {
    app: IncidentsApp,
    index: IncidentsIndex,
}

fn now() -> UnixTime {
    UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64))
}

/// A new id for a record: derived from the client's request id (a retry names the same
/// record), else a fresh UUIDv7.
fn new_id(kind: &str, request_id: &str) -> String {
    let uuid = if request_id.is_empty() {
        uuid::Uuid::now_v7()
    } else {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("haven:incidents:{kind}:{request_id}").as_bytes())
    };
    uuid.to_string()
}

/// The caller as a person (school systems never reach incidents: the layer refuses them).
fn person(caller: &Caller) -> Result<UserId, Status> {
    caller.principal.user_id().ok_or_else(|| Status::permission_denied("only people work concerns and cases"))
}

/// What the caller is in `school`: the facts need to know is decided on.
fn reader(caller: &Caller, school: &SchoolId) -> Result<Reader, Status> {
    let principal = &caller.principal;
    let here = Scope::School(school.clone());
    Ok(Reader {
        user: person(caller)?,
        dsl_here: principal.holds(Role::Dsl, &here) || principal.holds(Role::DeputyDsl, &here),
        principal_here: principal.holds(Role::Principal, &here),
        trust_lead: principal.holds(Role::TrustSafeguardingLead, &Scope::Trust),
    })
}

fn context(caller: &Caller, request_id: &str, at: UnixTime) -> Result<CommandContext, Status> {
    let roles = caller.principal.grants.iter().map(|grant| grant.role.as_str().to_owned()).collect();
    let event_ids =
        if request_id.is_empty() { EventIds::Fresh } else { EventIds::Derived { key: request_id.to_owned() } };
    Ok(CommandContext::user(person(caller)?, roles, at, event_ids))
}

fn expected(raw: u64) -> Option<Version> {
    (raw != 0).then_some(Version(raw))
}

fn page(size: u32, token: &str) -> Result<(usize, usize), Status> {
    let size = match size as usize {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => return Err(invalid("page_size", format!("must be at most {MAX_PAGE}"))),
        n => n,
    };
    let offset = if token.is_empty() {
        0
    } else {
        token.parse::<usize>().map_err(|_| invalid("page_token", "is not a token this server gave"))?
    };
    Ok((offset, size))
}

fn next_token(offset: usize, size: usize, total: usize) -> String {
    if offset + size < total { (offset + size).to_string() } else { String::new() }
}

impl IncidentsService {
    pub fn new(app: IncidentsApp, index: IncidentsIndex) -> Self {
        IncidentsService { app, index }
    }

    /// The tonic server; wrap it in `haven_authz::AuthLayer` before serving.
    pub fn into_server(self) -> IncidentsServer<Self> {
        IncidentsServer::new(self)
    }

    /// The position of a stream's event at `version`, for responses that report one.
    async fn position(&self, stream: haven_kernel::StreamId, version: Version) -> u64 {
        match self.app.log().read_stream(ReadStream::forwards(stream, version, 1)).await {
            Ok(slice) => slice.events.first().map_or(0, |event| event.position),
            Err(_) => 0,
        }
    }

    /// A case the caller may act on: it exists, the caller holds `action` in its school, and
    /// has the need to know.
    async fn visible_case(
        &self,
        caller: &Caller,
        action: Action,
        raw: &str,
    ) -> Result<(Case, Version, Reader), Status> {
        let case_id = case_id(raw, "case_id")?;
        let (case, version) =
            self.app.case(&case_id).await.map_err(status)?.ok_or_else(|| not_found(format!("case {raw}")))?;
        check(caller, action, &Resource::school(case.school_id().clone()))?;
        let reader = reader(caller, case.school_id())?;
        may_see_case(&case, &reader).map_err(|refusal| status(Error::Denied(refusal)))?;
        Ok((case, version, reader))
    }

    /// Runs `make`'s request on a case the caller may work.
    async fn on_case(
        &self,
        request: (&Caller, &str, &str),
        expected_version: Option<Version>,
        make: impl FnOnce(&Case, &Reader) -> Result<CaseRequest, Status>,
    ) -> Result<(Case, Version), Status> {
        let (caller, raw_case_id, request_id) = request;
        let (case, _, reader) = self.visible_case(caller, Action::ManageCase, raw_case_id).await?;
        let request = make(&case, &reader)?;
        let context = context(caller, request_id, now())?;
        self.app
            .case_command(&context, case.case_id(), case.school_id(), request, expected_version)
            .await
            .map_err(status)
    }

    async fn open(&self, caller: &Caller, request_id: &str, open: OpenCase) -> Result<(Case, Version), Status> {
        let reader = reader(caller, &open.school_id)?;
        if open.staff_ids.contains(&reader.user) {
            return Err(Status::permission_denied(AccessRefusal::AboutThemselves.to_string()));
        }
        if open.case_type.is_about_staff() && !reader.principal_here {
            return Err(Status::permission_denied(
                "a case about a member of staff is opened by the school's principal (policy 10.2)",
            ));
        }
        let context = context(caller, request_id, now())?;
        match self.app.open_case(&context, open.clone()).await {
            Ok(opened) => Ok(opened),
            // A retry of the same request: the case it opened.
            Err(Error::Case(CaseError::AlreadyOpened)) if !request_id.is_empty() => {
                let (case, version) = self
                    .app
                    .case(&open.case_id)
                    .await
                    .map_err(status)?
                    .ok_or_else(|| not_found(format!("case {}", open.case_id)))?;
                if case.opened_by != reader.user {
                    return Err(status(Error::Case(CaseError::AlreadyOpened)));
                }
                Ok((case, version))
            }
            Err(other) => Err(status(other)),
        }
    }
}

/// A chronology line from an event of its stream.
fn entry(envelope: &pb::EventEnvelope, summary: String) -> pb::ChronologyEntry {
    pb::ChronologyEntry {
        position: envelope.position,
        event_type: envelope.event_type.clone(),
        occurred_at: envelope.occurred_at,
        recorded_at: envelope.recorded_at,
        actor_principal_id: envelope.actor.as_ref().map(|a| a.principal_id.clone()).unwrap_or_default(),
        summary,
        stream_id: envelope.stream_id.clone(),
        school_id: envelope.school_id.clone(),
    }
}

fn case_entry(envelope: &pb::EventEnvelope) -> pb::ChronologyEntry {
    entry(envelope, crate::events::decode_case(envelope).map(|event| describe(&event)).unwrap_or_default())
}

fn concern_entry(envelope: &pb::EventEnvelope) -> pb::ChronologyEntry {
    let summary = match crate::events::decode_concern(envelope) {
        Ok(ConcernEvent::Raised(details)) => {
            format!("concern raised about a {:?} by {}", details.about, details.raised_by)
        }
        Ok(ConcernEvent::Triaged(triage)) => match &triage.decision {
            TriageDecision::CaseOpened { case_id } => format!("triaged: case {case_id} opened"),
            TriageDecision::Merged { case_id } => format!("triaged: merged into case {case_id}"),
            TriageDecision::Linked { case_id } => format!("triaged: linked to case {case_id}"),
            TriageDecision::FalsePositive { .. } => "triaged: false positive".to_owned(),
            TriageDecision::NoFurtherAction { .. } => "triaged: no further action".to_owned(),
        },
        Err(_) => String::new(),
    };
    entry(envelope, summary)
}

fn four_cs(raw: &[i32]) -> Result<std::collections::BTreeSet<FourCs>, Status> {
    raw.iter().map(|c| required(four_cs_from_proto(*c), "four_cs")).collect()
}

#[tonic::async_trait]
impl Incidents for IncidentsService {
    async fn raise_concern(
        &self,
        request: Request<pb::RaiseConcernRequest>,
    ) -> Result<Response<pb::RaiseConcernResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let school = school_id(&r.school_id, "school_id")?;
        check(&caller, Action::RaiseConcern, &Resource::school(school.clone()))?;
        let raised_by = person(&caller)?;
        let dsl_told_verbally = match (r.dsl_told_verbally, r.dsl_told_user_id.as_str()) {
            (false, _) => None,
            (true, "") => return Err(invalid("dsl_told_user_id", "name the DSL or deputy who was told")),
            (true, raw) => Some(user_id(raw, "dsl_told_user_id")?),
        };
        let at = now();
        let concern_id = ConcernId::parse(&new_id("concern", &r.request_id)).expect("a UUID is a valid id");
        let details = ConcernDetails {
            concern_id: concern_id.clone(),
            school_id: school.clone(),
            raised_by: raised_by.clone(),
            raised_at: at,
            about: required(crate::events::about_from_proto(r.about), "about")?,
            subject_ids: subjects(&r.subject_ids)?,
            staff_ids: user_ids(&r.staff_user_ids, "staff_user_ids")?,
            what_happened: r.what_happened,
            incident_occurred_at: optional_time(r.incident_occurred_at.as_ref()),
            suspected_type: case_type_from_proto(r.suspected_case_type),
            immediate_risk: r.immediate_risk,
            dsl_told_verbally,
            alert_id: None,
            device_ids: r.device_ids,
        };
        let context = context(&caller, &r.request_id, at)?;
        match self.app.raise_concern(&context, details).await {
            Ok(_) => {}
            // A retry of the same request: the concern it raised.
            Err(Error::Concern(ConcernError::AlreadyRaised)) if !r.request_id.is_empty() => {
                match self.app.concern(&concern_id).await.map_err(status)? {
                    Some((concern, _)) if concern.details.raised_by == raised_by => {}
                    _ => return Err(status(Error::Concern(ConcernError::AlreadyRaised))),
                }
            }
            Err(other) => return Err(status(other)),
        }
        let position = self.position(crate::concern_stream(&concern_id).map_err(status)?, Version(0)).await;
        Ok(Response::new(pb::RaiseConcernResponse { concern_id: concern_id.to_string(), position }))
    }

    async fn triage_concern(
        &self,
        request: Request<pb::TriageConcernRequest>,
    ) -> Result<Response<pb::TriageConcernResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let concern_id = concern_id(&r.concern_id)?;
        let (concern, _) = self
            .app
            .concern(&concern_id)
            .await
            .map_err(status)?
            .ok_or_else(|| not_found(format!("concern {concern_id}")))?;
        let school = concern.details.school_id.clone();
        check(&caller, Action::TriageConcern, &Resource::school(school.clone()))?;
        let reader = reader(&caller, &school)?;
        may_see_concern(&concern, &reader).map_err(|refusal| status(Error::Denied(refusal)))?;
        if !may_triage(&concern, &reader) {
            return Err(status(Error::Concern(ConcernError::PrincipalTriages)));
        }
        let outcome = pb::TriageOutcome::try_from(r.outcome).unwrap_or(pb::TriageOutcome::Unspecified);
        let decision = match outcome {
            pb::TriageOutcome::Unspecified => return Err(invalid("outcome", "is required")),
            pb::TriageOutcome::FalsePositive => TriageDecision::FalsePositive { reason: r.rationale.clone() },
            pb::TriageOutcome::NoFurtherAction => TriageDecision::NoFurtherAction { reason: r.rationale.clone() },
            pb::TriageOutcome::Merged | pb::TriageOutcome::Linked => {
                let (case, _, _) = self.visible_case(&caller, Action::ManageCase, &r.case_id).await?;
                let case_id = case.case_id().clone();
                if outcome == pb::TriageOutcome::Merged {
                    TriageDecision::Merged { case_id }
                } else {
                    TriageDecision::Linked { case_id }
                }
            }
            pb::TriageOutcome::CaseOpened => {
                let details = &concern.details;
                let lead = if r.lead_user_id.is_empty() {
                    reader.user.clone()
                } else {
                    user_id(&r.lead_user_id, "lead_user_id")?
                };
                let open = OpenCase {
                    case_id: CaseId::parse(&new_id("case", &format!("concern:{concern_id}")))
                        .expect("a UUID is a valid id"),
                    school_id: school.clone(),
                    case_type: required(case_type_from_proto(r.case_type), "case_type")?,
                    four_cs: four_cs(&r.four_cs)?,
                    risk: required(risk_from_proto(r.risk_level), "risk_level")?,
                    lead,
                    subject_ids: details.subject_ids.clone(),
                    staff_ids: details.staff_ids.clone(),
                    concern_ids: vec![concern_id.clone()],
                    alert_ids: details.alert_id.iter().cloned().collect(),
                    summary: r.summary.clone(),
                    imagery_viewed: false,
                };
                // Opened with an id derived from the concern: a retried triage finds it.
                let (case, _) = self.open(&caller, &format!("concern:{concern_id}"), open).await?;
                TriageDecision::CaseOpened { case_id: case.case_id().clone() }
            }
        };
        let case_id = decision.case_id().map(ToString::to_string).unwrap_or_default();
        let command = ConcernCommand::Triage {
            by: reader.user.clone(),
            at: now(),
            by_principal: reader.principal_here,
            decision,
        };
        let context = context(&caller, &r.request_id, now())?;
        let (_, version) = self.app.concern_command(&context, &concern_id, &school, command).await.map_err(status)?;
        let position = self.position(crate::concern_stream(&concern_id).map_err(status)?, version).await;
        Ok(Response::new(pb::TriageConcernResponse { case_id, position }))
    }

    async fn open_case(&self, request: Request<pb::OpenCaseRequest>) -> Result<Response<pb::OpenCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let school = school_id(&r.school_id, "school_id")?;
        check(&caller, Action::ManageCase, &Resource::school(school.clone()))?;
        let me = person(&caller)?;
        let open = OpenCase {
            case_id: CaseId::parse(&new_id("case", &r.request_id)).expect("a UUID is a valid id"),
            school_id: school,
            case_type: required(case_type_from_proto(r.case_type), "case_type")?,
            four_cs: four_cs(&r.four_cs)?,
            risk: required(risk_from_proto(r.risk_level), "risk_level")?,
            lead: if r.lead_user_id.is_empty() { me } else { user_id(&r.lead_user_id, "lead_user_id")? },
            subject_ids: subjects(&r.subject_ids)?,
            staff_ids: user_ids(&r.staff_user_ids, "staff_user_ids")?,
            concern_ids: r.concern_ids.iter().map(|id| concern_id(id)).collect::<Result<_, _>>()?,
            alert_ids: r
                .alert_ids
                .iter()
                .map(|id| AlertId::parse(id).map_err(|e| invalid("alert_ids", e.to_string())))
                .collect::<Result<_, _>>()?,
            summary: r.summary,
            imagery_viewed: r.imagery_viewed,
        };
        let (case, _) = self.open(&caller, &r.request_id, open).await?;
        let position = self.position(crate::case_stream(case.case_id()).map_err(status)?, Version(0)).await;
        Ok(Response::new(pb::OpenCaseResponse { case_id: case.case_id().to_string(), position }))
    }

    async fn record_action(
        &self,
        request: Request<pb::RecordActionRequest>,
    ) -> Result<Response<pb::RecordActionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, _| {
                Ok(CaseRequest::RecordAction {
                    key: r.action_key.clone(),
                    title: r.title.clone(),
                    status: required(status_from_proto(r.status), "status")?,
                    note: r.note.clone(),
                })
            })
            .await?;
        Ok(Response::new(pb::RecordActionResponse { version: version.0 }))
    }

    async fn make_referral(
        &self,
        request: Request<pb::MakeReferralRequest>,
    ) -> Result<Response<pb::MakeReferralResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let agency = required(agency_from_proto(r.agency), "agency")?;
        let referral_id = if r.referral_id.is_empty() {
            ReferralId::parse(&new_id("referral", &r.request_id)).expect("a UUID is a valid id")
        } else {
            ReferralId::parse(&r.referral_id).map_err(|e| invalid("referral_id", e.to_string()))?
        };
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, _| {
                Ok(if r.declined {
                    CaseRequest::DeclineReferral { agency, rationale: r.summary.clone() }
                } else {
                    CaseRequest::MakeReferral {
                        referral_id: referral_id.clone(),
                        agency,
                        agency_other: r.agency_other.clone(),
                        reference_number: r.reference_number.clone(),
                        agency_contact: r.agency_contact.clone(),
                        reason: r.summary.clone(),
                        follow_up_at: optional_time(r.follow_up_at.as_ref()),
                    }
                })
            })
            .await?;
        let referral_id = if r.declined { String::new() } else { referral_id.to_string() };
        Ok(Response::new(pb::MakeReferralResponse { referral_id, version: version.0 }))
    }

    async fn record_referral_outcome(
        &self,
        request: Request<pb::RecordReferralOutcomeRequest>,
    ) -> Result<Response<pb::RecordReferralOutcomeResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, _| {
                Ok(CaseRequest::RecordReferralOutcome {
                    referral_id: ReferralId::parse(&r.referral_id)
                        .map_err(|e| invalid("referral_id", e.to_string()))?,
                    outcome: required(outcome_from_proto(r.outcome), "outcome")?,
                    allegation_outcome: allegation_from_proto(r.allegation_outcome),
                    detail: r.detail.clone(),
                })
            })
            .await?;
        Ok(Response::new(pb::RecordReferralOutcomeResponse { version: version.0 }))
    }

    async fn record_parents_informed(
        &self,
        request: Request<pb::RecordParentsInformedRequest>,
    ) -> Result<Response<pb::RecordParentsInformedResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, _| {
                let subject_ids = subjects(&r.subject_ids)?;
                Ok(if r.not_informed {
                    CaseRequest::DoNotInformParents { subject_ids, reason: r.summary.clone() }
                } else {
                    CaseRequest::InformParents {
                        subject_ids,
                        method: required(method_from_proto(r.method), "method")?,
                        summary: r.summary.clone(),
                    }
                })
            })
            .await?;
        Ok(Response::new(pb::RecordParentsInformedResponse { version: version.0 }))
    }

    async fn record_imagery_viewed(
        &self,
        request: Request<pb::RecordImageryViewedRequest>,
    ) -> Result<Response<pb::RecordImageryViewedResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, reader| {
                Ok(CaseRequest::RecordImageryViewed(ViewingRecord {
                    viewed_by: if r.viewed_by_user_id.is_empty() {
                        reader.user.clone()
                    } else {
                        user_id(&r.viewed_by_user_id, "viewed_by_user_id")?
                    },
                    viewed_at: required(optional_time(r.viewed_at.as_ref()), "viewed_at")?,
                    present: user_ids(&r.present_user_ids, "present_user_ids")?,
                    others_present: r.others_present.clone(),
                    reason: r.reason.clone(),
                    description: r.description.clone(),
                    custody_id: r.custody_id.clone(),
                }))
            })
            .await?;
        Ok(Response::new(pb::RecordImageryViewedResponse { version: version.0 }))
    }

    async fn record_material_deletion(
        &self,
        request: Request<pb::RecordMaterialDeletionRequest>,
    ) -> Result<Response<pb::RecordMaterialDeletionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, reader| {
                Ok(CaseRequest::RecordMaterialDeletion {
                    by_dsl: reader.dsl_here,
                    dsl_confirmed_no_agency_needs_it: r.dsl_confirmed_no_agency_needs_it,
                    dsl_confirmed_safe_to_delete: r.dsl_confirmed_safe_to_delete,
                    deletion: Deletion {
                        dsl: reader.user.clone(),
                        agencies_consulted: r
                            .agencies_consulted
                            .iter()
                            .map(|a| required(agency_from_proto(*a), "agencies_consulted"))
                            .collect::<Result<_, _>>()?,
                        description: r.description.clone(),
                        deleted_by: r.deleted_by.clone(),
                        learner_consented: r.learner_consented,
                        custody_id: r.custody_id.clone(),
                    },
                })
            })
            .await?;
        Ok(Response::new(pb::RecordMaterialDeletionResponse { version: version.0 }))
    }

    /// Links two cases, possibly of two schools: the caller works the first; the second must
    /// exist. Each case's stream records the link, so both schools' DSLs see it.
    async fn link_cases(
        &self,
        request: Request<pb::LinkCasesRequest>,
    ) -> Result<Response<pb::LinkCasesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let linked_id = case_id(&r.linked_case_id, "linked_case_id")?;
        let (linked, _) =
            self.app.case(&linked_id).await.map_err(status)?.ok_or_else(|| not_found(format!("case {linked_id}")))?;
        let (case, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, _| {
                Ok(CaseRequest::Link {
                    linked_case_id: linked_id.clone(),
                    linked_school_id: linked.school_id().clone(),
                    reason: r.reason.clone(),
                })
            })
            .await?;
        let back = CaseRequest::Link {
            linked_case_id: case.case_id().clone(),
            linked_school_id: case.school_id().clone(),
            reason: r.reason.clone(),
        };
        let back_key = if r.request_id.is_empty() { String::new() } else { format!("{}:back", r.request_id) };
        let context = context(&caller, &back_key, now())?;
        self.app.case_command(&context, &linked_id, linked.school_id(), back, None).await.map_err(status)?;
        Ok(Response::new(pb::LinkCasesResponse { version: version.0 }))
    }

    async fn change_case_risk(
        &self,
        request: Request<pb::ChangeCaseRiskRequest>,
    ) -> Result<Response<pb::ChangeCaseRiskResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), expected(r.expected_version), |_, _| {
                Ok(CaseRequest::ChangeRisk {
                    risk: required(risk_from_proto(r.risk_level), "risk_level")?,
                    reason: r.reason.clone(),
                })
            })
            .await?;
        Ok(Response::new(pb::ChangeCaseRiskResponse { version: version.0 }))
    }

    async fn escalate_case(
        &self,
        request: Request<pb::EscalateCaseRequest>,
    ) -> Result<Response<pb::EscalateCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, _| {
                Ok(CaseRequest::Escalate {
                    role: required(role_from_proto(r.escalated_to_role), "escalated_to_role")?,
                    users: user_ids(&r.escalated_to_user_ids, "escalated_to_user_ids")?,
                    reason: r.reason.clone(),
                })
            })
            .await?;
        Ok(Response::new(pb::EscalateCaseResponse { version: version.0 }))
    }

    async fn grant_case_access(
        &self,
        request: Request<pb::GrantCaseAccessRequest>,
    ) -> Result<Response<pb::GrantCaseAccessResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, reader| {
                Ok(CaseRequest::GrantAccess {
                    user: user_id(&r.user_id, "user_id")?,
                    reason: r.reason.clone(),
                    by_principal: reader.principal_here,
                })
            })
            .await?;
        Ok(Response::new(pb::GrantCaseAccessResponse { version: version.0 }))
    }

    async fn revoke_case_access(
        &self,
        request: Request<pb::RevokeCaseAccessRequest>,
    ) -> Result<Response<pb::RevokeCaseAccessResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, reader| {
                Ok(CaseRequest::RevokeAccess {
                    user: user_id(&r.user_id, "user_id")?,
                    by_principal: reader.principal_here,
                })
            })
            .await?;
        Ok(Response::new(pb::RevokeCaseAccessResponse { version: version.0 }))
    }

    async fn close_case(
        &self,
        request: Request<pb::CloseCaseRequest>,
    ) -> Result<Response<pb::CloseCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), expected(r.expected_version), |_, _| {
                Ok(CaseRequest::Close {
                    outcome_summary: r.outcome_summary.clone(),
                    debrief: r.debrief.clone(),
                    lessons_learned: r.lessons_learned.clone(),
                    changes_required: r.changes_required.clone(),
                    allegation_outcome: allegation_from_proto(r.allegation_outcome),
                })
            })
            .await?;
        Ok(Response::new(pb::CloseCaseResponse { version: version.0 }))
    }

    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> Result<Response<pb::GetCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (case, version, reader) = self.visible_case(&caller, Action::ReadCase, &r.case_id).await?;
        let context = context(&caller, "", now())?;
        let mut views = vec![pb::CaseView::Full];
        if r.include_chronology {
            views.push(pb::CaseView::Chronology);
        }
        for view in views {
            let access = pb::CaseAccessed {
                case_id: case.case_id().to_string(),
                concern_id: String::new(),
                school_id: case.school_id().to_string(),
                accessed_by_user_id: reader.user.to_string(),
                view: view as i32,
                purpose: r.purpose.clone(),
            };
            self.app.record_access(&context, access).await.map_err(status)?;
        }
        let chronology = if r.include_chronology {
            let envelopes = self.app.case_history(case.case_id()).await.map_err(status)?;
            envelopes.iter().map(case_entry).collect()
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::GetCaseResponse { case: Some(case_to_proto(&case, version)), chronology }))
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let schools: Vec<SchoolId> =
            r.school_ids.iter().map(|raw| school_id(raw, "school_ids")).collect::<Result<_, _>>()?;
        for school in &schools {
            check(&caller, Action::ListCases, &Resource::school(school.clone()))?;
        }
        let statuses: Vec<i32> = r.statuses.clone();
        let types: Vec<i32> = r.case_types.clone();
        let min_risk = risk_from_proto(r.min_risk_level);
        let subject = if r.subject_id.is_empty() {
            None
        } else {
            Some(SubjectId::parse(&r.subject_id).map_err(|e| invalid("subject_id", e.to_string()))?)
        };
        let (offset, size) = page(r.page_size, &r.page_token)?;
        let at = now();
        let visible: Vec<pb::CaseSummary> = self
            .index
            .cases()
            .into_iter()
            .map(|(case, _)| case)
            .filter(|case| schools.is_empty() || schools.contains(case.school_id()))
            .filter(|case| {
                policy::authorize(
                    &caller.principal,
                    caller.aup_current,
                    Action::ListCases,
                    &Resource::school(case.school_id().clone()),
                )
                .is_allowed()
                    && reader(&caller, case.school_id()).is_ok_and(|reader| may_see_case(case, &reader).is_ok())
            })
            .filter(|case| statuses.is_empty() || statuses.contains(&(case_status_to_proto(case.status) as i32)))
            .filter(|case| {
                types.is_empty() || types.contains(&(crate::events::case_type_to_proto(case.case_type()) as i32))
            })
            .filter(|case| min_risk.is_none_or(|min| case.risk >= min))
            .filter(|case| !r.overdue_only || !case.overdue(at).is_empty())
            .filter(|case| subject.as_ref().is_none_or(|subject| case.opened.subject_ids.contains(subject)))
            .map(|case| case_summary(&case, at))
            .collect();
        let total = visible.len();
        let cases = visible.into_iter().skip(offset).take(size).collect();
        Ok(Response::new(pb::ListCasesResponse { cases, next_page_token: next_token(offset, size, total) }))
    }

    async fn list_concerns(
        &self,
        request: Request<pb::ListConcernsRequest>,
    ) -> Result<Response<pb::ListConcernsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let school = if r.school_id.is_empty() { None } else { Some(school_id(&r.school_id, "school_id")?) };
        let (offset, size) = page(r.page_size, &r.page_token)?;
        let visible: Vec<pb::Concern> = self
            .index
            .concerns()
            .into_iter()
            .filter(|(concern, _)| school.as_ref().is_none_or(|school| &concern.details.school_id == school))
            .filter(|(concern, _)| !r.untriaged_only || concern.triage.is_none())
            .filter(|(concern, _)| {
                reader(&caller, &concern.details.school_id)
                    .is_ok_and(|reader| may_see_concern(concern, &reader).is_ok())
            })
            .map(|(concern, version)| concern_to_proto(&concern, version))
            .collect();
        let total = visible.len();
        let concerns = visible.into_iter().skip(offset).take(size).collect();
        Ok(Response::new(pb::ListConcernsResponse { concerns, next_page_token: next_token(offset, size, total) }))
    }

    async fn reopen_case(
        &self,
        request: Request<pb::ReopenCaseRequest>,
    ) -> Result<Response<pb::ReopenCaseResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let (_, version) = self
            .on_case((&caller, &r.case_id, &r.request_id), None, |_, _| {
                Ok(CaseRequest::Reopen { reason: r.reason.clone() })
            })
            .await?;
        Ok(Response::new(pb::ReopenCaseResponse { version: version.0 }))
    }

    async fn get_learner_chronology(
        &self,
        request: Request<pb::GetLearnerChronologyRequest>,
    ) -> Result<Response<pb::GetLearnerChronologyResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let subject = SubjectId::parse(&r.subject_id).map_err(|e| invalid("subject_id", e.to_string()))?;
        let team_here = |school: &SchoolId| {
            policy::authorize(
                &caller.principal,
                caller.aup_current,
                Action::ListCases,
                &Resource::school(school.clone()),
            )
            .is_allowed()
        };
        let (cases, concerns) = self.index.about_learner(&subject);
        let cases: Vec<Case> = cases
            .into_iter()
            .filter(|case| {
                team_here(case.school_id())
                    && reader(&caller, case.school_id()).is_ok_and(|reader| may_see_case(case, &reader).is_ok())
            })
            .collect();
        let concerns: Vec<Concern> = concerns
            .into_iter()
            .filter(|concern| {
                let school = &concern.details.school_id;
                team_here(school)
                    && reader(&caller, school).is_ok_and(|reader| may_see_concern(concern, &reader).is_ok())
            })
            .collect();
        let me = person(&caller)?;
        let context = context(&caller, "", now())?;
        let mut entries = Vec::new();
        for case in &cases {
            let access = pb::CaseAccessed {
                case_id: case.case_id().to_string(),
                concern_id: String::new(),
                school_id: case.school_id().to_string(),
                accessed_by_user_id: me.to_string(),
                view: pb::CaseView::Chronology as i32,
                purpose: r.purpose.clone(),
            };
            self.app.record_access(&context, access).await.map_err(status)?;
            entries.extend(self.app.case_history(case.case_id()).await.map_err(status)?.iter().map(case_entry));
        }
        for concern in &concerns {
            let access = pb::CaseAccessed {
                case_id: String::new(),
                concern_id: concern.details.concern_id.to_string(),
                school_id: concern.details.school_id.to_string(),
                accessed_by_user_id: me.to_string(),
                view: pb::CaseView::Concern as i32,
                purpose: r.purpose.clone(),
            };
            self.app.record_access(&context, access).await.map_err(status)?;
            let history = self.app.concern_history(&concern.details.concern_id).await.map_err(status)?;
            entries.extend(history.iter().map(concern_entry));
        }
        entries.sort_by_key(|entry| entry.position);
        let at = now();
        let mut summaries: Vec<pb::CaseSummary> = cases.iter().map(|case| case_summary(case, at)).collect();
        summaries.sort_by(|a, b| b.opened_at.map(|t| t.seconds).cmp(&a.opened_at.map(|t| t.seconds)));
        Ok(Response::new(pb::GetLearnerChronologyResponse { entries, cases: summaries }))
    }

    async fn acknowledge_alert(
        &self,
        request: Request<pb::AcknowledgeAlertRequest>,
    ) -> Result<Response<pb::AcknowledgeAlertResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let alert_id = AlertId::parse(&r.alert_id).map_err(|e| invalid("alert_id", e.to_string()))?;
        let (alert, _) =
            self.app.alert(&alert_id).await.map_err(status)?.ok_or_else(|| not_found(format!("alert {alert_id}")))?;
        check(&caller, Action::AcknowledgeAlert, &Resource::school(alert.school_id.clone()))?;
        let at = now();
        let mut concern_id = None;
        if r.raise_concern {
            let context = context(&caller, &format!("alert:{alert_id}:concern"), at)?;
            let note = if r.note.trim().is_empty() { "raised from a safeguarding alert" } else { r.note.as_str() };
            let raised = self.app.concern_from_alert(&context, &alert_id, note).await.map_err(status)?;
            match raised {
                Some(id) => concern_id = Some(id),
                None => {
                    return Err(invalid(
                        "raise_concern",
                        "the alert names no learner: raise the concern with RaiseConcern",
                    ));
                }
            }
        }
        let context = context(&caller, &r.request_id, at)?;
        let (_, version) = self
            .app
            .acknowledge_alert(&context, &alert_id, concern_id.clone(), r.note.clone())
            .await
            .map_err(status)?;
        let position = self.position(crate::alert_stream(&alert_id).map_err(status)?, version).await;
        Ok(Response::new(pb::AcknowledgeAlertResponse {
            concern_id: concern_id.map(|id| id.to_string()).unwrap_or_default(),
            position,
        }))
    }
}
