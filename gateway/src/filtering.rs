//! The filtering record's daily HTTP routes (ADR 0022): the register of a school's filtering
//! changes, and the leadership's decision and the technical staff's application of a change.
//! Authorised at the edge with the gRPC rules (`AuthLayer::admit`), then forwarded with the
//! caller's bearer token to `haven.v1.Ingest`, which checks again against the change's school.

use crate::GrpcChannel;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use haven_authz::AuthLayer;
use haven_kernel::ErrorCode;
use haven_proto::v1 as pb;
use haven_proto::v1::ingest_client::IngestClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::GatewayState;
use crate::identity::{ErrorBody, admit, error, from_status};

/// What the filtering routes need: a gRPC client of ingest and the edge's layer.
#[derive(Clone, Debug)]
pub struct FilteringEdge {
    pub client: IngestClient<GrpcChannel>,
    pub layer: AuthLayer,
}

type Client = IngestClient<GrpcChannel>;

pub(crate) async fn forward<Req, Resp, Fut>(
    state: &GatewayState,
    headers: &HeaderMap,
    method: &str,
    message: Req,
    call: impl FnOnce(Client, tonic::Request<Req>) -> Fut,
) -> Result<Resp, Response>
where
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let Some(edge) = state.filtering.clone() else {
        return Err(error(ErrorCode::Unavailable, "ingest is not served by this process"));
    };
    let request = admit(&edge.layer, &format!("/haven.v1.Ingest/{method}"), headers, message)?;
    call(edge.client, request).await.map(tonic::Response::into_inner).map_err(from_status)
}

fn name_of(raw: &str, prefix: &str) -> String {
    raw.trim_start_matches(prefix).to_lowercase()
}

/// A filtering change as the register holds it (times in Unix seconds, enums snake_case).
#[derive(Debug, Serialize, ToSchema)]
pub struct FilteringChangeBody {
    pub change_id: String,
    pub school_id: String,
    /// `requested`, `approved`, `rejected` or `applied`.
    pub status: String,
    /// `allow_site`, `block_site`, `change_category_action`, `change_monitoring` or `other`.
    pub kind: String,
    pub url_host: String,
    pub reason: String,
    pub risk_assessment: String,
    pub risk_assessed_by_user_ids: Vec<String>,
    pub overblocking_report_ids: Vec<String>,
    pub requested_by_user_id: String,
    pub requested_at: Option<i64>,
    pub decided_by_user_id: String,
    pub decided_at: Option<i64>,
    pub decision_notes: String,
    pub applied_by_user_id: String,
    pub applied_at: Option<i64>,
    pub version: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FilteringChangesBody {
    pub changes: Vec<FilteringChangeBody>,
    /// Pass as `page_token` for the next page; absent on the last.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChangesQuery {
    /// Only changes in this status (`requested`, `approved`, `rejected`, `applied`).
    pub status: Option<String>,
    pub page_token: Option<String>,
}

/// A decision or an application: the client's request id, and what the step records.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DecisionBody {
    /// Client-chosen id (a UUID); a retry with the same id records nothing new.
    pub request_id: String,
    /// Approval: notes or conditions; rejection: the reason (required).
    #[serde(default)]
    pub note: String,
    /// Approval: whether the leadership team consented.
    #[serde(default)]
    pub leadership_consent: bool,
    /// Application: the filter's own reference for the change.
    #[serde(default)]
    pub filter_reference: String,
}

/// Where the step was recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct PositionBody {
    pub position: u64,
}

fn change_body(change: pb::FilteringChange) -> FilteringChangeBody {
    let status = pb::FilteringChangeStatus::try_from(change.status).map(|s| s.as_str_name()).unwrap_or_default();
    let kind = pb::FilteringChangeKind::try_from(change.kind).map(|k| k.as_str_name()).unwrap_or_default();
    FilteringChangeBody {
        change_id: change.change_id,
        school_id: change.school_id,
        status: name_of(status, "FILTERING_CHANGE_STATUS_"),
        kind: name_of(kind, "FILTERING_CHANGE_KIND_"),
        url_host: change.url_host,
        reason: change.reason,
        risk_assessment: change.risk_assessment,
        risk_assessed_by_user_ids: change.risk_assessed_by_user_ids,
        overblocking_report_ids: change.overblocking_report_ids,
        requested_by_user_id: change.requested_by_user_id,
        requested_at: change.requested_at.map(|t| t.seconds),
        decided_by_user_id: change.decided_by_user_id,
        decided_at: change.decided_at.map(|t| t.seconds),
        decision_notes: change.decision_notes,
        applied_by_user_id: change.applied_by_user_id,
        applied_at: change.applied_at.map(|t| t.seconds),
        version: change.version,
    }
}

