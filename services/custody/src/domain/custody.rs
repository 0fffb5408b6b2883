//! One confiscation, from seizure to return or handover to the police (`custody-<custody_id>`).
//!
//! ```text
//!  Seize ─▶ Seized ─Seal─▶ Sealed ─Store─▶ Stored ─CheckSeal(opening)─▶ Opened ─Search─▶ Opened ─Seal─▶ Sealed …
//!                    holds (Quarantine / PoliceHold) stand over any phase until lifted
//!  ends: HandToPolice (sealed, seal number matches) │ Return (no hold stands, to the owner's side)
//! ```
//! Every step names who did it and when (time arrives in the command and never runs
//! backwards); a search, an opening, a handover and a deletion need a witness who is not the
//! actor. A broken or mismatched seal is recorded, not refused, and raises an alert event.

use std::collections::{BTreeMap, BTreeSet};

use haven_kernel::{Decider, SchoolId};

use super::{FieldProblem, UnixTime, optional_text, short, text};

/// Most content-deletion requests on one record: a bound on the state.
pub const MAX_DELETIONS: usize = 50;

/// Whom a device was taken from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A learner (a pseudonymous subject id).
    Learner { subject_id: String },
    /// A member of staff.
    Staff { user_id: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HoldKind {
    /// Kept untouched until police advice has been sought (policy 11.4).
    Quarantine,
    /// The police asked the school to keep the device for them.
    PoliceHold,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealCondition {
    Intact,
    Broken,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchAuthority {
    LearnerConsent,
    ParentCarerConsent,
    StaffConsent,
    /// A statutory power overrode the need for consent (DfE searching, screening and confiscation).
    OverridingAuthority,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnRecipient {
    Learner,
    ParentCarer,
    StaffMember,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionAuthority {
    /// The DSL recorded that no agency needs the material (names the case).
    DslConfirmed,
    /// The police advised deletion (names the police reference).
    PoliceAdvice,
    /// With the learner's consent, or by a parent/carer in the learner's presence.
    LearnerOrParentConsent,
}

/// Where a record stands, as the read model shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustodyStatus {
    Seized,
    Sealed,
    Stored,
    /// The seal was checked and opened, and the device is not yet resealed.
    Opened,
    /// A quarantine or police hold stands.
    Held,
    WithPolice,
    Returned,
}

/// The physical state of the device while the school has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Seized,
    Sealed,
    Stored,
    Opened,
}

/// How the school's custody ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    WithPolice,
    Returned,
}

/// One content-deletion request and whether it was carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionRequest {
    pub authority: DeletionAuthority,
    pub done: bool,
}

/// A custody record as its stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustodyRecord {
    pub custody_id: String,
    pub school_id: SchoolId,
    pub device_id: Option<String>,
    pub device_description: String,
    pub from: Owner,
    pub case_id: Option<String>,
    pub seized_at: UnixTime,
    pub return_due_at: UnixTime,
    /// The seal currently on the device; `None` when unsealed.
    pub seal_number: Option<String>,
    pub storage_location: Option<String>,
    pub holds: BTreeSet<HoldKind>,
    /// Set for good once a seal check found the seal broken.
    pub seal_broken_flag: bool,
    /// The last check found the current seal broken; cleared by resealing.
    seal_broken_unresolved: bool,
    pub deletions: BTreeMap<String, DeletionRequest>,
    /// The end-of-day action for the DSL was raised.
    pub end_of_day_raised: bool,
    /// When the latest step happened; no step may come before it.
    pub last_step_at: UnixTime,
    phase: Phase,
    ending: Option<Ending>,
}

impl CustodyRecord {
    pub fn status(&self) -> CustodyStatus {
        match (self.ending, self.holds.is_empty(), self.phase) {
            (Some(Ending::WithPolice), _, _) => CustodyStatus::WithPolice,
            (Some(Ending::Returned), _, _) => CustodyStatus::Returned,
            (None, false, _) => CustodyStatus::Held,
            (None, true, Phase::Seized) => CustodyStatus::Seized,
            (None, true, Phase::Sealed) => CustodyStatus::Sealed,
            (None, true, Phase::Stored) => CustodyStatus::Stored,
            (None, true, Phase::Opened) => CustodyStatus::Opened,
        }
    }

