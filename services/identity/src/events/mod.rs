//! The protobuf forms of identity's events: the only modules that know them. Event types are
//! `identity.<MessageName>`, schema version 1.

mod aup;
mod system;
mod user;

pub use aup::{decode_aup, encode_aup};
pub use system::{SIGNING_KEY_ROTATED, decode_system, encode_system};
pub use user::{decode_user, encode_user};

use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use prost::Message;

use crate::Error;
use crate::domain::{SchoolEvent, SchoolPhase, TrustEvent, UnixTime};

pub const TRUST_ESTABLISHED: &str = "identity.TrustEstablished";
pub const SCHOOL_REGISTERED: &str = "identity.SchoolRegistered";
pub const SCHOOL_PUPIL_NUMBERS_CHANGED: &str = "identity.SchoolPupilNumbersChanged";

pub fn phase_to_proto(phase: SchoolPhase) -> pb::SchoolPhase {
    match phase {
        SchoolPhase::Primary => pb::SchoolPhase::Primary,
        SchoolPhase::Secondary => pb::SchoolPhase::Secondary,
        SchoolPhase::AllThrough => pb::SchoolPhase::AllThrough,
        SchoolPhase::Special => pb::SchoolPhase::Special,
        SchoolPhase::AlternativeProvision => pb::SchoolPhase::AlternativeProvision,
    }
}

/// `None` for UNSPECIFIED or an unknown value.
pub fn phase_from_proto(raw: i32) -> Option<SchoolPhase> {
    match pb::SchoolPhase::try_from(raw).ok()? {
        pb::SchoolPhase::Unspecified => None,
        pb::SchoolPhase::Primary => Some(SchoolPhase::Primary),
        pb::SchoolPhase::Secondary => Some(SchoolPhase::Secondary),
        pb::SchoolPhase::AllThrough => Some(SchoolPhase::AllThrough),
        pb::SchoolPhase::Special => Some(SchoolPhase::Special),
        pb::SchoolPhase::AlternativeProvision => Some(SchoolPhase::AlternativeProvision),
    }
}

/// (event type, payload) of a school event.
pub fn encode_school(event: &SchoolEvent) -> (&'static str, Vec<u8>) {
    match event {
        SchoolEvent::Registered { school_id, trust_id, name, phase, pupil_count } => (
            SCHOOL_REGISTERED,
            pb::SchoolRegistered {
                school_id: school_id.to_string(),
                trust_id: trust_id.clone(),
                name: name.clone(),
                pupil_count: *pupil_count,
                phase: phase_to_proto(*phase) as i32,
            }
            .encode_to_vec(),
        ),
        SchoolEvent::PupilNumbersChanged { school_id, pupil_count } => (
            SCHOOL_PUPIL_NUMBERS_CHANGED,
            pb::SchoolPupilNumbersChanged { school_id: school_id.to_string(), pupil_count: *pupil_count }
                .encode_to_vec(),
        ),
    }
}

/// The error for a stored event that cannot be read back.
pub(crate) fn unreadable(envelope: &pb::EventEnvelope) -> impl Fn(String) -> Error + '_ {
    |reason: String| Error::UnreadableEvent {
        position: envelope.position,
        event_type: envelope.event_type.clone(),
        reason,
    }
}

/// Decodes a payload as `M`, naming the event when it is not one.
pub(crate) fn payload<M: Message + Default>(envelope: &pb::EventEnvelope) -> Result<M, Error> {
    M::decode(envelope.payload.as_slice()).map_err(|e| unreadable(envelope)(e.to_string()))
}

pub fn time_to_proto(time: UnixTime) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.0, nanos: 0 }
}

/// Whole seconds; an unset time is the epoch.
pub fn time_from_proto(time: Option<&prost_types::Timestamp>) -> UnixTime {
    UnixTime(time.map_or(0, |t| t.seconds))
}

/// Decodes a stored school event.
pub fn decode_school(envelope: &pb::EventEnvelope) -> Result<SchoolEvent, Error> {
    let unreadable = unreadable(envelope);
    let school_id = |raw: &str| SchoolId::parse(raw).map_err(|e| unreadable(format!("school_id {e}")));
    match envelope.event_type.as_str() {
        SCHOOL_REGISTERED => {
            let event =
                pb::SchoolRegistered::decode(envelope.payload.as_slice()).map_err(|e| unreadable(e.to_string()))?;
            Ok(SchoolEvent::Registered {
                school_id: school_id(&event.school_id)?,
                trust_id: event.trust_id,
                name: event.name,
                phase: phase_from_proto(event.phase).ok_or_else(|| unreadable(format!("phase {}", event.phase)))?,
                pupil_count: event.pupil_count,
            })
        }
        SCHOOL_PUPIL_NUMBERS_CHANGED => {
            let event = pb::SchoolPupilNumbersChanged::decode(envelope.payload.as_slice())
                .map_err(|e| unreadable(e.to_string()))?;
            Ok(SchoolEvent::PupilNumbersChanged {
                school_id: school_id(&event.school_id)?,
                pupil_count: event.pupil_count,
            })
        }
        other => Err(unreadable(format!("{other} is not a school event"))),
    }
}

pub fn encode_trust(event: &TrustEvent) -> (&'static str, Vec<u8>) {
    match event {
        TrustEvent::Established { trust_id, name } => {
            (TRUST_ESTABLISHED, pb::TrustEstablished { trust_id: trust_id.clone(), name: name.clone() }.encode_to_vec())
        }
    }
}

pub fn decode_trust(envelope: &pb::EventEnvelope) -> Result<TrustEvent, Error> {
    let unreadable = unreadable(envelope);
    match envelope.event_type.as_str() {
        TRUST_ESTABLISHED => {
            let event =
                pb::TrustEstablished::decode(envelope.payload.as_slice()).map_err(|e| unreadable(e.to_string()))?;
            Ok(TrustEvent::Established { trust_id: event.trust_id, name: event.name })
        }
        other => Err(unreadable(format!("{other} is not a trust event"))),
    }
}
