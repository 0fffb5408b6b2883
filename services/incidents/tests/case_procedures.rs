//! Each case type run through its procedure, given / when / then, with the refusals the policy
//! demands.

mod support;

use haven_authz::Role;
use haven_incidents::domain::*;
use support::*;

fn outstanding_keys(scenario: &Scenario) -> Vec<String> {
    scenario.state().outstanding().map(|item| item.key.clone()).collect()
}

#[test]
fn filtering_breach_cannot_close_with_outstanding_actions_and_parents_settle_per_learner() {
    let mut case = Scenario::given_open(open_request(CaseType::FilteringBreach, &["ln-1", "ln-2"], &[]));
    let keys = outstanding_keys(&case);
    assert!(keys.contains(&"notify-dsl-and-technical".to_string()) && keys.contains(&"review-filtering".to_string()));

    let refused = case.refuse(DSL, close_request(None));
    assert!(matches!(&refused, CaseError::OutstandingActions(keys) if keys.contains(&"inform-parents".to_string())));

    case.accept(
        DSL,
        CaseRequest::InformParents {
            subject_ids: vec![subject("ln-1")],
            method: ContactMethod::Phone,
            summary: "told about the breach".into(),
        },
    );
    assert!(outstanding_keys(&case).contains(&"inform-parents".to_string()), "one learner still undecided");
    case.accept(
        DSL,
        CaseRequest::DoNotInformParents {
            subject_ids: vec![subject("ln-2")],
            reason: "telling would place the child at risk".into(),
        },
    );
    assert!(!outstanding_keys(&case).contains(&"inform-parents".to_string()));
    let refused = case.refuse(
        DSL,
        CaseRequest::InformParents {
            subject_ids: vec![subject("ln-9")],
            method: ContactMethod::Phone,
            summary: "x".into(),
        },
    );
    assert_eq!(refused, CaseError::SubjectNotInCase(subject("ln-9")));

    case.complete_checklist(DSL);
    let refused = case.refuse(
        DSL,
        CaseRequest::Close {
            outcome_summary: "ok".into(),
            debrief: " ".into(),
            lessons_learned: "x".into(),
            changes_required: String::new(),
            allegation_outcome: None,
        },
    );
    assert!(matches!(refused, CaseError::Invalid { field: "debrief", .. }));
    case.accept(DSL, close_request(None));
    assert_eq!(case.state().status, CaseStatus::Closed);
    assert_eq!(
        case.refuse(DSL, CaseRequest::ChangeRisk { risk: RiskLevel::High, reason: "x".into() }),
        CaseError::Closed
    );
}

#[test]
fn online_sexual_harassment_links_across_schools_and_waits_for_referral_outcomes() {
    let mut case = Scenario::given_open(open_request(CaseType::OnlineSexualViolenceHarassment, &["ln-1", "ln-2"], &[]));
    case.accept(
        DSL,
        CaseRequest::Link {
            linked_case_id: case_id("case-77"),
            linked_school_id: school(OTHER_SCHOOL),
            reason: "same online group".into(),
        },
    );
    let again = case.accept(
        DSL,
        CaseRequest::Link {
            linked_case_id: case_id("case-77"),
            linked_school_id: school(OTHER_SCHOOL),
            reason: "same online group".into(),
        },
    );
    assert!(again.is_empty(), "linking twice records nothing new");
    assert_eq!(
        case.refuse(
            DSL,
            CaseRequest::Link {
                linked_case_id: case_id("case-1"),
                linked_school_id: school(SCHOOL),
                reason: "x".into()
            }
        ),
        CaseError::LinkedToItself
    );
    case.refer(DSL, "ref-1", Agency::Csws);
    case.complete_checklist(DSL);
    assert_eq!(case.refuse(DSL, close_request(None)), CaseError::ReferralsAwaitOutcome(1));
    case.outcome(DSL, "ref-1", ReferralOutcome::AcceptedForAssessment, None);
    case.accept(DSL, close_request(None));
    assert_eq!(case.state().links.get(&case_id("case-77")), Some(&school(OTHER_SCHOOL)));
}

