//! `haven.v1.Reporting` over gRPC: authorise, validate, answer from the projection or the log.
//!
//! ```text
//!  AuthLayer (METHOD_RULES: Signed(action)) ─▶ handler ─▶ check(caller, action, each school)
//!     ─▶ ReportView (dashboard, trends, registers, governors)  │  Audit (history, actions,
//!        accesses, chain)  ─▶ recorded reads (`access-…`, `audit-chain`) ─▶ response
//! ```
//! Who may call what (rules.rs and the policy table): figures need `ReadAggregates` in every
//! school asked for (no school named: the trust as a whole); rows naming a case need
//! `ReadCase` there and are dropped for whoever lacks it; registers need `ReadCase`; audit
//! views need `ReadAuditTrail`; rebuilding and listing projections `ManageProjections` (trust
//! safeguarding lead, trust admin).

use std::sync::Arc;

use haven_authz::grpc::{caller, check};
use haven_authz::{Action, Caller, Resource};
use haven_eventlog_client::EventLog;
use haven_kernel::{SchoolId, StreamId};
use haven_proto::v1::reporting_server::{Reporting, ReportingServer};
use haven_proto::v1::{self as pb};
use prost::Message;
use tonic::{Code, Request, Response, Status};

use crate::audit::AsOf;
use crate::events;
use crate::projection::PROJECTION_NAME;
use crate::projection::dashboard::dashboard_listing;
use crate::projection::{governors, registers, trends};
use crate::time::DAY_SECS;
use crate::{Audit, Error, Limits, RecordContext, ReportView};

/// The service: the projection's view, the audit views and the log it records reads in.
#[derive(Clone)]
pub struct ReportingService {
    view: ReportView,
    audit: Audit,
    log: Arc<dyn EventLog>,
    limits: Limits,
}

impl std::fmt::Debug for ReportingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportingService").field("limits", &self.limits).finish_non_exhaustive()
    }
}

pub fn status(error: Error) -> Status {
    Status::new(Code::from_i32(error.code().grpc_code()), error.to_string())
}

