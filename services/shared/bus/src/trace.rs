//! The bus's spans (ADR 0021): each continues the trace the log stored in the event's
//! envelope, so a write's trace runs on through the relay and every projection. Events the
//! log stored without a trace context (nothing was tracing) get no span: no cost at load.
//!
//! ```text
//!  eventlog append ─┬─▶ relay publish      (producer; NATS headers carry the same context)
//!                   └─▶ projection apply   (consumer; one per projection and batch, linked
//!                                           to the other traced events of its batch)
//! ```
//! The stored context is the parent on both paths — from NATS, from the log's subscription
//! or from a gap read back from the log — so every path gives the same tree.
//! Attributes are the event type, the stream's category, positions and counts only.

use haven_kernel::StreamId;
use haven_proto::v1::{EventEnvelope, TraceContext};

use crate::codec::is_traceparent;

/// Most other events a projection span links to; the rest of a large batch is not linked.
const MAX_LINKS: usize = 32;

fn stored_context(envelope: &EventEnvelope) -> Option<&TraceContext> {
    envelope.trace_context.as_ref().filter(|trace| is_traceparent(&trace.traceparent))
}

/// The stream's category (`concern` of `concern-…`): the id after it may name a person's record.
fn category(stream_id: &str) -> String {
    StreamId::parse(stream_id).map_or_else(|_| "unknown".to_owned(), |id| id.category().to_owned())
}

/// The relay's span for publishing `envelope`, when the log stored a trace context with it.
pub(crate) fn publish_span(envelope: &EventEnvelope) -> Option<tracing::Span> {
    let trace = stored_context(envelope)?;
    let span = tracing::info_span!(
        "relay publish",
        otel.kind = "producer",
        messaging.system = "nats",
        haven.event_type = %envelope.event_type,
        haven.stream_category = %category(&envelope.stream_id),
        haven.position = envelope.position,
    );
    haven_runtime::trace::set_parent(&span, &trace.traceparent, &trace.tracestate);
    Some(span)
}

/// A projection's span for storing `events`: a child of the first traced event's context,
/// linked to the others'. `None` when no event in the batch was traced.
pub(crate) fn apply_span(projection: &str, events: &[EventEnvelope], checkpoint: u64) -> Option<tracing::Span> {
    let mut traced = events.iter().filter_map(|event| Some((event, stored_context(event)?)));
    let (first, parent) = traced.next()?;
    let span = tracing::info_span!(
        "projection apply",
        otel.kind = "consumer",
        haven.projection = %projection,
        haven.event_type = %first.event_type,
        haven.stream_category = %category(&first.stream_id),
        haven.position = first.position,
        haven.events = events.len(),
        haven.checkpoint = checkpoint,
    );
    haven_runtime::trace::set_parent(&span, &parent.traceparent, &parent.tracestate);
    for (_, linked) in traced.take(MAX_LINKS) {
        haven_runtime::trace::add_link(&span, &linked.traceparent, &linked.tracestate);
    }
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_category_of_a_stream_is_named() {
        assert_eq!(category("concern-0190a5f2"), "concern");
        assert_eq!(category("trust-brightwater"), "trust");
        assert_eq!(category("no category"), "unknown");
    }

    #[test]
    fn untraced_events_get_no_span() {
        let untraced = EventEnvelope { position: 3, ..Default::default() };
        assert!(publish_span(&untraced).is_none());
        assert!(apply_span("demo", &[untraced], 4).is_none());
    }
}
