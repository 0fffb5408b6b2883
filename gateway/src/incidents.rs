//! Incidents' HTTP routes: raise and list concerns, triage, open, list and read cases, record
//! actions and referrals, close. Each route is authorised at the edge with the same rules and
//! authenticator as the gRPC service (`AuthLayer::admit` on the method it calls), then
//! forwarded over gRPC with the caller's bearer token, where incidents checks the record's
//! school and need to know again.
//!
//! ```text
//!  HTTP JSON ─▶ admit(/haven.v1.Incidents/<Method>, Authorization) ─▶ 401/403/503 ErrorBody
//!            └▶ IncidentsClient ─▶ JSON (enums as snake_case names, times as Unix seconds)
//! ```

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use haven_authz::AuthLayer;
use haven_kernel::ErrorCode;
use haven_proto::v1 as pb;
use haven_proto::v1::incidents_client::IncidentsClient;
use serde::{Deserialize, Serialize};

use crate::GrpcChannel;
use crate::VersionBody;
use utoipa::{IntoParams, ToSchema};

use crate::GatewayState;
use crate::identity::{ErrorBody, admit, error, from_status};

/// What the incidents routes need: a gRPC client of incidents and the edge's layer.
#[derive(Clone, Debug)]
pub struct IncidentsEdge {
    pub client: IncidentsClient<GrpcChannel>,
    pub layer: AuthLayer,
}

fn invalid(field: &str, reason: &str) -> Response {
    error(ErrorCode::InvalidArgument, format!("invalid {field}: {reason}"))
}

/// The edge's check for the gRPC method a route calls; returns the request to forward.
fn admitted<T>(
    state: &GatewayState,
    method: &str,
    headers: &HeaderMap,
    message: T,
) -> Result<(IncidentsClient<GrpcChannel>, tonic::Request<T>), Response> {
    let Some(edge) = &state.incidents else {
        return Err(error(ErrorCode::Unavailable, "incidents is not served by this process"));
    };
    let request = admit(&edge.layer, &format!("/haven.v1.Incidents/{method}"), headers, message)?;
    Ok((edge.client.clone(), request))
}

/// A protobuf enum value from its snake_case name without the prefix (`cyberbullying` for
/// `CASE_TYPE_CYBERBULLYING`); absent is UNSPECIFIED (0), which the service refuses where
/// the field is required.
fn enum_in<E: Into<i32>>(
    raw: Option<&str>,
    prefix: &str,
    field: &str,
    parse: fn(&str) -> Option<E>,
) -> Result<i32, Response> {
    match raw {
        None => Ok(0),
        Some(name) => parse(&format!("{prefix}{}", name.to_uppercase()))
            .map(Into::into)
            .filter(|value| *value != 0)
            .ok_or_else(|| invalid(field, &format!("`{name}` is not a known value"))),
    }
}

/// A protobuf enum's snake_case name without its prefix.
fn enum_out(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

fn seconds(time: Option<haven_proto::prost_types::Timestamp>) -> Option<i64> {
    time.map(|t| t.seconds)
}

macro_rules! name_of {
    ($enum:ty, $raw:expr, $prefix:literal) => {
        <$enum>::try_from($raw).map(|value| enum_out(value.as_str_name(), $prefix)).unwrap_or_default()
    };
}

// --- bodies --------------------------------------------------------------------------------

/// A concern raised by a member of staff.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RaiseConcernBody {
    /// Retrying with the same id raises nothing new.
    pub request_id: Option<String>,
    pub school_id: String,
    /// `learner`, `colleague` or `parent_carer`.
    pub about: String,
    #[serde(default)]
    pub subject_ids: Vec<String>,
    #[serde(default)]
    pub staff_user_ids: Vec<String>,
    pub what_happened: String,
    /// Unix seconds, if known.
    pub incident_occurred_at: Option<i64>,
    /// A case type name, e.g. `cyberbullying`, if the raiser has a view.
    pub suspected_case_type: Option<String>,
    #[serde(default)]
    pub immediate_risk: bool,
    /// The DSL or deputy also told in person.
    pub dsl_told_user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RaisedBody {
    pub concern_id: String,
    pub position: u64,
}

/// Which concerns to list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ConcernsQuery {
    pub school_id: Option<String>,
    #[serde(default)]
    pub untriaged_only: bool,
}

