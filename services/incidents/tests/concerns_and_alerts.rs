//! Concerns and their triage; escalation of unacknowledged alerts as a function of time.

mod support;

use haven_authz::Role;
use haven_incidents::domain::*;
use haven_kernel::{Decider, fold};
use support::*;

fn concern(about: ConcernAbout, subjects: &[&str], staff: &[&str]) -> ConcernDetails {
    ConcernDetails {
        concern_id: ConcernId::parse("concern-1").unwrap(),
        school_id: school(SCHOOL),
        raised_by: user(TEACHER),
        raised_at: MONDAY_NOON,
        about,
        subject_ids: subjects.iter().map(|id| subject(id)).collect(),
        staff_ids: staff.iter().map(|id| user(id)).collect(),
        what_happened: "an invented account of what was seen".into(),
        incident_occurred_at: None,
        suspected_type: Some(CaseType::Cyberbullying),
        immediate_risk: false,
        dsl_told_verbally: Some(user(DSL)),
        alert_id: None,
        device_ids: vec![],
    }
}

fn raised(details: ConcernDetails) -> Vec<ConcernEvent> {
    ConcernDecider::decide(&None, &ConcernCommand::Raise(details)).expect("raised")
}

fn triage(by: &str, by_principal: bool, decision: TriageDecision) -> ConcernCommand {
    ConcernCommand::Triage { by: user(by), at: MONDAY_NOON.plus_seconds(600), by_principal, decision }
}

#[test]
fn raising_a_concern_names_whom_it_is_about() {
    let refused = ConcernDecider::decide(&None, &ConcernCommand::Raise(concern(ConcernAbout::Learner, &[], &[])));
    assert!(matches!(refused, Err(ConcernError::NobodyNamed(_))));
    let refused =
        ConcernDecider::decide(&None, &ConcernCommand::Raise(concern(ConcernAbout::Colleague, &[], &[TEACHER])));
    assert_eq!(refused, Err(ConcernError::AboutTheRaiser));
    let mut blank = concern(ConcernAbout::Learner, &["ln-1"], &[]);
    blank.what_happened = "  ".into();
    assert!(matches!(
        ConcernDecider::decide(&None, &ConcernCommand::Raise(blank)),
        Err(ConcernError::Invalid { field: "what_happened", .. })
    ));
    let history = raised(concern(ConcernAbout::Learner, &["ln-1"], &[]));
    let state = fold::<ConcernDecider>(&history);
    assert_eq!(state.as_ref().and_then(|c| c.details.dsl_told_verbally.clone()), Some(user(DSL)));
    assert_eq!(
        ConcernDecider::decide(&state, &ConcernCommand::Raise(concern(ConcernAbout::Learner, &["ln-1"], &[]))),
        Err(ConcernError::AlreadyRaised)
    );
}

#[test]
fn triage_once_with_reasons_and_colleague_concerns_go_to_the_principal() {
    let history = raised(concern(ConcernAbout::Learner, &["ln-1"], &[]));
    let state = fold::<ConcernDecider>(&history);
    assert!(matches!(
        ConcernDecider::decide(&state, &triage(DSL, false, TriageDecision::FalsePositive { reason: "".into() })),
        Err(ConcernError::Invalid { field: "reason", .. })
    ));
    let events = ConcernDecider::decide(
        &state,
        &triage(DSL, false, TriageDecision::FalsePositive { reason: "mis-categorised site".into() }),
    )
    .expect("triaged");
    let state = events.iter().fold(state, ConcernDecider::evolve);
    assert_eq!(
        ConcernDecider::decide(&state, &triage(DSL, false, TriageDecision::Merged { case_id: case_id("case-1") })),
        Err(ConcernError::AlreadyTriaged)
    );

    let colleague = fold::<ConcernDecider>(&raised(concern(ConcernAbout::Colleague, &[], &[DEPUTY])));
    let open = TriageDecision::CaseOpened { case_id: case_id("case-2") };
    assert_eq!(
        ConcernDecider::decide(&colleague, &triage(DSL, false, open.clone())),
        Err(ConcernError::PrincipalTriages)
    );
    assert!(ConcernDecider::decide(&colleague, &triage(PRINCIPAL, true, open)).is_ok());
    let concern = colleague.expect("raised");
    assert!(!may_triage(&concern, &dsl_reader(DSL)));
    assert!(may_triage(&concern, &principal_reader(PRINCIPAL)));
    assert_eq!(may_see_concern(&concern, &principal_reader(DEPUTY)), Err(AccessRefusal::AboutThemselves));
    assert_eq!(may_see_concern(&concern, &reader(TEACHER)), Ok(()), "the raiser sees their own concern");
    assert_eq!(may_see_concern(&concern, &dsl_reader(DSL)), Err(AccessRefusal::NoNeedToKnow));
}

