//! gRPC at the edges of a process: every request served gets a span (a child of the caller's
//! `traceparent`) and is counted and timed by method and status; every request sent carries
//! the current span's context. Tower layers over HTTP/2 requests, so any tonic server or
//! channel takes them without this crate knowing tonic.
//!
//! ```text
//!  caller ──traceparent──▶ GrpcServerLayer: span "grpc request" (rpc.method, status code)
//!                            │  haven_grpc_server_requests_total{method,code}
//!                            │  haven_grpc_server_request_duration_seconds{method,code}
//!                            ▼
//!                          the service ──▶ InjectTrace<Channel> ──traceparent──▶ next hop
//! ```
//! Labels and attributes are the method's path and the status code only: never a request's
//! content. A path the server does not know (`Unimplemented`) is counted as `other`, so a
//! caller cannot grow the metrics without bound.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tracing::Instrument as _;

use crate::Metrics;

/// A request's method and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// `/haven.v1.Incidents/RaiseConcern`, or `other` for a path nobody serves.
    pub method: String,
    /// The gRPC status code's name, e.g. `OK`, `PERMISSION_DENIED`.
    pub code: &'static str,
}

/// The server side's request counter and latency histogram, shared by every connection.
#[derive(Clone, Debug)]
pub struct GrpcServerLayer {
    requests: Family<GrpcLabels, Counter>,
    latency: Family<GrpcLabels, Histogram, fn() -> Histogram>,
}

impl GrpcServerLayer {
    /// A layer whose metrics are registered with `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        let requests = Family::<GrpcLabels, Counter>::default();
        // 0.5 ms to about 16 s.
        let latency = Family::<GrpcLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_5, 2.0, 16))) as fn() -> Histogram,
        );
        metrics.register("grpc_server_requests", "gRPC requests served, by method and status code", requests.clone());
        metrics.register(
            "grpc_server_request_duration_seconds",
            "Time from a gRPC request's arrival to its response headers, by method and status code",
            latency.clone(),
        );
        GrpcServerLayer { requests, latency }
    }
}

impl<S> tower_layer::Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServer { inner, layer: self.clone() }
    }
}

/// A gRPC server with [`GrpcServerLayer`] around it.
#[derive(Clone, Debug)]
pub struct GrpcServer<S> {
    inner: S,
    layer: GrpcServerLayer,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for GrpcServer<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone that was made ready serves this request (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let path = request.uri().path().to_owned();
        let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("", ""));
        let span = if UNTRACED_SERVICES.contains(&service) {
            tracing::Span::none()
        } else {
            request_span(&path, service, method)
        };
        crate::trace::set_parent_from_headers(&span, request.headers());
        let started = Instant::now();
        let call = inner.call(request);
        Box::pin(
            async move {
                let result = call.await;
                let code = match &result {
                    Ok(response) => status_code(response),
                    Err(_) => 14, // the transport failed: UNAVAILABLE
                };
                tracing::Span::current().record("rpc.grpc.status_code", code);
                let method = if code == 12 { "other".to_owned() } else { path };
                let labels = GrpcLabels { method, code: code_name(code) };
                layer.requests.get_or_create(&labels).inc();
                layer.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
                result
            }
            .instrument(span),
        )
    }
}

/// Services counted but not traced: raft's heartbeats and replication (many a second, no
/// request of a person's behind them) and health probes.
const UNTRACED_SERVICES: [&str; 2] = ["haven.v1.Raft", "grpc.health.v1.Health"];

/// The span of one request served: its method, and later its status code.
fn request_span(path: &str, service: &str, method: &str) -> tracing::Span {
    tracing::info_span!(
        "grpc request",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
    )
}

/// The status of a response: `grpc-status` in its headers (tonic answers every error that
/// way, trailers only), else OK. A stream that fails after its headers counts as OK here.
fn status_code<R>(response: &http::Response<R>) -> u16 {
    response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn code_name(code: u16) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(usize::from(code)).copied().unwrap_or("UNKNOWN")
}

/// A client channel whose requests carry the current span's `traceparent`/`tracestate`.
/// Wrap a tonic `Channel` in it: `EventLogClient::new(InjectTrace::new(channel))`.
#[derive(Clone, Debug)]
pub struct InjectTrace<S> {
    inner: S,
}

impl<S> InjectTrace<S> {
    pub fn new(inner: S) -> Self {
        InjectTrace { inner }
    }
}

impl<S, B> tower_service::Service<http::Request<B>> for InjectTrace<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        crate::trace::inject_current(request.headers_mut());
        self.inner.call(request)
    }
}
