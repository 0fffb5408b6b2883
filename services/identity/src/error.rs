//! `identity::Error`: domain refusals and infrastructure failures, each with the shared code.

use haven_eventlog_client::LogError;
use haven_kernel::ErrorCode;

use crate::domain::{AupError, SchoolError, SubjectError, SystemError, TrustError, UserError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; nothing changed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    School(#[from] SchoolError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Aup(#[from] AupError),
    #[error(transparent)]
    System(#[from] SystemError),
    #[error(transparent)]
    Subject(#[from] SubjectError),
    /// The login or password is wrong, or the account may not sign in. One message for every
    /// case, so it does not tell whether an account exists.
    #[error("the login or password is wrong")]
    SignInRefused,
    /// The token signing keys cannot be read, written or used.
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    /// A bug or an unexpected failure of a local task.
    #[error("internal error: {0}")]
    Internal(String),
    /// Concurrent writers kept moving the stream; the caller may retry.
    #[error("{stream} kept changing; gave up after {attempts} attempts")]
    Contended { stream: String, attempts: u32 },
    /// A stored identity event could not be read back.
    #[error("event at position {position} is not a readable {event_type}: {reason}")]
    UnreadableEvent { position: u64, event_type: String, reason: String },
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
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::School(SchoolError::AlreadyRegistered) | Error::Trust(TrustError::AlreadyEstablished) => {
                ErrorCode::AlreadyExists
            }
            Error::School(SchoolError::NotRegistered) => ErrorCode::NotFound,
            Error::School(SchoolError::InvalidName(_) | SchoolError::PupilCountOutOfRange(_))
            | Error::Trust(TrustError::InvalidName(_)) => ErrorCode::InvalidArgument,
            Error::User(error) => user_code(error),
            Error::Aup(AupError::NotNextVersion { .. }) => ErrorCode::Conflict,
            Error::Aup(AupError::SameText) => ErrorCode::AlreadyExists,
            Error::System(SystemError::AlreadyIssued) => ErrorCode::AlreadyExists,
            Error::System(SystemError::NotIssued) => ErrorCode::NotFound,
            Error::System(SystemError::OtherSchool(_)) => ErrorCode::Conflict,
            Error::System(SystemError::InvalidSystemId | SystemError::NotArgon2id) => ErrorCode::InvalidArgument,
            Error::Subject(SubjectError::AlreadyRegistered) => ErrorCode::AlreadyExists,
            Error::Subject(SubjectError::NotRegistered) => ErrorCode::NotFound,
            Error::Subject(
                SubjectError::InvalidSubjectId
                | SubjectError::InvalidName(_)
                | SubjectError::YearGroupOutOfRange(_)
                | SubjectError::InvalidNetworkLogin(_),
            ) => ErrorCode::InvalidArgument,
            Error::SignInRefused => ErrorCode::Unauthenticated,
            Error::Internal(_) | Error::Keys(_) => ErrorCode::Internal,
            Error::Contended { .. } => ErrorCode::Conflict,
            Error::UnreadableEvent { .. } => ErrorCode::DataLoss,
            Error::Log(error) => error.code(),
        }
    }
}

fn user_code(error: &UserError) -> ErrorCode {
    match error {
        UserError::AlreadyRegistered | UserError::AlreadyGranted => ErrorCode::AlreadyExists,
        UserError::NotRegistered | UserError::NotGranted => ErrorCode::NotFound,
        UserError::InvalidDisplayName(_)
        | UserError::InvalidLogin(_)
        | UserError::InvalidReason(_)
        | UserError::RoleNotAllowedInScope { .. }
        | UserError::NotArgon2id
        | UserError::SessionExpiresBeforeStart => ErrorCode::InvalidArgument,
        UserError::Disabled
        | UserError::AlreadyDisabled
        | UserError::NoAupPublished
        | UserError::NotCurrentAup { .. } => ErrorCode::Conflict,
        UserError::Locked { .. } | UserError::TryLater { .. } => ErrorCode::ResourceExhausted,
        UserError::SessionNotUsable => ErrorCode::Unauthenticated,
    }
}