fn invalid(field: &str, reason: impl Into<String>) -> Status {
    status(Error::invalid(field, reason))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn context(caller: &Caller) -> RecordContext {
    RecordContext {
        actor: pb::Actor {
            principal_id: caller.principal.id.clone(),
            kind: pb::ActorKind::User as i32,
            roles: caller.principal.grants.iter().map(|grant| grant.role.as_str().to_owned()).collect(),
        },
        occurred_at: prost_types::Timestamp { seconds: now(), nanos: 0 },
        event_id: *uuid::Uuid::now_v7().as_bytes(),
    }
}

fn may(caller: &Caller, action: Action, school_id: &str) -> bool {
    SchoolId::parse(school_id).is_ok_and(|school| {
        haven_authz::authorize(&caller.principal, caller.aup_current, action, &Resource::school(school)).is_allowed()
    })
}

/// The schools a request names, each checked for `action`; none named means the trust as a
/// whole, which needs a trust-wide grant. `None` is the trust scope.
fn scope(caller: &Caller, action: Action, school_ids: &[String]) -> Result<Option<Vec<String>>, Status> {
    if school_ids.is_empty() {
        check(caller, action, &Resource::trust())?;
        return Ok(None);
    }
    if school_ids.len() > 1_000 {
        return Err(invalid("school_ids", "at most 1000"));
    }
    for (index, raw) in school_ids.iter().enumerate() {
        let school = SchoolId::parse(raw).map_err(|e| invalid(&format!("school_ids[{index}]"), e.to_string()))?;
        check(caller, action, &Resource::school(school))?;
    }
    Ok(Some(school_ids.to_vec()))
}

fn window(from: Option<&prost_types::Timestamp>, to: Option<&prost_types::Timestamp>, default_days: i64) -> (i64, i64) {
    let to = to.map_or_else(now, |t| t.seconds);
    let from = from.map_or(to - default_days * DAY_SECS, |t| t.seconds);
    (from, to)
}

impl ReportingService {
    pub fn new(view: ReportView, log: Arc<dyn EventLog>, limits: Limits) -> Self {
        ReportingService { view, audit: Audit::new(log.clone(), limits), log, limits }
    }

    /// The tonic server; wrap it in `haven_authz::AuthLayer` before serving.
    pub fn into_server(self) -> ReportingServer<Self> {
        ReportingServer::new(self)
    }
}

fn purpose(raw: &str) -> Result<String, Status> {
    if raw.len() > 500 {
        return Err(invalid("purpose", "at most 500 bytes"));
    }
    Ok(raw.to_owned())
}

#[tonic::async_trait]
impl Reporting for ReportingService {
    async fn get_trust_dashboard(
        &self,
        request: Request<pb::GetTrustDashboardRequest>,
    ) -> Result<Response<pb::GetTrustDashboardResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let schools = scope(&caller, Action::ReadAggregates, &request.school_ids)?;
        let (from, to) = window(request.from.as_ref(), request.to.as_ref(), 28);
        let max_secs = i64::from(self.limits.max_dashboard_hours) * 3_600;
        if to <= from || to - from > max_secs {
            return Err(invalid(
                "to",
                format!("the window must be 1 hour to {} hours long", self.limits.max_dashboard_hours),
            ));
        }
        let mut response = self.view.read(|state, checkpoint| {
            let may_list = |school: &str| may(&caller, Action::ReadCase, school);
            let mut response = dashboard_listing(state, schools.as_deref(), from, to, now(), &may_list).response;
            response.as_of_position = checkpoint;
            response
        });
        // Rows that name a case (listed above only where the caller may read cases), and case
        // types, only where the caller may read cases.
        let mut open: std::collections::BTreeMap<(String, i32, i32, i32), u32> = std::collections::BTreeMap::new();
        for row in response.open_cases.drain(..) {
            let key = if may(&caller, Action::ReadCase, &row.school_id) {
                (row.school_id, row.case_type, row.risk_level, row.age_band)
            } else {
                (row.school_id, 0, 0, 0)
            };
            *open.entry(key).or_default() += row.count;
        }
        response.open_cases = open
            .into_iter()
            .map(|((school_id, case_type, risk_level, age_band), count)| pb::OpenCaseCount {
                school_id,
                case_type,
                risk_level,
                age_band,
                count,
            })
            .collect();
        Ok(Response::new(response))
    }

    async fn get_cross_school_trends(
        &self,
        request: Request<pb::GetCrossSchoolTrendsRequest>,
    ) -> Result<Response<pb::GetCrossSchoolTrendsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let schools = scope(&caller, Action::ReadAggregates, &request.school_ids)?;
        let weeks = Limits::page(request.weeks, self.limits.default_trend_weeks, self.limits.max_trend_weeks, "weeks")
            .map_err(status)?;
        if !(0.0..=10.0).contains(&request.outlier_threshold_sd) {
            return Err(invalid("outlier_threshold_sd", "0 (the default, 2) to 10"));
        }
        let query = trends::TrendQuery {
            metric: request.metric,
            categories: request.categories,
            case_types: request.case_types,
            until: request.until.map_or_else(now, |t| t.seconds),
            weeks,
            outlier_threshold_sd: request.outlier_threshold_sd,
        };
        let response = self.view.read(|state, checkpoint| {
            let mut response = trends::trends(state, schools.as_deref(), &query);
            response.as_of_position = checkpoint;
            response
        });
        Ok(Response::new(response))
    }

    async fn get_stream_history(
        &self,
        request: Request<pb::GetStreamHistoryRequest>,
    ) -> Result<Response<pb::GetStreamHistoryResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::ReadAuditTrail, &Resource::trust())?;
        let request = request.into_inner();
        let stream = StreamId::parse(&request.stream_id).map_err(|e| invalid("stream_id", e.to_string()))?;
        let as_of = match request.as_of {
            None => AsOf::Now,
            Some(pb::get_stream_history_request::AsOf::AsOfPosition(position)) => AsOf::Position(position),
            Some(pb::get_stream_history_request::AsOf::AsOfTime(time)) => AsOf::Time(time),
        };
        let purpose = purpose(&request.purpose)?;
        let context = context(&caller);
        let history = self
            .audit
            .stream_history(&stream, &as_of, request.from_version, request.limit, Some((&context, &purpose)))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetStreamHistoryResponse {
            events: history
                .events
                .into_iter()
                .map(|envelope| pb::HistoryEvent {
                    payload_json: crate::audit::payload_json(&envelope.event_type, &envelope.payload),
                    envelope: Some(envelope),
                })
                .collect(),
            stream_exists: history.stream_exists,
            as_of_position: history.as_of_position,
            next_version: history.next_version,
            end_of_stream: history.end_of_stream,
        }))
    }

    async fn list_actor_actions(
        &self,
        request: Request<pb::ListActorActionsRequest>,
    ) -> Result<Response<pb::ListActorActionsResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::ReadAuditTrail, &Resource::trust())?;
        let request = request.into_inner();
        let page = self
            .audit
            .actor_actions(
                &request.principal_id,
                request.from.as_ref(),
                request.to.as_ref(),
                request.page_size,
                &request.page_token,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListActorActionsResponse { actions: page.rows, next_page_token: page.next_page_token }))
    }

    async fn list_record_accesses(
        &self,
        request: Request<pb::ListRecordAccessesRequest>,
    ) -> Result<Response<pb::ListRecordAccessesResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::ReadAuditTrail, &Resource::trust())?;
        let request = request.into_inner();
        let stream = StreamId::parse(&request.stream_id).map_err(|e| invalid("stream_id", e.to_string()))?;
        let page = self
            .audit
            .record_accesses(
                &stream,
                request.from.as_ref(),
                request.to.as_ref(),
                request.page_size,
                &request.page_token,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListRecordAccessesResponse { accesses: page.rows, next_page_token: page.next_page_token }))
    }

    async fn verify_chain(
        &self,
        request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::ReadAuditTrail, &Resource::trust())?;
        let request = request.into_inner();
        let expected = match request.expected_hash.len() {
            0 => None,
            32 => Some(<[u8; 32]>::try_from(request.expected_hash.as_slice()).expect("32 bytes")),
            n => return Err(invalid("expected_hash", format!("{n} bytes; a SHA-256 hash is 32"))),
        };
        let context = context(&caller);
        let report = self
            .audit
            .verify_chain(request.from_position, request.to_position, expected, Some(&context))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::VerifyChainResponse {
            ok: report.ok(),
            events_checked: report.events_checked,
            next_position: report.next_position,
            first_bad_position: report.broken.as_ref().map_or(0, |broken| broken.position),
            recomputed_hash: report.broken.as_ref().map(|broken| broken.recomputed_hash.to_vec()).unwrap_or_default(),
            stored_hash: report.broken.as_ref().map(|broken| broken.stored_hash.clone()).unwrap_or_default(),
            last_hash: report.last_hash.to_vec(),
        }))
    }

    async fn get_lado_register(
        &self,
        request: Request<pb::GetLadoRegisterRequest>,
    ) -> Result<Response<pb::GetLadoRegisterResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let schools = scope(&caller, Action::ReadCase, &request.school_ids)?;
        let purpose = purpose(&request.purpose)?;
        let (from, to) = window(request.from.as_ref(), request.to.as_ref(), 365 * 10);
        self.audit
            .register_viewed(&context(&caller), pb::RegisterKind::Lado, schools.as_deref(), &purpose)
            .await
            .map_err(status)?;
        let response = self.view.read(|state, checkpoint| pb::GetLadoRegisterResponse {
            entries: registers::lado_register(state, schools.as_deref(), from, to, &caller.principal.id),
            as_of_position: checkpoint,
        });
        Ok(Response::new(response))
    }

    async fn get_police_register(
        &self,
        request: Request<pb::GetPoliceRegisterRequest>,
    ) -> Result<Response<pb::GetPoliceRegisterResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let schools = scope(&caller, Action::ReadCase, &request.school_ids)?;
        let purpose = purpose(&request.purpose)?;
        let (from, to) = window(request.from.as_ref(), request.to.as_ref(), 365 * 10);
        self.audit
            .register_viewed(&context(&caller), pb::RegisterKind::Police, schools.as_deref(), &purpose)
            .await
            .map_err(status)?;
        let response = self.view.read(|state, checkpoint| pb::GetPoliceRegisterResponse {
            entries: registers::police_register(state, schools.as_deref(), from, to),
            as_of_position: checkpoint,
        });
        Ok(Response::new(response))
    }

    async fn get_governors_report(
        &self,
        request: Request<pb::GetGovernorsReportRequest>,
    ) -> Result<Response<pb::GetGovernorsReportResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let named: Vec<String> =
            if request.school_id.is_empty() { Vec::new() } else { vec![request.school_id.clone()] };
        scope(&caller, Action::ReadAggregates, &named)?;
        let term = governors::term_from_proto(request.term).map_err(status)?;
        let response = self.view.read(|state, checkpoint| {
            governors::governors_report(state, &request.school_id, &request.academic_year, term)
                .map(|report| pb::GetGovernorsReportResponse { report: Some(report), as_of_position: checkpoint })
        });
        Ok(Response::new(response.map_err(status)?))
    }

    async fn rebuild_projection(
        &self,
        request: Request<pb::RebuildProjectionRequest>,
    ) -> Result<Response<pb::RebuildProjectionResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::ManageProjections, &Resource::trust())?;
        let request = request.into_inner();
        if request.projection != PROJECTION_NAME {
            return Err(status(Error::NotFound(format!("projection {:?}", request.projection))));
        }
        let reason = purpose(&request.reason).map_err(|_| invalid("reason", "at most 500 bytes"))?;
        if !self.view.begin_rebuild() {
            return Err(Status::failed_precondition("projection reporting is already rebuilding"));
        }
        let started = async {
            let target_position = self.log.head().await?.next_position.0;
            let payload = pb::ProjectionRebuildRequested {
                projection: PROJECTION_NAME.to_owned(),
                requested_by_principal_id: caller.principal.id.clone(),
                reason,
                target_position,
            };
            let stream = StreamId::parse(&format!("projection-{PROJECTION_NAME}")).expect("a valid stream id");
            self.audit
                .record(&stream, &context(&caller), events::PROJECTION_REBUILD_REQUESTED, "", payload.encode_to_vec())
                .await?;
            Ok::<_, Error>(target_position)
        }
        .await;
        let target_position = match started {
            Ok(target) => target,
            Err(error) => {
                // Nothing started: let the next request try.
                self.view.end_rebuild_unstarted();
                return Err(status(error));
            }
        };
        // The live state answers until the rebuilt one is swapped in.
        let (view, log) = (self.view.clone(), self.log.clone());
        tokio::spawn(async move {
            match view.rebuild(log.as_ref(), now()).await {
                Ok(rebuilt) => tracing::info!(
                    projection = PROJECTION_NAME,
                    events = rebuilt.events,
                    checkpoint = rebuilt.checkpoint,
                    "projection rebuilt from position 0 and swapped in"
                ),
                Err(error) => {
                    tracing::warn!(projection = PROJECTION_NAME, %error, "projection rebuild failed; the live state was kept")
                }
            }
        });
        Ok(Response::new(pb::RebuildProjectionResponse { target_position }))
    }

    async fn list_projections(
        &self,
        request: Request<pb::ListProjectionsRequest>,
    ) -> Result<Response<pb::ListProjectionsResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::ManageProjections, &Resource::trust())?;
        let head = self.log.head().await.map_err(|error| status(error.into()))?.next_position.0;
        let rebuild = self.view.rebuild_status();
        Ok(Response::new(pb::ListProjectionsResponse {
            projections: vec![pb::ProjectionState {
                name: PROJECTION_NAME.to_owned(),
                checkpoint_position: self.view.checkpoint().0,
                head_position: head,
                rebuilding: rebuild.rebuilding,
                last_rebuilt_at: rebuild.last_rebuilt_at.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
                last_rebuild_events: rebuild.last_events,
                last_rebuild_position: rebuild.last_checkpoint,
                last_rebuild_error: rebuild.last_error.unwrap_or_default(),
            }],
        }))
    }
}
