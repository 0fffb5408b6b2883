//! The filtering record's events on the log: their type names, and the one place their
//! payloads are encoded and decoded.

use haven_proto::v1 as pb;
use prost::Message;

use super::domain::{ChangeEvent, ChangeFact, RecordEvent, RecordFact, Stamped};
use super::error::Error;

pub const CHANGE_REQUESTED: &str = "ingest.FilteringChangeRequested";
pub const CHANGE_APPROVED: &str = "ingest.FilteringChangeApproved";
pub const CHANGE_REJECTED: &str = "ingest.FilteringChangeRejected";
pub const CHANGE_APPLIED: &str = "ingest.FilteringChangeApplied";
pub const CHECK_RECORDED: &str = "ingest.FilterCheckRecorded";
pub const OVERBLOCKING_REPORTED: &str = "ingest.OverblockingReported";
pub const REVIEW_RECORDED: &str = "ingest.FilteringReviewRecorded";

pub fn encode_change(fact: &ChangeFact) -> (&'static str, Vec<u8>) {
    match fact {
        ChangeFact::Requested(event) => (CHANGE_REQUESTED, event.encode_to_vec()),
        ChangeFact::Approved(event) => (CHANGE_APPROVED, event.encode_to_vec()),
        ChangeFact::Rejected(event) => (CHANGE_REJECTED, event.encode_to_vec()),
        ChangeFact::Applied(event) => (CHANGE_APPLIED, event.encode_to_vec()),
    }
}

pub fn encode_record(fact: &RecordFact) -> (&'static str, Vec<u8>) {
    match fact {
        RecordFact::CheckRecorded(event) => (CHECK_RECORDED, event.encode_to_vec()),
        RecordFact::OverblockingReported(event) => (OVERBLOCKING_REPORTED, event.encode_to_vec()),
        RecordFact::ReviewRecorded(event) => (REVIEW_RECORDED, event.encode_to_vec()),
    }
}

fn at(envelope: &pb::EventEnvelope) -> i64 {
    envelope.occurred_at.map_or(0, |t| t.seconds)
}

fn payload<M: Message + Default>(envelope: &pb::EventEnvelope) -> Result<M, Error> {
    M::decode(envelope.payload.as_slice()).map_err(|e| Error::UnreadableEvent {
        position: envelope.position,
        event_type: envelope.event_type.clone(),
        reason: e.to_string(),
    })
}

fn unknown(envelope: &pb::EventEnvelope) -> Error {
    Error::UnreadableEvent {
        position: envelope.position,
        event_type: envelope.event_type.clone(),
        reason: "not an event of this stream".into(),
    }
}

pub fn decode_change(envelope: &pb::EventEnvelope) -> Result<ChangeEvent, Error> {
    let fact = match envelope.event_type.as_str() {
        CHANGE_REQUESTED => ChangeFact::Requested(payload(envelope)?),
        CHANGE_APPROVED => ChangeFact::Approved(payload(envelope)?),
        CHANGE_REJECTED => ChangeFact::Rejected(payload(envelope)?),
        CHANGE_APPLIED => ChangeFact::Applied(payload(envelope)?),
        _ => return Err(unknown(envelope)),
    };
    Ok(Stamped { at: at(envelope), fact })
}

pub fn decode_record(envelope: &pb::EventEnvelope) -> Result<RecordEvent, Error> {
    let fact = match envelope.event_type.as_str() {
        CHECK_RECORDED => RecordFact::CheckRecorded(payload(envelope)?),
        OVERBLOCKING_REPORTED => RecordFact::OverblockingReported(payload(envelope)?),
        REVIEW_RECORDED => RecordFact::ReviewRecorded(payload(envelope)?),
        _ => return Err(unknown(envelope)),
    };
    Ok(Stamped { at: at(envelope), fact })
}