/// A concern as a list shows it (no free text).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConcernBody {
    pub concern_id: String,
    pub school_id: String,
    pub about: String,
    pub raised_by_user_id: String,
    pub raised_at: Option<i64>,
    /// Absent until triaged: `merged`, `linked`, `false_positive`, `case_opened`, `no_further_action`.
    pub triage_outcome: Option<String>,
    pub case_id: Option<String>,
    pub immediate_risk: bool,
}

/// The DSL's decision on a concern.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TriageBody {
    pub request_id: Option<String>,
    /// `case_opened`, `merged`, `linked`, `false_positive` or `no_further_action`.
    pub outcome: String,
    /// For `merged` and `linked`.
    pub case_id: Option<String>,
    /// Required for `false_positive` and `no_further_action`.
    pub rationale: Option<String>,
    /// For `case_opened`.
    pub case_type: Option<String>,
    #[serde(default)]
    pub four_cs: Vec<String>,
    pub risk_level: Option<String>,
    pub summary: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TriagedBody {
    pub case_id: Option<String>,
    pub position: u64,
}

/// A case opened directly (e.g. a disclosure to the DSL).
#[derive(Debug, Deserialize, ToSchema)]
pub struct OpenCaseBody {
    pub request_id: Option<String>,
    pub school_id: String,
    /// e.g. `cyberbullying`, `sharing_nudes`, `allegation_against_staff`.
    pub case_type: String,
    /// `content`, `contact`, `conduct`, `commerce`.
    #[serde(default)]
    pub four_cs: Vec<String>,
    /// `low`, `medium`, `high`, `critical`.
    pub risk_level: String,
    pub lead_user_id: Option<String>,
    #[serde(default)]
    pub subject_ids: Vec<String>,
    #[serde(default)]
    pub staff_user_ids: Vec<String>,
    pub summary: Option<String>,
    #[serde(default)]
    pub imagery_viewed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenedBody {
    pub case_id: String,
    pub position: u64,
}

/// Which cases to list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CasesQuery {
    pub school_id: Option<String>,
    /// `open` or `closed`.
    pub status: Option<String>,
    #[serde(default)]
    pub overdue_only: bool,
    /// Only cases about this learner, across the schools the caller may see.
    pub subject_id: Option<String>,
}

/// A case without free text.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseSummaryBody {
    pub case_id: String,
    pub school_id: String,
    pub case_type: String,
    pub status: String,
    pub risk_level: String,
    pub lead_user_id: String,
    pub opened_at: Option<i64>,
    pub outstanding_actions: u32,
    /// Outstanding actions past their deadline (e.g. the LADO's one working day).
    pub overdue_actions: u32,
    pub open_referrals: u32,
}

