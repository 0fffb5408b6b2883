//! The event log's errors, as every caller sees them.

use haven_kernel::{ErrorCode, ExpectedVersion, Position, StreamId, Version};

/// The stream did not match the writer's expectation. Carries what it actually is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream {stream_id} is at {actual:?}, expected {expected:?}")]
pub struct WrongExpectedVersion {
    pub stream_id: StreamId,
    pub expected: ExpectedVersion,
    /// The stream's last version; `None` when it does not exist.
    pub actual: Option<Version>,
}

/// Why an event-log call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// Bad input: nothing was written. `field` names what is wrong (`events[2].event_id`).
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error(transparent)]
    WrongExpectedVersion(#[from] WrongExpectedVersion),
    /// An event id is already in the log with different content, or in a different call.
    #[error("event id {event_id} was already appended with different content or in another call")]
    EventIdConflict { event_id: String },
    /// A limit was hit (a subscriber that fell behind, a full queue).
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The log cannot serve now (shutting down, not the leader, unreachable); retry.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// A stored record failed its checksum; it is never returned.
    #[error("stored event at position {position} is corrupt: {reason}")]
    Corrupt { position: Position, reason: String },
    #[error("event log internal error: {0}")]
    Internal(String),
}

impl LogError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        LogError::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    /// The shared code deciding the gRPC and HTTP status.
    pub fn code(&self) -> ErrorCode {
        match self {
            LogError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            LogError::WrongExpectedVersion(_) => ErrorCode::Conflict,
            LogError::EventIdConflict { .. } => ErrorCode::AlreadyExists,
            LogError::ResourceExhausted(_) => ErrorCode::ResourceExhausted,
            LogError::Unavailable(_) => ErrorCode::Unavailable,
            LogError::Corrupt { .. } => ErrorCode::DataLoss,
            LogError::Internal(_) => ErrorCode::Internal,
        }
    }
}
