//! The HTTP edge of Haven (DESIGN.md §5 gateway).
//!
//! ```text
//!  browsers, probes, Prometheus ──HTTP──▶ router ──▶ /healthz  /readyz  /metrics  /openapi.json
//!                                                       │          │         │
//!                                                   always 200  Readiness  Metrics  (haven-runtime)
//! ```
//! It owns the HTTP surface and its OpenAPI description, generated from the handlers (utoipa)
//! so the document cannot drift from the code. It must not hold domain logic: API routes call
//! the services and authorise at the edge as well as in each service (`identity.rs`: the same
//! rules and authenticator as the gRPC layer, then the call forwarded with the bearer token;
//! `custody.rs`: the chain of custody, its signed export and the device register, likewise;
//! `filtering.rs`: the register of filtering changes and their decision and application;
//! `alert_rules.rs`: the trust's and each school's alert rules, read and changed).

mod alert_rules;
mod custody;
mod filtering;
mod health;
mod identity;
mod incidents;
mod trace;
pub mod web;

use axum::Router;
use axum::routing::{get, post};
use haven_runtime::{Metrics, Readiness};
use utoipa::OpenApi;

/// The gateway's channel to the services' gRPC port: every call carries the HTTP request's
/// trace context.
pub type GrpcChannel = haven_runtime::grpc::InjectTrace<tonic::transport::Channel>;

/// A record's stream version after a change (custody's steps, incidents' case changes).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct VersionBody {
    pub version: u64,
}

pub use custody::CustodyEdge;
pub use filtering::FilteringEdge;
pub use health::{ComponentBody, ReadinessBody};
pub use identity::IdentityEdge;
pub use incidents::IncidentsEdge;
pub use web::WebEdge;

/// What the gateway's handlers share.
#[derive(Clone, Debug)]
pub struct GatewayState {
    pub readiness: Readiness,
    pub metrics: Metrics,
    /// Identity's routes, when this process serves identity.
    pub identity: Option<IdentityEdge>,
    /// Custody's routes, when this process serves custody.
    pub custody: Option<CustodyEdge>,
    /// Incidents' routes, when this process serves incidents.
    pub incidents: Option<IncidentsEdge>,
    /// The filtering record's routes, when this process serves ingest.
    pub filtering: Option<FilteringEdge>,
    /// The web pages and reporting's figures, when this process runs reporting.
    pub web: Option<WebEdge>,
}

/// The OpenAPI document of everything the gateway serves.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Haven gateway",
        description = "Haven's HTTP API: health, readiness, metrics and the JSON API for people."
    ),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
        identity::sign_in,
        identity::refresh,
        identity::client_credentials,
        identity::sign_out,
        identity::me,
        identity::aup,
        identity::accept_aup,
        identity::access_register,
        identity::jwks,
        custody::seize,
        custody::trail,
        custody::export_json,
        custody::export_html,
        custody::seal,
        custody::store,
        custody::check_seal,
        custody::search,
        custody::place_hold,
        custody::lift_hold,
        custody::hand_to_police,
        custody::give_back,
        custody::request_deletion,
        custody::record_deletion,
        custody::register_device,
        custody::allocate,
        custody::hand_back,
        custody::wipe,
        custody::allocations,
        incidents::raise_concern,
        incidents::list_concerns,
        incidents::triage_concern,
        incidents::open_case,
        incidents::list_cases,
        incidents::get_case,
        incidents::record_action,
        incidents::make_referral,
        incidents::close_case,
        incidents::learner_chronology,
        incidents::acknowledge_alert,
        filtering::list_changes,
        filtering::approve,
        filtering::reject,
        filtering::apply,
        alert_rules::get_school,
        alert_rules::set_school,
        alert_rules::get_trust,
        alert_rules::set_trust,
        web::api::dashboard
    ),
    components(schemas(
        ReadinessBody,
        ComponentBody,
        identity::ErrorBody,
        identity::SignInBody,
        identity::RefreshBody,
        identity::ClientCredentialsBody,
        identity::AcceptAupBody,
        identity::TokensBody,
        identity::GrantBody,
        identity::WhoAmIBody,
        identity::AupBody,
        identity::AccessEntryBody,
        VersionBody,
        custody::SeizeBody,
        custody::SeizedBody,
        custody::SealBody,
        custody::StoreBody,
        custody::CheckSealBody,
        custody::SearchBody,
        custody::HoldBody,
        custody::HandToPoliceBody,
        custody::ReturnBody,
        custody::DeletionBody,
        custody::DeletionRequestedBody,
        custody::DeletionDoneBody,
        custody::CustodyRecordBody,
        custody::CustodyStepBody,
        custody::CustodyTrailBody,
        custody::RegisterDeviceBody,
        custody::RegisteredDeviceBody,
        custody::AllocateBody,
        custody::HandBackBody,
        custody::WipeBody,
        custody::SchoolDeviceBody,
        custody::AllocationsBody,
        incidents::RaiseConcernBody,
        incidents::RaisedBody,
        incidents::ConcernBody,
        incidents::TriageBody,
        incidents::TriagedBody,
        incidents::OpenCaseBody,
        incidents::OpenedBody,
        incidents::CaseSummaryBody,
        incidents::CaseBody,
        incidents::ChecklistItemBody,
        incidents::ReferralBody,
        incidents::ChronologyEntryBody,
        incidents::ActionBody,
        incidents::ReferralRequestBody,
        incidents::ReferralMadeBody,
        incidents::CloseBody,
        incidents::LearnerChronologyBody,
        incidents::AcknowledgeBody,
        incidents::AcknowledgedBody,
        filtering::FilteringChangeBody,
        filtering::FilteringChangesBody,
        filtering::DecisionBody,
        filtering::PositionBody,
        alert_rules::AlertRuleSettingsBody,
        alert_rules::AlertRulesChangeBody,
        alert_rules::AlertRulesBody,
        alert_rules::SetAlertRulesBody,
        alert_rules::AlertRulesSetBody,
        web::DashboardBody,
        web::SchoolBreachesBody
    ))
)]
pub struct ApiDoc;

