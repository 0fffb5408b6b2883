//! Given events, when a command, then events or a refusal.

use haven_kernel::{Decider, SchoolId, fold};
use proptest::prelude::*;

use super::*;
use crate::domain::sweep::{SchoolDay, end_of_day_sweep};

const MORNING: i64 = 1_700_000_000;

fn school() -> SchoolId {
    SchoolId::parse("elm-academy").unwrap()
}

fn seize_at(id: &str, at: i64) -> CustodyCommand {
    CustodyCommand::Seize {
        custody_id: id.into(),
        school_id: school(),
        device_id: None,
        device_description: "black phone, cracked case".into(),
        from: Owner::Learner { subject_id: "subj-1".into() },
        seized_by: "teacher-1".into(),
        witness: Some("teacher-2".into()),
        reason: "used to film another learner".into(),
        case_id: Some("case-1".into()),
        return_due_at: UnixTime(at + 8 * 3600),
        at: UnixTime(at),
    }
}

fn seize() -> CustodyCommand {
    seize_at("c1", MORNING)
}

fn seal(number: &str, at: i64) -> CustodyCommand {
    CustodyCommand::Seal {
        seal_number: number.into(),
        sealed_by: "teacher-1".into(),
        witness: Some("teacher-2".into()),
        powered_off: true,
        note: String::new(),
        at: UnixTime(at),
    }
}

fn store(at: i64) -> CustodyCommand {
    CustodyCommand::Store {
        location: "DSL office safe".into(),
        stored_by: "dsl-1".into(),
        witness: None,
        at: UnixTime(at),
    }
}

fn check(found: &str, condition: SealCondition, opening: bool, at: i64) -> CustodyCommand {
    CustodyCommand::CheckSeal {
        seal_number_found: found.into(),
        condition,
        opening,
        reason: "search with consent".into(),
        checked_by: "head-1".into(),
        witness: Some("dsl-1".into()),
        at: UnixTime(at),
    }
}

fn search(at: i64) -> CustodyCommand {
    CustodyCommand::Search {
        searched_by: "head-1".into(),
        searcher_is_leadership: true,
        witness: Some("dsl-1".into()),
        authority: Some(SearchAuthority::ParentCarerConsent),
        authority_detail: "mother, by phone".into(),
        scope: "messages and photos from today".into(),
        findings: "nothing of concern".into(),
        imagery_viewed: false,
        imagery_record_id: None,
        at: UnixTime(at),
    }
}

fn hold(kind: HoldKind, at: i64) -> CustodyCommand {
    CustodyCommand::PlaceHold {
        kind,
        reason: "pending police advice".into(),
        police_reference: (kind == HoldKind::PoliceHold).then(|| "PR-1".into()),
        authorised_by: "dsl-1".into(),
        at: UnixTime(at),
    }
}

fn lift(kind: HoldKind, at: i64) -> CustodyCommand {
    CustodyCommand::LiftHold {
        kind,
        reason: "police advised no further action".into(),
        police_reference: None,
        lifted_by: "dsl-1".into(),
        at: UnixTime(at),
    }
}

fn hand_over(seal_number: &str, at: i64) -> CustodyCommand {
    CustodyCommand::HandToPolice {
        officer: "PC 0000".into(),
        force: "Demo Constabulary".into(),
        police_reference: "CR-1".into(),
        handed_over_by: "dsl-1".into(),
        witness: Some("head-1".into()),
        seal_number: seal_number.into(),
        at: UnixTime(at),
    }
}

fn give_back(at: i64) -> CustodyCommand {
    CustodyCommand::Return {
        recipient: ReturnRecipient::ParentCarer,
        collected_by: Some("father".into()),
        returned_by: "dsl-1".into(),
        witness: None,
        at: UnixTime(at),
    }
}

