//! Incidents (DESIGN.md §5): it owns concerns (`concern-<id>`), safeguarding cases
//! (`incident-<id>`) and the escalation of ingest's alerts (`alert-<id>`, shared with ingest,
//! which writes the first event).
//!
//! ```text
//!  staff ─ RaiseConcern ─▶ concern ─ TriageConcern (DSL; principal for colleagues) ─▶ case
//!  case: checklist per type (domain/checklist.rs, versioned) ─ actions, referrals, parents,
//!        imagery records, deletions, links, risk, grants ─▶ Close (nothing outstanding) / Reopen
//!  alert: SafeguardingAlertRaised ─ timer: escalations_due(state, now) ─▶ AlertEscalated…
//!  gRPC (grpc/) ─▶ need to know (domain/access.rs) ─▶ app.rs ─▶ log
//!  log ─▶ index.rs (cases, concerns, alerts folded) ─▶ lists, chronologies, escalation.rs's timer
//! ```
//! The domain is pure (no clock, ids or I/O). It must never let a case close with a required
//! action outstanding, delete material without the DSL's confirmation, or show an allegation
//! to the person it is about. Free text stays in event payloads: never in logs or metrics.

mod app;
mod config;
pub mod demo;
pub mod domain;
mod error;
pub mod escalation;
pub mod events;
mod grpc;
pub mod index;
pub mod metrics;

pub use app::{
    CommandContext, EventIds, IncidentsApp, alert_stream, case_stream, concern_id_for_alert, concern_stream,
};
pub use config::IncidentsConfig;
pub use error::Error;
pub use grpc::IncidentsService;
pub use index::IncidentsIndex;
