//! The filtering record's `Error`: domain refusals and infrastructure failures, each with the
//! shared code that decides the gRPC (and HTTP) status (ADR 0005).

use haven_eventlog_client::LogError;
use haven_kernel::ErrorCode;

use super::domain::GovernanceError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input found before the domain ran; nothing changed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error(transparent)]
    Refused(#[from] GovernanceError),
    /// Concurrent writers kept moving the stream; the caller may retry.
    #[error("{stream} kept changing; gave up after {attempts} attempts")]
    Contended { stream: String, attempts: u32 },
    /// The stream holds more events than the record is allowed to load.
    #[error("{stream} holds more than {limit} events")]
    TooLong { stream: String, limit: usize },
    #[error("event at position {position} is not a readable {event_type}: {reason}")]
    UnreadableEvent { position: u64, event_type: String, reason: String },
    #[error(transparent)]
    Log(#[from] LogError),
}

impl Error {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { field: field.to_owned(), reason: reason.into() }
    }

    pub fn code(&self) -> ErrorCode {
        use GovernanceError as G;
        match self {
            Error::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Error::Refused(refusal) => match refusal {
                G::Invalid { .. } | G::UnknownReport(_) | G::NotAGovernor => ErrorCode::InvalidArgument,
                G::NoSuchChange => ErrorCode::NotFound,
                G::AlreadyRequested => ErrorCode::AlreadyExists,
                G::NotPending(_) | G::NotApproved(_) => ErrorCode::Conflict,
                G::DeciderIsRequester => ErrorCode::PermissionDenied,
            },
            Error::Contended { .. } => ErrorCode::Conflict,
            Error::TooLong { .. } => ErrorCode::ResourceExhausted,
            Error::UnreadableEvent { .. } => ErrorCode::DataLoss,
            Error::Log(error) => error.code(),
        }
    }

    /// The gRPC status: the code decides; the message names the field or the rule.
    pub fn status(&self) -> tonic::Status {
        tonic::Status::new(tonic::Code::from_i32(self.code().grpc_code()), self.to_string())
    }
}
