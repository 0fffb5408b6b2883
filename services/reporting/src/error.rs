//! `reporting::Error`: bad requests, refusals and log failures, each with the shared code.

use haven_eventlog_client::LogError;
use haven_kernel::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; nothing was read or recorded.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The caller may not see this report or record.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The projection is being rebuilt and has not reached the head it started from.
    #[error("projection {0} is rebuilding; retry shortly")]
    Rebuilding(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

impl Error {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { field: field.to_owned(), reason: reason.into() }
    }

    /// The shared code deciding the gRPC and HTTP status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Error::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Rebuilding(_) => ErrorCode::Unavailable,
            Error::Log(error) => error.code(),
        }
    }
}
