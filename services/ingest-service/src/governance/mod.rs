//! The filtering record (issue 7 item 5; policy 7.3.1; DfE filtering and monitoring standards;
//! ADR 0022): filtering-policy changes asked for by technical staff with their risk assessment,
//! decided by the school's leadership (principal or DSL, never the requester) and applied by
//! technical staff once approved; filter-effectiveness checks with their results; over-blocking
//! reports (the unblock requests of teaching staff); the annual review held with the governor.
//!
//! ```text
//!  domain.rs  ChangeDecider (filterchange-<id>) · RecordDecider (filtering-<school>), pure
//!  app.rs     load ─▶ fold ─▶ decide ─▶ append(expected version) ─▶ retry; facts looked up
//!  index.rs   read model of every school's changes and record, followed from the log
//!  report.rs  the filtering report of a window: checks, reviews, over-blocking and waits
//! ```
//! Free text (reasons, risk assessments, findings) lives only in event payloads: never in a
//! log line, span, metric or error message.

pub mod app;
pub mod demo;
pub mod domain;
pub mod error;
pub mod events;
pub mod index;
pub mod report;

pub use app::{CommandContext, GovernanceApp, derived_id};
pub use error::Error;
pub use index::GovernanceIndex;
