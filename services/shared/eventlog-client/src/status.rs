//! The one place where event-log types meet their protobuf and gRPC forms: expected versions,
//! append results, and [`LogError`] ⇄ [`tonic::Status`]. The server and the client both use
//! it, so an error crosses the wire and comes back as the same value.

use haven_kernel::{ErrorCode, ExpectedVersion, Position, StreamId, Version};
use haven_proto::prost::Message;
use haven_proto::v1 as pb;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::{AppendOutcome, BatchItemOutcome, LogError, StreamAppend, WrongExpectedVersion};

const FIELD_KEY: &str = "haven-field";
const POSITION_KEY: &str = "haven-position";
const EVENT_ID_KEY: &str = "haven-event-id";

/// The gRPC code for a shared error code.
pub fn grpc_code(code: ErrorCode) -> Code {
    Code::from_i32(code.grpc_code())
}

/// Parses a protobuf expectation; a missing one is bad input naming `field`.
pub fn expected_from_proto(expected: Option<&pb::ExpectedVersion>, field: &str) -> Result<ExpectedVersion, LogError> {
    use pb::expected_version::Kind;
    match expected.and_then(|e| e.kind.as_ref()) {
        None => Err(LogError::invalid(field, "is required (any, no_stream, stream_exists or exact)")),
        Some(Kind::Any(_)) => Ok(ExpectedVersion::Any),
        Some(Kind::NoStream(_)) => Ok(ExpectedVersion::NoStream),
        Some(Kind::StreamExists(_)) => Ok(ExpectedVersion::StreamExists),
        Some(Kind::Exact(version)) => Ok(ExpectedVersion::Exact(Version(*version))),
    }
}

pub fn expected_to_proto(expected: ExpectedVersion) -> pb::ExpectedVersion {
    use pb::expected_version::{Any, Kind, NoStream, StreamExists};
    let kind = match expected {
        ExpectedVersion::Any => Kind::Any(Any {}),
        ExpectedVersion::NoStream => Kind::NoStream(NoStream {}),
        ExpectedVersion::StreamExists => Kind::StreamExists(StreamExists {}),
        ExpectedVersion::Exact(version) => Kind::Exact(version.0),
    };
    pb::ExpectedVersion { kind: Some(kind) }
}

pub fn outcome_to_proto(outcome: &AppendOutcome) -> pb::AppendResult {
    pb::AppendResult {
        first_version: outcome.first_version.0,
        last_version: outcome.last_version.0,
        first_position: outcome.first_position.0,
        last_position: outcome.last_position.0,
        duplicate: outcome.duplicate,
    }
}

pub fn outcome_from_proto(result: &pb::AppendResult) -> AppendOutcome {
    AppendOutcome {
        first_version: Version(result.first_version),
        last_version: Version(result.last_version),
        first_position: Position(result.first_position),
        last_position: Position(result.last_position),
        duplicate: result.duplicate,
    }
}

pub fn wrong_version_to_proto(error: &WrongExpectedVersion) -> pb::WrongExpectedVersion {
    pb::WrongExpectedVersion {
        stream_id: error.stream_id.to_string(),
        expected: Some(expected_to_proto(error.expected)),
        stream_exists: error.actual.is_some(),
        actual_version: error.actual.map_or(0, |v| v.0),
    }
}

pub fn wrong_version_from_proto(error: &pb::WrongExpectedVersion) -> Result<WrongExpectedVersion, LogError> {
    let stream_id = StreamId::parse(&error.stream_id)
        .map_err(|e| LogError::Internal(format!("server sent a bad stream id: {e}")))?;
    let expected = expected_from_proto(error.expected.as_ref(), "wrong_expected_version.expected")?;
    let actual = error.stream_exists.then_some(Version(error.actual_version));
    Ok(WrongExpectedVersion { stream_id, expected, actual })
}

/// Turns an error into the status sent to a gRPC caller.
/// One stream append in its protobuf form.
pub fn append_to_proto(append: StreamAppend) -> pb::AppendRequest {
    pb::AppendRequest {
        stream_id: append.stream_id.to_string(),
        expected: Some(expected_to_proto(append.expected)),
        events: append.events,
    }
}

/// A batch's outcomes in their protobuf form.
pub fn batch_to_proto(outcomes: &[BatchItemOutcome]) -> pb::AppendBatchResponse {
    let items = outcomes
        .iter()
        .map(|outcome| pb::AppendBatchItem {
            outcome: Some(match outcome {
                Ok(result) => pb::append_batch_item::Outcome::Result(outcome_to_proto(result)),
                Err(wrong) => pb::append_batch_item::Outcome::WrongExpectedVersion(wrong_version_to_proto(wrong)),
            }),
        })
        .collect();
    pb::AppendBatchResponse { items }
}

