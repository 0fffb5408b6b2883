//! The events of stream `subject-<id>` and `subjectaccess-<school>`. Names, year groups and
//! flags are personal data: only in these payloads.

use std::collections::BTreeSet;

use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use prost::Message;

use super::{payload, unreadable};
use crate::Error;
use crate::domain::{SubjectEvent, SubjectFlag};

pub const SUBJECT_REGISTERED: &str = "identity.SubjectRegistered";
pub const SUBJECT_FLAGS_CHANGED: &str = "identity.SubjectFlagsChanged";
pub const SUBJECT_NETWORK_LOGINS_CHANGED: &str = "identity.SubjectNetworkLoginsChanged";
pub const SUBJECT_RECORD_VIEWED: &str = "identity.SubjectRecordViewed";

pub fn flag_to_proto(flag: SubjectFlag) -> pb::SubjectFlag {
    match flag {
        SubjectFlag::LookedAfter => pb::SubjectFlag::LookedAfter,
        SubjectFlag::ChildProtectionPlan => pb::SubjectFlag::ChildProtectionPlan,
        SubjectFlag::Send => pb::SubjectFlag::Send,
        SubjectFlag::Eal => pb::SubjectFlag::Eal,
    }
}

/// `None` for UNSPECIFIED or an unknown value.
pub fn flag_from_proto(raw: i32) -> Option<SubjectFlag> {
    Some(match pb::SubjectFlag::try_from(raw).ok()? {
        pb::SubjectFlag::Unspecified => return None,
        pb::SubjectFlag::LookedAfter => SubjectFlag::LookedAfter,
        pb::SubjectFlag::ChildProtectionPlan => SubjectFlag::ChildProtectionPlan,
        pb::SubjectFlag::Send => SubjectFlag::Send,
        pb::SubjectFlag::Eal => SubjectFlag::Eal,
    })
}

fn flags_to_proto(flags: &BTreeSet<SubjectFlag>) -> Vec<i32> {
    flags.iter().map(|flag| flag_to_proto(*flag) as i32).collect()
}

pub fn encode_subject(subject_id: &str, event: &SubjectEvent) -> (&'static str, Vec<u8>) {
    match event {
        SubjectEvent::Registered { school_id, display_name, year_group, flags, network_logins, .. } => (
            SUBJECT_REGISTERED,
            pb::SubjectRegistered {
                subject_id: subject_id.to_owned(),
                school_id: school_id.to_string(),
                display_name: display_name.clone(),
                year_group: *year_group,
                flags: flags_to_proto(flags),
                network_logins: network_logins.iter().cloned().collect(),
            }
            .encode_to_vec(),
        ),
        SubjectEvent::NetworkLoginsChanged { network_logins } => (
            SUBJECT_NETWORK_LOGINS_CHANGED,
            pb::SubjectNetworkLoginsChanged {
                subject_id: subject_id.to_owned(),
                network_logins: network_logins.iter().cloned().collect(),
            }
            .encode_to_vec(),
        ),
        SubjectEvent::FlagsChanged { flags } => (
            SUBJECT_FLAGS_CHANGED,
            pb::SubjectFlagsChanged { subject_id: subject_id.to_owned(), flags: flags_to_proto(flags) }.encode_to_vec(),
        ),
    }
}

pub fn decode_subject(envelope: &pb::EventEnvelope) -> Result<SubjectEvent, Error> {
    let unreadable = unreadable(envelope);
    let flags = |raw: &[i32]| -> Result<BTreeSet<SubjectFlag>, Error> {
        raw.iter().map(|flag| flag_from_proto(*flag).ok_or_else(|| unreadable(format!("flag {flag}")))).collect()
    };
    Ok(match envelope.event_type.as_str() {
        SUBJECT_REGISTERED => {
            let event: pb::SubjectRegistered = payload(envelope)?;
            SubjectEvent::Registered {
                school_id: SchoolId::parse(&event.school_id).map_err(|e| unreadable(format!("school_id {e}")))?,
                flags: flags(&event.flags)?,
                subject_id: event.subject_id,
                display_name: event.display_name,
                year_group: event.year_group,
                network_logins: event.network_logins.into_iter().collect(),
            }
        }
        SUBJECT_NETWORK_LOGINS_CHANGED => {
            let event: pb::SubjectNetworkLoginsChanged = payload(envelope)?;
            SubjectEvent::NetworkLoginsChanged { network_logins: event.network_logins.into_iter().collect() }
        }
        SUBJECT_FLAGS_CHANGED => {
            let event: pb::SubjectFlagsChanged = payload(envelope)?;
            SubjectEvent::FlagsChanged { flags: flags(&event.flags)? }
        }
        other => return Err(unreadable(format!("{other} is not a subject event"))),
    })
}
