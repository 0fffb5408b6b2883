//! One span per HTTP request, named by its route template (`POST /api/v1/concerns`), never
//! by its URL: paths hold ids and query strings hold search terms. The span is the parent of
//! the gRPC call the handler makes ([`crate::GrpcChannel`] carries it), so a trace starts at
//! the edge (ADR 0021). A `traceparent` sent by the caller (an ingress that traces) is kept.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// The middleware: a span around the request, its status recorded at the end.
pub async fn http_span(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    // Probes and scrapes every few seconds would bury the requests people make.
    if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    haven_runtime::trace::set_parent_from_headers(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}
