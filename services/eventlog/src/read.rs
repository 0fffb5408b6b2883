//! Reads: pages of one stream and of `$all`, never past the durable head, so a reader never
//! sees an event that a crash could still take away.

use haven_eventlog_client::{AllSlice, LogError, ReadStream, StreamSlice};
use haven_kernel::{Position, StreamId, Version};
use haven_proto::v1::EventFilter;

use crate::record;
use crate::store::{Scan, Store, StoreHead};

/// Most records one `$all` read examines, matching or not, before it returns a page: bounds
/// the time a narrow filter can hold a reader.
pub const MAX_EXAMINED_PER_READ: usize = 100_000;

/// Whether an event passes a filter (shared with the bus, which filters on the consumer side).
pub use haven_eventlog_client::matches;

/// The stream's last durable version.
fn visible_last_version(store: &dyn Store, stream_id: &StreamId, head: StoreHead) -> Result<Option<Version>, LogError> {
    let Some(last) = store.last_version(stream_id)? else {
        return Ok(None);
    };
    // The stream head may already count events of a group being fsynced; step back over them.
    let mut from = last;
    loop {
        let positions = store.stream_positions(stream_id, from, true, 64)?;
        for (offset, position) in positions.iter().enumerate() {
            if *position < head.next_position {
                return Ok(Some(Version(from.0 - offset as u64)));
            }
        }
        if positions.len() < 64 || from.0 < 64 {
            return Ok(None);
        }
        from = Version(from.0 - 64);
    }
}

/// Reads a page of one stream.
pub fn read_stream(
    store: &dyn Store,
    head: StoreHead,
    read: &ReadStream,
    limit: usize,
) -> Result<StreamSlice, LogError> {
    let Some(last_version) = visible_last_version(store, &read.stream_id, head)? else {
        return Ok(StreamSlice { events: Vec::new(), last_version: None, end_of_stream: true });
    };
    let from = match (read.backwards, read.from_end) {
        (true, true) => last_version,
        (true, false) => Version(read.from_version.0.min(last_version.0)),
        (false, _) => read.from_version,
    };
    if !read.backwards && from > last_version {
        return Ok(StreamSlice { events: Vec::new(), last_version: Some(last_version), end_of_stream: true });
    }
    let positions = store.stream_positions(&read.stream_id, from, read.backwards, limit)?;
    let mut events = Vec::with_capacity(positions.len());
    for position in positions {
        let envelope = store.get(position)?.ok_or_else(|| LogError::Corrupt {
            position,
            reason: format!("the index of stream {} points at a missing event", read.stream_id),
        })?;
        events.push(envelope);
    }
    let end_of_stream = match (read.backwards, events.last()) {
        (_, None) => true,
        (true, Some(last)) => last.version == 0,
        (false, Some(last)) => last.version >= last_version.0,
    };
    Ok(StreamSlice { events, last_version: Some(last_version), end_of_stream })
}

/// Reads up to `limit` matching events of `$all` from `from`, stopping at the durable head.
pub fn read_all(
    store: &dyn Store,
    head: StoreHead,
    from: Position,
    limit: usize,
    filter: &EventFilter,
) -> Result<AllSlice, LogError> {
    let mut events = Vec::new();
    let mut next_position = from;
    let mut examined = 0usize;
    let mut failure = None;
    if from < head.next_position {
        store.scan(from, &mut |position, value| {
            if position >= head.next_position || events.len() >= limit || examined >= MAX_EXAMINED_PER_READ {
                return Scan::Stop;
            }
            if position != next_position {
                failure = Some(LogError::Corrupt { position: next_position, reason: "missing from $all".into() });
                return Scan::Stop;
            }
            examined += 1;
            match record::decode(position, value) {
                Ok(envelope) => {
                    if matches(filter, &envelope) {
                        events.push(envelope);
                    }
                    next_position = Position(position.0 + 1);
                    Scan::Continue
                }
                Err(error) => {
                    failure = Some(error);
                    Scan::Stop
                }
            }
        })?;
    }
    if let Some(error) = failure {
        return Err(error);
    }
    if next_position < head.next_position && events.len() < limit && examined < MAX_EXAMINED_PER_READ {
        return Err(LogError::Corrupt { position: next_position, reason: "missing from $all".into() });
    }
    let next_position = next_position.max(from);
    Ok(AllSlice { events, next_position, end_of_log: next_position >= head.next_position })
}
