//! Storage behind the log: a small trait, so the engine can change without touching the rest.
//!
//! ```text
//!   writer (one thread) ──plan──▶ WriteSet ──Store::write──▶ one atomic, fsynced batch
//!   readers (any task)  ──────────────────▶ Store::get / stream_positions / scan
//! ```
//! A store keeps four things (docs/adr/0004-event-storage.md, 0007): events by global position,
//! the stream index (stream, version) → position, stream heads (kept or derived from that index),
//! and the event-id index for idempotency, plus the log head (next position and last hash). `write` is all-or-nothing
//! and durable before it returns; nothing else mutates a store.

mod overlay;
mod segment_store;

pub use segment_store::SegmentStore;

use haven_eventlog_client::LogError;
use haven_kernel::{EventId, Position, StreamId, Version};
use haven_proto::v1::EventEnvelope;

use crate::record::{self, GENESIS_HASH};

/// The head of the log as a store records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreHead {
    pub next_position: Position,
    pub head_hash: [u8; 32],
}

impl StoreHead {
    pub const EMPTY: StoreHead = StoreHead { next_position: Position(0), head_hash: GENESIS_HASH };
}

/// One new event, encoded.
#[derive(Debug)]
pub struct NewRecord {
    pub position: Position,
    pub stream_id: StreamId,
    pub version: Version,
    pub event_id: EventId,
    pub value: Vec<u8>,
}

/// Everything one group commit writes.
#[derive(Debug)]
pub struct WriteSet {
    pub records: Vec<NewRecord>,
    /// Each touched stream's new last version.
    pub stream_heads: Vec<(StreamId, Version)>,
    pub head: StoreHead,
    /// A note the owner stores atomically with the group and reads back with [`Store::tag`]
    /// (the raft state machine's last applied log id). A set with a tag and no records is
    /// still written.
    pub tag: Option<Vec<u8>>,
}

/// Whether a scan goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    Continue,
    Stop,
}

/// The storage engine under the log.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    fn head(&self) -> Result<StoreHead, LogError>;
    /// The stream's last version; `None` when it does not exist.
    fn last_version(&self, stream_id: &StreamId) -> Result<Option<Version>, LogError>;
    /// Where an event id was written, if it was.
    fn find_event(&self, event_id: &EventId) -> Result<Option<Position>, LogError>;
    /// [`Store::find_event`] for many ids at once (one index transaction where the engine has them).
    fn find_events(&self, event_ids: &[EventId]) -> Result<Vec<Option<Position>>, LogError> {
        event_ids.iter().map(|id| self.find_event(id)).collect()
    }
    /// The event at a position, checksum-verified.
    fn get(&self, position: Position) -> Result<Option<EventEnvelope>, LogError>;
    /// Positions of up to `limit` events of a stream, from `from` onwards (or downwards).
    fn stream_positions(
        &self,
        stream_id: &StreamId,
        from: Version,
        backwards: bool,
        limit: usize,
    ) -> Result<Vec<Position>, LogError>;
    /// Visits stored values in position order from `from`, raw (checksum not yet checked).
    fn scan(&self, from: Position, visit: &mut dyn FnMut(Position, &[u8]) -> Scan) -> Result<(), LogError>;
    /// Writes a set atomically (all or nothing) and durably (fsynced) before returning.
    fn write(&self, set: WriteSet) -> Result<(), LogError>;
    /// Writes a set atomically, readable at once, made durable later: by the next
    /// [`Store::write`] or [`Store::sync`], or when the engine checkpoints. For an owner that
    /// holds the same data durably elsewhere until then (the raft log, ADR 0008); after a
    /// crash the store ends at an earlier group, never a torn one.
    fn write_deferred(&self, set: WriteSet) -> Result<(), LogError> {
        self.write(set)
    }
    /// Makes every deferred write durable.
    fn sync(&self) -> Result<(), LogError> {
        Ok(())
    }
    /// The tag of the last write that had one; empty if none had.
    fn tag(&self) -> Result<Vec<u8>, LogError>;
    /// Bytes the engine occupies on disk.
    fn size_on_disk(&self) -> Result<u64, LogError>;
}

/// Checks that a stored value copied from another log follows `head` (its checksum, and its
/// hash chained to the one before) and returns the head after it.
pub fn check_link(head: StoreHead, value: &[u8]) -> Result<StoreHead, LogError> {
    let position = head.next_position;
    let raw = record::check(position, value)?;
    if record::chain_hash(&head.head_hash, raw.body) != raw.hash {
        return Err(LogError::Corrupt { position, reason: "copied record does not chain to the log before it".into() });
    }
    Ok(StoreHead { next_position: Position(position.0 + 1), head_hash: raw.hash })
}

/// Most bytes [`install_records`] writes in one group.
pub const INSTALL_GROUP_BYTES: usize = 32 * 1024 * 1024;

/// Takes each stored value of a copy (a snapshot's or a backup's) in position order.
pub type Visit<'a> = dyn FnMut(Position, &[u8]) -> Result<(), LogError> + 'a;

/// Appends stored values copied verbatim from another log (a snapshot sent by a leader, a
/// backup being restored) after this store's head: each must follow the last in position,
/// pass its checksum and chain to the hash before it, and the copy must end exactly at
/// `target`. Written in groups of at most [`INSTALL_GROUP_BYTES`]; an error leaves the store
/// at the last whole group.
pub fn install_records(
    store: &dyn Store,
    records: &mut dyn FnMut(&mut Visit<'_>) -> Result<(), LogError>,
    target: StoreHead,
) -> Result<StoreHead, LogError> {
    let mut head = store.head()?;
    let mut pending: Vec<NewRecord> = Vec::new();
    let mut bytes = 0usize;
    let flush = |pending: &mut Vec<NewRecord>, head: StoreHead| -> Result<(), LogError> {
        let set = WriteSet { records: std::mem::take(pending), stream_heads: Vec::new(), head, tag: None };
        store.write(set)
    };
    records(&mut |position, value| {
        if position != head.next_position {
            return Err(LogError::Corrupt {
                position,
                reason: format!("copied record out of order (expected {})", head.next_position.0),
            });
        }
        let next = check_link(head, value)?;
        let envelope = record::decode(position, value)?;
        let stream_id = StreamId::parse(&envelope.stream_id)
            .map_err(|e| LogError::Corrupt { position, reason: format!("copied record stream id: {e}") })?;
        let event_id = EventId::from_slice(&envelope.event_id)
            .map_err(|e| LogError::Corrupt { position, reason: format!("copied record event id: {e}") })?;
        pending.push(NewRecord {
            position,
            stream_id,
            version: Version(envelope.version),
            event_id,
            value: value.to_vec(),
        });
        bytes += value.len();
        head = next;
        if bytes >= INSTALL_GROUP_BYTES {
            flush(&mut pending, head)?;
            bytes = 0;
        }
        Ok(())
    })?;
    if !pending.is_empty() {
        flush(&mut pending, head)?;
    }
    if head != target {
        return Err(LogError::Corrupt {
            position: head.next_position,
            reason: format!("the copy ends at position {} with another hash than its source's", head.next_position.0),
        });
    }
    Ok(head)
}
