//! An event's payload for people: decoded with the message its type names, in the proto3 JSON
//! mapping (field names in lowerCamelCase, enums by name, timestamps as RFC 3339), from the
//! descriptors compiled into this build — no hand-written table of event types to drift.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage};

/// Every Haven message, from the descriptor set the proto crate embeds.
fn pool() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(haven_proto::v1::FILE_DESCRIPTOR_SET).ok()).as_ref()
}

/// The payload of an event of `event_type` (`incidents.CaseOpened` is a `haven.v1.CaseOpened`)
/// as JSON; empty when this build does not know the type or the payload does not decode as it
/// (an event written by a newer or older service stays readable as its bytes).
pub fn payload_json(event_type: &str, payload: &[u8]) -> String {
    let Some(pool) = pool() else { return String::new() };
    let Some((_, name)) = event_type.rsplit_once('.') else { return String::new() };
    let Some(descriptor) = pool.get_message_by_name(&format!("haven.v1.{name}")) else { return String::new() };
    match DynamicMessage::decode(descriptor, payload) {
        Ok(message) => serde_json::to_string(&message).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use haven_proto::v1 as pb;
    use prost::Message;

    use super::*;

    #[test]
    fn a_payload_reads_as_its_type_in_the_proto3_json_mapping() {
        let opened = pb::CaseOpened {
            case_id: "case-1".into(),
            school_id: "school-a".into(),
            case_type: pb::CaseType::SharingNudes as i32,
            checklist: vec![pb::ChecklistItem {
                action_key: "record-concern".into(),
                due_at: Some(prost_types::Timestamp { seconds: 1_736_726_400, nanos: 0 }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let json: serde_json::Value =
            serde_json::from_str(&payload_json("incidents.CaseOpened", &opened.encode_to_vec())).unwrap();
        assert_eq!(json["caseId"], "case-1");
        assert_eq!(json["schoolId"], "school-a");
        assert_eq!(json["caseType"], "CASE_TYPE_SHARING_NUDES");
        assert_eq!(json["checklist"][0]["dueAt"], "2025-01-13T00:00:00Z");
    }

    #[test]
    fn an_unknown_type_or_a_payload_that_does_not_decode_is_left_empty() {
        assert_eq!(payload_json("incidents.NoSuchEvent", b""), "");
        assert_eq!(payload_json("no-dot", b""), "");
        assert_eq!(payload_json("incidents.CaseOpened", &[0xff, 0xff, 0xff]), "");
    }
}
