//! Reporting: what the trust's safeguarding lead, DSLs, governors and auditors look at —
//! projections of the event log only, every one rebuildable by replay (DESIGN.md §5).
//!
//! ```text
//!  event log ──read_stream / read_all──▶ audit      (history as of, actor actions, accesses, chain)
//!      │
//!      └──Consumer (haven-bus) ──▶ ReportingProjection ──▶ ReportView (pre-aggregated)
//!                                   state + checkpoint      ├─ dashboard, trends, registers
//!                                   in one lock             └─ governors' report (HTML)
//!  grpc::ReportingService ── haven-authz ──▶ audit | view
//! ```
//! It owns no other service's data: it decodes their published events (`haven-proto`) and
//! never calls their crates. The only events it writes are about its own use: reads of
//! sensitive records (`access-<stream>`), register openings, chain verifications and rebuild
//! requests. It must not put a name, free text or subject id in a log line or metric, and the
//! governors' report carries aggregates only, small counts suppressed.

#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
mod error;
pub mod events;
pub mod grpc;
pub mod projection;
pub mod time;

pub use audit::{AsOf, Audit, ChainReport, Page, StreamHistory};
pub use config::Limits;
pub use error::Error;
pub use projection::{ReportState, ReportView, ReportingProjection};

use haven_proto::v1 as pb;

/// Who is reading and when, for the events that record a read. Ids and time come from the
/// caller (the gRPC shell), never from inside reporting's logic.
#[derive(Clone, Debug)]
pub struct RecordContext {
    pub actor: pb::Actor,
    pub occurred_at: prost_types::Timestamp,
    /// A fresh UUIDv7 (16 bytes) for the event to append.
    pub event_id: [u8; 16],
}

impl RecordContext {
    /// The proposed event, with the schema version 1.
    pub fn proposed(&self, event_type: &str, school_id: &str, payload: Vec<u8>) -> pb::ProposedEvent {
        pb::ProposedEvent {
            event_id: self.event_id.to_vec(),
            event_type: event_type.to_owned(),
            schema_version: 1,
            school_id: school_id.to_owned(),
            occurred_at: Some(self.occurred_at),
            actor: Some(self.actor.clone()),
            correlation_id: Vec::new(),
            causation_id: Vec::new(),
            trace_context: None,
            payload,
        }
    }
}
