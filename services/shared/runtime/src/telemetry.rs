//! The process's one `tracing` subscriber: log lines to stderr and, when an OTLP endpoint is
//! configured (`HAVEN_OTLP_ENDPOINT`), every span exported over OTLP/gRPC (ADR 0021).
//!
//! ```text
//!  tracing spans and events ─┬─▶ fmt layer (stderr), filtered by the log filter
//!                            └─▶ OpenTelemetry layer ─▶ batch processor ─▶ OTLP/gRPC exporter
//!                                 (only with an endpoint; Haven's own spans at info and above)
//! ```
//! Without an endpoint no OpenTelemetry layer is installed: spans have no OpenTelemetry
//! context, nothing is stamped into events or headers, nothing is exported.
//! [`Telemetry::shutdown`] flushes what is queued before the process exits.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid configuration: log filter {filter:?} is not a level or directive list")]
    Filter { filter: String },
    #[error(
        "invalid configuration: otlp_endpoint (HAVEN_OTLP_ENDPOINT) {endpoint:?} must be http://HOST:PORT of an OTLP/gRPC receiver (TLS to the collector is not built in: run a collector beside Haven)"
    )]
    Endpoint { endpoint: String },
    #[error("cannot start the OTLP exporter for {endpoint:?}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// What was installed; keep it until the process ends, then [`Telemetry::shutdown`].
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Checks an OTLP endpoint without starting anything (for config validation).
pub fn check_otlp_endpoint(endpoint: &str) -> Result<(), TelemetryError> {
    let authority = endpoint.strip_prefix("http://").unwrap_or("");
    let valid = !authority.is_empty() && http::uri::Authority::try_from(authority.trim_end_matches('/')).is_ok();
    if valid { Ok(()) } else { Err(TelemetryError::Endpoint { endpoint: endpoint.to_owned() }) }
}

impl Telemetry {
    /// Installs the global subscriber. `service_name` names this process's role in the traces
    /// (`haven`, `haven-eventlog`, …). With `otlp_endpoint` it must run inside a Tokio runtime:
    /// the exporter's channel lives on it.
    pub fn install(
        log_filter: &str,
        service_name: &'static str,
        otlp_endpoint: Option<&str>,
    ) -> Result<Telemetry, TelemetryError> {
        // openraft narrates every election and timer at info; keep it to warnings unless asked.
        let filter =
            if log_filter.contains("openraft") { log_filter.to_owned() } else { format!("openraft=warn,{log_filter}") };
        let targets: Targets = filter.parse().map_err(|_| TelemetryError::Filter { filter: log_filter.to_owned() })?;
        let fmt = tracing_subscriber::fmt::layer().with_target(false).with_writer(std::io::stderr).with_filter(targets);
        let Some(endpoint) = otlp_endpoint else {
            tracing_subscriber::registry().with(fmt).init();
            return Ok(Telemetry { provider: None });
        };
        check_otlp_endpoint(endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|error| TelemetryError::Exporter { endpoint: endpoint.to_owned(), reason: error.to_string() })?;
        let resource = opentelemetry_sdk::Resource::builder_empty().with_service_name(service_name).build();
        // The batch processor's queue is bounded (2048 spans, OTEL_BSP_MAX_QUEUE_SIZE): under
        // a burst spans are dropped, never the request. Sampling: OTEL_TRACES_SAMPLER.
        let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        let tracer = provider.tracer("haven");
        // Haven's own spans only (every `haven…` crate): h2's, tonic's and openraft's stay out.
        let spans: Targets = "warn,haven=info".parse().expect("a fixed directive list");
        let otel = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(spans);
        tracing_subscriber::registry().with(fmt).with(otel).init();
        Ok(Telemetry { provider: Some(provider) })
    }

    /// Whether spans are exported.
    pub fn exports(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is queued and stops the exporter. Call it outside async code, while the
    /// runtime the exporter was built on still runs.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("haven: flushing traces: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_http_authority_is_an_endpoint() {
        assert!(check_otlp_endpoint("http://127.0.0.1:4317").is_ok());
        assert!(check_otlp_endpoint("http://otel-collector.monitoring:4317/").is_ok());
        for bad in ["127.0.0.1:4317", "https://collector:4317", "http://", "http://a b:1", ""] {
            let error = check_otlp_endpoint(bad).unwrap_err().to_string();
            assert!(error.contains("otlp_endpoint"), "{bad}: {error}");
        }
    }
}