fn request_deletion(id: &str, at: i64) -> CustodyCommand {
    CustodyCommand::RequestDeletion {
        deletion_id: id.into(),
        authority: DeletionAuthority::DslConfirmed,
        case_id: Some("case-1".into()),
        police_reference: None,
        description: "one photo of another learner".into(),
        requested_by: "dsl-1".into(),
        at: UnixTime(at),
    }
}

fn record_deletion(id: &str, at: i64) -> CustodyCommand {
    CustodyCommand::RecordDeletion {
        deletion_id: id.into(),
        deleted_by: "the learner".into(),
        verified_by: "dsl-1".into(),
        witness: Some("head-1".into()),
        note: String::new(),
        at: UnixTime(at),
    }
}

/// Decides each command in turn against the state so far; every one must succeed.
fn given(commands: &[CustodyCommand]) -> Vec<CustodyEvent> {
    let mut events = Vec::new();
    for command in commands {
        let state = fold::<CustodyDecider>(&events);
        events.extend(CustodyDecider::decide(&state, command).unwrap_or_else(|e| panic!("{command:?}: {e}")));
    }
    events
}

fn when(history: &[CustodyCommand], command: &CustodyCommand) -> Result<Vec<CustodyEvent>, CustodyError> {
    CustodyDecider::decide(&fold::<CustodyDecider>(&given(history)), command)
}

fn record(history: &[CustodyCommand]) -> CustodyRecord {
    fold::<CustodyDecider>(&given(history)).unwrap()
}

fn sealed_and_stored() -> Vec<CustodyCommand> {
    vec![seize(), seal("S-1", MORNING + 60), store(MORNING + 120)]
}

fn opened() -> Vec<CustodyCommand> {
    let mut history = sealed_and_stored();
    history.push(check("S-1", SealCondition::Intact, true, MORNING + 600));
    history
}

#[test]
fn the_full_lifecycle_ends_in_a_return() {
    let mut history = opened();
    history.extend([
        search(MORNING + 700),
        request_deletion("del-1", MORNING + 800),
        record_deletion("del-1", MORNING + 900),
        seal("S-2", MORNING + 1000),
    ]);
    let before = record(&history);
    assert_eq!(before.status(), CustodyStatus::Sealed);
    assert_eq!(before.seal_number.as_deref(), Some("S-2"));
    assert!(before.deletions["del-1"].done);
    let events = when(&history, &give_back(MORNING + 1100)).unwrap();
    assert!(matches!(&events[..], [CustodyEvent::Returned { recipient: ReturnRecipient::ParentCarer, .. }]));
    history.push(give_back(MORNING + 1100));
    assert_eq!(record(&history).status(), CustodyStatus::Returned);
    assert_eq!(when(&history, &seal("S-3", MORNING + 1200)), Err(CustodyError::Ended(CustodyStatus::Returned)));
}

#[test]
fn seizure_starts_the_record_once() {
    assert_eq!(when(&[], &seal("S-1", MORNING)), Err(CustodyError::NotSeized));
    assert_eq!(when(&[seize()], &seize()), Err(CustodyError::AlreadySeized));
    let state = record(&[seize()]);
    assert_eq!(state.status(), CustodyStatus::Seized);
    assert_eq!(state.from, Owner::Learner { subject_id: "subj-1".into() });
    let mut bad = seize();
    if let CustodyCommand::Seize { reason, .. } = &mut bad {
        reason.clear();
    }
    assert_eq!(when(&[], &bad), Err(CustodyError::Invalid { field: "reason", problem: FieldProblem::Empty }));
}

#[test]
fn steps_never_go_back_in_time() {
    assert_eq!(
        when(&[seize()], &seal("S-1", MORNING - 1)),
        Err(CustodyError::TimeBeforeLastStep { at: UnixTime(MORNING - 1), last: UnixTime(MORNING) })
    );
}

