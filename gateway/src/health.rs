//! Liveness, readiness and metrics: what Kubernetes probes and Prometheus scrape.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::GatewayState;

/// `/readyz`'s body: every component and whether it is ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessBody {
    /// True only when every component is ready.
    pub ready: bool,
    pub components: Vec<ComponentBody>,
}

/// One component's readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentBody {
    /// e.g. `eventlog`, `identity`.
    pub name: String,
    pub ready: bool,
    /// Why it is not ready; empty when ready.
    pub reason: String,
}

/// The process is alive (it answers). Says nothing about readiness.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "Alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 only when every component is ready; 503 with the reasons otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "meta",
    responses(
        (status = 200, description = "Every component is ready", body = ReadinessBody),
        (status = 503, description = "Some component is not ready", body = ReadinessBody)
    )
)]
pub async fn readyz(State(state): State<GatewayState>) -> impl IntoResponse {
    let components: Vec<ComponentBody> = state
        .readiness
        .report()
        .into_iter()
        .map(|c| ComponentBody { name: c.name, ready: c.ready, reason: c.reason })
        .collect();
    let ready = !components.is_empty() && components.iter().all(|c| c.ready);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(ReadinessBody { ready, components }))
}

/// Prometheus text exposition of every metric of the process.
#[utoipa::path(get, path = "/metrics", tag = "meta", responses((status = 200, description = "Prometheus text format", body = String)))]
pub async fn metrics(State(state): State<GatewayState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}
