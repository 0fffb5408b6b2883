//! Given / when / then for incidents' aggregates, and invented people (never from the policies).
#![allow(dead_code)]

use std::collections::BTreeSet;

use haven_authz::UserId;
use haven_incidents::domain::*;
use haven_kernel::{Decider, SchoolId, fold};

pub fn user(id: &str) -> UserId {
    UserId::parse(id).expect("user id")
}
pub fn subject(id: &str) -> SubjectId {
    SubjectId::parse(id).expect("subject id")
}
pub fn school(id: &str) -> SchoolId {
    SchoolId::parse(id).expect("school id")
}
pub fn case_id(id: &str) -> CaseId {
    CaseId::parse(id).expect("case id")
}
pub fn referral(id: &str) -> ReferralId {
    ReferralId::parse(id).expect("referral id")
}

/// Invented people of the invented Larkspur Academy.
pub const DSL: &str = "wren-adeyemi";
pub const DEPUTY: &str = "tobias-marsh";
pub const PRINCIPAL: &str = "ines-carrow";
pub const TEACHER: &str = "felix-odum";
pub const OTHER_DSL: &str = "maya-thorne";
pub const SCHOOL: &str = "larkspur-academy";
pub const OTHER_SCHOOL: &str = "birchwood-primary";

/// 2026-12-07T12:00:00Z, a Monday.
pub const MONDAY_NOON: UnixTime = UnixTime(1_796_644_800);

pub fn open_request(case_type: CaseType, subjects: &[&str], staff: &[&str]) -> OpenCase {
    OpenCase {
        case_id: case_id("case-1"),
        school_id: school(SCHOOL),
        case_type,
        four_cs: BTreeSet::from([FourCs::Content]),
        risk: RiskLevel::Medium,
        lead: user(if case_type.is_about_staff() { PRINCIPAL } else { DSL }),
        subject_ids: subjects.iter().map(|id| subject(id)).collect(),
        staff_ids: staff.iter().map(|id| user(id)).collect(),
        concern_ids: vec![],
        alert_ids: vec![],
        summary: "invented summary".into(),
        imagery_viewed: false,
    }
}

/// A case's history, grown one accepted command at a time.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub history: Vec<CaseEvent>,
    pub now: UnixTime,
}

impl Scenario {
    /// Given: a case opened with `open` by its lead at Monday noon.
    pub fn given_open(open: OpenCase) -> Scenario {
        let mut scenario = Scenario { history: vec![], now: MONDAY_NOON };
        let lead = open.lead.clone();
        scenario.accept(lead.as_str(), CaseRequest::Open(open));
        scenario
    }

    pub fn state(&self) -> Case {
        fold::<CaseDecider>(&self.history).expect("case opened")
    }

    fn command(&mut self, by: &str, request: CaseRequest) -> CaseCommand {
        self.now = self.now.plus_seconds(60);
        CaseCommand { by: user(by), at: self.now, request }
    }

    /// When `by` asks `request`, then it is accepted: its events are appended and returned.
    pub fn accept(&mut self, by: &str, request: CaseRequest) -> Vec<CaseEvent> {
        let command = self.command(by, request);
        let state = fold::<CaseDecider>(&self.history);
        let events = CaseDecider::decide(&state, &command).unwrap_or_else(|e| panic!("refused: {e} ({command:?})"));
        self.history.extend(events.iter().cloned());
        events
    }

    /// When `by` asks `request`, then it is refused, and nothing changes.
    pub fn refuse(&mut self, by: &str, request: CaseRequest) -> CaseError {
        let before = self.history.len();
        let command = self.command(by, request);
        let state = fold::<CaseDecider>(&self.history);
        let error = CaseDecider::decide(&state, &command).expect_err("expected a refusal");
        assert_eq!(self.history.len(), before);
        error
    }

    pub fn done(&mut self, by: &str, key: &str) {
        self.accept(
            by,
            CaseRequest::RecordAction {
                key: key.into(),
                title: String::new(),
                status: ActionStatus::Done,
                note: "done".into(),
            },
        );
    }

    pub fn not_applicable(&mut self, by: &str, key: &str, why: &str) {
        self.accept(
            by,
            CaseRequest::RecordAction {
                key: key.into(),
                title: String::new(),
                status: ActionStatus::NotApplicable,
                note: why.into(),
            },
        );
    }

    /// Every outstanding required action recorded as done.
    pub fn complete_checklist(&mut self, by: &str) {
        let keys: Vec<String> = self.state().outstanding().map(|item| item.key.clone()).collect();
        for key in keys {
            self.done(by, &key);
        }
    }

    pub fn refer(&mut self, by: &str, id: &str, agency: Agency) {
        self.accept(
            by,
            CaseRequest::MakeReferral {
                referral_id: referral(id),
                agency,
                agency_other: String::new(),
                reference_number: String::new(),
                agency_contact: String::new(),
                reason: "invented reason".into(),
                follow_up_at: None,
            },
        );
    }

    pub fn outcome(&mut self, by: &str, id: &str, outcome: ReferralOutcome, allegation: Option<AllegationOutcome>) {
        self.accept(
            by,
            CaseRequest::RecordReferralOutcome {
                referral_id: referral(id),
                outcome,
                allegation_outcome: allegation,
                detail: String::new(),
            },
        );
    }
}

pub fn close_request(allegation: Option<AllegationOutcome>) -> CaseRequest {
    CaseRequest::Close {
        outcome_summary: "resolved".into(),
        debrief: "debriefed with the team".into(),
        lessons_learned: "report sooner".into(),
        changes_required: String::new(),
        allegation_outcome: allegation,
    }
}

pub fn reader(id: &str) -> Reader {
    Reader { user: user(id), dsl_here: false, principal_here: false, trust_lead: false }
}

pub fn dsl_reader(id: &str) -> Reader {
    Reader { dsl_here: true, ..reader(id) }
}

pub fn principal_reader(id: &str) -> Reader {
    Reader { principal_here: true, ..reader(id) }
}
