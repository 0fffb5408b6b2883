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
//! rules and authenticator as the gRPC layer, then the call forwarded with the bearer token).

mod health;
mod identity;
pub mod web;

use axum::Router;
use axum::routing::{get, post};
use haven_runtime::{Metrics, Readiness};
use utoipa::OpenApi;

pub use health::{ComponentBody, ReadinessBody};
pub use identity::IdentityEdge;
pub use web::WebEdge;

/// What the gateway's handlers share.
#[derive(Clone, Debug)]
pub struct GatewayState {
    pub readiness: Readiness,
    pub metrics: Metrics,
    /// Identity's routes, when this process serves identity.
    pub identity: Option<IdentityEdge>,
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
        .merge(web)
        .with_state(state)
}
