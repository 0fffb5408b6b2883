//! The HTTP edge of Haven (DESIGN.md §5 gateway).
//!
//! ```text
//!  browsers, probes, Prometheus ──HTTP──▶ router ──▶ /healthz  /readyz  /metrics  /openapi.json
//!                                                       │          │         │
//!                                                   always 200  Readiness  Metrics  (haven-runtime)
//! ```
//! It owns the HTTP surface and its OpenAPI description, generated from the handlers (utoipa)
//! so the document cannot drift from the code. It must not hold domain logic: API routes call
//! the services and authorise at the edge as well as in each service.

mod health;

use axum::Router;
use axum::routing::get;
use haven_runtime::{Metrics, Readiness};
use utoipa::OpenApi;

pub use health::{ComponentBody, ReadinessBody};

/// What the gateway's handlers share.
#[derive(Clone, Debug)]
pub struct GatewayState {
    pub readiness: Readiness,
    pub metrics: Metrics,
}

/// The OpenAPI document of everything the gateway serves.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Haven gateway",
        description = "Haven's HTTP API: health, readiness, metrics and the JSON API for people."
    ),
    paths(health::healthz, health::readyz, health::metrics, openapi_json),
    components(schemas(ReadinessBody, ComponentBody))
)]
pub struct ApiDoc;

/// This document, as JSON.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "The OpenAPI 3.1 document of this API")))]
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// The gateway's routes.
pub fn router(state: GatewayState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi_json))
        .with_state(state)
}
