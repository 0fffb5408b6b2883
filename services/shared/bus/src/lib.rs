//! Domain events over NATS, and the same interface without it.
//!
//! ```text
//!  event log ──subscribe──▶ Relay ──JetStream HAVEN_EVENTS──▶ NatsSource ─┐
//!   (the record)  (one at a time: Lease)   haven.events.<category>.<school>.<type>
//!       │                                                                 ├─▶ Consumer ─▶ Projection
//!       ├──subscribe──────────────────────────────────────▶ EmbeddedSource┘  (checkpoint stored
//!       └──read_all (catch-up, holes) ─────────────────────────────────────▶   with its state)
//!
//!  edge collectors ──IngestBuffer──▶ JetStream HAVEN_INGEST (work queue) ──▶ ingest service
//! ```
//! The log is the only record: NATS carries domain events for fan-out and distance, and any
//! event NATS loses is read again from the log (ADR 0009). This crate owns the subjects, the
//! message format, the relay and its lease, the consumer library and the ingest buffer. It
//! never puts personal data in a subject, header, log line or metric label: subjects carry
//! category, school id and event type only; payloads travel as stored.

mod codec;
mod consumer;
mod error;
mod ingest;
mod lease;
mod metrics;
mod nats;
mod projection;
mod redb_projection;
mod relay;
mod relay_checkpoint;
mod source;
pub mod subject;
mod trace;

pub use codec::{
    HEADER_EVENT_TYPE, HEADER_MSG_ID, HEADER_POSITION, HEADER_TRACEPARENT, HEADER_TRACESTATE, Outbound, decode, encode,
};
pub use consumer::{Consumer, RetryPolicy};
pub use error::{BusError, HandlerError};
pub use ingest::{INGEST_PULL_BATCH, IngestBatch, IngestBuffer, IngestConsumer, MAX_INGEST_BATCH_LINES};
pub use lease::{LEASE_BUCKET, Lease, LeaseKeeper};
pub use metrics::BusMetrics;
pub use nats::{DUPLICATE_WINDOW, EVENTS_STREAM, INGEST_STREAM, MAX_INGEST_BATCH_BYTES, Nats, NatsUrl};
pub use projection::{ApplyError, Batch, ParkedEvent, Projection, ProjectionName};
pub use redb_projection::{RedbHandler, RedbProjection, parked_events};
pub use relay::{Relay, RelayConfig};
pub use relay_checkpoint::CheckpointFile;
pub use source::{Delivery, EmbeddedSource, NatsSource, Source};