/// A batch's outcomes from their protobuf form.
pub fn batch_from_proto(response: &pb::AppendBatchResponse) -> Result<Vec<BatchItemOutcome>, LogError> {
    response
        .items
        .iter()
        .map(|item| match &item.outcome {
            Some(pb::append_batch_item::Outcome::Result(result)) => Ok(Ok(outcome_from_proto(result))),
            Some(pb::append_batch_item::Outcome::WrongExpectedVersion(wrong)) => {
                Ok(Err(wrong_version_from_proto(wrong)?))
            }
            None => Err(LogError::Internal("batch item without an outcome".into())),
        })
        .collect()
}

pub fn to_status(error: &LogError) -> Status {
    let code = grpc_code(error.code());
    let message = error.to_string();
    let mut status = match error {
        LogError::WrongExpectedVersion(wrong) => {
            Status::with_details(code, message, wrong_version_to_proto(wrong).encode_to_vec().into())
        }
        _ => Status::new(code, message),
    };
    let metadata = status.metadata_mut();
    match error {
        LogError::InvalidArgument { field, .. } => {
            if let Ok(value) = MetadataValue::try_from(field.as_str()) {
                metadata.insert(FIELD_KEY, value);
            }
        }
        LogError::EventIdConflict { event_id } => {
            if let Ok(value) = MetadataValue::try_from(event_id.as_str()) {
                metadata.insert(EVENT_ID_KEY, value);
            }
        }
        LogError::Corrupt { position, .. } => {
            metadata.insert(POSITION_KEY, MetadataValue::from(position.0));
        }
        _ => {}
    }
    status
}

/// Turns a status received from a log node back into the error it was made from.
pub fn from_status(status: &Status) -> LogError {
    let meta = |key: &str| status.metadata().get(key).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // The message is `<Display of the original error>`; strip the prefix we added there.
    let message = status.message().to_owned();
    match status.code() {
        Code::InvalidArgument => {
            let field = meta(FIELD_KEY).unwrap_or_default();
            let prefix = format!("invalid {field}: ");
            let reason = message.strip_prefix(&prefix).unwrap_or(&message).to_owned();
            LogError::InvalidArgument { field, reason }
        }
        Code::Aborted => match pb::WrongExpectedVersion::decode(status.details()) {
            Ok(detail) => match wrong_version_from_proto(&detail) {
                Ok(wrong) => LogError::WrongExpectedVersion(wrong),
                Err(error) => error,
            },
            Err(_) => LogError::Internal(format!("aborted without a version detail: {message}")),
        },
        Code::AlreadyExists => LogError::EventIdConflict { event_id: meta(EVENT_ID_KEY).unwrap_or_default() },
        Code::ResourceExhausted => {
            LogError::ResourceExhausted(message.strip_prefix("resource exhausted: ").unwrap_or(&message).to_owned())
        }
        Code::DataLoss => LogError::Corrupt {
            position: Position(meta(POSITION_KEY).and_then(|p| p.parse().ok()).unwrap_or_default()),
            reason: message,
        },
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Unknown => {
            LogError::Unavailable(message.strip_prefix("event log unavailable: ").unwrap_or(&message).to_owned())
        }
        _ => LogError::Internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(error: LogError) {
        let back = from_status(&to_status(&error));
        assert_eq!(back, error);
    }

    #[test]
    fn errors_survive_the_wire() {
        round_trip(LogError::invalid("events[1].event_id", "is not a 16-byte UUID (got 3 bytes)"));
        round_trip(LogError::WrongExpectedVersion(WrongExpectedVersion {
            stream_id: StreamId::parse("school-oak").unwrap(),
            expected: ExpectedVersion::Exact(Version(4)),
            actual: Some(Version(7)),
        }));
        round_trip(LogError::WrongExpectedVersion(WrongExpectedVersion {
            stream_id: StreamId::parse("school-oak").unwrap(),
            expected: ExpectedVersion::StreamExists,
            actual: None,
        }));
        round_trip(LogError::EventIdConflict { event_id: "0191f0c4-7c1e-7d3a-9d55-000000000001".into() });
        round_trip(LogError::ResourceExhausted("subscriber fell behind; resume from position 12".into()));
        round_trip(LogError::Unavailable("shutting down".into()));
    }

    #[test]
    fn every_error_keeps_its_code_across_the_wire() {
        let errors = [
            LogError::invalid("stream_id", "is empty"),
            LogError::EventIdConflict { event_id: "x".into() },
            LogError::Corrupt { position: Position(9), reason: "checksum".into() },
            LogError::Internal("boom".into()),
        ];
        for error in errors {
            assert_eq!(from_status(&to_status(&error)).code(), error.code(), "{error}");
        }
    }
}
