//! How an event travels on NATS: the whole envelope, protobuf-encoded, as the payload (so a
//! consumer gets exactly what the log stores, hash included), and headers a NATS tool can read
//! without decoding it: the event id as `Nats-Msg-Id` (JetStream drops a repeat within its
//! duplicate window), the global position, the event type and, when valid, W3C `traceparent`
//! and `tracestate` as the log stored them (ADR 0021).

use async_nats::HeaderMap;
use bytes::Bytes;
use haven_kernel::Position;
use haven_proto::v1::EventEnvelope;
use prost::Message as _;

use crate::BusError;
use crate::subject::event_subject;

pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
pub const HEADER_POSITION: &str = "Haven-Position";
pub const HEADER_EVENT_TYPE: &str = "Haven-Event-Type";
pub const HEADER_TRACEPARENT: &str = "traceparent";
pub const HEADER_TRACESTATE: &str = "tracestate";

/// One event, ready to publish.
#[derive(Debug)]
pub struct Outbound {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Encodes an event for JetStream.
pub fn encode(envelope: &EventEnvelope) -> Outbound {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_MSG_ID, message_id(&envelope.event_id).as_str());
    headers.insert(HEADER_POSITION, envelope.position.to_string().as_str());
    headers.insert(HEADER_EVENT_TYPE, envelope.event_type.as_str());
    if let Some(trace) = envelope.trace_context.as_ref().filter(|trace| is_traceparent(&trace.traceparent)) {
        headers.insert(HEADER_TRACEPARENT, trace.traceparent.as_str());
        if !trace.tracestate.is_empty() {
            headers.insert(HEADER_TRACESTATE, trace.tracestate.as_str());
        }
    }
    Outbound { subject: event_subject(envelope), headers, payload: Bytes::from(envelope.encode_to_vec()) }
}

/// Decodes a message the relay published. `sequence` is the JetStream stream sequence, for
/// the error only.
pub fn decode(payload: &[u8], sequence: u64) -> Result<EventEnvelope, BusError> {
    EventEnvelope::decode(payload).map_err(|error| BusError::Malformed { sequence, reason: error.to_string() })
}

/// The position header of a stored message, if it has a well-formed one.
pub fn position_header(headers: &HeaderMap) -> Option<Position> {
    headers.get(HEADER_POSITION)?.as_str().parse().ok().map(Position)
}

/// The event id as JetStream's deduplication key: the UUID in its usual text form.
fn message_id(event_id: &[u8]) -> String {
    match uuid::Uuid::from_slice(event_id) {
        Ok(id) => id.hyphenated().to_string(),
        // The log refuses ids that are not 16 bytes; hex keeps even a surprise deduplicable.
        Err(_) => event_id.iter().map(|byte| format!("{byte:02x}")).collect(),
    }
}

/// `00-<32 hex>-<16 hex>-<2 hex>`: anything else is not forwarded as a trace header.
pub(crate) fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let lengths_ok = parts.len() == 4 && [2, 32, 16, 2].iter().zip(&parts).all(|(len, part)| part.len() == *len);
    lengths_ok && parts.iter().all(|part| part.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

#[cfg(test)]
mod tests {
    use haven_proto::v1::TraceContext;

    use super::*;

    fn envelope(traceparent: &str) -> EventEnvelope {
        EventEnvelope {
            event_id: uuid::Uuid::from_u128(7).as_bytes().to_vec(),
            stream_id: "school-oakfield".into(),
            position: 42,
            event_type: "identity.SchoolRegistered".into(),
            school_id: "oakfield".into(),
            trace_context: Some(TraceContext { traceparent: traceparent.into(), tracestate: String::new() }),
            payload: vec![1, 2, 3],
            ..Default::default()
        }
    }

    #[test]
    fn an_event_round_trips_with_its_headers() {
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let original = envelope(traceparent);
        let outbound = encode(&original);
        assert_eq!(outbound.headers.get(HEADER_MSG_ID).unwrap().as_str(), "00000000-0000-0000-0000-000000000007");
        assert_eq!(position_header(&outbound.headers), Some(Position(42)));
        assert_eq!(outbound.headers.get(HEADER_EVENT_TYPE).unwrap().as_str(), "identity.SchoolRegistered");
        assert_eq!(outbound.headers.get(HEADER_TRACEPARENT).unwrap().as_str(), traceparent);
        assert!(outbound.headers.get(HEADER_TRACESTATE).is_none(), "no empty tracestate header");
        assert_eq!(decode(&outbound.payload, 1).unwrap(), original);
    }

    #[test]
    fn the_stored_tracestate_travels_with_the_traceparent() {
        let mut original = envelope("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        original.trace_context.as_mut().unwrap().tracestate = "haven=1".into();
        assert_eq!(encode(&original).headers.get(HEADER_TRACESTATE).unwrap().as_str(), "haven=1");
        let mut malformed = envelope("00-xyz");
        malformed.trace_context.as_mut().unwrap().tracestate = "haven=1".into();
        assert!(encode(&malformed).headers.get(HEADER_TRACESTATE).is_none(), "only with a valid traceparent");
    }

    #[test]
    fn a_malformed_traceparent_is_not_forwarded() {
        for bad in ["", "00-xyz", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"] {
            assert!(encode(&envelope(bad)).headers.get(HEADER_TRACEPARENT).is_none(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_a_typed_error_naming_the_sequence() {
        let error = decode(&[0xff, 0xff, 0xff], 9).unwrap_err();
        assert!(matches!(error, BusError::Malformed { sequence: 9, .. }), "{error}");
    }
}
