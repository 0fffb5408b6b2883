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

use crate::record::GENESIS_HASH;

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
