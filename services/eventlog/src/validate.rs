//! Input checks shared by every entry point: bad input is refused with the field it names,
//! before anything reaches the writer, so a refused call writes nothing.

use std::collections::HashSet;

use haven_eventlog_client::{LogError, StreamAppend};
use haven_kernel::{EventId, SchoolId};
use haven_proto::v1::{ActorKind, ProposedEvent};
use prost::Message;

use crate::config::EventLogConfig;

/// Longest event type accepted, e.g. `incidents.ConcernRaised`.
pub const MAX_EVENT_TYPE_BYTES: usize = 128;

/// Checks one stream's events; `prefix` is prepended to field names (`appends[2].`).
/// `seen` collects event ids across a whole call, so an id twice in one call is refused.
fn check_events(
    events: &[ProposedEvent],
    config: &EventLogConfig,
    prefix: &str,
    seen: &mut HashSet<EventId>,
) -> Result<(), LogError> {
    let field = |rest: &str| format!("{prefix}{rest}");
    if events.is_empty() {
        return Err(LogError::invalid(field("events"), "must hold at least one event"));
    }
    if events.len() > config.max_events_per_append {
        return Err(LogError::invalid(
            field("events"),
            format!("holds {} events; the limit is {}", events.len(), config.max_events_per_append),
        ));
    }
    for (i, event) in events.iter().enumerate() {
        let at = |name: &str| field(&format!("events[{i}]{name}"));
        let event_id =
            EventId::from_slice(&event.event_id).map_err(|e| LogError::invalid(at(".event_id"), e.to_string()))?;
        if event_id.0.is_nil() {
            return Err(LogError::invalid(at(".event_id"), "must not be the nil UUID"));
        }
        if !seen.insert(event_id) {
            return Err(LogError::invalid(at(".event_id"), "appears twice in one call"));
        }
        check_event_type(&event.event_type).map_err(|reason| LogError::invalid(at(".event_type"), reason))?;
        if event.schema_version == 0 {
            return Err(LogError::invalid(at(".schema_version"), "must be at least 1"));
        }
        if !event.school_id.is_empty() {
            SchoolId::parse(&event.school_id).map_err(|e| LogError::invalid(at(".school_id"), e.to_string()))?;
        }
        let Some(actor) = &event.actor else {
            return Err(LogError::invalid(at(".actor"), "is required"));
        };
        match ActorKind::try_from(actor.kind) {
            Ok(ActorKind::Unspecified) => {
                return Err(LogError::invalid(at(".actor.kind"), "must be set"));
            }
            Err(_) => {
                return Err(LogError::invalid(at(".actor.kind"), format!("{} is not a known actor kind", actor.kind)));
            }
            Ok(_) => {}
        }
        if actor.principal_id.is_empty() || actor.principal_id.len() > 256 {
            return Err(LogError::invalid(at(".actor.principal_id"), "must be 1..=256 bytes"));
        }
        for (name, id) in [(".correlation_id", &event.correlation_id), (".causation_id", &event.causation_id)] {
            if !id.is_empty() && id.len() != 16 {
                return Err(LogError::invalid(at(name), "must be empty or a 16-byte UUID"));
            }
        }
        let size = event.encoded_len();
        if size > config.max_event_bytes {
            return Err(LogError::invalid(
                at(""),
                format!("is {size} bytes encoded; the limit is {}", config.max_event_bytes),
            ));
        }
    }
    Ok(())
}

/// Event types are `<service>.<EventName>`: ASCII letters, digits, `.` and `_`.
fn check_event_type(event_type: &str) -> Result<(), String> {
    if event_type.is_empty() {
        return Err("is required".into());
    }
    if event_type.len() > MAX_EVENT_TYPE_BYTES {
        return Err(format!("is {} bytes long; the limit is {MAX_EVENT_TYPE_BYTES}", event_type.len()));
    }
    if !event_type.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') {
        return Err("may hold only ASCII letters, digits, `.` and `_`".into());
    }
    Ok(())
}

/// Checks a single-stream append.
pub fn check_append(events: &[ProposedEvent], config: &EventLogConfig) -> Result<(), LogError> {
    check_events(events, config, "", &mut HashSet::new())
}

/// Checks a multi-stream batch; an event id may appear only once in the whole batch.
pub fn check_batch(appends: &[StreamAppend], config: &EventLogConfig) -> Result<(), LogError> {
    if appends.is_empty() {
        return Err(LogError::invalid("appends", "must hold at least one stream append"));
    }
    if appends.len() > config.max_appends_per_batch {
        return Err(LogError::invalid(
            "appends",
            format!("holds {} stream appends; the limit is {}", appends.len(), config.max_appends_per_batch),
        ));
    }
    let mut seen = HashSet::new();
    for (i, append) in appends.iter().enumerate() {
        check_events(&append.events, config, &format!("appends[{i}]."), &mut seen)?;
    }
    Ok(())
}

/// Checks a read limit, turning 0 into the default page.
pub fn read_limit(limit: u32, config: &EventLogConfig) -> Result<usize, LogError> {
    match limit {
        0 => Ok(config.default_read_limit as usize),
        n if n > config.max_read_limit => {
            Err(LogError::invalid("limit", format!("{n} is over the limit of {}", config.max_read_limit)))
        }
        n => Ok(n as usize),
    }
}