#[test]
fn sharing_nudes_needs_the_viewing_record_before_it_proceeds_and_deletion_needs_the_dsl() {
    let mut open = open_request(CaseType::SharingNudes, &["ln-1"], &[]);
    open.imagery_viewed = true;
    let mut case = Scenario::given_open(open);

    // Paperwork first — but a referral for a child's safety is never held back.
    assert_eq!(
        case.refuse(
            DSL,
            CaseRequest::RecordAction {
                key: "secure-devices".into(),
                title: String::new(),
                status: ActionStatus::Done,
                note: String::new()
            }
        ),
        CaseError::ViewingRecordRequired
    );
    case.refer(DSL, "ref-police", Agency::Police101);
    assert_eq!(case.refuse(DSL, close_request(None)), CaseError::ViewingRecordRequired);

    let viewing = |present: Vec<haven_authz::UserId>| ViewingRecord {
        viewed_by: user(DSL),
        viewed_at: MONDAY_NOON,
        present,
        others_present: vec![],
        reason: "a clear safeguarding reason: to judge the risk to the child".into(),
        description: "one image, described without reproducing it".into(),
        custody_id: String::new(),
    };
    assert!(matches!(
        case.refuse(DSL, CaseRequest::RecordImageryViewed(viewing(vec![]))),
        CaseError::Invalid { field: "present_user_ids", .. }
    ));
    case.accept(DSL, CaseRequest::RecordImageryViewed(viewing(vec![user(DEPUTY)])));
    case.not_applicable(DSL, "do-not-view-or-copy", "viewed by the DSL with the deputy present; record made");

    let deletion = Deletion {
        dsl: user(DSL),
        agencies_consulted: vec![Agency::Police101],
        description: "the image on the learner's phone".into(),
        deleted_by: "the learner, in the DSL's presence".into(),
        learner_consented: true,
        custody_id: String::new(),
    };
    let delete = |by_dsl, confirmed| CaseRequest::RecordMaterialDeletion {
        by_dsl,
        dsl_confirmed_no_agency_needs_it: confirmed,
        dsl_confirmed_safe_to_delete: true,
        deletion: deletion.clone(),
    };
    assert_eq!(case.refuse(DSL, delete(true, false)), CaseError::DeletionNotConfirmed);
    assert_eq!(case.refuse(TEACHER, delete(false, true)), CaseError::DeletionByDslOnly);
    case.accept(DSL, delete(true, true));
    assert_eq!(case.state().deletions.len(), 1);

    case.outcome(DSL, "ref-police", ReferralOutcome::AdviceGiven, None);
    case.complete_checklist(DSL);
    case.accept(DSL, close_request(None));
}

#[test]
fn marking_do_not_view_not_applicable_needs_a_viewing_record() {
    let mut case = Scenario::given_open(open_request(CaseType::SharingNudes, &["ln-1"], &[]));
    assert_eq!(
        case.refuse(
            DSL,
            CaseRequest::RecordAction {
                key: "do-not-view-or-copy".into(),
                title: String::new(),
                status: ActionStatus::NotApplicable,
                note: "it was viewed".into()
            }
        ),
        CaseError::ViewingRecordRequired
    );
}

#[test]
fn online_abuse_exploitation_999_escalation_and_a_reasoned_decision_not_to_refer() {
    let mut case = Scenario::given_open(open_request(CaseType::OnlineAbuseExploitation, &["ln-1"], &[]));
    case.refer(DSL, "ref-999", Agency::Police999);
    assert!(case.state().referrals[0].agency.is_immediate_risk());
    case.accept(DSL, CaseRequest::ChangeRisk { risk: RiskLevel::Critical, reason: "immediate danger".into() });
    assert_eq!(
        case.refuse(DSL, CaseRequest::ChangeRisk { risk: RiskLevel::Critical, reason: "again".into() }),
        CaseError::SameRisk(RiskLevel::Critical)
    );
    case.accept(
        DSL,
        CaseRequest::Escalate { role: Role::TrustSafeguardingLead, users: vec![], reason: "critical".into() },
    );
    assert!(matches!(
        case.refuse(DSL, CaseRequest::DeclineReferral { agency: Agency::Ceop, rationale: "".into() }),
        CaseError::Invalid { field: "rationale", .. }
    ));
    case.accept(
        DSL,
        CaseRequest::DeclineReferral {
            agency: Agency::Ceop,
            rationale: "police already investigating; they will refer".into(),
        },
    );
    // A reference number arriving later is recorded on the same referral.
    case.accept(
        DSL,
        CaseRequest::MakeReferral {
            referral_id: referral("ref-999"),
            agency: Agency::Police999,
            agency_other: String::new(),
            reference_number: "CRIME-0001".into(),
            agency_contact: String::new(),
            reason: String::new(),
            follow_up_at: Some(MONDAY_NOON.plus_seconds(86_400)),
        },
    );
    let state = case.state();
    assert_eq!(state.referrals.len(), 1);
    assert_eq!(state.referrals[0].reference_number, "CRIME-0001");
    assert_eq!(state.declined_referrals.len(), 1);
    assert_eq!(state.risk, RiskLevel::Critical);
    case.outcome(DSL, "ref-999", ReferralOutcome::InvestigationOpened, None);
    case.complete_checklist(DSL);
    case.accept(DSL, close_request(None));
}