    /// The school's custody has ended (returned or with the police).
    pub fn ended(&self) -> bool {
        self.ending.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustodyCommand {
    Seize {
        custody_id: String,
        school_id: SchoolId,
        device_id: Option<String>,
        device_description: String,
        from: Owner,
        seized_by: String,
        witness: Option<String>,
        reason: String,
        case_id: Option<String>,
        return_due_at: UnixTime,
        at: UnixTime,
    },
    /// Powered off and sealed, or resealed with a new seal after an opening or a broken seal.
    Seal {
        seal_number: String,
        sealed_by: String,
        witness: Option<String>,
        powered_off: bool,
        note: String,
        at: UnixTime,
    },
    Store {
        location: String,
        stored_by: String,
        witness: Option<String>,
        at: UnixTime,
    },
    CheckSeal {
        seal_number_found: String,
        condition: SealCondition,
        opening: bool,
        reason: String,
        checked_by: String,
        witness: Option<String>,
        at: UnixTime,
    },
    Search {
        searched_by: String,
        /// Looked up by the shell: the searcher holds a leadership role at the school.
        searcher_is_leadership: bool,
        witness: Option<String>,
        /// `None` when neither consent nor an overriding authority was recorded.
        authority: Option<SearchAuthority>,
        authority_detail: String,
        scope: String,
        findings: String,
        imagery_viewed: bool,
        /// The DSL's record of the viewing (`incidents.ImageryViewed`), required when imagery was viewed.
        imagery_record_id: Option<String>,
        at: UnixTime,
    },
    PlaceHold {
        kind: HoldKind,
        reason: String,
        police_reference: Option<String>,
        authorised_by: String,
        at: UnixTime,
    },
    LiftHold {
        kind: HoldKind,
        reason: String,
        police_reference: Option<String>,
        lifted_by: String,
        at: UnixTime,
    },
    HandToPolice {
        officer: String,
        force: String,
        police_reference: String,
        handed_over_by: String,
        witness: Option<String>,
        seal_number: String,
        at: UnixTime,
    },
    Return {
        recipient: ReturnRecipient,
        /// The parent/carer who collected it, by relationship; required for a parent/carer.
        collected_by: Option<String>,
        returned_by: String,
        witness: Option<String>,
        at: UnixTime,
    },
    RequestDeletion {
        deletion_id: String,
        authority: DeletionAuthority,
        case_id: Option<String>,
        police_reference: Option<String>,
        description: String,
        requested_by: String,
        at: UnixTime,
    },
    RecordDeletion {
        deletion_id: String,
        deleted_by: String,
        verified_by: String,
        witness: Option<String>,
        note: String,
        at: UnixTime,
    },
    /// The end-of-day sweep's action (see `sweep.rs`); raising it twice records nothing new.
    RaiseEndOfDayAction {
        school_day_ends_at: UnixTime,
        at: UnixTime,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustodyEvent {
    Seized {
        custody_id: String,
        school_id: SchoolId,
        device_id: Option<String>,
        device_description: String,
        from: Owner,
        seized_by: String,
        witness: Option<String>,
        reason: String,
        case_id: Option<String>,
        return_due_at: UnixTime,
        at: UnixTime,
    },
    Sealed {
        seal_number: String,
        sealed_by: String,
        witness: Option<String>,
        powered_off: bool,
        note: String,
        at: UnixTime,
    },
    Stored {
        location: String,
        stored_by: String,
        witness: Option<String>,
        at: UnixTime,
    },
    SealChecked {
        seal_number_found: String,
        condition: SealCondition,
        opened: bool,
        reason: String,
        checked_by: String,
        witness: Option<String>,
        at: UnixTime,
    },
    /// A seal check found the seal broken, or a different seal number: an alert for the DSL.
    SealBreachAlerted {
        recorded_seal: String,
        found_seal: String,
        checked_by: String,
        at: UnixTime,
    },
    Searched {
        searched_by: String,
        witness: String,
        authority: SearchAuthority,
        authority_detail: String,
        scope: String,
        findings: String,
        imagery_viewed: bool,
        imagery_record_id: Option<String>,
        at: UnixTime,
    },
    HoldPlaced {
        kind: HoldKind,
        reason: String,
        police_reference: Option<String>,
        authorised_by: String,
        at: UnixTime,
    },
    HoldLifted {
        kind: HoldKind,
        reason: String,
        police_reference: Option<String>,
        lifted_by: String,
        at: UnixTime,
    },
    HandedToPolice {
        officer: String,
        force: String,
        police_reference: String,
        handed_over_by: String,
        witness: String,
        seal_number: String,
        at: UnixTime,
    },
    Returned {
        recipient: ReturnRecipient,
        collected_by: Option<String>,
        returned_by: String,
        witness: Option<String>,
        at: UnixTime,
    },
    DeletionRequested {
        deletion_id: String,
        authority: DeletionAuthority,
        case_id: Option<String>,
        police_reference: Option<String>,
        description: String,
        requested_by: String,
        at: UnixTime,
    },
    DeletionDone {
        deletion_id: String,
        deleted_by: String,
        verified_by: String,
        witness: String,
        note: String,
        at: UnixTime,
    },
    EndOfDayActionRaised {
        school_day_ends_at: UnixTime,
        at: UnixTime,
    },
}

impl CustodyEvent {
    /// When the step happened.
    pub fn at(&self) -> UnixTime {
        match self {
            CustodyEvent::Seized { at, .. }
            | CustodyEvent::Sealed { at, .. }
            | CustodyEvent::Stored { at, .. }
            | CustodyEvent::SealChecked { at, .. }
            | CustodyEvent::SealBreachAlerted { at, .. }
            | CustodyEvent::Searched { at, .. }
            | CustodyEvent::HoldPlaced { at, .. }
            | CustodyEvent::HoldLifted { at, .. }
            | CustodyEvent::HandedToPolice { at, .. }
            | CustodyEvent::Returned { at, .. }
            | CustodyEvent::DeletionRequested { at, .. }
            | CustodyEvent::DeletionDone { at, .. }
            | CustodyEvent::EndOfDayActionRaised { at, .. } => *at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CustodyError {
    #[error("the device is already in custody under this record")]
    AlreadySeized,
    #[error("no device was seized under this record")]
    NotSeized,
    #[error("{field} {problem}")]
    Invalid { field: &'static str, problem: FieldProblem },
    #[error("the school's custody has ended ({0:?}); nothing more can be recorded")]
    Ended(CustodyStatus),
    #[error("the step is dated {at}, before the last recorded step at {last}")]
    TimeBeforeLastStep { at: UnixTime, last: UnixTime },
    #[error("the device is not sealed")]
    NotSealed,
    #[error("the device is already sealed with an intact seal")]
    AlreadySealed,
    #[error("the seal must be checked and opened first")]
    NotOpened,
    #[error("a {0:?} stands")]
    HoldStands(HoldKind),
    #[error("a {0:?} already stands")]
    HoldAlreadyStands(HoldKind),
    #[error("no {0:?} stands")]
    HoldNotPlaced(HoldKind),
    #[error("a police hold needs the police reference")]
    PoliceReferenceRequired,
    #[error("a search needs the consent of the learner or a parent/carer, or the authority that overrides it")]
    NoConsentOrAuthority,
    #[error("{0:?} does not fit whom the device was taken from")]
    AuthorityDoesNotFitOwner(SearchAuthority),
    #[error("a search is carried out by a member of the leadership team")]
    SearcherNotLeadership,
    #[error("imagery was viewed without the DSL's record of the viewing")]
    ImageryWithoutDslRecord,
    #[error("{0} needs a witness")]
    WitnessRequired(&'static str),
    #[error("the witness must be someone other than the person doing it")]
    WitnessIsActor,
    #[error("the seal number given does not match the recorded seal")]
    SealMismatch,
    #[error("a device that was not powered off needs a note saying why")]
    NoteRequiredWhenNotPoweredOff,
    #[error("{0:?} does not fit whom the device was taken from")]
    RecipientDoesNotFitOwner(ReturnRecipient),
    #[error("a parent/carer return names who collected it")]
    CollectorRequired,
    #[error("{0:?} needs {1}")]
    DeletionAuthorityIncomplete(DeletionAuthority, &'static str),
    #[error("deletion {0} was already requested")]
    DeletionAlreadyRequested(String),
    #[error("no deletion {0} was requested")]
    DeletionNotRequested(String),
    #[error("deletion {0} was already done")]
    DeletionAlreadyDone(String),
    #[error("at most {MAX_DELETIONS} deletions per record")]
    TooManyDeletions,
}

fn field(name: &'static str, check: fn(&str) -> Result<(), FieldProblem>, value: &str) -> Result<(), CustodyError> {
    check(value).map_err(|problem| CustodyError::Invalid { field: name, problem })
}

fn optional_short(name: &'static str, value: &Option<String>) -> Result<(), CustodyError> {
    value.as_deref().map_or(Ok(()), |v| field(name, short, v))
}

/// A witness, when given, is a valid id and not the actor; `step` names what needs one.
fn witness_of(
    actor: &str,
    witness: &Option<String>,
    required: Option<&'static str>,
) -> Result<Option<String>, CustodyError> {
    match witness {
        None => match required {
            Some(step) => Err(CustodyError::WitnessRequired(step)),
            None => Ok(None),
        },
        Some(witness) => {
            field("witness", short, witness)?;
            if witness == actor {
                return Err(CustodyError::WitnessIsActor);
            }
            Ok(Some(witness.clone()))
        }
    }
}

/// The custody aggregate.
#[derive(Debug)]
pub struct CustodyDecider;

impl Decider for CustodyDecider {
    type State = Option<CustodyRecord>;
    type Command = CustodyCommand;
    type Event = CustodyEvent;
    type Error = CustodyError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        let record = match (state, command) {
            (None, CustodyCommand::Seize { .. }) => return seize(command),
            (Some(_), CustodyCommand::Seize { .. }) => return Err(CustodyError::AlreadySeized),
            (None, _) => return Err(CustodyError::NotSeized),
            (Some(record), _) => record,
        };
        if let CustodyCommand::RaiseEndOfDayAction { school_day_ends_at, at } = command {
            // Idempotent: the sweep may run again, or late; nothing to do once raised or resolved.
            if record.end_of_day_raised || record.ended() || !record.holds.is_empty() || *at < record.last_step_at {
                return Ok(vec![]);
            }
            return Ok(vec![CustodyEvent::EndOfDayActionRaised { school_day_ends_at: *school_day_ends_at, at: *at }]);
        }
        if record.ended() {
            return Err(CustodyError::Ended(record.status()));
        }
        let at = command_time(command);
        if at < record.last_step_at {
            return Err(CustodyError::TimeBeforeLastStep { at, last: record.last_step_at });
        }
        step(record, command)
    }

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State {
        let CustodyEvent::Seized {
            custody_id,
            school_id,
            device_id,
            device_description,
            from,
            case_id,
            return_due_at,
            at,
            ..
        } = event
        else {
            let mut record = state?;
            apply(&mut record, event);
            return Some(record);
        };
        Some(CustodyRecord {
            custody_id: custody_id.clone(),
            school_id: school_id.clone(),
            device_id: device_id.clone(),
            device_description: device_description.clone(),
            from: from.clone(),
            case_id: case_id.clone(),
            seized_at: *at,
            return_due_at: *return_due_at,
            seal_number: None,
            storage_location: None,
            holds: BTreeSet::new(),
            seal_broken_flag: false,
            seal_broken_unresolved: false,
            deletions: BTreeMap::new(),
            end_of_day_raised: false,
            last_step_at: *at,
            phase: Phase::Seized,
            ending: None,
        })
    }
}

fn command_time(command: &CustodyCommand) -> UnixTime {
    match command {
        CustodyCommand::Seize { at, .. }
        | CustodyCommand::Seal { at, .. }
        | CustodyCommand::Store { at, .. }
        | CustodyCommand::CheckSeal { at, .. }
        | CustodyCommand::Search { at, .. }
        | CustodyCommand::PlaceHold { at, .. }
        | CustodyCommand::LiftHold { at, .. }
        | CustodyCommand::HandToPolice { at, .. }
        | CustodyCommand::Return { at, .. }
        | CustodyCommand::RequestDeletion { at, .. }
        | CustodyCommand::RecordDeletion { at, .. }
        | CustodyCommand::RaiseEndOfDayAction { at, .. } => *at,
    }
}

fn seize(command: &CustodyCommand) -> Result<Vec<CustodyEvent>, CustodyError> {
    let CustodyCommand::Seize {
        custody_id,
        school_id,
        device_id,
        device_description,
        from,
        seized_by,
        witness,
        reason,
        case_id,
        return_due_at,
        at,
    } = command
    else {
        return Err(CustodyError::NotSeized);
    };
    field("custody_id", short, custody_id)?;
    optional_short("device_id", device_id)?;
    field("device_description", text, device_description)?;
    match from {
        Owner::Learner { subject_id } => field("from_subject_id", short, subject_id)?,
        Owner::Staff { user_id } => field("from_user_id", short, user_id)?,
    }
    field("seized_by", short, seized_by)?;
    let witness = witness_of(seized_by, witness, None)?;
    field("reason", text, reason)?;
    optional_short("case_id", case_id)?;
    Ok(vec![CustodyEvent::Seized {
        custody_id: custody_id.clone(),
        school_id: school_id.clone(),
        device_id: device_id.clone(),
        device_description: device_description.clone(),
        from: from.clone(),
        seized_by: seized_by.clone(),
        witness,
        reason: reason.clone(),
        case_id: case_id.clone(),
        return_due_at: *return_due_at,
        at: *at,
    }])
}

fn no_hold(record: &CustodyRecord) -> Result<(), CustodyError> {
    match record.holds.iter().next() {
        Some(kind) => Err(CustodyError::HoldStands(*kind)),
        None => Ok(()),
    }
}

fn sealed(record: &CustodyRecord) -> Result<&str, CustodyError> {
    match (&record.seal_number, record.phase) {
        (Some(seal), Phase::Sealed | Phase::Stored) => Ok(seal),
        _ => Err(CustodyError::NotSealed),
    }
}

/// Decides every step after seizure, on a record whose custody has not ended.
fn step(record: &CustodyRecord, command: &CustodyCommand) -> Result<Vec<CustodyEvent>, CustodyError> {
    match command {
        CustodyCommand::Seize { .. } => Err(CustodyError::AlreadySeized),
        CustodyCommand::RaiseEndOfDayAction { .. } => Ok(vec![]),
        CustodyCommand::Seal { seal_number, sealed_by, witness, powered_off, note, at } => {
            if matches!(record.phase, Phase::Sealed | Phase::Stored) && !record.seal_broken_unresolved {
                return Err(CustodyError::AlreadySealed);
            }
            field("seal_number", short, seal_number)?;
            field("sealed_by", short, sealed_by)?;
            let witness = witness_of(sealed_by, witness, None)?;
            field("note", optional_text, note)?;
            if !powered_off && note.is_empty() {
                return Err(CustodyError::NoteRequiredWhenNotPoweredOff);
            }
            Ok(vec![CustodyEvent::Sealed {
                seal_number: seal_number.clone(),
                sealed_by: sealed_by.clone(),
                witness,
                powered_off: *powered_off,
                note: note.clone(),
                at: *at,
            }])
        }
        CustodyCommand::Store { location, stored_by, witness, at } => {
            sealed(record)?;
            field("location", short, location)?;
            field("stored_by", short, stored_by)?;
            let witness = witness_of(stored_by, witness, None)?;
            Ok(vec![CustodyEvent::Stored {
                location: location.clone(),
                stored_by: stored_by.clone(),
                witness,
                at: *at,
            }])
        }
        CustodyCommand::CheckSeal { seal_number_found, condition, opening, reason, checked_by, witness, at } => {
            let recorded = sealed(record)?;
            field("seal_number", short, seal_number_found)?;
            field("reason", text, reason)?;
            field("checked_by", short, checked_by)?;
            let witness = witness_of(checked_by, witness, opening.then_some("opening the seal"))?;
            if *opening {
                no_hold(record)?;
            }
            // A different number on the envelope is as bad as a torn one.
            let broken = *condition == SealCondition::Broken || seal_number_found != recorded;
            let mut events = vec![CustodyEvent::SealChecked {
                seal_number_found: seal_number_found.clone(),
                condition: if broken { SealCondition::Broken } else { SealCondition::Intact },
                opened: *opening,
                reason: reason.clone(),
                checked_by: checked_by.clone(),
                witness,
                at: *at,
            }];
            if broken {
                events.push(CustodyEvent::SealBreachAlerted {
                    recorded_seal: recorded.to_owned(),
                    found_seal: seal_number_found.clone(),
                    checked_by: checked_by.clone(),
                    at: *at,
                });
            }
            Ok(events)
        }
        CustodyCommand::Search {
            searched_by,
            searcher_is_leadership,
            witness,
            authority,
            authority_detail,
            scope,
            findings,
            imagery_viewed,
            imagery_record_id,
            at,
        } => {
            field("searched_by", short, searched_by)?;
            if !searcher_is_leadership {
                return Err(CustodyError::SearcherNotLeadership);
            }
            let authority = authority.ok_or(CustodyError::NoConsentOrAuthority)?;
            let fits = matches!(
                (&record.from, authority),
                (_, SearchAuthority::OverridingAuthority)
                    | (Owner::Learner { .. }, SearchAuthority::LearnerConsent | SearchAuthority::ParentCarerConsent)
                    | (Owner::Staff { .. }, SearchAuthority::StaffConsent)
            );
            if !fits {
                return Err(CustodyError::AuthorityDoesNotFitOwner(authority));
            }
            field("authority_detail", text, authority_detail)?;
            no_hold(record)?;
            if record.phase != Phase::Opened {
                return Err(CustodyError::NotOpened);
            }
            let witness = witness_of(searched_by, witness, Some("a search"))?.unwrap_or_default();
            field("scope", text, scope)?;
            field("findings", optional_text, findings)?;
            optional_short("imagery_record_id", imagery_record_id)?;
            if *imagery_viewed && imagery_record_id.is_none() {
                return Err(CustodyError::ImageryWithoutDslRecord);
            }
            Ok(vec![CustodyEvent::Searched {
                searched_by: searched_by.clone(),
                witness,
                authority,
                authority_detail: authority_detail.clone(),
                scope: scope.clone(),
                findings: findings.clone(),
                imagery_viewed: *imagery_viewed,
                imagery_record_id: if *imagery_viewed { imagery_record_id.clone() } else { None },
                at: *at,
            }])
        }
        CustodyCommand::PlaceHold { kind, reason, police_reference, authorised_by, at } => {
            if record.holds.contains(kind) {
                return Err(CustodyError::HoldAlreadyStands(*kind));
            }
            field("reason", text, reason)?;
            optional_short("police_reference", police_reference)?;
            if *kind == HoldKind::PoliceHold && police_reference.is_none() {
                return Err(CustodyError::PoliceReferenceRequired);
            }
            field("authorised_by", short, authorised_by)?;
            Ok(vec![CustodyEvent::HoldPlaced {
                kind: *kind,
                reason: reason.clone(),
                police_reference: police_reference.clone(),
                authorised_by: authorised_by.clone(),
                at: *at,
            }])
        }
        CustodyCommand::LiftHold { kind, reason, police_reference, lifted_by, at } => {
            if !record.holds.contains(kind) {
                return Err(CustodyError::HoldNotPlaced(*kind));
            }
            field("reason", text, reason)?;
            optional_short("police_reference", police_reference)?;
            field("lifted_by", short, lifted_by)?;
            Ok(vec![CustodyEvent::HoldLifted {
                kind: *kind,
                reason: reason.clone(),
                police_reference: police_reference.clone(),
                lifted_by: lifted_by.clone(),
                at: *at,
            }])
        }
        CustodyCommand::HandToPolice { officer, force, police_reference, handed_over_by, witness, seal_number, at } => {
            let recorded = sealed(record)?;
            field("officer", short, officer)?;
            field("force", short, force)?;
            field("police_reference", short, police_reference)?;
            field("handed_over_by", short, handed_over_by)?;
            let witness = witness_of(handed_over_by, witness, Some("a handover to the police"))?.unwrap_or_default();
            if seal_number != recorded {
                return Err(CustodyError::SealMismatch);
            }
            Ok(vec![CustodyEvent::HandedToPolice {
                officer: officer.clone(),
                force: force.clone(),
                police_reference: police_reference.clone(),
                handed_over_by: handed_over_by.clone(),
                witness,
                seal_number: seal_number.clone(),
                at: *at,
            }])
        }
        CustodyCommand::Return { recipient, collected_by, returned_by, witness, at } => {
            no_hold(record)?;
            let fits = matches!(
                (&record.from, recipient),
                (Owner::Learner { .. }, ReturnRecipient::Learner | ReturnRecipient::ParentCarer)
                    | (Owner::Staff { .. }, ReturnRecipient::StaffMember)
            );
            if !fits {
                return Err(CustodyError::RecipientDoesNotFitOwner(*recipient));
            }
            optional_short("collected_by", collected_by)?;
            if *recipient == ReturnRecipient::ParentCarer && collected_by.is_none() {
                return Err(CustodyError::CollectorRequired);
            }
            field("returned_by", short, returned_by)?;
            let witness = witness_of(returned_by, witness, None)?;
            Ok(vec![CustodyEvent::Returned {
                recipient: *recipient,
                collected_by: collected_by.clone(),
                returned_by: returned_by.clone(),
                witness,
                at: *at,
            }])
        }
        CustodyCommand::RequestDeletion {
            deletion_id,
            authority,
            case_id,
            police_reference,
            description,
            requested_by,
            at,
        } => {
            field("deletion_id", short, deletion_id)?;
            if record.deletions.contains_key(deletion_id) {
                return Err(CustodyError::DeletionAlreadyRequested(deletion_id.clone()));
            }
            if record.deletions.len() >= MAX_DELETIONS {
                return Err(CustodyError::TooManyDeletions);
            }
            optional_short("case_id", case_id)?;
            optional_short("police_reference", police_reference)?;
            match authority {
                DeletionAuthority::DslConfirmed if case_id.is_none() => {
                    return Err(CustodyError::DeletionAuthorityIncomplete(*authority, "the case id"));
                }
                DeletionAuthority::PoliceAdvice if police_reference.is_none() => {
                    return Err(CustodyError::DeletionAuthorityIncomplete(*authority, "the police reference"));
                }
                _ => {}
            }
            field("description", text, description)?;
            field("requested_by", short, requested_by)?;
            Ok(vec![CustodyEvent::DeletionRequested {
                deletion_id: deletion_id.clone(),
                authority: *authority,
                case_id: case_id.clone(),
                police_reference: police_reference.clone(),
                description: description.clone(),
                requested_by: requested_by.clone(),
                at: *at,
            }])
        }
        CustodyCommand::RecordDeletion { deletion_id, deleted_by, verified_by, witness, note, at } => {
            let request = record
                .deletions
                .get(deletion_id)
                .ok_or_else(|| CustodyError::DeletionNotRequested(deletion_id.clone()))?;
            if request.done {
                return Err(CustodyError::DeletionAlreadyDone(deletion_id.clone()));
            }
            no_hold(record)?;
            if matches!(record.phase, Phase::Sealed | Phase::Stored) {
                return Err(CustodyError::NotOpened);
            }
            field("deleted_by", short, deleted_by)?;
            field("verified_by", short, verified_by)?;
            let witness = witness_of(verified_by, witness, Some("a deletion"))?.unwrap_or_default();
            field("note", optional_text, note)?;
            Ok(vec![CustodyEvent::DeletionDone {
                deletion_id: deletion_id.clone(),
                deleted_by: deleted_by.clone(),
                verified_by: verified_by.clone(),
                witness,
                note: note.clone(),
                at: *at,
            }])
        }
    }
}

fn apply(record: &mut CustodyRecord, event: &CustodyEvent) {
    record.last_step_at = record.last_step_at.max(event.at());
    match event {
        CustodyEvent::Seized { .. } => debug_assert!(false, "a second seizure in one stream"),
        CustodyEvent::Sealed { seal_number, .. } => {
            record.seal_number = Some(seal_number.clone());
            record.seal_broken_unresolved = false;
            record.phase = if record.phase == Phase::Stored { Phase::Stored } else { Phase::Sealed };
        }
        CustodyEvent::Stored { location, .. } => {
            record.storage_location = Some(location.clone());
            record.phase = Phase::Stored;
        }
        CustodyEvent::SealChecked { condition, opened, .. } => {
            if *condition == SealCondition::Broken {
                record.seal_broken_flag = true;
                record.seal_broken_unresolved = true;
            }
            if *opened {
                record.seal_number = None;
                record.seal_broken_unresolved = false;
                record.phase = Phase::Opened;
            }
        }
        CustodyEvent::SealBreachAlerted { .. } | CustodyEvent::Searched { .. } => {}
        CustodyEvent::HoldPlaced { kind, .. } => {
            record.holds.insert(*kind);
        }
        CustodyEvent::HoldLifted { kind, .. } => {
            record.holds.remove(kind);
        }
        CustodyEvent::HandedToPolice { .. } => {
            record.holds.clear();
            record.ending = Some(Ending::WithPolice);
        }
        CustodyEvent::Returned { .. } => record.ending = Some(Ending::Returned),
        CustodyEvent::DeletionRequested { deletion_id, authority, .. } => {
            record.deletions.insert(deletion_id.clone(), DeletionRequest { authority: *authority, done: false });
        }
        CustodyEvent::DeletionDone { deletion_id, .. } => {
            if let Some(request) = record.deletions.get_mut(deletion_id) {
                request.done = true;
            }
        }
        CustodyEvent::EndOfDayActionRaised { .. } => record.end_of_day_raised = true,
    }
}

#[cfg(test)]
mod tests;
