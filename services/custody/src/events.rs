//! The protobuf forms of custody's events: the only module that knows them. Event types are
//! `custody.<MessageName>`, schema version 1; the step's time is the envelope's `occurred_at`.

use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use prost::Message;

use crate::Error;
use crate::domain::{
    AllocationReturnReason, CustodyEvent, DeletionAuthority, DeviceCondition, DeviceKind, HoldKind, Holder, Owner,
    RegisterEvent, ReturnRecipient, SealCondition, SearchAuthority, UnixTime, WipeMethod,
};

pub const DEVICE_SEIZED: &str = "custody.DeviceSeized";
pub const DEVICE_SEALED: &str = "custody.DevicePoweredOffAndSealed";
pub const DEVICE_STORED: &str = "custody.DeviceStored";
pub const SEAL_CHECKED: &str = "custody.DeviceSealChecked";
pub const SEAL_BREACH_ALERTED: &str = "custody.DeviceSealBreachAlerted";
pub const DEVICE_SEARCHED: &str = "custody.DeviceSearched";
pub const DEVICE_QUARANTINED: &str = "custody.DeviceQuarantined";
pub const HOLD_LIFTED: &str = "custody.DeviceHoldLifted";
pub const HANDED_TO_POLICE: &str = "custody.DeviceHandedToPolice";
pub const DEVICE_RETURNED: &str = "custody.DeviceReturned";
pub const DELETION_REQUESTED: &str = "custody.DeviceContentDeletionRequested";
pub const DELETION_DONE: &str = "custody.DeviceContentDeletionDone";
pub const END_OF_DAY_ACTION_RAISED: &str = "custody.DeviceEndOfDayActionRaised";
pub const TRAIL_EXPORTED: &str = "custody.CustodyTrailExported";

fn some(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

pub fn time_to_proto(time: UnixTime) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.0, nanos: 0 }
}

pub fn time_from_proto(time: Option<&prost_types::Timestamp>) -> UnixTime {
    UnixTime(time.map_or(0, |t| t.seconds))
}

pub fn hold_to_proto(kind: HoldKind) -> pb::HoldKind {
    match kind {
        HoldKind::Quarantine => pb::HoldKind::Quarantine,
        HoldKind::PoliceHold => pb::HoldKind::PoliceHold,
    }
}

pub fn hold_from_proto(raw: i32) -> Option<HoldKind> {
    match pb::HoldKind::try_from(raw).ok()? {
        pb::HoldKind::Quarantine => Some(HoldKind::Quarantine),
        pb::HoldKind::PoliceHold => Some(HoldKind::PoliceHold),
        pb::HoldKind::Unspecified => None,
    }
}

pub fn condition_from_proto(raw: i32) -> Option<SealCondition> {
    match pb::SealCondition::try_from(raw).ok()? {
        pb::SealCondition::Intact => Some(SealCondition::Intact),
        pb::SealCondition::Broken => Some(SealCondition::Broken),
        pb::SealCondition::Unspecified => None,
    }
}

fn condition_to_proto(condition: SealCondition) -> pb::SealCondition {
    match condition {
        SealCondition::Intact => pb::SealCondition::Intact,
        SealCondition::Broken => pb::SealCondition::Broken,
    }
}

pub fn authority_from_proto(raw: i32) -> Option<SearchAuthority> {
    match pb::SearchAuthority::try_from(raw).ok()? {
        pb::SearchAuthority::LearnerConsent => Some(SearchAuthority::LearnerConsent),
        pb::SearchAuthority::ParentCarerConsent => Some(SearchAuthority::ParentCarerConsent),
        pb::SearchAuthority::StaffConsent => Some(SearchAuthority::StaffConsent),
        pb::SearchAuthority::OverridingAuthority => Some(SearchAuthority::OverridingAuthority),
        pb::SearchAuthority::Unspecified => None,
    }
}