#[test]
fn indecent_images_held_by_staff_add_lado_due_in_one_working_day() {
    let mut case = Scenario::given_open(open_request(CaseType::IndecentImagesOfChildren, &[], &[TEACHER]));
    let state = case.state();
    let lado = state.checklist.iter().find(|item| item.key == "refer-lado").expect("staff rows");
    let due = lado.due_at.expect("a deadline");
    assert!(state.overdue(due).is_empty(), "due, not yet overdue");
    assert_eq!(state.overdue(due.plus_seconds(1)).iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["refer-lado"]);

    case.refer(PRINCIPAL, "ref-lado", Agency::Lado);
    let state = case.state();
    assert!(state.overdue(due.plus_seconds(10_000)).is_empty(), "the referral completes the action");
    assert!(state.checklist.iter().any(|item| item.key == "quarantine-devices"));
    // The member of staff the case is about never sees it, whatever roles they hold.
    assert_eq!(may_see_case(&state, &dsl_reader(TEACHER)), Err(AccessRefusal::AboutThemselves));
}

#[test]
fn indecent_images_found_without_staff_have_no_lado_row() {
    let case = Scenario::given_open(open_request(CaseType::IndecentImagesOfChildren, &["ln-1"], &[]));
    let keys = outstanding_keys(&case);
    assert!(keys.contains(&"report-urls-to-iwf".to_string()) && !keys.contains(&"refer-lado".to_string()));
}

#[test]
fn cyberbullying_not_applicable_needs_a_reason() {
    let mut case = Scenario::given_open(open_request(CaseType::Cyberbullying, &["ln-1"], &[]));
    let refused = case.refuse(
        DSL,
        CaseRequest::RecordAction {
            key: "sanctions".into(),
            title: String::new(),
            status: ActionStatus::NotApplicable,
            note: String::new(),
        },
    );
    assert!(matches!(refused, CaseError::Invalid { field: "note", .. }));
    case.not_applicable(DSL, "sanctions", "restorative approach agreed instead");
    case.complete_checklist(DSL);
    case.accept(DSL, close_request(None));
    let state = case.state();
    let sanctions = state.checklist.iter().find(|item| item.key == "sanctions").expect("row");
    assert_eq!(sanctions.status, ActionStatus::NotApplicable);
}

#[test]
fn online_hate_refuses_unknown_actions_and_records_others_outside_the_checklist() {
    let mut case = Scenario::given_open(open_request(CaseType::OnlineHate, &["ln-1"], &[]));
    let refused = case.refuse(
        DSL,
        CaseRequest::RecordAction {
            key: "review-filtering".into(),
            title: String::new(),
            status: ActionStatus::Done,
            note: String::new(),
        },
    );
    assert_eq!(refused, CaseError::UnknownAction("review-filtering".into()));
    case.accept(
        DSL,
        CaseRequest::RecordAction {
            key: "other".into(),
            title: "assembly on respect online".into(),
            status: ActionStatus::Done,
            note: String::new(),
        },
    );
    case.complete_checklist(DSL);
    case.accept(DSL, close_request(None));
}

#[test]
fn radicalisation_prevent_referral() {
    let mut case = Scenario::given_open(open_request(CaseType::RadicalisationExtremism, &["ln-1"], &[]));
    assert!(outstanding_keys(&case).contains(&"consider-prevent-referral".to_string()));
    case.refer(DSL, "ref-prevent", Agency::PreventChannel);
    case.outcome(DSL, "ref-prevent", ReferralOutcome::AcceptedForAssessment, None);
    case.complete_checklist(DSL);
    case.accept(DSL, close_request(None));
}

