//! The bus's errors. Infrastructure failures (NATS, the log, a projection's store) are
//! [`BusError`]; a handler refusing one event is a [`HandlerError`], which leads to retries and
//! parking, never to a stopped consumer.

use haven_eventlog_client::LogError;
/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Bad input or configuration; `field` names what is wrong.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// NATS or JetStream refused or did not answer; `operation` says what was being done.
    #[error("nats {operation} failed: {reason}")]
    Nats { operation: &'static str, reason: String },
    #[error(transparent)]
    Log(#[from] LogError),
    /// A projection's own store failed (not a handler refusing an event).
    #[error("projection {projection} store failed: {reason}")]
    Store { projection: String, reason: String },
    /// A message on the bus is not what the relay publishes.
    #[error("malformed bus message at stream sequence {sequence}: {reason}")]
    Malformed { sequence: u64, reason: String },
    /// The relay lost its lease while publishing; another relay may now publish.
    #[error("relay lease lost")]
    LeaseLost,
    /// A source ended (a subscription was cut, a consumer deleted); the consumer reopens it.
    #[error("event source ended")]
    SourceEnded,
    #[error("relay checkpoint file {path}: {reason}")]
    Checkpoint { path: String, reason: String },
}

impl BusError {
    pub(crate) fn nats(operation: &'static str, error: impl std::fmt::Display) -> Self {
        BusError::Nats { operation, reason: error.to_string() }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        BusError::Invalid { field, reason: reason.into() }
    }
}

/// A handler refused an event. `kind` is a short, fixed label (it goes into logs and the
/// parked record's summary); `detail` may carry anything the handler knows and is kept only in
/// the parked record, never in logs or metrics (it could hold personal data).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("handler refused the event ({kind})")]
pub struct HandlerError {
    pub kind: &'static str,
    pub detail: String,
}

impl HandlerError {
    pub fn new(kind: &'static str, detail: impl Into<String>) -> Self {
        HandlerError { kind, detail: detail.into() }
    }
}
