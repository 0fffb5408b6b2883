//! `custody::Error`: domain refusals and infrastructure failures, each with the shared code.

use haven_eventlog_client::LogError;
use haven_kernel::ErrorCode;

use crate::domain::{CustodyError, RegisterError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; nothing changed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Custody(#[from] CustodyError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// Concurrent writers kept moving the stream; the caller may retry.
    #[error("{stream} kept changing; gave up after {attempts} attempts")]
    Contended { stream: String, attempts: u32 },
    /// A stored custody event could not be read back.
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
            Error::Custody(error) => custody_code(error),
            Error::Register(error) => register_code(error),
            Error::Contended { .. } => ErrorCode::Conflict,
            Error::UnreadableEvent { .. } => ErrorCode::DataLoss,
            Error::Log(error) => error.code(),
        }
    }
}

fn custody_code(error: &CustodyError) -> ErrorCode {
    use CustodyError as E;
    match error {
        E::AlreadySeized | E::DeletionAlreadyRequested(_) | E::DeletionAlreadyDone(_) | E::HoldAlreadyStands(_) => {
            ErrorCode::AlreadyExists
        }
        E::NotSeized | E::DeletionNotRequested(_) | E::HoldNotPlaced(_) => ErrorCode::NotFound,
        E::Invalid { .. }
        | E::TimeBeforeLastStep { .. }
        | E::PoliceReferenceRequired
        | E::NoConsentOrAuthority
        | E::AuthorityDoesNotFitOwner(_)
        | E::ImageryWithoutDslRecord
        | E::WitnessRequired(_)
        | E::WitnessIsActor
        | E::SealMismatch
        | E::NoteRequiredWhenNotPoweredOff
        | E::RecipientDoesNotFitOwner(_)
        | E::CollectorRequired
        | E::DeletionAuthorityIncomplete(..) => ErrorCode::InvalidArgument,
        E::SearcherNotLeadership => ErrorCode::PermissionDenied,
        E::Ended(_) | E::NotSealed | E::AlreadySealed | E::NotOpened | E::HoldStands(_) | E::TooManyDeletions => {
            ErrorCode::Conflict
        }
    }
}

fn register_code(error: &RegisterError) -> ErrorCode {
    use RegisterError as E;
    match error {
        E::AlreadyRegistered => ErrorCode::AlreadyExists,
        E::NotRegistered => ErrorCode::NotFound,
        E::Invalid { .. } | E::LostMeansMissing => ErrorCode::InvalidArgument,
        E::AlreadyAllocated
        | E::NotAllocated
        | E::NotWiped
        | E::NotCurrentAup { .. }
        | E::StillAllocated
        | E::NotManaged
        | E::NothingToWipe => ErrorCode::Conflict,
    }
}
