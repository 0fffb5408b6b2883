//! One small error-code enum decides both the gRPC status and the HTTP status of a failure,
//! so the two edges can never disagree about what went wrong.

use std::fmt;

/// The kind of a failure, as callers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed; the message names the field.
    InvalidArgument,
    /// The caller is not signed in, or the token is invalid.
    Unauthenticated,
    /// The caller is signed in but may not do this (role, scope or need to know).
    PermissionDenied,
    /// The thing asked for does not exist (or the caller may not know it exists).
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// The state moved on (wrong expected version, a rule of the domain refuses it now).
    Conflict,
    /// A limit was hit (rate, size, a slow subscriber); retry later or smaller.
    ResourceExhausted,
    /// A dependency is not ready or not reachable; retry.
    Unavailable,
    /// Stored data failed its checksum or hash check.
    DataLoss,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::InvalidArgument,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::Conflict,
        ErrorCode::ResourceExhausted,
        ErrorCode::Unavailable,
        ErrorCode::DataLoss,
        ErrorCode::Internal,
    ];

    /// The gRPC status code number (grpc/doc/statuscodes.md).
    pub const fn grpc_code(self) -> i32 {
        match self {
            ErrorCode::InvalidArgument => 3,
            ErrorCode::NotFound => 5,
            ErrorCode::AlreadyExists => 6,
            ErrorCode::PermissionDenied => 7,
            ErrorCode::ResourceExhausted => 8,
            ErrorCode::Conflict => 10, // ABORTED: the caller should re-read and retry
            ErrorCode::Internal => 13,
            ErrorCode::Unavailable => 14,
            ErrorCode::DataLoss => 15,
            ErrorCode::Unauthenticated => 16,
        }
    }

    /// The HTTP status code.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists | ErrorCode::Conflict => 409,
            ErrorCode::ResourceExhausted => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::DataLoss | ErrorCode::Internal => 500,
        }
    }

    /// The stable snake_case name used in HTTP error bodies.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::Conflict => "conflict",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DataLoss => "data_loss",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_client_errors_are_4xx() {
        let names: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            let http = code.http_status();
            let server_side = matches!(code, ErrorCode::Unavailable | ErrorCode::DataLoss | ErrorCode::Internal);
            assert_eq!(http >= 500, server_side, "{code} maps to {http}");
            assert!(code.grpc_code() > 0 && code.grpc_code() <= 16);
        }
    }
}
