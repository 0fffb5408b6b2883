//! What an [`EventFilter`] keeps: the log applies it to reads and subscriptions, the bus to
//! the unfiltered stream it receives, so both sides keep exactly the same events.

use haven_proto::v1::{EventEnvelope, EventFilter};

/// Whether an event passes a filter. Empty lists match everything.
pub fn matches(filter: &EventFilter, envelope: &EventEnvelope) -> bool {
    let category = envelope.stream_id.split_once('-').map_or(envelope.stream_id.as_str(), |(c, _)| c);
    (filter.event_type_prefixes.is_empty()
        || filter.event_type_prefixes.iter().any(|prefix| envelope.event_type.starts_with(prefix.as_str())))
        && (filter.stream_categories.is_empty() || filter.stream_categories.iter().any(|c| c == category))
        && (filter.school_ids.is_empty() || filter.school_ids.contains(&envelope.school_id))
}
