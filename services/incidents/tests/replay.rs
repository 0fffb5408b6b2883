//! Property: replaying a case's (or an alert's) events always rebuilds the same state as the
//! one built while deciding, whatever commands were tried and refused along the way.

mod support;

use haven_incidents::domain::*;
use haven_kernel::{Decider, fold};
use proptest::prelude::*;
use support::*;

const KEYS: &[&str] = &["notify-dsl", "inform-parents", "do-not-view-or-copy", "support", "other", "nope"];
const AGENCIES: &[Agency] = &[Agency::Csws, Agency::Police999, Agency::Lado, Agency::Iwf];
const STATUSES: &[ActionStatus] = &[ActionStatus::Done, ActionStatus::NotApplicable, ActionStatus::Outstanding];

fn request() -> impl Strategy<Value = CaseRequest> {
    prop_oneof![
        (0..KEYS.len(), 0..STATUSES.len(), any::<bool>()).prop_map(|(key, status, note)| CaseRequest::RecordAction {
            key: KEYS[key].into(),
            title: "t".into(),
            status: STATUSES[status],
            note: if note { "why".into() } else { String::new() },
        }),
        (0..3u8, 0..AGENCIES.len()).prop_map(|(id, agency)| CaseRequest::MakeReferral {
            referral_id: referral(&format!("ref-{id}")),
            agency: AGENCIES[agency],
            agency_other: String::new(),
            reference_number: format!("R{id}"),
            agency_contact: String::new(),
            reason: "r".into(),
            follow_up_at: None,
        }),
        (0..3u8).prop_map(|id| CaseRequest::RecordReferralOutcome {
            referral_id: referral(&format!("ref-{id}")),
            outcome: ReferralOutcome::AdviceGiven,
            allegation_outcome: None,
            detail: String::new(),
        }),
        any::<bool>().prop_map(|informed| if informed {
            CaseRequest::InformParents {
                subject_ids: vec![subject("ln-1")],
                method: ContactMethod::Letter,
                summary: "s".into(),
            }
        } else {
            CaseRequest::DoNotInformParents { subject_ids: vec![subject("ln-2")], reason: "risk".into() }
        }),
        Just(CaseRequest::RecordImageryViewed(ViewingRecord {
            viewed_by: user(DSL),
            viewed_at: MONDAY_NOON,
            present: vec![user(DEPUTY)],
            others_present: vec![],
            reason: "needed".into(),
            description: String::new(),
            custody_id: String::new(),
        })),
        (0..4usize).prop_map(|risk| CaseRequest::ChangeRisk {
            risk: [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High, RiskLevel::Critical][risk],
            reason: "r".into(),
        }),
        (0..2u8).prop_map(|id| CaseRequest::Link {
            linked_case_id: case_id(&format!("case-{}", id + 5)),
            linked_school_id: school(OTHER_SCHOOL),
            reason: "r".into(),
        }),
        (0..2u8).prop_map(|who| CaseRequest::GrantAccess {
            user: user([DEPUTY, TEACHER][usize::from(who)]),
            reason: "r".into(),
            by_principal: true,
        }),
        Just(CaseRequest::RevokeAccess { user: user(DEPUTY), by_principal: true }),
        Just(close_request(None)),
        Just(CaseRequest::Reopen { reason: "again".into() }),
    ]
}

proptest! {
    #[test]
    fn replaying_a_case_rebuilds_the_same_state(
        type_index in 0..CaseType::ALL.len(),
        viewed in any::<bool>(),
        requests in proptest::collection::vec(request(), 0..40),
    ) {
        let case_type = CaseType::ALL[type_index];
        let mut open = open_request(case_type, &["ln-1", "ln-2"], if case_type.is_about_staff() { &[TEACHER] } else { &[] });
        open.imagery_viewed = viewed;
        let mut scenario = Scenario::given_open(open);
        let mut live = fold::<CaseDecider>(&scenario.history);
        for (step, request) in requests.into_iter().enumerate() {
            let command = CaseCommand { by: user(DSL), at: MONDAY_NOON.plus_seconds(60 * step as i64 + 60), request };
            if let Ok(events) = CaseDecider::decide(&live, &command) {
                for event in &events {
                    live = CaseDecider::evolve(live, event);
                }
                scenario.history.extend(events);
            }
            prop_assert_eq!(&fold::<CaseDecider>(&scenario.history), &live);
        }
        let state = live.expect("opened");
        // Invariants the decider keeps whatever the history.
        if state.status == CaseStatus::Closed {
            prop_assert_eq!(state.outstanding().count(), 0);
            prop_assert_eq!(state.awaiting_outcome().count(), 0);
            prop_assert!(!state.viewing_record_owed());
        }
        prop_assert!(!state.grants.contains(&user(TEACHER)) || !case_type.is_about_staff());
    }
}