#[test]
fn sealing_needs_a_note_when_not_powered_off_and_refuses_a_second_seal() {
    let mut on = seal("S-1", MORNING + 1);
    if let CustodyCommand::Seal { powered_off, .. } = &mut on {
        *powered_off = false;
    }
    assert_eq!(when(&[seize()], &on), Err(CustodyError::NoteRequiredWhenNotPoweredOff));
    assert_eq!(when(&sealed_and_stored(), &seal("S-9", MORNING + 200)), Err(CustodyError::AlreadySealed));
    assert_eq!(when(&[seize()], &store(MORNING + 1)), Err(CustodyError::NotSealed));
}

#[test]
fn a_broken_seal_is_recorded_and_raises_an_alert() {
    let events = when(&sealed_and_stored(), &check("S-1", SealCondition::Broken, false, MORNING + 300)).unwrap();
    assert!(matches!(&events[..], [
        CustodyEvent::SealChecked { condition: SealCondition::Broken, opened: false, .. },
        CustodyEvent::SealBreachAlerted { recorded_seal, found_seal, .. },
    ] if recorded_seal == "S-1" && found_seal == "S-1"));
    // A different number on the envelope counts as broken, even when it looks intact.
    let events = when(&sealed_and_stored(), &check("S-7", SealCondition::Intact, false, MORNING + 300)).unwrap();
    assert!(matches!(
        &events[..],
        [CustodyEvent::SealChecked { condition: SealCondition::Broken, .. }, CustodyEvent::SealBreachAlerted { .. }]
    ));
    // An intact seal raises nothing.
    let events = when(&sealed_and_stored(), &check("S-1", SealCondition::Intact, false, MORNING + 300)).unwrap();
    assert_eq!(events.len(), 1);
    // The flag stays and the device may be resealed.
    let mut history = sealed_and_stored();
    history.push(check("S-1", SealCondition::Broken, false, MORNING + 300));
    assert!(record(&history).seal_broken_flag);
    history.push(seal("S-2", MORNING + 400));
    let state = record(&history);
    assert!(state.seal_broken_flag);
    assert_eq!(state.status(), CustodyStatus::Stored);
}

#[test]
fn opening_a_seal_needs_a_witness() {
    let mut command = check("S-1", SealCondition::Intact, true, MORNING + 300);
    if let CustodyCommand::CheckSeal { witness, .. } = &mut command {
        *witness = None;
    }
    assert_eq!(when(&sealed_and_stored(), &command), Err(CustodyError::WitnessRequired("opening the seal")));
    if let CustodyCommand::CheckSeal { witness, .. } = &mut command {
        *witness = Some("head-1".into());
    }
    assert_eq!(when(&sealed_and_stored(), &command), Err(CustodyError::WitnessIsActor));
}

#[test]
fn no_search_before_the_seal_is_checked_and_opened() {
    assert_eq!(when(&sealed_and_stored(), &search(MORNING + 300)), Err(CustodyError::NotOpened));
}

#[test]
fn no_search_without_consent_or_authority() {
    let mut command = search(MORNING + 700);
    if let CustodyCommand::Search { authority, .. } = &mut command {
        *authority = None;
    }
    assert_eq!(when(&opened(), &command), Err(CustodyError::NoConsentOrAuthority));
    if let CustodyCommand::Search { authority, .. } = &mut command {
        *authority = Some(SearchAuthority::StaffConsent);
    }
    assert_eq!(when(&opened(), &command), Err(CustodyError::AuthorityDoesNotFitOwner(SearchAuthority::StaffConsent)));
    if let CustodyCommand::Search { authority, authority_detail, .. } = &mut command {
        *authority = Some(SearchAuthority::OverridingAuthority);
        authority_detail.clear();
    }
    assert_eq!(
        when(&opened(), &command),
        Err(CustodyError::Invalid { field: "authority_detail", problem: FieldProblem::Empty })
    );
    if let CustodyCommand::Search { authority_detail, .. } = &mut command {
        *authority_detail = "statutory power: suspected evidence of an offence".into();
    }
    assert!(when(&opened(), &command).is_ok(), "the overriding authority stands in for consent");
}