/// This document, as JSON.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "The OpenAPI 3.1 document of this API")))]
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// The gateway's routes.
pub fn router(state: GatewayState) -> Router {
    let web = web::routes(state.clone());
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/api/v1/sign-in", post(identity::sign_in))
        .route("/api/v1/token/refresh", post(identity::refresh))
        .route("/api/v1/token/client-credentials", post(identity::client_credentials))
        .route("/api/v1/sign-out", post(identity::sign_out))
        .route("/api/v1/me", get(identity::me))
        .route("/api/v1/aup", get(identity::aup))
        .route("/api/v1/aup/accept", post(identity::accept_aup))
        .route("/api/v1/access-register", get(identity::access_register))
        .route("/.well-known/jwks.json", get(identity::jwks))
        .merge(custody_routes())
        .route("/api/v1/concerns", post(incidents::raise_concern).get(incidents::list_concerns))
        .route("/api/v1/concerns/{concern_id}/triage", post(incidents::triage_concern))
        .route("/api/v1/cases", post(incidents::open_case).get(incidents::list_cases))
        .route("/api/v1/cases/{case_id}", get(incidents::get_case))
        .route("/api/v1/cases/{case_id}/actions", post(incidents::record_action))
        .route("/api/v1/cases/{case_id}/referrals", post(incidents::make_referral))
        .route("/api/v1/cases/{case_id}/close", post(incidents::close_case))
        .route("/api/v1/learners/{subject_id}/chronology", get(incidents::learner_chronology))
        .route("/api/v1/alerts/{alert_id}/acknowledge", post(incidents::acknowledge_alert))
        .route("/api/v1/schools/{school_id}/filtering/changes", get(filtering::list_changes))
        .route("/api/v1/filtering/changes/{change_id}/approve", post(filtering::approve))
        .route("/api/v1/filtering/changes/{change_id}/reject", post(filtering::reject))
        .route("/api/v1/filtering/changes/{change_id}/apply", post(filtering::apply))
        .route("/api/v1/schools/{school_id}/alert-rules", get(alert_rules::get_school).put(alert_rules::set_school))
        .route("/api/v1/trust/alert-rules", get(alert_rules::get_trust).put(alert_rules::set_trust))
        .merge(web)
        .layer(axum::middleware::from_fn(trace::http_span))
        .with_state(state)
}

/// Custody's routes (`custody.rs`).
fn custody_routes() -> Router<GatewayState> {
    Router::new()
        .route("/api/v1/custody", post(custody::seize))
        .route("/api/v1/custody/{custody_id}", get(custody::trail))
        .route("/api/v1/custody/{custody_id}/export.json", get(custody::export_json))
        .route("/api/v1/custody/{custody_id}/export.html", get(custody::export_html))
        .route("/api/v1/custody/{custody_id}/seal", post(custody::seal))
        .route("/api/v1/custody/{custody_id}/store", post(custody::store))
        .route("/api/v1/custody/{custody_id}/seal-check", post(custody::check_seal))
        .route("/api/v1/custody/{custody_id}/search", post(custody::search))
        .route("/api/v1/custody/{custody_id}/holds", post(custody::place_hold))
        .route("/api/v1/custody/{custody_id}/holds/lift", post(custody::lift_hold))
        .route("/api/v1/custody/{custody_id}/hand-to-police", post(custody::hand_to_police))
        .route("/api/v1/custody/{custody_id}/return", post(custody::give_back))
        .route("/api/v1/custody/{custody_id}/deletions", post(custody::request_deletion))
        .route("/api/v1/custody/{custody_id}/deletions/{deletion_id}/done", post(custody::record_deletion))
        .route("/api/v1/devices", post(custody::register_device))
        .route("/api/v1/devices/allocations", get(custody::allocations))
        .route("/api/v1/devices/{device_id}/allocate", post(custody::allocate))
        .route("/api/v1/devices/{device_id}/return", post(custody::hand_back))
        .route("/api/v1/devices/{device_id}/wipe", post(custody::wipe))
}
