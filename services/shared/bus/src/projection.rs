//! What a projection is to the bus.
//!
//! A projection owns its state and its checkpoint (one past the last position whose effects
//! it stored) and stores them together: [`Projection::apply`] gets a batch of events and the
//! checkpoint to store *in the same transaction*. A crash anywhere leaves either both or
//! neither, so no event is ever applied twice or lost. [`crate::RedbProjection`] does this
//! for projections kept in a redb file; an in-memory projection rebuilt on every start gets
//! it for free.

use async_trait::async_trait;
use haven_eventlog_client::EventFilter;
use haven_kernel::Position;
use haven_proto::v1::EventEnvelope;
use serde::{Deserialize, Serialize};

use crate::{BusError, HandlerError};

/// A projection's name: 1..=64 of `[a-z0-9_-]`. It names the durable JetStream consumer and
/// labels metrics, so it must be unique in a deployment and stable across releases.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProjectionName(String);

impl ProjectionName {
    pub fn parse(raw: &str) -> Result<Self, BusError> {
        let ok = (1..=64).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(BusError::invalid("projection name", format!("{raw:?} must be 1 to 64 of a-z, 0-9, _ and -")));
        }
        Ok(ProjectionName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event a projection could not handle after every retry, set aside so the projection can
/// go on. Stored with the checkpoint that moves past it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedEvent {
    pub position: u64,
    /// The event id as a UUID string.
    pub event_id: String,
    pub event_type: String,
    pub stream_id: String,
    pub attempts: u32,
    /// The handler's fixed error label.
    pub error_kind: String,
    /// The handler's detail; kept here only, never logged.
    pub error_detail: String,
}

/// One atomic step of a projection.
#[derive(Debug)]
pub struct Batch<'a> {
    /// Events matching the projection's filter, in position order, all at or after the
    /// stored checkpoint and before `checkpoint`.
    pub events: &'a [EventEnvelope],
    /// The checkpoint to store with this batch's effects.
    pub checkpoint: Position,
    /// An event to record as parked, with the same transaction.
    pub parked: Option<&'a ParkedEvent>,
}

/// Why a batch was not stored. Either way nothing of it is stored.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The handler refused `events[index]`.
    #[error("event {index} of the batch refused: {error}")]
    Handler { index: usize, error: HandlerError },
    /// The projection's store failed; the consumer resumes from the stored checkpoint.
    #[error("projection store: {0}")]
    Store(String),
}

/// A read model fed by the bus. Its calls never overlap.
#[async_trait]
pub trait Projection: Send + 'static {
    fn name(&self) -> &ProjectionName;

    /// The events it wants; others only move its checkpoint.
    fn filter(&self) -> EventFilter {
        EventFilter::default()
    }

    /// The stored checkpoint: one past the last position whose effects are stored.
    async fn checkpoint(&mut self) -> Result<Position, ApplyError>;

    /// Applies `batch.events` and stores `batch.checkpoint` (and `batch.parked`) atomically.
    async fn apply(&mut self, batch: Batch<'_>) -> Result<(), ApplyError>;

    /// Forgets everything, checkpoint included (`replay from 0`).
    async fn reset(&mut self) -> Result<(), ApplyError>;
}