#[test]
fn only_the_leadership_team_searches_and_with_a_witness() {
    let mut command = search(MORNING + 700);
    if let CustodyCommand::Search { searcher_is_leadership, .. } = &mut command {
        *searcher_is_leadership = false;
    }
    assert_eq!(when(&opened(), &command), Err(CustodyError::SearcherNotLeadership));
    let mut command = search(MORNING + 700);
    if let CustodyCommand::Search { witness, .. } = &mut command {
        *witness = None;
    }
    assert_eq!(when(&opened(), &command), Err(CustodyError::WitnessRequired("a search")));
}

#[test]
fn viewing_imagery_needs_the_dsls_record() {
    let mut command = search(MORNING + 700);
    if let CustodyCommand::Search { imagery_viewed, .. } = &mut command {
        *imagery_viewed = true;
    }
    assert_eq!(when(&opened(), &command), Err(CustodyError::ImageryWithoutDslRecord));
    if let CustodyCommand::Search { imagery_record_id, .. } = &mut command {
        *imagery_record_id = Some("viewing-1".into());
    }
    let events = when(&opened(), &command).unwrap();
    assert!(matches!(&events[..], [CustodyEvent::Searched { imagery_record_id: Some(id), .. }] if id == "viewing-1"));
}

#[test]
fn no_return_while_a_quarantine_or_police_hold_stands() {
    for kind in [HoldKind::Quarantine, HoldKind::PoliceHold] {
        let mut history = sealed_and_stored();
        history.push(hold(kind, MORNING + 200));
        assert_eq!(record(&history).status(), CustodyStatus::Held);
        assert_eq!(when(&history, &give_back(MORNING + 300)), Err(CustodyError::HoldStands(kind)));
        assert_eq!(when(&history, &hold(kind, MORNING + 300)), Err(CustodyError::HoldAlreadyStands(kind)));
        history.push(lift(kind, MORNING + 300));
        assert_eq!(record(&history).status(), CustodyStatus::Stored);
        assert!(when(&history, &give_back(MORNING + 400)).is_ok());
    }
}

#[test]
fn a_hold_keeps_the_seal_shut_and_the_content() {
    let mut history = sealed_and_stored();
    history.push(hold(HoldKind::Quarantine, MORNING + 200));
    assert_eq!(
        when(&history, &check("S-1", SealCondition::Intact, true, MORNING + 300)),
        Err(CustodyError::HoldStands(HoldKind::Quarantine))
    );
    // Checking without opening is still allowed.
    assert!(when(&history, &check("S-1", SealCondition::Intact, false, MORNING + 300)).is_ok());
    let mut history = opened();
    history.extend([request_deletion("del-1", MORNING + 700), hold(HoldKind::Quarantine, MORNING + 800)]);
    assert_eq!(
        when(&history, &record_deletion("del-1", MORNING + 900)),
        Err(CustodyError::HoldStands(HoldKind::Quarantine))
    );
    assert_eq!(when(&history, &search(MORNING + 900)), Err(CustodyError::HoldStands(HoldKind::Quarantine)));
}

#[test]
fn lifting_needs_a_hold_and_a_police_hold_needs_a_reference() {
    assert_eq!(
        when(&[seize()], &lift(HoldKind::PoliceHold, MORNING + 1)),
        Err(CustodyError::HoldNotPlaced(HoldKind::PoliceHold))
    );
    let mut command = hold(HoldKind::PoliceHold, MORNING + 1);
    if let CustodyCommand::PlaceHold { police_reference, .. } = &mut command {
        *police_reference = None;
    }
    assert_eq!(when(&[seize()], &command), Err(CustodyError::PoliceReferenceRequired));
}