/// Why the case is read (kept with the access record) and whether to include the chronology.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CaseQuery {
    pub purpose: Option<String>,
    #[serde(default)]
    pub chronology: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChecklistItemBody {
    pub action_key: String,
    pub title: String,
    pub section: String,
    /// `done`, `not_applicable` or `outstanding`.
    pub status: String,
    pub due_at: Option<i64>,
    pub required: bool,
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralBody {
    pub referral_id: String,
    pub agency: String,
    pub reference_number: String,
    pub made_at: Option<i64>,
    /// Absent until the agency's decision is recorded.
    pub outcome: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChronologyEntryBody {
    pub position: u64,
    pub event_type: String,
    pub occurred_at: Option<i64>,
    pub actor_principal_id: String,
    pub summary: String,
    /// `incident-<case_id>` or `concern-<concern_id>`.
    pub stream_id: String,
    pub school_id: String,
}

fn entry_body(entry: pb::ChronologyEntry) -> ChronologyEntryBody {
    ChronologyEntryBody {
        position: entry.position,
        event_type: entry.event_type,
        occurred_at: seconds(entry.occurred_at),
        actor_principal_id: entry.actor_principal_id,
        summary: entry.summary,
        stream_id: entry.stream_id,
        school_id: entry.school_id,
    }
}

/// Why the chronology is read (kept with the access records).
#[derive(Debug, Deserialize, IntoParams)]
pub struct PurposeQuery {
    pub purpose: Option<String>,
}

/// A learner's chronology across cases, concerns and schools.
#[derive(Debug, Serialize, ToSchema)]
pub struct LearnerChronologyBody {
    pub entries: Vec<ChronologyEntryBody>,
    pub cases: Vec<CaseSummaryBody>,
}

/// One case in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseBody {
    pub case_id: String,
    pub school_id: String,
    pub case_type: String,
    pub status: String,
    pub risk_level: String,
    pub four_cs: Vec<String>,
    pub lead_user_id: String,
    pub subject_ids: Vec<String>,
    pub staff_user_ids: Vec<String>,
    pub summary: String,
    pub checklist_version: u32,
    pub checklist: Vec<ChecklistItemBody>,
    pub referrals: Vec<ReferralBody>,
    pub linked_case_ids: Vec<String>,
    pub opened_at: Option<i64>,
    pub closed_at: Option<i64>,
    /// Pass as `expected_version` when closing, to be refused if the case moved on.
    pub version: u64,
    pub chronology: Vec<ChronologyEntryBody>,
}

/// Progress on a checklist action (or `other`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ActionBody {
    pub request_id: Option<String>,
    pub action_key: String,
    /// For `other`.
    pub title: Option<String>,
    /// `done`, `not_applicable` (with the reason in `note`) or `outstanding`.
    pub status: String,
    pub note: Option<String>,
}

/// A referral, or the decision not to refer.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReferralRequestBody {
    pub request_id: Option<String>,
    /// `csws`, `police_101`, `police_999`, `lado`, `ceop`, `iwf`, `prevent_channel`,
    /// `education_safeguarding_service`, `other`.
    pub agency: String,
    pub agency_other: Option<String>,
    pub reference_number: Option<String>,
    pub agency_contact: Option<String>,
    /// Why, and what was shared; the rationale when `declined`.
    pub summary: String,
    /// An existing referral's id, to add a reference number that arrived later.
    pub referral_id: Option<String>,
    #[serde(default)]
    pub declined: bool,
    /// Unix seconds.
    pub follow_up_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralMadeBody {
    pub referral_id: Option<String>,
    pub version: u64,
}

/// Closing a case with its debrief (policy 10).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CloseBody {
    pub request_id: Option<String>,
    pub outcome_summary: String,
    pub debrief: String,
    pub lessons_learned: String,
    pub changes_required: Option<String>,
    /// The version read; refused with 409 if the case moved on. Absent: not checked.
    pub expected_version: Option<u64>,
    /// For allegations: `substantiated`, `unsubstantiated`, `unfounded`, `false`, `malicious`.
    pub allegation_outcome: Option<String>,
}

fn time(seconds: Option<i64>) -> Option<haven_proto::prost_types::Timestamp> {
    seconds.map(|seconds| haven_proto::prost_types::Timestamp { seconds, nanos: 0 })
}