#[test]
fn staff_see_the_concerns_they_raised_and_a_dsl_of_another_school_does_not() {
    let concern = fold::<ConcernDecider>(&raised(concern(ConcernAbout::Learner, &["ln-1"], &[]))).unwrap();
    assert_eq!(may_see_concern(&concern, &reader(TEACHER)), Ok(()));
    assert_eq!(may_see_concern(&concern, &reader("another-teacher")), Err(AccessRefusal::NoNeedToKnow));
    assert_eq!(may_see_concern(&concern, &reader(OTHER_DSL)), Err(AccessRefusal::NoNeedToKnow));
    assert_eq!(may_see_concern(&concern, &dsl_reader(DSL)), Ok(()));
}

fn critical_alert() -> Alert {
    let history = [AlertEvent::Raised {
        alert_id: AlertId::parse("alert-1").unwrap(),
        school_id: school(SCHOOL),
        severity: Severity::Critical,
        raised_at: MONDAY_NOON,
    }];
    fold::<AlertDecider>(&history).unwrap()
}

const MINUTE: i64 = 60;

#[test]
fn an_unacknowledged_critical_alert_climbs_the_ladder_step_by_step() {
    let policy = EscalationPolicy::default();
    let alert = critical_alert();
    assert!(escalations_due(&alert, MONDAY_NOON.plus_seconds(15 * MINUTE - 1), &policy).is_empty());
    let first = escalations_due(&alert, MONDAY_NOON.plus_seconds(15 * MINUTE), &policy);
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].level, first[0].role), (1, Role::DeputyDsl));
    assert_eq!(first[0].next_acknowledge_by, Some(MONDAY_NOON.plus_seconds(30 * MINUTE)));

    // Applied, the same moment asks for nothing more (two timers write each step once).
    let state = Some(alert.clone());
    let events = AlertDecider::decide(
        &state,
        &AlertCommand::Escalate { now: MONDAY_NOON.plus_seconds(15 * MINUTE), policy: policy.clone() },
    )
    .unwrap();
    let state = events.iter().fold(state, AlertDecider::evolve);
    let again = AlertDecider::decide(
        &state,
        &AlertCommand::Escalate { now: MONDAY_NOON.plus_seconds(20 * MINUTE), policy: policy.clone() },
    )
    .unwrap();
    assert!(again.is_empty());

    // A timer that was down catches up: principal, then trust lead, then nothing further.
    let late = escalations_due(state.as_ref().unwrap(), MONDAY_NOON.plus_seconds(5 * 60 * MINUTE), &policy);
    assert_eq!(
        late.iter().map(|s| (s.level, s.role)).collect::<Vec<_>>(),
        [(2, Role::Principal), (3, Role::TrustSafeguardingLead)]
    );
    assert_eq!(late[1].next_acknowledge_by, None);
}

#[test]
fn acknowledging_stops_escalation_and_other_severities_never_escalate() {
    let policy = EscalationPolicy { acknowledge_within_seconds: 5 * MINUTE, ..EscalationPolicy::default() };
    let state = Some(critical_alert());
    let ack = AlertCommand::Acknowledge {
        by: user(DSL),
        at: MONDAY_NOON.plus_seconds(4 * MINUTE),
        concern_id: None,
        note: String::new(),
        policy: policy.clone(),
    };
    let events = AlertDecider::decide(&state, &ack).unwrap();
    assert!(matches!(&events[0], AlertEvent::Acknowledged(a) if a.within_deadline));
    let state = events.iter().fold(state, AlertDecider::evolve);
    assert!(escalations_due(state.as_ref().unwrap(), MONDAY_NOON.plus_seconds(600 * MINUTE), &policy).is_empty());
    assert_eq!(AlertDecider::decide(&state, &ack), Err(AlertError::AlreadyAcknowledged));

    let high = Alert { severity: Severity::High, ..critical_alert() };
    assert!(escalations_due(&high, MONDAY_NOON.plus_seconds(600 * MINUTE), &policy).is_empty());
    assert_eq!(
        escalations_due(&critical_alert(), MONDAY_NOON.plus_seconds(5 * MINUTE), &policy)[0].acknowledge_by,
        MONDAY_NOON.plus_seconds(5 * MINUTE),
        "the deadline is configurable"
    );
}