#[test]
fn a_handover_needs_the_device_sealed_with_the_recorded_seal_and_a_witness() {
    assert_eq!(when(&[seize()], &hand_over("S-1", MORNING + 1)), Err(CustodyError::NotSealed));
    assert_eq!(when(&sealed_and_stored(), &hand_over("S-2", MORNING + 200)), Err(CustodyError::SealMismatch));
    let mut command = hand_over("S-1", MORNING + 200);
    if let CustodyCommand::HandToPolice { witness, .. } = &mut command {
        *witness = None;
    }
    assert_eq!(when(&sealed_and_stored(), &command), Err(CustodyError::WitnessRequired("a handover to the police")));
    let mut history = sealed_and_stored();
    history.extend([hold(HoldKind::PoliceHold, MORNING + 150), hand_over("S-1", MORNING + 200)]);
    let state = record(&history);
    assert_eq!(state.status(), CustodyStatus::WithPolice);
    assert!(state.holds.is_empty());
    assert_eq!(when(&history, &give_back(MORNING + 300)), Err(CustodyError::Ended(CustodyStatus::WithPolice)));
}

#[test]
fn a_return_goes_to_the_owners_side() {
    let mut command = give_back(MORNING + 1);
    if let CustodyCommand::Return { recipient, .. } = &mut command {
        *recipient = ReturnRecipient::StaffMember;
    }
    assert_eq!(when(&[seize()], &command), Err(CustodyError::RecipientDoesNotFitOwner(ReturnRecipient::StaffMember)));
    let mut command = give_back(MORNING + 1);
    if let CustodyCommand::Return { collected_by, .. } = &mut command {
        *collected_by = None;
    }
    assert_eq!(when(&[seize()], &command), Err(CustodyError::CollectorRequired));
}

#[test]
fn deletion_needs_a_request_with_its_authority_and_an_open_device() {
    assert_eq!(
        when(&opened(), &record_deletion("del-1", MORNING + 700)),
        Err(CustodyError::DeletionNotRequested("del-1".into()))
    );
    let mut command = request_deletion("del-1", MORNING + 700);
    if let CustodyCommand::RequestDeletion { case_id, .. } = &mut command {
        *case_id = None;
    }
    assert_eq!(
        when(&opened(), &command),
        Err(CustodyError::DeletionAuthorityIncomplete(DeletionAuthority::DslConfirmed, "the case id"))
    );
    let mut history = sealed_and_stored();
    history.push(request_deletion("del-1", MORNING + 200));
    assert_eq!(
        when(&history, &request_deletion("del-1", MORNING + 300)),
        Err(CustodyError::DeletionAlreadyRequested("del-1".into()))
    );
    assert_eq!(when(&history, &record_deletion("del-1", MORNING + 300)), Err(CustodyError::NotOpened));
    history.extend([check("S-1", SealCondition::Intact, true, MORNING + 400), record_deletion("del-1", MORNING + 500)]);
    assert_eq!(
        when(&history, &record_deletion("del-1", MORNING + 600)),
        Err(CustodyError::DeletionAlreadyDone("del-1".into()))
    );
}

fn day() -> SchoolDay {
    SchoolDay { starts_at: UnixTime(MORNING - 3600), ends_at: UnixTime(MORNING + 8 * 3600) }
}