fn authority_to_proto(authority: SearchAuthority) -> pb::SearchAuthority {
    match authority {
        SearchAuthority::LearnerConsent => pb::SearchAuthority::LearnerConsent,
        SearchAuthority::ParentCarerConsent => pb::SearchAuthority::ParentCarerConsent,
        SearchAuthority::StaffConsent => pb::SearchAuthority::StaffConsent,
        SearchAuthority::OverridingAuthority => pb::SearchAuthority::OverridingAuthority,
    }
}

pub fn recipient_from_proto(raw: i32) -> Option<ReturnRecipient> {
    match pb::ReturnRecipient::try_from(raw).ok()? {
        pb::ReturnRecipient::Learner => Some(ReturnRecipient::Learner),
        pb::ReturnRecipient::ParentCarer => Some(ReturnRecipient::ParentCarer),
        pb::ReturnRecipient::StaffMember => Some(ReturnRecipient::StaffMember),
        pb::ReturnRecipient::Unspecified => None,
    }
}

fn recipient_to_proto(recipient: ReturnRecipient) -> pb::ReturnRecipient {
    match recipient {
        ReturnRecipient::Learner => pb::ReturnRecipient::Learner,
        ReturnRecipient::ParentCarer => pb::ReturnRecipient::ParentCarer,
        ReturnRecipient::StaffMember => pb::ReturnRecipient::StaffMember,
    }
}

pub fn deletion_authority_from_proto(raw: i32) -> Option<DeletionAuthority> {
    match pb::DeletionAuthority::try_from(raw).ok()? {
        pb::DeletionAuthority::DslConfirmed => Some(DeletionAuthority::DslConfirmed),
        pb::DeletionAuthority::PoliceAdvice => Some(DeletionAuthority::PoliceAdvice),
        pb::DeletionAuthority::LearnerOrParentConsent => Some(DeletionAuthority::LearnerOrParentConsent),
        pb::DeletionAuthority::Unspecified => None,
    }
}

fn deletion_authority_to_proto(authority: DeletionAuthority) -> pb::DeletionAuthority {
    match authority {
        DeletionAuthority::DslConfirmed => pb::DeletionAuthority::DslConfirmed,
        DeletionAuthority::PoliceAdvice => pb::DeletionAuthority::PoliceAdvice,
        DeletionAuthority::LearnerOrParentConsent => pb::DeletionAuthority::LearnerOrParentConsent,
    }
}