fn position(result: Result<u64, Response>) -> Response {
    match result {
        Ok(position) => Json(PositionBody { position }).into_response(),
        Err(response) => response,
    }
}

/// The register of a school's filtering changes, newest first.
#[utoipa::path(get, path = "/api/v1/schools/{school_id}/filtering/changes", tag = "filtering",
    params(("school_id" = String, Path), ChangesQuery),
    responses((status = 200, body = FilteringChangesBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_changes(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(school_id): Path<String>,
    Query(query): Query<ChangesQuery>,
) -> Response {
    let mut statuses = Vec::new();
    if let Some(raw) = query.status.as_deref() {
        let name = format!("FILTERING_CHANGE_STATUS_{}", raw.to_uppercase());
        match pb::FilteringChangeStatus::from_str_name(&name) {
            Some(status) if status != pb::FilteringChangeStatus::Unspecified => statuses.push(status as i32),
            _ => return error(ErrorCode::InvalidArgument, format!("invalid status: {raw:?} is not a known value")),
        }
    }
    let message = pb::ListFilteringChangesRequest {
        school_id,
        statuses,
        page_size: 0,
        page_token: query.page_token.unwrap_or_default(),
    };
    let result = forward(&state, &headers, "ListFilteringChanges", message, |mut c, r| async move {
        c.list_filtering_changes(r).await
    })
    .await;
    match result {
        Ok(page) => Json(FilteringChangesBody {
            changes: page.changes.into_iter().map(change_body).collect(),
            next_page_token: (!page.next_page_token.is_empty()).then_some(page.next_page_token),
        })
        .into_response(),
        Err(response) => response,
    }
}

/// Approves a requested change (the school's principal or DSL; never the requester).
#[utoipa::path(post, path = "/api/v1/filtering/changes/{change_id}/approve", tag = "filtering",
    params(("change_id" = String, Path)), request_body = DecisionBody,
    responses((status = 200, body = PositionBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(change_id): Path<String>,
    Json(body): Json<DecisionBody>,
) -> Response {
    let message = pb::ApproveFilteringChangeRequest {
        request_id: body.request_id,
        change_id,
        leadership_consent: body.leadership_consent,
        notes: body.note,
    };
    let result = forward(&state, &headers, "ApproveFilteringChange", message, |mut c, r| async move {
        c.approve_filtering_change(r).await
    })
    .await;
    position(result.map(|r| r.position))
}

/// Rejects a requested change, with the reason in `note`.
#[utoipa::path(post, path = "/api/v1/filtering/changes/{change_id}/reject", tag = "filtering",
    params(("change_id" = String, Path)), request_body = DecisionBody,
    responses((status = 200, body = PositionBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reject(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(change_id): Path<String>,
    Json(body): Json<DecisionBody>,
) -> Response {
    let message = pb::RejectFilteringChangeRequest { request_id: body.request_id, change_id, reason: body.note };
    let result = forward(&state, &headers, "RejectFilteringChange", message, |mut c, r| async move {
        c.reject_filtering_change(r).await
    })
    .await;
    position(result.map(|r| r.position))
}

/// Records an approved change made on the filter (technical staff).
#[utoipa::path(post, path = "/api/v1/filtering/changes/{change_id}/apply", tag = "filtering",
    params(("change_id" = String, Path)), request_body = DecisionBody,
    responses((status = 200, body = PositionBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn apply(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(change_id): Path<String>,
    Json(body): Json<DecisionBody>,
) -> Response {
    let message = pb::ApplyFilteringChangeRequest {
        request_id: body.request_id,
        change_id,
        filter_reference: body.filter_reference,
        effective_at: None,
    };
    let result = forward(&state, &headers, "ApplyFilteringChange", message, |mut c, r| async move {
        c.apply_filtering_change(r).await
    })
    .await;
    position(result.map(|r| r.position))
}
