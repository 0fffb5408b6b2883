//! How a Haven service talks to the event log.
//!
//! ```text
//!  service shell ──▶ dyn EventLog ──┬─▶ in-process log (embedded `haven up`, haven-eventlog)
//!                                   └─▶ GrpcEventLog ──tonic──▶ haven.v1.EventLog on a log node
//! ```
//! One trait, [`EventLog`], with one behaviour whichever side of the wire the log is on; the
//! [`conformance`] suite (feature `conformance`) proves it for every implementation. Errors are
//! [`LogError`]: typed, each with an [`haven_kernel::ErrorCode`], mapped to and from gRPC
//! statuses in exactly one place ([`status`]).
//!
//! This crate owns no storage and no policy: it validates nothing the log itself does not
//! validate, so a remote caller and a local one see the same refusals.

pub mod chain;
mod client;
mod error;
mod filter;
mod follow;
mod grpc;
pub mod status;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use client::{
    AllSlice, AppendOutcome, BatchItemOutcome, EventLog, Head, ReadStream, StreamAppend, StreamSlice, Subscription,
    SubscriptionBatch,
};
pub use error::{LogError, WrongExpectedVersion};
pub use filter::matches;
pub use follow::follow_log;
pub use grpc::GrpcEventLog;
pub use haven_proto::v1::{EventEnvelope, EventFilter, ProposedEvent};
