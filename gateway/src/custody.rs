//! Custody's HTTP routes: the chain of custody of confiscated devices, its signed export (the
//! evidence file as JSON, and the printable page) and the register of school-owned devices.
//! Each route is authorised at the edge with the same rules and authenticator as the gRPC
//! service (`AuthLayer::admit` on the method it calls), then forwarded over gRPC with the
//! caller's bearer token, where custody checks again against the record's school.
//!
//! ```text
//!  HTTP ─▶ admit(/haven.v1.Custody/<Method>, Authorization) ─▶ 401/403/503 ErrorBody
//!       └▶ CustodyClient ─▶ JSON (times in Unix seconds, enums as snake_case names)
//! ```

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use haven_authz::AuthLayer;
use haven_kernel::ErrorCode;
use haven_proto::v1 as pb;
use haven_proto::v1::custody_client::CustodyClient;
use serde::{Deserialize, Serialize};

use crate::GrpcChannel;
use crate::VersionBody;
use utoipa::{IntoParams, ToSchema};

use crate::GatewayState;
use crate::identity::{ErrorBody, admit, error, from_status};

/// What the custody routes need: a gRPC client of custody and the edge's layer.
#[derive(Clone, Debug)]
pub struct CustodyEdge {
    pub client: CustodyClient<GrpcChannel>,
    pub layer: AuthLayer,
}

type Client = CustodyClient<GrpcChannel>;

/// Authorises at the edge, forwards with the bearer token, and maps a failure to its answer.
async fn forward<Req, Resp, Fut>(
    state: &GatewayState,
    headers: &HeaderMap,
    method: &str,
    message: Req,
    call: impl FnOnce(Client, tonic::Request<Req>) -> Fut,
) -> Result<Resp, Response>
where
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let Some(edge) = state.custody.clone() else {
        return Err(error(ErrorCode::Unavailable, "custody is not served by this process"));
    };
    let request = admit(&edge.layer, &format!("/haven.v1.Custody/{method}"), headers, message)?;
    call(edge.client, request).await.map(tonic::Response::into_inner).map_err(from_status)
}

/// An enum value by its snake_case name (`police_hold` for `HOLD_KIND_POLICE_HOLD`); a bad
/// name is a 400 naming the field.
fn named<E>(raw: &str, field: &str, prefix: &str, parse: fn(&str) -> Option<E>) -> Result<i32, Response>
where
    E: Into<i32>,
{
    let name = format!("{prefix}{}", raw.to_uppercase());
    match parse(&name) {
        Some(value) if !raw.is_empty() => Ok(value.into()),
        _ => Err(error(ErrorCode::InvalidArgument, format!("invalid {field}: {raw:?} is not a known value"))),
    }
}

fn name_of(raw: &str, prefix: &str) -> String {
    raw.trim_start_matches(prefix).to_lowercase()
}

fn time(seconds: Option<i64>) -> Option<haven_proto::prost_types::Timestamp> {
    seconds.map(|seconds| haven_proto::prost_types::Timestamp { seconds, nanos: 0 })
}

fn seconds(time: Option<haven_proto::prost_types::Timestamp>) -> Option<i64> {
    time.map(|time| time.seconds)
}

fn version(version: u64) -> Response {
    Json(VersionBody { version }).into_response()
}

/// Unwraps a step's result into its answer.
macro_rules! answer {
    ($result:expr, $ok:expr) => {
        match $result {
            Ok(value) => $ok(value),
            Err(response) => response,
        }
    };
}

// --- Bodies ----------------------------------------------------------------------------------