#[test]
fn allegation_against_staff_principal_only_lado_outcome_and_never_the_subject() {
    let mut open = open_request(CaseType::AllegationAgainstStaff, &[], &[]);
    assert_eq!(
        Scenario { history: vec![], now: MONDAY_NOON }.refuse(PRINCIPAL, CaseRequest::Open(open.clone())),
        CaseError::StaffRequired
    );
    open.staff_ids = vec![user(TEACHER)];
    let mut case = Scenario::given_open(open);
    let state = case.state();
    assert_eq!(state.access_policy, AccessPolicy::PrincipalAndGrantees);
    assert_eq!(may_see_case(&state, &principal_reader(PRINCIPAL)), Ok(()));
    assert_eq!(may_see_case(&state, &dsl_reader(DSL)), Err(AccessRefusal::NoNeedToKnow));
    assert_eq!(
        may_see_case(&state, &Reader { trust_lead: true, ..reader("trust-lead-1") }),
        Err(AccessRefusal::NoNeedToKnow)
    );
    assert_eq!(
        may_see_case(&state, &Reader { principal_here: true, ..reader(TEACHER) }),
        Err(AccessRefusal::AboutThemselves)
    );

    // Only the principal grants; never to the person it is about.
    let grant = |user_id: &str, by_principal| CaseRequest::GrantAccess {
        user: user(user_id),
        reason: "supports the investigation".into(),
        by_principal,
    };
    assert_eq!(case.refuse(DSL, grant(DSL, false)), CaseError::PrincipalGrantsOnly);
    assert_eq!(case.refuse(PRINCIPAL, grant(TEACHER, true)), CaseError::GranteeIsSubject);
    case.accept(PRINCIPAL, grant(DSL, true));
    assert_eq!(may_see_case(&case.state(), &reader(DSL)), Ok(()));
    case.accept(PRINCIPAL, CaseRequest::RevokeAccess { user: user(DSL), by_principal: true });
    assert_eq!(may_see_case(&case.state(), &reader(DSL)), Err(AccessRefusal::NoNeedToKnow));

    case.refer(PRINCIPAL, "ref-lado", Agency::Lado);
    assert_eq!(
        case.refuse(
            PRINCIPAL,
            CaseRequest::RecordReferralOutcome {
                referral_id: referral("ref-lado"),
                outcome: ReferralOutcome::AdviceGiven,
                allegation_outcome: None,
                detail: String::new()
            }
        ),
        CaseError::AllegationOutcomeRequired
    );
    case.outcome(PRINCIPAL, "ref-lado", ReferralOutcome::AdviceGiven, Some(AllegationOutcome::Unfounded));
    case.complete_checklist(PRINCIPAL);
    assert_eq!(case.refuse(PRINCIPAL, close_request(None)), CaseError::AllegationOutcomeRequired);
    case.accept(PRINCIPAL, close_request(Some(AllegationOutcome::Unfounded)));
}

#[test]
fn low_level_concern_is_recorded_apart_and_restricted() {
    let case = Scenario::given_open(open_request(CaseType::LowLevelConcern, &[], &[TEACHER]));
    let state = case.state();
    assert_eq!(state.access_policy, AccessPolicy::PrincipalAndGrantees);
    assert_eq!(outstanding_keys(&case).iter().filter(|k| k.as_str() == "discuss-with-lado").count(), 0);
    assert_eq!(may_see_case(&state, &dsl_reader(DSL)), Err(AccessRefusal::NoNeedToKnow));
}

#[test]
fn concern_about_parent_carer_and_a_dsl_of_another_school() {
    let mut case = Scenario::given_open(open_request(CaseType::ConcernAboutParentCarer, &["ln-1"], &[]));
    let state = case.state();
    // A DSL of another school is not a DSL here: the shell looks roles up in the case's school.
    assert_eq!(may_see_case(&state, &reader(OTHER_DSL)), Err(AccessRefusal::NoNeedToKnow));
    assert_eq!(may_see_case(&state, &dsl_reader(DEPUTY)), Ok(()));
    assert_eq!(may_see_case(&state, &Reader { trust_lead: true, ..reader("trust-lead-1") }), Ok(()));
    case.complete_checklist(DSL);
    case.accept(DSL, close_request(None));
}

#[test]
fn commerce_close_reopen_keeps_history() {
    let mut case = Scenario::given_open(open_request(CaseType::Commerce, &["ln-1"], &[]));
    case.complete_checklist(DSL);
    case.accept(DSL, close_request(None));
    assert_eq!(case.refuse(DSL, CaseRequest::Reopen { reason: " ".into() }).to_string(), "invalid reason: is required");
    case.accept(DSL, CaseRequest::Reopen { reason: "the scam recurred".into() });
    let state = case.state();
    assert_eq!((state.status, state.reopenings, state.closures.len()), (CaseStatus::Open, 1, 1));
    case.accept(
        DSL,
        CaseRequest::RecordAction {
            key: "report-fraud".into(),
            title: String::new(),
            status: ActionStatus::Done,
            note: "reported again".into(),
        },
    );
    case.accept(DSL, close_request(None));
    assert_eq!(case.state().closures.len(), 2);
    assert_eq!(
        case.refuse(DSL, CaseRequest::Open(open_request(CaseType::Commerce, &[], &[]))),
        CaseError::AlreadyOpened
    );
}

#[test]
fn every_type_opens_with_its_versioned_checklist_and_refuses_to_close_until_done() {
    for case_type in CaseType::ALL {
        let staff: &[&str] = if case_type.is_about_staff() { &[TEACHER] } else { &[] };
        let mut case = Scenario::given_open(open_request(case_type, &["ln-1"], staff));
        let state = case.state();
        assert_eq!(state.checklist_version, CHECKLIST_VERSION);
        assert!(state.checklist.iter().any(|item| item.key == "seek-advice-if-unsure"));
        let lead = state.lead.as_str().to_owned();
        assert!(matches!(case.refuse(&lead, close_request(None)), CaseError::OutstandingActions(_)), "{case_type:?}");
        case.complete_checklist(&lead);
        let allegation = (case_type == CaseType::AllegationAgainstStaff).then_some(AllegationOutcome::Substantiated);
        case.accept(&lead, close_request(allegation));
    }
}
