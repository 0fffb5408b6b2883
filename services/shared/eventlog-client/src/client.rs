//! The [`EventLog`] trait and the plain types it speaks.

use std::pin::Pin;

use async_trait::async_trait;
use futures_util::Stream;
use haven_kernel::{ExpectedVersion, Position, StreamId, Version};
use haven_proto::v1::{EventEnvelope, EventFilter, ProposedEvent};

use crate::{LogError, WrongExpectedVersion};

/// Appends for one stream.
#[derive(Clone, Debug)]
pub struct StreamAppend {
    pub stream_id: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<ProposedEvent>,
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    pub first_version: Version,
    pub last_version: Version,
    pub first_position: Position,
    pub last_position: Position,
    /// Every event was already in the log from an earlier call; nothing was written.
    pub duplicate: bool,
}

/// One stream's outcome within an `append_batch`.
pub type BatchItemOutcome = Result<AppendOutcome, WrongExpectedVersion>;

/// A read of one stream.
#[derive(Clone, Debug)]
pub struct ReadStream {
    pub stream_id: StreamId,
    /// First version to return; ignored for a backwards read with `from_end`.
    pub from_version: Version,
    pub from_end: bool,
    pub backwards: bool,
    /// 0 means the server's default page.
    pub limit: u32,
}

impl ReadStream {
    /// The whole stream forwards, one page of up to `limit` events from `from_version`.
    pub fn forwards(stream_id: StreamId, from_version: Version, limit: u32) -> Self {
        ReadStream { stream_id, from_version, from_end: false, backwards: false, limit }
    }

    /// The last `limit` events, newest first.
    pub fn last(stream_id: StreamId, limit: u32) -> Self {
        ReadStream { stream_id, from_version: Version(0), from_end: true, backwards: true, limit }
    }
}

/// A page of one stream.
#[derive(Clone, Debug, Default)]
pub struct StreamSlice {
    pub events: Vec<EventEnvelope>,
    /// The stream's last version, `None` when the stream does not exist.
    pub last_version: Option<Version>,
    pub end_of_stream: bool,
}

/// A page of `$all`.
#[derive(Clone, Debug, Default)]
pub struct AllSlice {
    pub events: Vec<EventEnvelope>,
    /// One past the last position examined; continue reading here.
    pub next_position: Position,
    pub end_of_log: bool,
}

/// The head of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The next position to be written (= the number of events in the log).
    pub next_position: Position,
    /// SHA-256 chain hash of the last event; zeros for an empty log.
    pub head_hash: [u8; 32],
}

/// What a subscription yields: events in position order and where to resume.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionBatch {
    pub events: Vec<EventEnvelope>,
    /// One past the last position examined: resume here.
    pub checkpoint: Position,
    /// True on the first batch after the subscriber reached the head.
    pub caught_up: bool,
}

/// A live subscription: history, then new events as they commit. Ends with an error when
/// the log ends it (a slow subscriber gets [`LogError::ResourceExhausted`]).
pub type Subscription = Pin<Box<dyn Stream<Item = Result<SubscriptionBatch, LogError>> + Send>>;

/// The event log, as every service sees it (DESIGN.md §4).
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends events to one stream atomically if `expected` holds; idempotent by event id.
    /// Acknowledged means durable.
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendOutcome, LogError>;

    /// Appends to many streams in one durable write; each stream has its own outcome.
    /// Bad input anywhere refuses the whole call and writes nothing.
    async fn append_batch(&self, appends: Vec<StreamAppend>) -> Result<Vec<BatchItemOutcome>, LogError>;

    /// Reads a page of one stream.
    async fn read_stream(&self, read: ReadStream) -> Result<StreamSlice, LogError>;

    /// Reads a page of `$all` from `from`, keeping events that match `filter`.
    async fn read_all(&self, from: Position, limit: u32, filter: &EventFilter) -> Result<AllSlice, LogError>;

    /// Subscribes to `$all` from `from`: history, then live, no gap, no duplicate.
    async fn subscribe(&self, from: Position, filter: EventFilter) -> Result<Subscription, LogError>;

    /// The head of the log.
    async fn head(&self) -> Result<Head, LogError>;

    /// Waits until reads from this log see every append acknowledged before the call began
    /// (a read index: on a replicated log the leader confirms it still leads with a quorum,
    /// and this node's store applies up to the commit it names). `Unavailable` when no quorum
    /// answers. Reads of a log that has no replicas are always current: the default does
    /// nothing.
    async fn read_barrier(&self) -> Result<(), LogError> {
        Ok(())
    }
}