macro_rules! try_response {
    ($expr:expr) => {
        match $expr {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

// --- routes --------------------------------------------------------------------------------

/// Raises a concern (any member of the school's staff).
#[utoipa::path(post, path = "/api/v1/concerns", tag = "incidents", request_body = RaiseConcernBody,
    responses((status = 201, body = RaisedBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn raise_concern(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Json(body): Json<RaiseConcernBody>,
) -> Response {
    let message = pb::RaiseConcernRequest {
        request_id: body.request_id.unwrap_or_default(),
        school_id: body.school_id,
        about: try_response!(enum_in(Some(&body.about), "CONCERN_ABOUT_", "about", pb::ConcernAbout::from_str_name)),
        subject_ids: body.subject_ids,
        staff_user_ids: body.staff_user_ids,
        what_happened: body.what_happened,
        incident_occurred_at: time(body.incident_occurred_at),
        suspected_case_type: try_response!(enum_in(
            body.suspected_case_type.as_deref(),
            "CASE_TYPE_",
            "suspected_case_type",
            pb::CaseType::from_str_name
        )),
        immediate_risk: body.immediate_risk,
        dsl_told_verbally: body.dsl_told_user_id.is_some(),
        dsl_told_user_id: body.dsl_told_user_id.unwrap_or_default(),
        device_ids: Vec::new(),
    };
    let (mut client, request) = try_response!(admitted(&state, "RaiseConcern", &headers, message));
    match client.raise_concern(request).await {
        Ok(response) => {
            let raised = response.into_inner();
            (StatusCode::CREATED, Json(RaisedBody { concern_id: raised.concern_id, position: raised.position }))
                .into_response()
        }
        Err(status) => from_status(status),
    }
}

/// The concerns the caller may see: their own, or all of a school's for its safeguarding team.
#[utoipa::path(get, path = "/api/v1/concerns", tag = "incidents", params(ConcernsQuery),
    responses((status = 200, body = [ConcernBody]), (status = 401, body = ErrorBody)))]
pub async fn list_concerns(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(query): Query<ConcernsQuery>,
) -> Response {
    let message = pb::ListConcernsRequest {
        school_id: query.school_id.unwrap_or_default(),
        untriaged_only: query.untriaged_only,
        page_size: 500,
        page_token: String::new(),
    };
    let (mut client, request) = try_response!(admitted(&state, "ListConcerns", &headers, message));
    match client.list_concerns(request).await {
        Ok(response) => {
            let concerns: Vec<ConcernBody> = response
                .into_inner()
                .concerns
                .into_iter()
                .map(|c| ConcernBody {
                    about: name_of!(pb::ConcernAbout, c.about, "CONCERN_ABOUT_"),
                    triage_outcome: (c.triage_outcome != 0)
                        .then(|| name_of!(pb::TriageOutcome, c.triage_outcome, "TRIAGE_OUTCOME_")),
                    case_id: (!c.case_id.is_empty()).then_some(c.case_id),
                    concern_id: c.concern_id,
                    school_id: c.school_id,
                    raised_by_user_id: c.raised_by_user_id,
                    raised_at: seconds(c.raised_at),
                    immediate_risk: c.immediate_risk,
                })
                .collect();
            Json(concerns).into_response()
        }
        Err(status) => from_status(status),
    }
}

/// Triages a concern: opens a case from it, merges or links it, or closes it with a reason.
#[utoipa::path(post, path = "/api/v1/concerns/{concern_id}/triage", tag = "incidents", request_body = TriageBody,
    params(("concern_id" = String, Path, description = "The concern")),
    responses((status = 200, body = TriagedBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn triage_concern(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(concern_id): Path<String>,
    Json(body): Json<TriageBody>,
) -> Response {
    let four_cs = try_response!(
        body.four_cs
            .iter()
            .map(|c| enum_in(Some(c), "FOUR_CS_", "four_cs", pb::FourCs::from_str_name))
            .collect::<Result<Vec<_>, _>>()
    );
    let message = pb::TriageConcernRequest {
        request_id: body.request_id.unwrap_or_default(),
        concern_id,
        outcome: try_response!(enum_in(
            Some(&body.outcome),
            "TRIAGE_OUTCOME_",
            "outcome",
            pb::TriageOutcome::from_str_name
        )),
        case_id: body.case_id.unwrap_or_default(),
        rationale: body.rationale.unwrap_or_default(),
        case_type: try_response!(enum_in(
            body.case_type.as_deref(),
            "CASE_TYPE_",
            "case_type",
            pb::CaseType::from_str_name
        )),
        four_cs,
        risk_level: try_response!(enum_in(
            body.risk_level.as_deref(),
            "RISK_LEVEL_",
            "risk_level",
            pb::RiskLevel::from_str_name
        )),
        lead_user_id: String::new(),
        summary: body.summary.unwrap_or_default(),
    };
    let (mut client, request) = try_response!(admitted(&state, "TriageConcern", &headers, message));
    match client.triage_concern(request).await {
        Ok(response) => {
            let triaged = response.into_inner();
            Json(TriagedBody {
                case_id: (!triaged.case_id.is_empty()).then_some(triaged.case_id),
                position: triaged.position,
            })
            .into_response()
        }
        Err(status) => from_status(status),
    }
}

/// Opens a case with its type's checklist.
#[utoipa::path(post, path = "/api/v1/cases", tag = "incidents", request_body = OpenCaseBody,
    responses((status = 201, body = OpenedBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn open_case(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Json(body): Json<OpenCaseBody>,
) -> Response {
    let four_cs = try_response!(
        body.four_cs
            .iter()
            .map(|c| enum_in(Some(c), "FOUR_CS_", "four_cs", pb::FourCs::from_str_name))
            .collect::<Result<Vec<_>, _>>()
    );
    let message = pb::OpenCaseRequest {
        request_id: body.request_id.unwrap_or_default(),
        school_id: body.school_id,
        case_type: try_response!(enum_in(
            Some(&body.case_type),
            "CASE_TYPE_",
            "case_type",
            pb::CaseType::from_str_name
        )),
        four_cs,
        risk_level: try_response!(enum_in(
            Some(&body.risk_level),
            "RISK_LEVEL_",
            "risk_level",
            pb::RiskLevel::from_str_name
        )),
        lead_user_id: body.lead_user_id.unwrap_or_default(),
        subject_ids: body.subject_ids,
        staff_user_ids: body.staff_user_ids,
        concern_ids: Vec::new(),
        alert_ids: Vec::new(),
        summary: body.summary.unwrap_or_default(),
        imagery_viewed: body.imagery_viewed,
    };
    let (mut client, request) = try_response!(admitted(&state, "OpenCase", &headers, message));
    match client.open_case(request).await {
        Ok(response) => {
            let opened = response.into_inner();
            (StatusCode::CREATED, Json(OpenedBody { case_id: opened.case_id, position: opened.position }))
                .into_response()
        }
        Err(status) => from_status(status),
    }
}

/// The cases the caller may see, newest first, without free text.
#[utoipa::path(get, path = "/api/v1/cases", tag = "incidents", params(CasesQuery),
    responses((status = 200, body = [CaseSummaryBody]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_cases(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(query): Query<CasesQuery>,
) -> Response {
    let status =
        try_response!(enum_in(query.status.as_deref(), "CASE_STATUS_", "status", pb::CaseStatus::from_str_name));
    let message = pb::ListCasesRequest {
        school_ids: query.school_id.into_iter().collect(),
        statuses: if status == 0 { Vec::new() } else { vec![status] },
        case_types: Vec::new(),
        min_risk_level: 0,
        overdue_only: query.overdue_only,
        subject_id: query.subject_id.unwrap_or_default(),
        page_size: 500,
        page_token: String::new(),
    };
    let (mut client, request) = try_response!(admitted(&state, "ListCases", &headers, message));
    match client.list_cases(request).await {
        Ok(response) => {
            let cases: Vec<CaseSummaryBody> = response.into_inner().cases.into_iter().map(summary_body).collect();
            Json(cases).into_response()
        }
        Err(status) => from_status(status),
    }
}

fn summary_body(c: pb::CaseSummary) -> CaseSummaryBody {
    CaseSummaryBody {
        case_type: name_of!(pb::CaseType, c.case_type, "CASE_TYPE_"),
        status: name_of!(pb::CaseStatus, c.status, "CASE_STATUS_"),
        risk_level: name_of!(pb::RiskLevel, c.risk_level, "RISK_LEVEL_"),
        case_id: c.case_id,
        school_id: c.school_id,
        lead_user_id: c.lead_user_id,
        opened_at: seconds(c.opened_at),
        outstanding_actions: c.outstanding_actions,
        overdue_actions: c.overdue_actions,
        open_referrals: c.open_referrals,
    }
}

fn case_body(case: pb::Case, chronology: Vec<pb::ChronologyEntry>) -> CaseBody {
    CaseBody {
        case_type: name_of!(pb::CaseType, case.case_type, "CASE_TYPE_"),
        status: name_of!(pb::CaseStatus, case.status, "CASE_STATUS_"),
        risk_level: name_of!(pb::RiskLevel, case.risk_level, "RISK_LEVEL_"),
        four_cs: case.four_cs.iter().map(|c| name_of!(pb::FourCs, *c, "FOUR_CS_")).collect(),
        checklist: case
            .checklist
            .into_iter()
            .map(|item| ChecklistItemBody {
                status: name_of!(pb::ActionStatus, item.status, "ACTION_STATUS_"),
                action_key: item.action_key,
                title: item.title,
                section: item.section,
                due_at: seconds(item.due_at),
                required: item.required,
                note: item.note,
            })
            .collect(),
        referrals: case
            .referrals
            .into_iter()
            .map(|referral| ReferralBody {
                agency: name_of!(pb::ReferralAgency, referral.agency, "REFERRAL_AGENCY_"),
                outcome: (referral.outcome != 0)
                    .then(|| name_of!(pb::ReferralOutcome, referral.outcome, "REFERRAL_OUTCOME_")),
                referral_id: referral.referral_id,
                reference_number: referral.reference_number,
                made_at: seconds(referral.made_at),
            })
            .collect(),
        chronology: chronology.into_iter().map(entry_body).collect(),
        case_id: case.case_id,
        school_id: case.school_id,
        lead_user_id: case.lead_user_id,
        subject_ids: case.subject_ids,
        staff_user_ids: case.staff_user_ids,
        summary: case.summary,
        checklist_version: case.checklist_version,
        linked_case_ids: case.linked_case_ids,
        opened_at: seconds(case.opened_at),
        closed_at: seconds(case.closed_at),
        version: case.version,
    }
}

/// One case in full, with its chronology if asked; the read is recorded.
#[utoipa::path(get, path = "/api/v1/cases/{case_id}", tag = "incidents", params(("case_id" = String, Path, description = "The case"), CaseQuery),
    responses((status = 200, body = CaseBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_case(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    Query(query): Query<CaseQuery>,
) -> Response {
    let message = pb::GetCaseRequest {
        case_id,
        purpose: query.purpose.unwrap_or_default(),
        include_chronology: query.chronology,
    };
    let (mut client, request) = try_response!(admitted(&state, "GetCase", &headers, message));
    match client.get_case(request).await {
        Ok(response) => {
            let got = response.into_inner();
            match got.case {
                Some(case) => Json(case_body(case, got.chronology)).into_response(),
                None => error(ErrorCode::Internal, "incidents answered without the case"),
            }
        }
        Err(status) => from_status(status),
    }
}

/// Records progress on a checklist action.
#[utoipa::path(post, path = "/api/v1/cases/{case_id}/actions", tag = "incidents", request_body = ActionBody,
    params(("case_id" = String, Path, description = "The case")),
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn record_action(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    Json(body): Json<ActionBody>,
) -> Response {
    let message = pb::RecordActionRequest {
        request_id: body.request_id.unwrap_or_default(),
        case_id,
        action_key: body.action_key,
        title: body.title.unwrap_or_default(),
        status: try_response!(enum_in(Some(&body.status), "ACTION_STATUS_", "status", pb::ActionStatus::from_str_name)),
        note: body.note.unwrap_or_default(),
    };
    let (mut client, request) = try_response!(admitted(&state, "RecordAction", &headers, message));
    match client.record_action(request).await {
        Ok(response) => Json(VersionBody { version: response.into_inner().version }).into_response(),
        Err(status) => from_status(status),
    }
}

/// Records a referral (or advice sought), or the decision not to refer with its rationale.
#[utoipa::path(post, path = "/api/v1/cases/{case_id}/referrals", tag = "incidents", request_body = ReferralRequestBody,
    params(("case_id" = String, Path, description = "The case")),
    responses((status = 200, body = ReferralMadeBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn make_referral(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    Json(body): Json<ReferralRequestBody>,
) -> Response {
    let message = pb::MakeReferralRequest {
        request_id: body.request_id.unwrap_or_default(),
        case_id,
        agency: try_response!(enum_in(
            Some(&body.agency),
            "REFERRAL_AGENCY_",
            "agency",
            pb::ReferralAgency::from_str_name
        )),
        agency_other: body.agency_other.unwrap_or_default(),
        reference_number: body.reference_number.unwrap_or_default(),
        agency_contact: body.agency_contact.unwrap_or_default(),
        summary: body.summary,
        referral_id: body.referral_id.unwrap_or_default(),
        declined: body.declined,
        follow_up_at: time(body.follow_up_at),
    };
    let (mut client, request) = try_response!(admitted(&state, "MakeReferral", &headers, message));
    match client.make_referral(request).await {
        Ok(response) => {
            let made = response.into_inner();
            Json(ReferralMadeBody {
                referral_id: (!made.referral_id.is_empty()).then_some(made.referral_id),
                version: made.version,
            })
            .into_response()
        }
        Err(status) => from_status(status),
    }
}

/// Closes a case; refused (409) while a required action is outstanding or a referral awaits
/// its outcome, or when `expected_version` is stale.
#[utoipa::path(post, path = "/api/v1/cases/{case_id}/close", tag = "incidents", request_body = CloseBody,
    params(("case_id" = String, Path, description = "The case")),
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn close_case(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    Json(body): Json<CloseBody>,
) -> Response {
    let message = pb::CloseCaseRequest {
        request_id: body.request_id.unwrap_or_default(),
        case_id,
        outcome_summary: body.outcome_summary,
        debrief: body.debrief,
        lessons_learned: body.lessons_learned,
        changes_required: body.changes_required.unwrap_or_default(),
        expected_version: body.expected_version.unwrap_or_default(),
        allegation_outcome: try_response!(enum_in(
            body.allegation_outcome.as_deref(),
            "ALLEGATION_OUTCOME_",
            "allegation_outcome",
            pb::AllegationOutcome::from_str_name
        )),
    };
    let (mut client, request) = try_response!(admitted(&state, "CloseCase", &headers, message));
    match client.close_case(request).await {
        Ok(response) => Json(VersionBody { version: response.into_inner().version }).into_response(),
        Err(status) => from_status(status),
    }
}

/// A learner's chronology across every case and concern naming them, in every school the
/// caller may see, oldest first; every record read is recorded.
#[utoipa::path(get, path = "/api/v1/learners/{subject_id}/chronology", tag = "incidents",
    params(("subject_id" = String, Path, description = "The learner (pseudonymous subject id)"), PurposeQuery),
    responses((status = 200, body = LearnerChronologyBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn learner_chronology(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(subject_id): Path<String>,
    Query(query): Query<PurposeQuery>,
) -> Response {
    let message = pb::GetLearnerChronologyRequest { subject_id, purpose: query.purpose.unwrap_or_default() };
    let (mut client, request) = try_response!(admitted(&state, "GetLearnerChronology", &headers, message));
    match client.get_learner_chronology(request).await {
        Ok(response) => {
            let got = response.into_inner();
            Json(LearnerChronologyBody {
                entries: got.entries.into_iter().map(entry_body).collect(),
                cases: got.cases.into_iter().map(summary_body).collect(),
            })
            .into_response()
        }
        Err(status) => from_status(status),
    }
}

/// Acknowledging a safeguarding alert.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcknowledgeBody {
    pub request_id: Option<String>,
    /// Also raise a concern from the alert (or return the one it already opened).
    #[serde(default)]
    pub raise_concern: bool,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcknowledgedBody {
    pub concern_id: Option<String>,
    pub position: u64,
}

/// Acknowledges a safeguarding alert, which stops its escalation.
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/acknowledge", tag = "incidents", request_body = AcknowledgeBody,
    params(("alert_id" = String, Path, description = "The alert")),
    responses((status = 200, body = AcknowledgedBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn acknowledge_alert(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(alert_id): Path<String>,
    Json(body): Json<AcknowledgeBody>,
) -> Response {
    let message = pb::AcknowledgeAlertRequest {
        request_id: body.request_id.unwrap_or_default(),
        alert_id,
        raise_concern: body.raise_concern,
        note: body.note.unwrap_or_default(),
    };
    let (mut client, request) = try_response!(admitted(&state, "AcknowledgeAlert", &headers, message));
    match client.acknowledge_alert(request).await {
        Ok(response) => {
            let acknowledged = response.into_inner();
            Json(AcknowledgedBody {
                concern_id: (!acknowledged.concern_id.is_empty()).then_some(acknowledged.concern_id),
                position: acknowledged.position,
            })
            .into_response()
        }
        Err(status) => from_status(status),
    }
}
