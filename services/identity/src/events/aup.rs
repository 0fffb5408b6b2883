//! `identity.AupPublished` in stream `aup-<trust id>`.

use haven_proto::v1 as pb;
use prost::Message;

use super::{payload, unreadable};
use crate::Error;
use crate::domain::AupEvent;

pub const AUP_PUBLISHED: &str = "identity.AupPublished";

pub fn encode_aup(event: &AupEvent) -> (&'static str, Vec<u8>) {
    let AupEvent::Published { version, text_sha256 } = event;
    (AUP_PUBLISHED, pb::AupPublished { aup_version: *version, text_sha256: text_sha256.to_vec() }.encode_to_vec())
}

pub fn decode_aup(envelope: &pb::EventEnvelope) -> Result<AupEvent, Error> {
    if envelope.event_type != AUP_PUBLISHED {
        return Err(unreadable(envelope)(format!("{} is not an AUP event", envelope.event_type)));
    }
    let event: pb::AupPublished = payload(envelope)?;
    let text_sha256 = event
        .text_sha256
        .as_slice()
        .try_into()
        .map_err(|_| unreadable(envelope)("text_sha256 is not 32 bytes".into()))?;
    Ok(AupEvent::Published { version: event.aup_version, text_sha256 })
}
