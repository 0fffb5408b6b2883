//! `incidents::Error`: domain refusals and infrastructure failures, each with the shared code.

use haven_eventlog_client::LogError;
use haven_kernel::{ErrorCode, Version};

use crate::domain::{AccessRefusal, AlertError, CaseError, ConcernError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; nothing changed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// Not there, or the caller may not know it is there (need to know answers the same).
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Case(#[from] CaseError),
    #[error(transparent)]
    Concern(#[from] ConcernError),
    #[error(transparent)]
    Alert(#[from] AlertError),
    /// The caller's role allows the method but not this record.
    #[error("permission denied: {0}")]
    Denied(AccessRefusal),
    /// The caller decided against an older version of the stream: re-read and retry.
    #[error("{stream} moved on: expected version {expected}, it is at {actual:?}")]
    Conflict { stream: String, expected: Version, actual: Option<Version> },
    /// Concurrent writers kept moving the stream; the caller may retry.
    #[error("{stream} kept changing; gave up after {attempts} attempts")]
    Contended { stream: String, attempts: u32 },
    /// A stored incidents event could not be read back.
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
            Error::Case(error) => case_code(error),
            Error::Concern(error) => match error {
                ConcernError::AlreadyRaised => ErrorCode::AlreadyExists,
                ConcernError::NotRaised => ErrorCode::NotFound,
                ConcernError::AlreadyTriaged => ErrorCode::Conflict,
                ConcernError::PrincipalTriages => ErrorCode::PermissionDenied,
                ConcernError::NobodyNamed(_) | ConcernError::AboutTheRaiser | ConcernError::Invalid { .. } => {
                    ErrorCode::InvalidArgument
                }
            },
            Error::Alert(AlertError::NotRaised) => ErrorCode::NotFound,
            Error::Alert(AlertError::AlreadyAcknowledged) => ErrorCode::Conflict,
            Error::Alert(AlertError::Invalid { .. }) => ErrorCode::InvalidArgument,
            Error::Denied(_) => ErrorCode::PermissionDenied,
            Error::Conflict { .. } | Error::Contended { .. } => ErrorCode::Conflict,
            Error::UnreadableEvent { .. } => ErrorCode::DataLoss,
            Error::Log(error) => error.code(),
        }
    }
}

fn case_code(error: &CaseError) -> ErrorCode {
    match error {
        CaseError::AlreadyOpened => ErrorCode::AlreadyExists,
        CaseError::NotOpened | CaseError::UnknownReferral(_) => ErrorCode::NotFound,
        CaseError::DeletionByDslOnly | CaseError::PrincipalGrantsOnly => ErrorCode::PermissionDenied,
        CaseError::Closed
        | CaseError::NotClosed
        | CaseError::OutstandingActions(_)
        | CaseError::ReferralsAwaitOutcome(_)
        | CaseError::ViewingRecordRequired
        | CaseError::DeletionNotConfirmed
        | CaseError::OutcomeAlreadyRecorded(_)
        | CaseError::SameRisk(_) => ErrorCode::Conflict,
        CaseError::UnknownAction(_)
        | CaseError::ReferralAgencyChanged(_)
        | CaseError::AllegationOutcomeRequired
        | CaseError::AllegationOutcomeNotExpected
        | CaseError::SubjectNotInCase(_)
        | CaseError::StaffRequired
        | CaseError::LinkedToItself
        | CaseError::GranteeIsSubject
        | CaseError::NotGranted(_)
        | CaseError::Invalid { .. } => ErrorCode::InvalidArgument,
    }
}