/// (event type, payload) of a custody event on record `custody_id` of `school_id`.
pub fn encode_custody(custody_id: &str, school_id: &str, event: &CustodyEvent) -> (&'static str, Vec<u8>) {
    let (custody_id, school_id) = (custody_id.to_owned(), school_id.to_owned());
    match event {
        CustodyEvent::Seized {
            device_id,
            device_description,
            from,
            seized_by,
            witness,
            reason,
            case_id,
            return_due_at,
            ..
        } => {
            let (from_subject_id, from_user_id) = match from {
                Owner::Learner { subject_id } => (subject_id.clone(), String::new()),
                Owner::Staff { user_id } => (String::new(), user_id.clone()),
            };
            (
                DEVICE_SEIZED,
                pb::DeviceSeized {
                    custody_id,
                    school_id,
                    device_id: text(device_id),
                    device_description: device_description.clone(),
                    from_subject_id,
                    from_user_id,
                    seized_by_user_id: seized_by.clone(),
                    witness_user_id: text(witness),
                    reason: reason.clone(),
                    case_id: text(case_id),
                    return_due_at: Some(time_to_proto(*return_due_at)),
                }
                .encode_to_vec(),
            )
        }
        CustodyEvent::Sealed { seal_number, sealed_by, witness, powered_off, note, .. } => (
            DEVICE_SEALED,
            pb::DevicePoweredOffAndSealed {
                custody_id,
                school_id,
                seal_number: seal_number.clone(),
                sealed_by_user_id: sealed_by.clone(),
                witness_user_id: text(witness),
                powered_off: *powered_off,
                note: note.clone(),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::Stored { location, stored_by, witness, .. } => (
            DEVICE_STORED,
            pb::DeviceStored {
                custody_id,
                school_id,
                location: location.clone(),
                stored_by_user_id: stored_by.clone(),
                witness_user_id: text(witness),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::SealChecked { seal_number_found, condition, opened, reason, checked_by, witness, .. } => (
            SEAL_CHECKED,
            pb::DeviceSealChecked {
                custody_id,
                school_id,
                seal_number: seal_number_found.clone(),
                condition: condition_to_proto(*condition) as i32,
                opened: *opened,
                reason: reason.clone(),
                checked_by_user_id: checked_by.clone(),
                witness_user_id: text(witness),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::SealBreachAlerted { recorded_seal, found_seal, checked_by, .. } => (
            SEAL_BREACH_ALERTED,
            pb::DeviceSealBreachAlerted {
                custody_id,
                school_id,
                recorded_seal_number: recorded_seal.clone(),
                found_seal_number: found_seal.clone(),
                checked_by_user_id: checked_by.clone(),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::Searched {
            searched_by,
            witness,
            authority,
            authority_detail,
            scope,
            findings,
            imagery_viewed,
            imagery_record_id,
            ..
        } => (
            DEVICE_SEARCHED,
            pb::DeviceSearched {
                custody_id,
                school_id,
                searched_by_user_id: searched_by.clone(),
                witness_user_id: witness.clone(),
                authority: authority_to_proto(*authority) as i32,
                authority_detail: authority_detail.clone(),
                scope: scope.clone(),
                findings: findings.clone(),
                imagery_viewed: *imagery_viewed,
                imagery_record_id: text(imagery_record_id),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::HoldPlaced { kind, reason, police_reference, authorised_by, .. } => (
            DEVICE_QUARANTINED,
            pb::DeviceQuarantined {
                custody_id,
                school_id,
                kind: hold_to_proto(*kind) as i32,
                reason: reason.clone(),
                police_reference: text(police_reference),
                authorised_by_user_id: authorised_by.clone(),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::HoldLifted { kind, reason, police_reference, lifted_by, .. } => (
            HOLD_LIFTED,
            pb::DeviceHoldLifted {
                custody_id,
                school_id,
                kind: hold_to_proto(*kind) as i32,
                reason: reason.clone(),
                police_reference: text(police_reference),
                lifted_by_user_id: lifted_by.clone(),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::HandedToPolice {
            officer, force, police_reference, handed_over_by, witness, seal_number, ..
        } => (
            HANDED_TO_POLICE,
            pb::DeviceHandedToPolice {
                custody_id,
                school_id,
                officer: officer.clone(),
                force: force.clone(),
                police_reference: police_reference.clone(),
                handed_over_by_user_id: handed_over_by.clone(),
                witness_user_id: witness.clone(),
                seal_number: seal_number.clone(),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::Returned { recipient, collected_by, returned_by, witness, .. } => (
            DEVICE_RETURNED,
            pb::DeviceReturned {
                custody_id,
                school_id,
                recipient: recipient_to_proto(*recipient) as i32,
                subject_id: String::new(),
                user_id: String::new(),
                collected_by: text(collected_by),
                returned_by_user_id: returned_by.clone(),
                witness_user_id: text(witness),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::DeletionRequested {
            deletion_id,
            authority,
            case_id,
            police_reference,
            description,
            requested_by,
            ..
        } => (
            DELETION_REQUESTED,
            pb::DeviceContentDeletionRequested {
                custody_id,
                school_id,
                deletion_id: deletion_id.clone(),
                authority: deletion_authority_to_proto(*authority) as i32,
                case_id: text(case_id),
                police_reference: text(police_reference),
                requested_by_user_id: requested_by.clone(),
                description: description.clone(),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::DeletionDone { deletion_id, deleted_by, verified_by, witness, note, .. } => (
            DELETION_DONE,
            pb::DeviceContentDeletionDone {
                custody_id,
                school_id,
                deletion_id: deletion_id.clone(),
                deleted_by: deleted_by.clone(),
                verified_by_user_id: verified_by.clone(),
                witness_user_id: witness.clone(),
                note: note.clone(),
            }
            .encode_to_vec(),
        ),
        CustodyEvent::EndOfDayActionRaised { school_day_ends_at, .. } => (
            END_OF_DAY_ACTION_RAISED,
            pb::DeviceEndOfDayActionRaised {
                custody_id,
                school_id,
                school_day_ends_at: Some(time_to_proto(*school_day_ends_at)),
            }
            .encode_to_vec(),
        ),
    }
}

fn payload<M: Message + Default>(envelope: &pb::EventEnvelope) -> Result<M, Error> {
    M::decode(envelope.payload.as_slice()).map_err(|e| unreadable(envelope, e.to_string()))
}

fn unreadable(envelope: &pb::EventEnvelope, reason: String) -> Error {
    Error::UnreadableEvent { position: envelope.position, event_type: envelope.event_type.clone(), reason }
}

/// Decodes a stored custody event; its time is the envelope's `occurred_at`.
pub fn decode_custody(envelope: &pb::EventEnvelope) -> Result<CustodyEvent, Error> {
    let at = time_from_proto(envelope.occurred_at.as_ref());
    let bad = |what: &str| unreadable(envelope, format!("{what} is not set or not known"));
    Ok(match envelope.event_type.as_str() {
        DEVICE_SEIZED => {
            let e: pb::DeviceSeized = payload(envelope)?;
            let from = match (some(&e.from_subject_id), some(&e.from_user_id)) {
                (Some(subject_id), None) => Owner::Learner { subject_id },
                (None, Some(user_id)) => Owner::Staff { user_id },
                _ => return Err(bad("from_subject_id or from_user_id")),
            };
            CustodyEvent::Seized {
                custody_id: e.custody_id,
                school_id: SchoolId::parse(&e.school_id).map_err(|e| unreadable(envelope, format!("school_id {e}")))?,
                device_id: some(&e.device_id),
                device_description: e.device_description,
                from,
                seized_by: e.seized_by_user_id,
                witness: some(&e.witness_user_id),
                reason: e.reason,
                case_id: some(&e.case_id),
                return_due_at: time_from_proto(e.return_due_at.as_ref()),
                at,
            }
        }
        DEVICE_SEALED => {
            let e: pb::DevicePoweredOffAndSealed = payload(envelope)?;
            CustodyEvent::Sealed {
                seal_number: e.seal_number,
                sealed_by: e.sealed_by_user_id,
                witness: some(&e.witness_user_id),
                powered_off: e.powered_off,
                note: e.note,
                at,
            }
        }
        DEVICE_STORED => {
            let e: pb::DeviceStored = payload(envelope)?;
            CustodyEvent::Stored {
                location: e.location,
                stored_by: e.stored_by_user_id,
                witness: some(&e.witness_user_id),
                at,
            }
        }
        SEAL_CHECKED => {
            let e: pb::DeviceSealChecked = payload(envelope)?;
            CustodyEvent::SealChecked {
                seal_number_found: e.seal_number,
                condition: condition_from_proto(e.condition).ok_or_else(|| bad("condition"))?,
                opened: e.opened,
                reason: e.reason,
                checked_by: e.checked_by_user_id,
                witness: some(&e.witness_user_id),
                at,
            }
        }
        SEAL_BREACH_ALERTED => {
            let e: pb::DeviceSealBreachAlerted = payload(envelope)?;
            CustodyEvent::SealBreachAlerted {
                recorded_seal: e.recorded_seal_number,
                found_seal: e.found_seal_number,
                checked_by: e.checked_by_user_id,
                at,
            }
        }
        DEVICE_SEARCHED => {
            let e: pb::DeviceSearched = payload(envelope)?;
            CustodyEvent::Searched {
                searched_by: e.searched_by_user_id,
                witness: e.witness_user_id,
                authority: authority_from_proto(e.authority).ok_or_else(|| bad("authority"))?,
                authority_detail: e.authority_detail,
                scope: e.scope,
                findings: e.findings,
                imagery_viewed: e.imagery_viewed,
                imagery_record_id: some(&e.imagery_record_id),
                at,
            }
        }
        DEVICE_QUARANTINED => {
            let e: pb::DeviceQuarantined = payload(envelope)?;
            CustodyEvent::HoldPlaced {
                kind: hold_from_proto(e.kind).ok_or_else(|| bad("kind"))?,
                reason: e.reason,
                police_reference: some(&e.police_reference),
                authorised_by: e.authorised_by_user_id,
                at,
            }
        }
        HOLD_LIFTED => {
            let e: pb::DeviceHoldLifted = payload(envelope)?;
            CustodyEvent::HoldLifted {
                kind: hold_from_proto(e.kind).ok_or_else(|| bad("kind"))?,
                reason: e.reason,
                police_reference: some(&e.police_reference),
                lifted_by: e.lifted_by_user_id,
                at,
            }
        }
        HANDED_TO_POLICE => {
            let e: pb::DeviceHandedToPolice = payload(envelope)?;
            CustodyEvent::HandedToPolice {
                officer: e.officer,
                force: e.force,
                police_reference: e.police_reference,
                handed_over_by: e.handed_over_by_user_id,
                witness: e.witness_user_id,
                seal_number: e.seal_number,
                at,
            }
        }
        DEVICE_RETURNED => {
            let e: pb::DeviceReturned = payload(envelope)?;
            CustodyEvent::Returned {
                recipient: recipient_from_proto(e.recipient).ok_or_else(|| bad("recipient"))?,
                collected_by: some(&e.collected_by),
                returned_by: e.returned_by_user_id,
                witness: some(&e.witness_user_id),
                at,
            }
        }
        DELETION_REQUESTED => {
            let e: pb::DeviceContentDeletionRequested = payload(envelope)?;
            CustodyEvent::DeletionRequested {
                deletion_id: e.deletion_id,
                authority: deletion_authority_from_proto(e.authority).ok_or_else(|| bad("authority"))?,
                case_id: some(&e.case_id),
                police_reference: some(&e.police_reference),
                description: e.description,
                requested_by: e.requested_by_user_id,
                at,
            }
        }
        DELETION_DONE => {
            let e: pb::DeviceContentDeletionDone = payload(envelope)?;
            CustodyEvent::DeletionDone {
                deletion_id: e.deletion_id,
                deleted_by: e.deleted_by,
                verified_by: e.verified_by_user_id,
                witness: e.witness_user_id,
                note: e.note,
                at,
            }
        }
        END_OF_DAY_ACTION_RAISED => {
            let e: pb::DeviceEndOfDayActionRaised = payload(envelope)?;
            CustodyEvent::EndOfDayActionRaised {
                school_day_ends_at: time_from_proto(e.school_day_ends_at.as_ref()),
                at,
            }
        }
        other => return Err(unreadable(envelope, format!("{other} is not a custody event"))),
    })
}

/// Who did a step, who witnessed it, and a one-line rendering (no free text beyond ids,
/// seal numbers and places), for the trail.
pub fn describe(event: &CustodyEvent) -> (String, String, String) {
    let w = |witness: &Option<String>| witness.clone().unwrap_or_default();
    match event {
        CustodyEvent::Seized { seized_by, witness, .. } => (seized_by.clone(), w(witness), "seized".into()),
        CustodyEvent::Sealed { seal_number, sealed_by, witness, powered_off, .. } => (
            sealed_by.clone(),
            w(witness),
            format!("{}sealed, seal {seal_number}", if *powered_off { "powered off and " } else { "" }),
        ),
        CustodyEvent::Stored { location, stored_by, witness, .. } => {
            (stored_by.clone(), w(witness), format!("stored: {location}"))
        }
        CustodyEvent::SealChecked { seal_number_found, condition, opened, checked_by, witness, .. } => (
            checked_by.clone(),
            w(witness),
            format!(
                "seal {seal_number_found} checked: {}{}",
                if *condition == SealCondition::Intact { "intact" } else { "BROKEN" },
                if *opened { ", opened" } else { "" }
            ),
        ),
        CustodyEvent::SealBreachAlerted { recorded_seal, found_seal, checked_by, .. } => (
            checked_by.clone(),
            String::new(),
            format!("ALERT: seal {recorded_seal} recorded, {found_seal} found broken or different"),
        ),
        CustodyEvent::Searched { searched_by, witness, authority, imagery_viewed, .. } => (
            searched_by.clone(),
            witness.clone(),
            format!("searched ({authority:?}){}", if *imagery_viewed { ", imagery viewed" } else { "" }),
        ),
        CustodyEvent::HoldPlaced { kind, authorised_by, .. } => {
            (authorised_by.clone(), String::new(), format!("{kind:?} placed"))
        }
        CustodyEvent::HoldLifted { kind, lifted_by, .. } => {
            (lifted_by.clone(), String::new(), format!("{kind:?} lifted"))
        }
        CustodyEvent::HandedToPolice { force, police_reference, handed_over_by, witness, seal_number, .. } => (
            handed_over_by.clone(),
            witness.clone(),
            format!("handed to {force}, reference {police_reference}, seal {seal_number}"),
        ),
        CustodyEvent::Returned { recipient, returned_by, witness, .. } => {
            (returned_by.clone(), w(witness), format!("returned ({recipient:?})"))
        }
        CustodyEvent::DeletionRequested { deletion_id, authority, requested_by, .. } => {
            (requested_by.clone(), String::new(), format!("deletion {deletion_id} requested ({authority:?})"))
        }
        CustodyEvent::DeletionDone { deletion_id, verified_by, witness, .. } => {
            (verified_by.clone(), witness.clone(), format!("deletion {deletion_id} done"))
        }
        CustodyEvent::EndOfDayActionRaised { .. } => {
            (String::new(), String::new(), "not returned by the end of the school day: action for the DSL".into())
        }
    }
}

// --- The school device register ----------------------------------------------------------

pub const DEVICE_REGISTERED: &str = "custody.SchoolDeviceRegistered";
pub const DEVICE_ALLOCATED: &str = "custody.SchoolDeviceAllocated";
pub const DEVICE_HANDED_BACK: &str = "custody.SchoolDeviceReturned";
pub const DEVICE_WIPED: &str = "custody.SchoolDeviceWiped";

pub fn kind_to_proto(kind: DeviceKind) -> pb::DeviceKind {
    match kind {
        DeviceKind::Laptop => pb::DeviceKind::Laptop,
        DeviceKind::Tablet => pb::DeviceKind::Tablet,
        DeviceKind::Phone => pb::DeviceKind::Phone,
        DeviceKind::Desktop => pb::DeviceKind::Desktop,
        DeviceKind::Other => pb::DeviceKind::Other,
    }
}

pub fn kind_from_proto(raw: i32) -> Option<DeviceKind> {
    match pb::DeviceKind::try_from(raw).ok()? {
        pb::DeviceKind::Laptop => Some(DeviceKind::Laptop),
        pb::DeviceKind::Tablet => Some(DeviceKind::Tablet),
        pb::DeviceKind::Phone => Some(DeviceKind::Phone),
        pb::DeviceKind::Desktop => Some(DeviceKind::Desktop),
        pb::DeviceKind::Other => Some(DeviceKind::Other),
        pb::DeviceKind::Unspecified => None,
    }
}

fn return_reason_to_proto(reason: AllocationReturnReason) -> pb::AllocationReturnReason {
    match reason {
        AllocationReturnReason::Leaver => pb::AllocationReturnReason::Leaver,
        AllocationReturnReason::EndOfLoan => pb::AllocationReturnReason::EndOfLoan,
        AllocationReturnReason::Fault => pb::AllocationReturnReason::Fault,
        AllocationReturnReason::Replaced => pb::AllocationReturnReason::Replaced,
        AllocationReturnReason::Lost => pb::AllocationReturnReason::Lost,
    }
}

pub fn return_reason_from_proto(raw: i32) -> Option<AllocationReturnReason> {
    match pb::AllocationReturnReason::try_from(raw).ok()? {
        pb::AllocationReturnReason::Leaver => Some(AllocationReturnReason::Leaver),
        pb::AllocationReturnReason::EndOfLoan => Some(AllocationReturnReason::EndOfLoan),
        pb::AllocationReturnReason::Fault => Some(AllocationReturnReason::Fault),
        pb::AllocationReturnReason::Replaced => Some(AllocationReturnReason::Replaced),
        pb::AllocationReturnReason::Lost => Some(AllocationReturnReason::Lost),
        pb::AllocationReturnReason::Unspecified => None,
    }
}

fn device_condition_to_proto(condition: DeviceCondition) -> pb::DeviceCondition {
    match condition {
        DeviceCondition::Good => pb::DeviceCondition::Good,
        DeviceCondition::Damaged => pb::DeviceCondition::Damaged,
        DeviceCondition::Missing => pb::DeviceCondition::Missing,
    }
}

pub fn device_condition_from_proto(raw: i32) -> Option<DeviceCondition> {
    match pb::DeviceCondition::try_from(raw).ok()? {
        pb::DeviceCondition::Good => Some(DeviceCondition::Good),
        pb::DeviceCondition::Damaged => Some(DeviceCondition::Damaged),
        pb::DeviceCondition::Missing => Some(DeviceCondition::Missing),
        pb::DeviceCondition::Unspecified => None,
    }
}

fn wipe_to_proto(method: WipeMethod) -> pb::WipeMethod {
    match method {
        WipeMethod::FactoryReset => pb::WipeMethod::FactoryReset,
        WipeMethod::RemoteWipe => pb::WipeMethod::RemoteWipe,
        WipeMethod::SecureErase => pb::WipeMethod::SecureErase,
    }
}

pub fn wipe_from_proto(raw: i32) -> Option<WipeMethod> {
    match pb::WipeMethod::try_from(raw).ok()? {
        pb::WipeMethod::FactoryReset => Some(WipeMethod::FactoryReset),
        pb::WipeMethod::RemoteWipe => Some(WipeMethod::RemoteWipe),
        pb::WipeMethod::SecureErase => Some(WipeMethod::SecureErase),
        pb::WipeMethod::Unspecified => None,
    }
}

fn holder_ids(holder: &Holder) -> (String, String) {
    match holder {
        Holder::Staff { user_id } => (user_id.clone(), String::new()),
        Holder::Learner { subject_id } => (String::new(), subject_id.clone()),
    }
}

/// The event type and payload of a register event of `device_id` in `school_id`.
pub fn encode_register(device_id: &str, school_id: &str, event: &RegisterEvent) -> (&'static str, Vec<u8>) {
    let (device_id, school_id) = (device_id.to_owned(), school_id.to_owned());
    match event {
        RegisterEvent::Registered { kind, asset_tag, serial_number, model, managed, registered_by, .. } => (
            DEVICE_REGISTERED,
            pb::SchoolDeviceRegistered {
                device_id,
                school_id,
                kind: kind_to_proto(*kind) as i32,
                asset_tag: asset_tag.clone(),
                serial_number: serial_number.clone(),
                model: model.clone(),
                managed: *managed,
                registered_by_user_id: registered_by.clone(),
            }
            .encode_to_vec(),
        ),
        RegisterEvent::Allocated { holder, aup_version, purpose, expected_return_at, allocated_by, .. } => {
            let (user_id, subject_id) = holder_ids(holder);
            (
                DEVICE_ALLOCATED,
                pb::SchoolDeviceAllocated {
                    device_id,
                    school_id,
                    user_id,
                    subject_id,
                    aup_version: *aup_version,
                    purpose: purpose.clone(),
                    expected_return_at: expected_return_at.map(time_to_proto),
                    allocated_by_user_id: allocated_by.clone(),
                }
                .encode_to_vec(),
            )
        }
        RegisterEvent::Returned { holder, reason, condition, received_by, note, .. } => {
            let (user_id, subject_id) = holder_ids(holder);
            (
                DEVICE_HANDED_BACK,
                pb::SchoolDeviceReturned {
                    device_id,
                    school_id,
                    user_id,
                    subject_id,
                    reason: return_reason_to_proto(*reason) as i32,
                    condition: device_condition_to_proto(*condition) as i32,
                    received_by_user_id: received_by.clone(),
                    note: note.clone(),
                }
                .encode_to_vec(),
            )
        }
        RegisterEvent::Wiped { method, verified, wiped_by, note, .. } => (
            DEVICE_WIPED,
            pb::SchoolDeviceWiped {
                device_id,
                school_id,
                method: wipe_to_proto(*method) as i32,
                verified: *verified,
                wiped_by_user_id: wiped_by.clone(),
                note: note.clone(),
            }
            .encode_to_vec(),
        ),
    }
}

/// Decodes a stored register event; its time is the envelope's `occurred_at`.
pub fn decode_register(envelope: &pb::EventEnvelope) -> Result<RegisterEvent, Error> {
    let at = time_from_proto(envelope.occurred_at.as_ref());
    let bad = |what: &str| unreadable(envelope, format!("{what} is not set or not known"));
    let holder = |user_id: String, subject_id: String| match (some(&user_id), some(&subject_id)) {
        (Some(user_id), None) => Ok(Holder::Staff { user_id }),
        (None, Some(subject_id)) => Ok(Holder::Learner { subject_id }),
        _ => Err(bad("user_id or subject_id")),
    };
    Ok(match envelope.event_type.as_str() {
        DEVICE_REGISTERED => {
            let e: pb::SchoolDeviceRegistered = payload(envelope)?;
            RegisterEvent::Registered {
                device_id: e.device_id,
                school_id: SchoolId::parse(&e.school_id).map_err(|e| unreadable(envelope, format!("school_id {e}")))?,
                kind: kind_from_proto(e.kind).ok_or_else(|| bad("kind"))?,
                asset_tag: e.asset_tag,
                serial_number: e.serial_number,
                model: e.model,
                managed: e.managed,
                registered_by: e.registered_by_user_id,
                at,
            }
        }
        DEVICE_ALLOCATED => {
            let e: pb::SchoolDeviceAllocated = payload(envelope)?;
            RegisterEvent::Allocated {
                holder: holder(e.user_id, e.subject_id)?,
                aup_version: e.aup_version,
                purpose: e.purpose,
                expected_return_at: e.expected_return_at.as_ref().map(|t| UnixTime(t.seconds)),
                allocated_by: e.allocated_by_user_id,
                at,
            }
        }
        DEVICE_HANDED_BACK => {
            let e: pb::SchoolDeviceReturned = payload(envelope)?;
            RegisterEvent::Returned {
                holder: holder(e.user_id, e.subject_id)?,
                reason: return_reason_from_proto(e.reason).ok_or_else(|| bad("reason"))?,
                condition: device_condition_from_proto(e.condition).ok_or_else(|| bad("condition"))?,
                received_by: e.received_by_user_id,
                note: e.note,
                at,
            }
        }
        DEVICE_WIPED => {
            let e: pb::SchoolDeviceWiped = payload(envelope)?;
            RegisterEvent::Wiped {
                method: wipe_from_proto(e.method).ok_or_else(|| bad("method"))?,
                verified: e.verified,
                wiped_by: e.wiped_by_user_id,
                note: e.note,
                at,
            }
        }
        other => return Err(unreadable(envelope, format!("{other} is not a register event"))),
    })
}
