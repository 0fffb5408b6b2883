//! W3C trace context in and out of a process (ADR 0021): read from the current span to be
//! stored in an event or sent in gRPC metadata, and set as a span's parent from what a
//! request or a stored event carried. Without the OpenTelemetry layer ([`crate::Telemetry`]
//! with no endpoint) every function here does nothing and [`current`] is `None`.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// A span's place in a trace as the W3C headers spell it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: String,
    /// Vendors' entries; empty when none.
    pub tracestate: String,
}

/// The current span's trace context, if it belongs to a trace.
pub fn current() -> Option<TraceHeaders> {
    of(&tracing::Span::current())
}

/// `span`'s trace context, if it belongs to a trace.
pub fn of(span: &tracing::Span) -> Option<TraceHeaders> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut headers = TraceHeaders::default();
    TraceContextPropagator::new().inject_context(&context, &mut headers);
    Some(headers).filter(|headers| !headers.traceparent.is_empty())
}

/// Makes `span` (not yet entered) a child of the span `traceparent` names. A malformed or
/// empty value leaves it where it was.
pub fn set_parent(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    let carried = TraceHeaders { traceparent: traceparent.to_owned(), tracestate: tracestate.to_owned() };
    let context = TraceContextPropagator::new().extract(&carried);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// Links `span` to the span `traceparent` names (one of several causes of its work).
pub fn add_link(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    let carried = TraceHeaders { traceparent: traceparent.to_owned(), tracestate: tracestate.to_owned() };
    let context = TraceContextPropagator::new().extract(&carried);
    let linked = context.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}

/// Makes `span` a child of the trace context in `headers` (gRPC metadata, HTTP headers).
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    let value = |name| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
    set_parent(span, value(TRACEPARENT), value(TRACESTATE));
}

/// Writes the current span's trace context into `headers` (an outgoing request).
pub fn inject_current(headers: &mut http::HeaderMap) {
    let Some(current) = current() else { return };
    for (name, value) in [(TRACEPARENT, current.traceparent), (TRACESTATE, current.tracestate)] {
        if let Ok(value) = http::HeaderValue::try_from(value)
            && !value.is_empty()
        {
            headers.insert(name, value);
        }
    }
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = value,
            TRACESTATE => self.tracestate = value,
            _ => {}
        }
    }
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent.as_str()),
            TRACESTATE => Some(self.tracestate.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_opentelemetry_layer_nothing_is_traced() {
        let span = tracing::info_span!("untraced");
        set_parent(&span, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "");
        assert_eq!(of(&span), None);
        let mut headers = http::HeaderMap::new();
        inject_current(&mut headers);
        assert!(headers.is_empty());
    }

    #[test]
    fn a_context_crosses_headers_and_comes_back_as_the_parent() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let caller = tracing::info_span!("caller");
            let sent = caller.in_scope(|| {
                let mut headers = http::HeaderMap::new();
                inject_current(&mut headers);
                headers
            });
            let sent_parent = sent.get(TRACEPARENT).expect("a traceparent").to_str().unwrap().to_owned();
            assert_eq!(Some(sent_parent.clone()), of(&caller).map(|headers| headers.traceparent));
            let callee = tracing::info_span!("callee");
            set_parent_from_headers(&callee, &sent);
            let received = of(&callee).expect("the callee is traced").traceparent;
            let trace_id = |traceparent: &str| traceparent.split('-').nth(1).unwrap().to_owned();
            let span_id = |traceparent: &str| traceparent.split('-').nth(2).unwrap().to_owned();
            assert_eq!(trace_id(&received), trace_id(&sent_parent), "one trace");
            assert_ne!(span_id(&received), span_id(&sent_parent), "its own span");
        });
    }
}
