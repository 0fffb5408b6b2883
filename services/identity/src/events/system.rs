//! The events of stream `system-<id>` and of `signingkeys-identity`.

use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use prost::Message;

use super::{payload, time_from_proto, time_to_proto, unreadable};
use crate::Error;
use crate::domain::SystemEvent;

pub const CREDENTIAL_ISSUED: &str = "identity.SchoolSystemCredentialIssued";
pub const CREDENTIAL_REVOKED: &str = "identity.SchoolSystemCredentialRevoked";
pub const SIGNING_KEY_ROTATED: &str = "identity.SigningKeyRotated";

pub fn encode_system(system_id: &str, event: &SystemEvent) -> (&'static str, Vec<u8>) {
    match event {
        SystemEvent::CredentialIssued { school_id, secret_hash, issued_by, at, .. } => (
            CREDENTIAL_ISSUED,
            pb::SchoolSystemCredentialIssued {
                system_id: system_id.to_owned(),
                school_id: school_id.to_string(),
                secret_hash: secret_hash.clone(),
                issued_by_user_id: issued_by.clone(),
                issued_at: Some(time_to_proto(*at)),
            }
            .encode_to_vec(),
        ),
        SystemEvent::CredentialRevoked { revoked_by } => (
            CREDENTIAL_REVOKED,
            pb::SchoolSystemCredentialRevoked {
                system_id: system_id.to_owned(),
                revoked_by_user_id: revoked_by.clone(),
            }
            .encode_to_vec(),
        ),
    }
}

pub fn decode_system(envelope: &pb::EventEnvelope) -> Result<SystemEvent, Error> {
    let unreadable = unreadable(envelope);
    Ok(match envelope.event_type.as_str() {
        CREDENTIAL_ISSUED => {
            let event: pb::SchoolSystemCredentialIssued = payload(envelope)?;
            SystemEvent::CredentialIssued {
                school_id: SchoolId::parse(&event.school_id).map_err(|e| unreadable(format!("school_id {e}")))?,
                system_id: event.system_id,
                secret_hash: event.secret_hash,
                issued_by: event.issued_by_user_id,
                at: time_from_proto(event.issued_at.as_ref()),
            }
        }
        CREDENTIAL_REVOKED => {
            let event: pb::SchoolSystemCredentialRevoked = payload(envelope)?;
            SystemEvent::CredentialRevoked { revoked_by: event.revoked_by_user_id }
        }
        other => return Err(unreadable(format!("{other} is not a school-system event"))),
    })
}
