//! NATS subjects. Events go to `haven.events.<category>.<school>.<type>` and ingest batches to
//! `haven.ingest.<school>.<format>`. A subject carries only the stream category, the school id
//! and the event type (all chosen by code or the trust, never personal data); stream ids,
//! actors and payloads stay out of subjects. Every token is reduced to `[A-Za-z0-9_-]`, so no
//! value can add a token (`.`), a wildcard (`*`, `>`) or whitespace.

use haven_proto::v1::EventEnvelope;

/// Prefix of every domain-event subject.
pub const EVENTS_PREFIX: &str = "haven.events";
/// Every domain-event subject.
pub const EVENTS_WILDCARD: &str = "haven.events.>";
/// Prefix of every ingest-buffer subject.
pub const INGEST_PREFIX: &str = "haven.ingest";
/// Every ingest-buffer subject.
pub const INGEST_WILDCARD: &str = "haven.ingest.>";
/// The school token of trust-wide events (no school id).
pub const NO_SCHOOL: &str = "_";
/// Longest token written, in bytes; longer values are cut (the headers keep exact values).
const MAX_TOKEN_BYTES: usize = 64;

/// The subject an event is published on.
pub fn event_subject(envelope: &EventEnvelope) -> String {
    let category = envelope.stream_id.split_once('-').map_or(envelope.stream_id.as_str(), |(c, _)| c);
    let mut subject = String::with_capacity(EVENTS_PREFIX.len() + 3 + category.len() + 64 + envelope.event_type.len());
    subject.push_str(EVENTS_PREFIX);
    for value in [category, school_token(&envelope.school_id), envelope.event_type.as_str()] {
        subject.push('.');
        push_token(&mut subject, value);
    }
    subject
}

/// The subject of an ingest batch.
pub fn ingest_subject(school_id: &str, format: &str) -> String {
    let mut subject = String::from(INGEST_PREFIX);
    for value in [school_token(school_id), format] {
        subject.push('.');
        push_token(&mut subject, value);
    }
    subject
}

fn school_token(school_id: &str) -> &str {
    if school_id.is_empty() { NO_SCHOOL } else { school_id }
}

/// Appends `value` as one NATS-safe token: every byte outside `[A-Za-z0-9_-]` becomes `_`,
/// an empty value becomes `_`, and at most [`MAX_TOKEN_BYTES`] are kept.
fn push_token(subject: &mut String, value: &str) {
    if value.is_empty() {
        subject.push('_');
        return;
    }
    for byte in value.bytes().take(MAX_TOKEN_BYTES) {
        let safe = byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-';
        subject.push(if safe { byte as char } else { '_' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(stream_id: &str, school_id: &str, event_type: &str) -> EventEnvelope {
        EventEnvelope {
            stream_id: stream_id.into(),
            school_id: school_id.into(),
            event_type: event_type.into(),
            ..Default::default()
        }
    }

    #[test]
    fn subjects_name_category_school_and_type_only() {
        let subject = event_subject(&envelope("incident-7f3a", "oakfield", "incidents.ConcernRaised"));
        assert_eq!(subject, "haven.events.incident.oakfield.incidents_ConcernRaised");
    }

    #[test]
    fn trust_wide_events_use_the_no_school_token() {
        assert_eq!(
            event_subject(&envelope("trust-t1", "", "identity.TrustEstablished")),
            "haven.events.trust._.identity_TrustEstablished"
        );
    }

    #[test]
    fn no_value_can_add_tokens_or_wildcards() {
        let subject = event_subject(&envelope("a-b", "x.y *>\t", "t.>"));
        assert_eq!(subject, "haven.events.a.x_y____.t__");
        assert_eq!(subject.split('.').count(), 5);
        assert_eq!(ingest_subject("", "squid log"), "haven.ingest._.squid_log");
    }

    #[test]
    fn long_tokens_are_cut() {
        let subject = ingest_subject(&"s".repeat(500), "json");
        assert_eq!(subject.len(), "haven.ingest.".len() + MAX_TOKEN_BYTES + ".json".len());
    }
}
