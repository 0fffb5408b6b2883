//! Given events, when a command, then events or a refusal.

use std::collections::BTreeSet;

use haven_kernel::{Decider, fold};
use haven_proto::v1 as pb;

use super::*;

fn requested() -> pb::FilteringChangeRequested {
    pb::FilteringChangeRequested {
        change_id: "c1".into(),
        school_id: "oak".into(),
        requested_by_user_id: "tech".into(),
        kind: pb::FilteringChangeKind::AllowSite as i32,
        url_host: "history.example.org".into(),
        reason: "Year 6 history topic".into(),
        risk_assessment: "Educational resource, no user content".into(),
        risk_assessed_by_user_ids: vec!["tech".into(), "teacher".into()],
        ..Default::default()
    }
}

fn request(event: pb::FilteringChangeRequested) -> ChangeCommand {
    ChangeCommand::Request { event, school_reports: BTreeSet::from(["r1".to_owned()]), at: 100 }
}

fn given(commands: &[ChangeCommand]) -> Option<Change> {
    let mut events = Vec::new();
    for command in commands {
        let state = fold::<ChangeDecider>(events.iter());
        events.extend(ChangeDecider::decide(&state, command).expect("the history is valid"));
    }
    fold::<ChangeDecider>(events.iter())
}

fn approve(by: &str) -> ChangeCommand {
    ChangeCommand::Approve { by: by.into(), leadership_consent: true, notes: String::new(), at: 200 }
}

fn apply() -> ChangeCommand {
    ChangeCommand::Apply { by: "tech".into(), filter_reference: "rule-7".into(), effective_at: None, at: 300 }
}

#[test]
fn a_change_is_requested_approved_and_applied() {
    let change = given(&[request(requested()), approve("principal"), apply()]).unwrap();
    assert_eq!(change.status, ChangeStatus::Applied);
    assert_eq!(change.decided_by.as_deref(), Some("principal"));
    assert_eq!((change.requested_at, change.decided_at, change.applied_at), (100, Some(200), Some(300)));
    assert_eq!(change.applied.unwrap().effective_at.unwrap().seconds, 300, "effective now unless told");
}

#[test]
fn a_request_needs_its_risk_assessment_and_a_host_for_a_site() {
    let mut event = requested();
    event.risk_assessment = "  ".into();
    let refused = ChangeDecider::decide(&None, &request(event)).unwrap_err();
    assert_eq!(refused, GovernanceError::Invalid { field: "risk_assessment", reason: "must not be empty".into() });
    let mut event = requested();
    event.url_host = "https://history.example.org/page?q=1".into();
    assert!(matches!(
        ChangeDecider::decide(&None, &request(event)),
        Err(GovernanceError::Invalid { field: "url_host", .. })
    ));
    let mut event = requested();
    event.kind = pb::FilteringChangeKind::ChangeCategoryAction as i32;
    assert!(matches!(
        ChangeDecider::decide(&None, &request(event)),
        Err(GovernanceError::Invalid { field: "category", .. })
    ));
}

#[test]
fn a_request_may_answer_only_the_schools_own_reports() {
    let mut event = requested();
    event.overblocking_report_ids = vec!["r1".into()];
    assert!(ChangeDecider::decide(&None, &request(event.clone())).is_ok());
    event.overblocking_report_ids = vec!["r2".into()];
    assert_eq!(ChangeDecider::decide(&None, &request(event)), Err(GovernanceError::UnknownReport("r2".into())));
}

#[test]
fn nobody_decides_their_own_request_and_a_decision_is_final() {
    let state = given(&[request(requested())]);
    assert_eq!(ChangeDecider::decide(&state, &approve("tech")), Err(GovernanceError::DeciderIsRequester));
    let rejected = given(&[
        request(requested()),
        ChangeCommand::Reject { by: "dsl".into(), reason: "Use the approved resource".into(), at: 150 },
    ]);
    assert_eq!(rejected.as_ref().unwrap().status, ChangeStatus::Rejected);
    assert_eq!(
        ChangeDecider::decide(&rejected, &approve("principal")),
        Err(GovernanceError::NotPending(ChangeStatus::Rejected))
    );
    assert_eq!(ChangeDecider::decide(&rejected, &apply()), Err(GovernanceError::NotApproved(ChangeStatus::Rejected)));
}

#[test]
fn only_an_approved_change_is_applied_and_only_once() {
    let state = given(&[request(requested())]);
    assert_eq!(ChangeDecider::decide(&state, &apply()), Err(GovernanceError::NotApproved(ChangeStatus::Requested)));
    assert_eq!(ChangeDecider::decide(&None, &apply()), Err(GovernanceError::NoSuchChange));
    let applied = given(&[request(requested()), approve("principal"), apply()]);
    assert_eq!(ChangeDecider::decide(&applied, &apply()), Err(GovernanceError::NotApproved(ChangeStatus::Applied)));
}

fn check(outcome: pb::FilterCheckOutcome, observed: pb::BreachAction) -> RecordCommand {
    RecordCommand::RecordCheck {
        event: pb::FilterCheckRecorded {
            check_id: "k1".into(),
            school_id: "oak".into(),
            checked_by_user_id: "tech".into(),
            method: pb::FilterCheckMethod::TestService as i32,
            outcome: outcome as i32,
            results: vec![pb::FilterCheckResult {
                category: pb::BreachCategory::Gambling as i32,
                expected_action: pb::BreachAction::Blocked as i32,
                observed_action: observed as i32,
            }],
            ..Default::default()
        },
        at: 10,
    }
}

#[test]
fn a_check_outcome_agrees_with_its_results() {
    let empty = SchoolFiltering::default();
    assert!(RecordDecider::decide(&empty, &check(pb::FilterCheckOutcome::Passed, pb::BreachAction::Blocked)).is_ok());
    assert!(matches!(
        RecordDecider::decide(&empty, &check(pb::FilterCheckOutcome::Passed, pb::BreachAction::Allowed)),
        Err(GovernanceError::Invalid { field: "outcome", .. })
    ));
    let events =
        RecordDecider::decide(&empty, &check(pb::FilterCheckOutcome::Failed, pb::BreachAction::Allowed)).unwrap();
    let state = fold::<RecordDecider>(events.iter());
    assert_eq!(state.checks.len(), 1);
    assert_eq!(state.checks[0].at, 10);
}

#[test]
fn a_review_needs_a_governor_and_findings() {
    let review = |holds: bool, findings: &str| RecordCommand::RecordReview {
        event: pb::FilteringReviewRecorded {
            review_id: "v1".into(),
            school_id: "oak".into(),
            recorded_by_user_id: "principal".into(),
            governor_user_id: "governor".into(),
            findings: findings.into(),
            held_at: Some(prost_types::Timestamp { seconds: 50, nanos: 0 }),
            next_review_due_at: Some(prost_types::Timestamp { seconds: 50 + 365 * 86_400, nanos: 0 }),
            ..Default::default()
        },
        governor_holds_role: holds,
        at: 60,
    };
    let empty = SchoolFiltering::default();
    assert_eq!(
        RecordDecider::decide(&empty, &review(false, "Provision meets the standards")),
        Err(GovernanceError::NotAGovernor)
    );
    assert!(matches!(
        RecordDecider::decide(&empty, &review(true, "")),
        Err(GovernanceError::Invalid { field: "findings", .. })
    ));
    assert_eq!(RecordDecider::decide(&empty, &review(true, "Provision meets the standards")).unwrap().len(), 1);
}