/// A device confiscated from a learner (`from_subject_id`) or a member of staff (`from_user_id`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SeizeBody {
    /// Client-chosen id; a retry with the same id records nothing new.
    #[serde(default)]
    pub request_id: String,
    pub school_id: String,
    #[serde(default)]
    pub device_id: String,
    pub device_description: String,
    #[serde(default)]
    pub from_subject_id: String,
    #[serde(default)]
    pub from_user_id: String,
    /// Absent: the caller.
    #[serde(default)]
    pub seized_by_user_id: String,
    #[serde(default)]
    pub witness_user_id: String,
    pub reason: String,
    #[serde(default)]
    pub case_id: String,
    /// Unix seconds; by default the end of the school day.
    pub return_due_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeizedBody {
    pub custody_id: String,
    pub position: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SealBody {
    #[serde(default)]
    pub request_id: String,
    pub seal_number: String,
    #[serde(default)]
    pub sealed_by_user_id: String,
    #[serde(default)]
    pub witness_user_id: String,
    pub powered_off: bool,
    /// Required when not powered off.
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StoreBody {
    #[serde(default)]
    pub request_id: String,
    pub location: String,
    #[serde(default)]
    pub stored_by_user_id: String,
    #[serde(default)]
    pub witness_user_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckSealBody {
    #[serde(default)]
    pub request_id: String,
    pub seal_number: String,
    /// `intact` or `broken`.
    pub condition: String,
    #[serde(default)]
    pub opening: bool,
    pub reason: String,
    #[serde(default)]
    pub checked_by_user_id: String,
    #[serde(default)]
    pub witness_user_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SearchBody {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub witness_user_id: String,
    /// `learner_consent`, `parent_carer_consent`, `staff_consent` or `overriding_authority`.
    pub authority: String,
    pub authority_detail: String,
    pub scope: String,
    pub findings: String,
    #[serde(default)]
    pub imagery_viewed: bool,
    #[serde(default)]
    pub imagery_record_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct HoldBody {
    #[serde(default)]
    pub request_id: String,
    /// `quarantine` or `police_hold`.
    pub kind: String,
    pub reason: String,
    #[serde(default)]
    pub police_reference: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct HandToPoliceBody {
    #[serde(default)]
    pub request_id: String,
    pub officer: String,
    pub force: String,
    pub police_reference: String,
    #[serde(default)]
    pub handed_over_by_user_id: String,
    #[serde(default)]
    pub witness_user_id: String,
    pub seal_number: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReturnBody {
    #[serde(default)]
    pub request_id: String,
    /// `learner`, `parent_carer` or `staff_member`.
    pub recipient: String,
    #[serde(default)]
    pub collected_by: String,
    #[serde(default)]
    pub witness_user_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeletionBody {
    #[serde(default)]
    pub request_id: String,
    /// `dsl_confirmed`, `police_advice` or `learner_or_parent_consent`.
    pub authority: String,
    #[serde(default)]
    pub case_id: String,
    #[serde(default)]
    pub police_reference: String,
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionRequestedBody {
    pub deletion_id: String,
    pub version: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeletionDoneBody {
    #[serde(default)]
    pub request_id: String,
    pub deleted_by: String,
    #[serde(default)]
    pub witness_user_id: String,
    #[serde(default)]
    pub note: String,
}

/// A custody record as custody's read model holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustodyRecordBody {
    pub custody_id: String,
    pub school_id: String,
    pub device_id: Option<String>,
    pub device_description: String,
    pub from_subject_id: Option<String>,
    pub from_user_id: Option<String>,
    pub case_id: Option<String>,
    /// `seized`, `sealed`, `stored`, `opened`, `held`, `with_police` or `returned`.
    pub status: String,
    pub seal_number: Option<String>,
    pub storage_location: Option<String>,
    pub active_holds: Vec<String>,
    pub seal_broken_flag: bool,
    pub return_due_at: Option<i64>,
    pub version: u64,
}

/// One step of the trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustodyStepBody {
    pub position: u64,
    pub event_type: String,
    pub occurred_at: Option<i64>,
    pub by_user_id: String,
    pub witness_user_id: String,
    pub summary: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustodyTrailBody {
    pub record: CustodyRecordBody,
    /// Oldest first.
    pub steps: Vec<CustodyStepBody>,
}

/// Why the trail is exported and for whom (recorded with the export).
#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportQuery {
    pub purpose: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterDeviceBody {
    #[serde(default)]
    pub request_id: String,
    pub school_id: String,
    /// `laptop`, `tablet`, `phone`, `desktop` or `other`.
    pub kind: String,
    pub asset_tag: String,
    pub serial_number: String,
    pub model: String,
    #[serde(default)]
    pub managed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredDeviceBody {
    pub device_id: String,
    pub position: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AllocateBody {
    #[serde(default)]
    pub request_id: String,
    /// A member of staff, or a learner (`subject_id`); exactly one.
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub subject_id: String,
    pub aup_version: u32,
    #[serde(default)]
    pub purpose: String,
    pub expected_return_at: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct HandBackBody {
    #[serde(default)]
    pub request_id: String,
    /// `leaver`, `end_of_loan`, `fault`, `replaced` or `lost`.
    pub reason: String,
    /// `good`, `damaged` or `missing`.
    pub condition: String,
    #[serde(default)]
    pub received_by_user_id: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WipeBody {
    #[serde(default)]
    pub request_id: String,
    /// `factory_reset`, `remote_wipe` or `secure_erase`.
    pub method: String,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub note: String,
}

/// Which allocations.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AllocationsQuery {
    /// Absent: the whole trust (trust admins).
    pub school_id: Option<String>,
    /// Only devices held by people who have left.
    #[serde(default)]
    pub leavers_only: bool,
    #[serde(default)]
    pub overdue_only: bool,
    pub page_size: Option<u32>,
    pub page_token: Option<String>,
}

/// A school-owned device in the register.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchoolDeviceBody {
    pub device_id: String,
    pub school_id: String,
    pub kind: String,
    pub asset_tag: String,
    pub serial_number: String,
    pub model: String,
    pub allocated_to_user_id: Option<String>,
    pub allocated_to_subject_id: Option<String>,
    pub allocated_at: Option<i64>,
    pub expected_return_at: Option<i64>,
    pub aup_version: u32,
    pub awaiting_wipe: bool,
    pub version: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllocationsBody {
    pub devices: Vec<SchoolDeviceBody>,
    /// Absent on the last page.
    pub next_page_token: Option<String>,
}

fn non_empty(raw: String) -> Option<String> {
    (!raw.is_empty()).then_some(raw)
}

fn record_body(record: pb::CustodyRecord) -> CustodyRecordBody {
    let status = pb::CustodyStatus::try_from(record.status).map(|s| s.as_str_name()).unwrap_or_default();
    CustodyRecordBody {
        custody_id: record.custody_id,
        school_id: record.school_id,
        device_id: non_empty(record.device_id),
        device_description: record.device_description,
        from_subject_id: non_empty(record.from_subject_id),
        from_user_id: non_empty(record.from_user_id),
        case_id: non_empty(record.case_id),
        status: name_of(status, "CUSTODY_STATUS_"),
        seal_number: non_empty(record.seal_number),
        storage_location: non_empty(record.storage_location),
        active_holds: record
            .active_holds
            .into_iter()
            .map(|kind| {
                name_of(pb::HoldKind::try_from(kind).map(|k| k.as_str_name()).unwrap_or_default(), "HOLD_KIND_")
            })
            .collect(),
        seal_broken_flag: record.seal_broken_flag,
        return_due_at: seconds(record.return_due_at),
        version: record.version,
    }
}

fn device_body(device: pb::SchoolDevice) -> SchoolDeviceBody {
    let kind = pb::DeviceKind::try_from(device.kind).map(|k| k.as_str_name()).unwrap_or_default();
    SchoolDeviceBody {
        device_id: device.device_id,
        school_id: device.school_id,
        kind: name_of(kind, "DEVICE_KIND_"),
        asset_tag: device.asset_tag,
        serial_number: device.serial_number,
        model: device.model,
        allocated_to_user_id: non_empty(device.allocated_to_user_id),
        allocated_to_subject_id: non_empty(device.allocated_to_subject_id),
        allocated_at: seconds(device.allocated_at),
        expected_return_at: seconds(device.expected_return_at),
        aup_version: device.aup_version,
        awaiting_wipe: device.awaiting_wipe,
        version: device.version,
    }
}

// --- Chain of custody ------------------------------------------------------------------------

/// Records a device confiscated; starts its custody record.
#[utoipa::path(post, path = "/api/v1/custody", tag = "custody", request_body = SeizeBody,
    responses((status = 201, body = SeizedBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn seize(State(state): State<GatewayState>, headers: HeaderMap, Json(body): Json<SeizeBody>) -> Response {
    let message = pb::SeizeDeviceRequest {
        request_id: body.request_id,
        school_id: body.school_id,
        device_id: body.device_id,
        device_description: body.device_description,
        from_subject_id: body.from_subject_id,
        from_user_id: body.from_user_id,
        seized_by_user_id: body.seized_by_user_id,
        witness_user_id: body.witness_user_id,
        reason: body.reason,
        case_id: body.case_id,
        return_due_at: time(body.return_due_at),
    };
    let result =
        forward(&state, &headers, "SeizeDevice", message, |mut c, r| async move { c.seize_device(r).await }).await;
    answer!(result, |seized: pb::SeizeDeviceResponse| (
        StatusCode::CREATED,
        Json(SeizedBody { custody_id: seized.custody_id, position: seized.position })
    )
        .into_response())
}

/// One custody record with every step.
#[utoipa::path(get, path = "/api/v1/custody/{custody_id}", tag = "custody", params(("custody_id" = String, Path)),
    responses((status = 200, body = CustodyTrailBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn trail(State(state): State<GatewayState>, headers: HeaderMap, Path(custody_id): Path<String>) -> Response {
    let message = pb::GetCustodyTrailRequest { custody_id };
    let result =
        forward(&state, &headers, "GetCustodyTrail", message, |mut c, r| async move { c.get_custody_trail(r).await })
            .await;
    answer!(result, |trail: pb::GetCustodyTrailResponse| Json(CustodyTrailBody {
        record: record_body(trail.record.unwrap_or_default()),
        steps: trail
            .steps
            .into_iter()
            .map(|step| CustodyStepBody {
                position: step.position,
                event_type: step.event_type,
                occurred_at: seconds(step.occurred_at),
                by_user_id: step.by_user_id,
                witness_user_id: step.witness_user_id,
                summary: step.summary,
            })
            .collect(),
    })
    .into_response())
}

async fn export(
    state: &GatewayState,
    headers: &HeaderMap,
    custody_id: String,
    purpose: String,
) -> Result<pb::ExportCustodyTrailResponse, Response> {
    let message = pb::ExportCustodyTrailRequest { custody_id, purpose };
    forward(state, headers, "ExportCustodyTrail", message, |mut c, r| async move { c.export_custody_trail(r).await })
        .await
}

/// The signed, hash-linked evidence file (`haven custody verify FILE` checks it offline). Every
/// export is recorded with its purpose.
#[utoipa::path(get, path = "/api/v1/custody/{custody_id}/export.json", tag = "custody",
    params(("custody_id" = String, Path), ExportQuery),
    responses((status = 200, description = "The evidence file", content_type = "application/json"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export_json(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Response {
    let file = format!("attachment; filename=\"custody-{custody_id}.json\"");
    answer!(export(&state, &headers, custody_id, query.purpose).await, |exported: pb::ExportCustodyTrailResponse| (
        [(header::CONTENT_TYPE, "application/json".to_owned()), (header::CONTENT_DISPOSITION, file)],
        exported.json
    )
        .into_response())
}

/// The same trail as a printable page. Every export is recorded with its purpose.
#[utoipa::path(get, path = "/api/v1/custody/{custody_id}/export.html", tag = "custody",
    params(("custody_id" = String, Path), ExportQuery),
    responses((status = 200, description = "The printable page", content_type = "text/html"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export_html(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Response {
    answer!(export(&state, &headers, custody_id, query.purpose).await, |exported: pb::ExportCustodyTrailResponse| (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        exported.html
    )
        .into_response())
}

/// Records the device powered off and sealed (or resealed after an opening).
#[utoipa::path(post, path = "/api/v1/custody/{custody_id}/seal", tag = "custody", params(("custody_id" = String, Path)), request_body = SealBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn seal(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Json(body): Json<SealBody>,
) -> Response {
    let message = pb::SealDeviceRequest {
        request_id: body.request_id,
        custody_id,
        seal_number: body.seal_number,
        sealed_by_user_id: body.sealed_by_user_id,
        witness_user_id: body.witness_user_id,
        powered_off: body.powered_off,
        note: body.note,
    };
    let result =
        forward(&state, &headers, "SealDevice", message, |mut c, r| async move { c.seal_device(r).await }).await;
    answer!(result, |r: pb::SealDeviceResponse| version(r.version))
}

/// Records where the sealed device is kept.
#[utoipa::path(post, path = "/api/v1/custody/{custody_id}/store", tag = "custody", params(("custody_id" = String, Path)), request_body = StoreBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn store(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Json(body): Json<StoreBody>,
) -> Response {
    let message = pb::StoreDeviceRequest {
        request_id: body.request_id,
        custody_id,
        location: body.location,
        stored_by_user_id: body.stored_by_user_id,
        witness_user_id: body.witness_user_id,
    };
    let result =
        forward(&state, &headers, "StoreDevice", message, |mut c, r| async move { c.store_device(r).await }).await;
    answer!(result, |r: pb::StoreDeviceResponse| version(r.version))
}

/// Records a check of the seal (and whether it is opened now). A broken seal raises an alert.
#[utoipa::path(post, path = "/api/v1/custody/{custody_id}/seal-check", tag = "custody", params(("custody_id" = String, Path)), request_body = CheckSealBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn check_seal(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Json(body): Json<CheckSealBody>,
) -> Response {
    let condition = match named(&body.condition, "condition", "SEAL_CONDITION_", pb::SealCondition::from_str_name) {
        Ok(condition) => condition,
        Err(response) => return response,
    };
    let message = pb::CheckSealRequest {
        request_id: body.request_id,
        custody_id,
        seal_number: body.seal_number,
        condition,
        opening: body.opening,
        reason: body.reason,
        checked_by_user_id: body.checked_by_user_id,
        witness_user_id: body.witness_user_id,
    };
    let result = forward(&state, &headers, "CheckSeal", message, |mut c, r| async move { c.check_seal(r).await }).await;
    answer!(result, |r: pb::CheckSealResponse| version(r.version))
}

/// Records a search by the caller (leadership team), with consent or the overriding authority.
#[utoipa::path(post, path = "/api/v1/custody/{custody_id}/search", tag = "custody", params(("custody_id" = String, Path)), request_body = SearchBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn search(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Json(body): Json<SearchBody>,
) -> Response {
    let authority = match named(&body.authority, "authority", "SEARCH_AUTHORITY_", pb::SearchAuthority::from_str_name) {
        Ok(authority) => authority,
        Err(response) => return response,
    };
    let message = pb::SearchDeviceRequest {
        request_id: body.request_id,
        custody_id,
        searched_by_user_id: String::new(),
        witness_user_id: body.witness_user_id,
        authority,
        authority_detail: body.authority_detail,
        scope: body.scope,
        findings: body.findings,
        imagery_viewed: body.imagery_viewed,
        imagery_record_id: body.imagery_record_id,
    };
    let result =
        forward(&state, &headers, "SearchDevice", message, |mut c, r| async move { c.search_device(r).await }).await;
    answer!(result, |r: pb::SearchDeviceResponse| version(r.version))
}

/// Places a quarantine (pending police advice) or a police hold.
#[utoipa::path(post, path = "/api/v1/custody/{custody_id}/holds", tag = "custody", params(("custody_id" = String, Path)), request_body = HoldBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn place_hold(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Json(body): Json<HoldBody>,
) -> Response {
    let kind = match named(&body.kind, "kind", "HOLD_KIND_", pb::HoldKind::from_str_name) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    let message = pb::QuarantineDeviceRequest {
        request_id: body.request_id,
        custody_id,
        kind,
        reason: body.reason,
        police_reference: body.police_reference,
        authorised_by_user_id: String::new(),
    };
    let result =
        forward(&state, &headers, "QuarantineDevice", message, |mut c, r| async move { c.quarantine_device(r).await })
            .await;
    answer!(result, |r: pb::QuarantineDeviceResponse| version(r.version))
}

/// Lifts a quarantine or police hold, with the advice that ended it.
#[utoipa::path(post, path = "/api/v1/custody/{custody_id}/holds/lift", tag = "custody", params(("custody_id" = String, Path)), request_body = HoldBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn lift_hold(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Json(body): Json<HoldBody>,
) -> Response {
    let kind = match named(&body.kind, "kind", "HOLD_KIND_", pb::HoldKind::from_str_name) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    let message = pb::LiftHoldRequest {
        request_id: body.request_id,
        custody_id,
        kind,
        reason: body.reason,
        police_reference: body.police_reference,
    };
    let result = forward(&state, &headers, "LiftHold", message, |mut c, r| async move { c.lift_hold(r).await }).await;
    answer!(result, |r: pb::LiftHoldResponse| version(r.version))
}

/// Records the sealed device handed to a police officer; the school's custody ends.
#[utoipa::path(post, path = "/api/v1/custody/{custody_id}/hand-to-police", tag = "custody", params(("custody_id" = String, Path)), request_body = HandToPoliceBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn hand_to_police(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Json(body): Json<HandToPoliceBody>,
) -> Response {
    let message = pb::HandToPoliceRequest {
        request_id: body.request_id,
        custody_id,
        officer: body.officer,
        force: body.force,
        police_reference: body.police_reference,
        handed_over_by_user_id: body.handed_over_by_user_id,
        witness_user_id: body.witness_user_id,
        seal_number: body.seal_number,
    };
    let result =
        forward(&state, &headers, "HandToPolice", message, |mut c, r| async move { c.hand_to_police(r).await }).await;
    answer!(result, |r: pb::HandToPoliceResponse| version(r.version))
}

/// Records the device returned to its owner's side; refused while a hold stands.
#[utoipa::path(post, path = "/api/v1/custody/{custody_id}/return", tag = "custody", params(("custody_id" = String, Path)), request_body = ReturnBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn give_back(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Json(body): Json<ReturnBody>,
) -> Response {
    let recipient = match named(&body.recipient, "recipient", "RETURN_RECIPIENT_", pb::ReturnRecipient::from_str_name) {
        Ok(recipient) => recipient,
        Err(response) => return response,
    };
    let message = pb::ReturnDeviceRequest {
        request_id: body.request_id,
        custody_id,
        recipient,
        collected_by: body.collected_by,
        witness_user_id: body.witness_user_id,
        ..Default::default()
    };
    let result =
        forward(&state, &headers, "ReturnDevice", message, |mut c, r| async move { c.return_device(r).await }).await;
    answer!(result, |r: pb::ReturnDeviceResponse| version(r.version))
}

/// Records that content on the device is to be deleted, and on whose authority.
#[utoipa::path(post, path = "/api/v1/custody/{custody_id}/deletions", tag = "custody", params(("custody_id" = String, Path)), request_body = DeletionBody,
    responses((status = 200, body = DeletionRequestedBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn request_deletion(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(custody_id): Path<String>,
    Json(body): Json<DeletionBody>,
) -> Response {
    let authority =
        match named(&body.authority, "authority", "DELETION_AUTHORITY_", pb::DeletionAuthority::from_str_name) {
            Ok(authority) => authority,
            Err(response) => return response,
        };
    let message = pb::RequestContentDeletionRequest {
        request_id: body.request_id,
        custody_id,
        authority,
        case_id: body.case_id,
        police_reference: body.police_reference,
        description: body.description,
    };
    let result = forward(&state, &headers, "RequestContentDeletion", message, |mut c, r| async move {
        c.request_content_deletion(r).await
    })
    .await;
    answer!(result, |r: pb::RequestContentDeletionResponse| Json(DeletionRequestedBody {
        deletion_id: r.deletion_id,
        version: r.version
    })
    .into_response())
}

/// Records that requested content was deleted, verified by the caller.
#[utoipa::path(post, path = "/api/v1/custody/{custody_id}/deletions/{deletion_id}/done", tag = "custody",
    params(("custody_id" = String, Path), ("deletion_id" = String, Path)), request_body = DeletionDoneBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn record_deletion(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path((custody_id, deletion_id)): Path<(String, String)>,
    Json(body): Json<DeletionDoneBody>,
) -> Response {
    let message = pb::RecordContentDeletionRequest {
        request_id: body.request_id,
        custody_id,
        deletion_id,
        deleted_by: body.deleted_by,
        verified_by_user_id: String::new(),
        witness_user_id: body.witness_user_id,
        note: body.note,
    };
    let result = forward(&state, &headers, "RecordContentDeletion", message, |mut c, r| async move {
        c.record_content_deletion(r).await
    })
    .await;
    answer!(result, |r: pb::RecordContentDeletionResponse| version(r.version))
}

// --- The register of school-owned devices ----------------------------------------------------

/// Adds a school-owned device to the register.
#[utoipa::path(post, path = "/api/v1/devices", tag = "custody", request_body = RegisterDeviceBody,
    responses((status = 201, body = RegisteredDeviceBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn register_device(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Json(body): Json<RegisterDeviceBody>,
) -> Response {
    let kind = match named(&body.kind, "kind", "DEVICE_KIND_", pb::DeviceKind::from_str_name) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    let message = pb::RegisterSchoolDeviceRequest {
        request_id: body.request_id,
        school_id: body.school_id,
        kind,
        asset_tag: body.asset_tag,
        serial_number: body.serial_number,
        model: body.model,
        managed: body.managed,
    };
    let result = forward(&state, &headers, "RegisterSchoolDevice", message, |mut c, r| async move {
        c.register_school_device(r).await
    })
    .await;
    answer!(result, |r: pb::RegisterSchoolDeviceResponse| (
        StatusCode::CREATED,
        Json(RegisteredDeviceBody { device_id: r.device_id, position: r.position })
    )
        .into_response())
}

/// Allocates a device to a member of staff or a learner who accepted the AUP in force.
#[utoipa::path(post, path = "/api/v1/devices/{device_id}/allocate", tag = "custody", params(("device_id" = String, Path)), request_body = AllocateBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn allocate(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(device_id): Path<String>,
    Json(body): Json<AllocateBody>,
) -> Response {
    let message = pb::AllocateDeviceRequest {
        request_id: body.request_id,
        device_id,
        user_id: body.user_id,
        subject_id: body.subject_id,
        aup_version: body.aup_version,
        purpose: body.purpose,
        expected_return_at: time(body.expected_return_at),
    };
    let result =
        forward(&state, &headers, "AllocateDevice", message, |mut c, r| async move { c.allocate_device(r).await })
            .await;
    answer!(result, |r: pb::AllocateDeviceResponse| version(r.version))
}

/// Records an allocated device handed back (or reported lost).
#[utoipa::path(post, path = "/api/v1/devices/{device_id}/return", tag = "custody", params(("device_id" = String, Path)), request_body = HandBackBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn hand_back(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(device_id): Path<String>,
    Json(body): Json<HandBackBody>,
) -> Response {
    let reason =
        match named(&body.reason, "reason", "ALLOCATION_RETURN_REASON_", pb::AllocationReturnReason::from_str_name) {
            Ok(reason) => reason,
            Err(response) => return response,
        };
    let condition = match named(&body.condition, "condition", "DEVICE_CONDITION_", pb::DeviceCondition::from_str_name) {
        Ok(condition) => condition,
        Err(response) => return response,
    };
    let message = pb::ReturnAllocatedDeviceRequest {
        request_id: body.request_id,
        device_id,
        reason,
        condition,
        received_by_user_id: body.received_by_user_id,
        note: body.note,
    };
    let result = forward(&state, &headers, "ReturnAllocatedDevice", message, |mut c, r| async move {
        c.return_allocated_device(r).await
    })
    .await;
    answer!(result, |r: pb::ReturnAllocatedDeviceResponse| version(r.version))
}

/// Records a device wiped.
#[utoipa::path(post, path = "/api/v1/devices/{device_id}/wipe", tag = "custody", params(("device_id" = String, Path)), request_body = WipeBody,
    responses((status = 200, body = VersionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn wipe(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(device_id): Path<String>,
    Json(body): Json<WipeBody>,
) -> Response {
    let method = match named(&body.method, "method", "WIPE_METHOD_", pb::WipeMethod::from_str_name) {
        Ok(method) => method,
        Err(response) => return response,
    };
    let message = pb::WipeDeviceRequest {
        request_id: body.request_id,
        device_id,
        method,
        verified: body.verified,
        note: body.note,
    };
    let result =
        forward(&state, &headers, "WipeDevice", message, |mut c, r| async move { c.wipe_device(r).await }).await;
    answer!(result, |r: pb::WipeDeviceResponse| version(r.version))
}

/// The register's current allocations, e.g. every device still held by leavers.
#[utoipa::path(get, path = "/api/v1/devices/allocations", tag = "custody", params(AllocationsQuery),
    responses((status = 200, body = AllocationsBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn allocations(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(query): Query<AllocationsQuery>,
) -> Response {
    let message = pb::ListAllocationsRequest {
        school_id: query.school_id.unwrap_or_default(),
        leavers_only: query.leavers_only,
        overdue_only: query.overdue_only,
        page_size: query.page_size.unwrap_or(0),
        page_token: query.page_token.unwrap_or_default(),
    };
    let result =
        forward(&state, &headers, "ListAllocations", message, |mut c, r| async move { c.list_allocations(r).await })
            .await;
    answer!(result, |r: pb::ListAllocationsResponse| Json(AllocationsBody {
        devices: r.devices.into_iter().map(device_body).collect(),
        next_page_token: non_empty(r.next_page_token),
    })
    .into_response())
}
