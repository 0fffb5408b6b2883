//! Conversions between custody's domain types and `haven.v1` messages, and request checks
//! that name the field at fault.

use haven_authz::{Caller, UserId};
use haven_kernel::{SchoolId, Version};
use haven_proto::v1 as pb;
use tonic::{Code, Status};

use crate::Error;
use crate::domain::{CustodyRecord, CustodyStatus, Holder, Owner, SchoolDevice, UnixTime};
use crate::events::{hold_to_proto, kind_to_proto, time_to_proto};

/// Longest client request id, in characters.
const MAX_REQUEST_ID_CHARS: usize = 100;

/// The gRPC status of a custody error (its code decides; the message names the field or rule).
pub fn status(error: Error) -> Status {
    Status::new(Code::from_i32(error.code().grpc_code()), error.to_string())
}

pub fn invalid(field: &str, reason: impl Into<String>) -> Status {
    status(Error::invalid(field, reason))
}

pub fn school_id(raw: &str, field: &str) -> Result<SchoolId, Status> {
    SchoolId::parse(raw).map_err(|e| invalid(field, e.to_string()))
}

/// A required user id.
pub fn user_id(raw: &str, field: &str) -> Result<String, Status> {
    UserId::parse(raw).map(|id| id.as_str().to_owned()).map_err(|e| invalid(field, e.to_string()))
}

/// The person who did a step: the one named, or the caller when empty.
pub fn person(raw: &str, field: &str, caller: &Caller) -> Result<String, Status> {
    if raw.is_empty() {
        return caller
            .principal
            .user_id()
            .map(|id| id.as_str().to_owned())
            .ok_or_else(|| invalid(field, "is required when the caller is not a person"));
    }
    user_id(raw, field)
}

/// An optional user id (a witness): empty means none.
pub fn optional_user(raw: &str, field: &str) -> Result<Option<String>, Status> {
    if raw.is_empty() { Ok(None) } else { user_id(raw, field).map(Some) }
}

pub fn optional(raw: String) -> Option<String> {
    (!raw.is_empty()).then_some(raw)
}

/// The client's request id: 1..=100 characters without control characters; a fresh one when
/// empty (the call is then not safely retryable).
pub fn request_id(raw: &str) -> Result<String, Status> {
    if raw.is_empty() {
        return Ok(uuid::Uuid::now_v7().to_string());
    }
    if raw.chars().count() > MAX_REQUEST_ID_CHARS || raw.chars().any(char::is_control) {
        return Err(invalid("request_id", "must be at most 100 characters, without control characters"));
    }
    Ok(raw.to_owned())
}

/// An id derived from the request id, so a retry names the same record.
pub fn derived_id(kind: &str, request_id: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("haven:custody:{kind}:{request_id}").as_bytes()).to_string()
}

pub fn time(raw: Option<&prost_types::Timestamp>) -> Option<UnixTime> {
    raw.map(|t| UnixTime(t.seconds))
}

fn status_to_proto(status: CustodyStatus) -> pb::CustodyStatus {
    match status {
        CustodyStatus::Seized => pb::CustodyStatus::Seized,
        CustodyStatus::Sealed => pb::CustodyStatus::Sealed,
        CustodyStatus::Stored => pb::CustodyStatus::Stored,
        CustodyStatus::Opened => pb::CustodyStatus::Opened,
        CustodyStatus::Held => pb::CustodyStatus::Held,
        CustodyStatus::WithPolice => pb::CustodyStatus::WithPolice,
        CustodyStatus::Returned => pb::CustodyStatus::Returned,
    }
}

pub fn record_to_proto(record: &CustodyRecord, version: Version) -> pb::CustodyRecord {
    let (from_subject_id, from_user_id) = match &record.from {
        Owner::Learner { subject_id } => (subject_id.clone(), String::new()),
        Owner::Staff { user_id } => (String::new(), user_id.clone()),
    };
    pb::CustodyRecord {
        custody_id: record.custody_id.clone(),
        school_id: record.school_id.to_string(),
        device_id: record.device_id.clone().unwrap_or_default(),
        device_description: record.device_description.clone(),
        from_subject_id,
        from_user_id,
        case_id: record.case_id.clone().unwrap_or_default(),
        status: status_to_proto(record.status()) as i32,
        seal_number: record.seal_number.clone().unwrap_or_default(),
        storage_location: record.storage_location.clone().unwrap_or_default(),
        active_holds: record.holds.iter().map(|kind| hold_to_proto(*kind) as i32).collect(),
        seal_broken_flag: record.seal_broken_flag,
        return_due_at: Some(time_to_proto(record.return_due_at)),
        version: version.0,
    }
}

pub fn device_to_proto(device: &SchoolDevice, version: Version) -> pb::SchoolDevice {
    let allocation = device.allocation.as_ref();
    let (allocated_to_user_id, allocated_to_subject_id) = match allocation.map(|a| &a.holder) {
        Some(Holder::Staff { user_id }) => (user_id.clone(), String::new()),
        Some(Holder::Learner { subject_id }) => (String::new(), subject_id.clone()),
        None => (String::new(), String::new()),
    };
    pb::SchoolDevice {
        device_id: device.device_id.clone(),
        school_id: device.school_id.to_string(),
        kind: kind_to_proto(device.kind) as i32,
        asset_tag: device.asset_tag.clone(),
        serial_number: device.serial_number.clone(),
        model: device.model.clone(),
        allocated_to_user_id,
        allocated_to_subject_id,
        allocated_at: allocation.map(|a| time_to_proto(a.allocated_at)),
        expected_return_at: allocation.and_then(|a| a.expected_return_at).map(time_to_proto),
        aup_version: allocation.map_or(0, |a| a.aup_version),
        awaiting_wipe: device.awaiting_wipe,
        version: version.0,
    }
}