#[test]
fn the_end_of_day_sweep_raises_each_outstanding_device_once() {
    // c1 still stored; c2 returned; c3 under quarantine; c4 with the police; c5 seized yesterday.
    let histories = [
        vec![seize_at("c1", MORNING), seal("S-1", MORNING + 60)],
        vec![seize_at("c2", MORNING), give_back(MORNING + 100)],
        vec![seize_at("c3", MORNING), hold(HoldKind::Quarantine, MORNING + 100)],
        vec![seize_at("c4", MORNING), seal("S-4", MORNING + 60), hand_over("S-4", MORNING + 100)],
        vec![seize_at("c5", MORNING - 86_400)],
    ];
    let mut streams: Vec<Vec<CustodyEvent>> = histories.iter().map(|h| given(h)).collect();
    let records: Vec<CustodyRecord> = streams.iter().map(|s| fold::<CustodyDecider>(s).unwrap()).collect();
    let actions = end_of_day_sweep(&records, day());
    assert_eq!(actions.iter().map(|a| a.custody_id.as_str()).collect::<Vec<_>>(), ["c1"]);
    assert_eq!(actions[0].school_day_ends_at, day().ends_at);

    // The shell records each action on its stream; a second sweep then raises nothing.
    let sweep_at = UnixTime(MORNING + 8 * 3600);
    for action in &actions {
        let stream =
            streams.iter_mut().find(|s| fold::<CustodyDecider>(&**s).unwrap().custody_id == action.custody_id).unwrap();
        let events = CustodyDecider::decide(&fold::<CustodyDecider>(&**stream), &action.command(sweep_at)).unwrap();
        assert!(matches!(&events[..], [CustodyEvent::EndOfDayActionRaised { .. }]));
        stream.extend(events);
    }
    let records: Vec<CustodyRecord> = streams.iter().map(|s| fold::<CustodyDecider>(s).unwrap()).collect();
    assert!(end_of_day_sweep(&records, day()).is_empty());
    // Deciding the action again records nothing new either.
    assert!(CustodyDecider::decide(&Some(records[0].clone()), &actions[0].command(sweep_at)).unwrap().is_empty());
}

/// Any command, from a small vocabulary, at a time that moves forwards.
fn arbitrary_command() -> impl Strategy<Value = (u8, u8, bool)> {
    (0u8..13, 0u8..3, any::<bool>())
}

fn command_for((which, seal_index, flag): (u8, u8, bool), at: i64) -> CustodyCommand {
    let seal_number = format!("S-{seal_index}");
    let kind = if flag { HoldKind::Quarantine } else { HoldKind::PoliceHold };
    match which {
        0 => seal(&seal_number, at),
        1 => store(at),
        2 => check(&seal_number, if flag { SealCondition::Intact } else { SealCondition::Broken }, flag, at),
        3 => search(at),
        4 => hold(kind, at),
        5 => lift(kind, at),
        6 => hand_over(&seal_number, at),
        7 => give_back(at),
        8 => request_deletion(&format!("del-{seal_index}"), at),
        9 => record_deletion(&format!("del-{seal_index}"), at),
        10 => CustodyCommand::RaiseEndOfDayAction { school_day_ends_at: UnixTime(at), at: UnixTime(at) },
        11 => seize(),
        _ => check(&seal_number, SealCondition::Intact, true, at),
    }
}

proptest! {
    /// Replaying the events a run of commands produced rebuilds the state the run ended in,
    /// and refused commands change nothing.
    #[test]
    fn replay_rebuilds_the_same_state(commands in proptest::collection::vec(arbitrary_command(), 0..40)) {
        let mut state = CustodyDecider::decide(&None, &seize()).map(|events| fold::<CustodyDecider>(&events)).unwrap();
        let mut history = given(&[seize()]);
        for (step, raw) in commands.into_iter().enumerate() {
            let command = command_for(raw, MORNING + 10 * (step as i64 + 1));
            // A refused command changes nothing.
            if let Ok(events) = CustodyDecider::decide(&state, &command) {
                for event in &events {
                    state = CustodyDecider::evolve(state, event);
                }
                history.extend(events);
            }
            prop_assert_eq!(&fold::<CustodyDecider>(&history), &state);
        }
        let record = state.unwrap();
        // Invariants: a returned device never had a hold standing at its return.
        if record.status() == CustodyStatus::Returned {
            let last_return = history.iter().rposition(|e| matches!(e, CustodyEvent::Returned { .. })).unwrap();
            prop_assert!(fold::<CustodyDecider>(&history[..last_return]).unwrap().holds.is_empty());
        }
    }
}
