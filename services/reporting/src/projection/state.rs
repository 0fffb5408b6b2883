//! The read model every report is answered from, and how one event changes it.
//!
//! [`ReportState::apply`] is pure and deterministic: no clock, no I/O. Applying the same
//! events in the same order always gives the same state, which is what makes a rebuild from
//! position 0 equal to the live projection. Events that cannot be decoded change nothing:
//! a report never fails because one service wrote something it does not understand.

use std::collections::BTreeMap;

use haven_proto::v1::{self as pb, EventEnvelope};
use prost::Message;

use crate::events as ev;
use crate::time::{hour_start, secs};

/// Breach categories, indexed by their protobuf number (0..=13).
pub const CATEGORIES: usize = 14;

/// Breaches at one school in one clock hour.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HourCell {
    pub by_category: [u64; CATEGORIES],
    pub blocked: u64,
    pub flagged: u64,
    pub allowed: u64,
}

impl HourCell {
    pub fn total(&self) -> u64 {
        self.by_category.iter().sum()
    }
}

/// Where a recorded breach was counted, so later repeats are counted with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreachKey {
    pub school_id: String,
    pub hour: i64,
    pub category: usize,
    pub action: i32,
}

/// Breaches attributed to one learner (pseudonymous id), by school.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectTally {
    pub by_school: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alert {
    pub school_id: String,
    pub severity: i32,
    pub category: i32,
    pub raised_at: i64,
    pub acknowledge_by: Option<i64>,
    /// When acknowledged, and whether before the deadline.
    pub acknowledged: Option<(i64, bool)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChecklistAction {
    pub due_at: Option<i64>,
    pub status: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Case {
    pub school_id: String,
    pub case_type: i32,
    pub risk_level: i32,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    pub lead_user_id: String,
    /// Allegations and low-level concerns about staff: counted, never listed to others.
    pub restricted: bool,
    /// Staff the case is about; never shown it.
    pub staff_user_ids: Vec<String>,
    pub checklist: BTreeMap<String, ChecklistAction>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Referral {
    pub case_id: String,
    pub school_id: String,
    pub agency: i32,
    pub referred_at: i64,
    pub reference_number: String,
    pub outcome: i32,
    pub allegation_outcome: i32,
    pub outcome_at: Option<i64>,
}

/// How a device's time in the school's custody ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustodyEnd {
    HandedToPolice,
    Returned,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Custody {
    pub school_id: String,
    pub case_id: String,
    pub seized_at: i64,
    /// A quarantine or police hold standing (`HoldKind`).
    pub hold: Option<i32>,
    pub ended: Option<(i64, CustodyEnd)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterCheck {
    pub school_id: String,
    pub checked_at: i64,
    pub outcome: i32,
    pub next_check_due_at: Option<i64>,
}

/// Everything the reports read, pre-aggregated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportState {
    /// Pupils on roll per school, as (from when, count), oldest first.
    pub pupils: BTreeMap<String, Vec<(i64, u32)>>,
    /// (school, hour start) → breaches.
    pub breach_hours: BTreeMap<(String, i64), HourCell>,
    /// Breach event id → where it was counted.
    pub breach_keys: BTreeMap<Vec<u8>, BreachKey>,
    pub subjects: BTreeMap<String, SubjectTally>,
    pub alerts: BTreeMap<String, Alert>,
    /// (school, raised at), in log order.
    pub concerns: Vec<(String, i64)>,
    pub cases: BTreeMap<String, Case>,
    /// By referral id.
    pub referrals: BTreeMap<String, Referral>,
    pub custody: BTreeMap<String, Custody>,
    pub filter_checks: Vec<FilterCheck>,
    /// (school, applied at).
    pub changes_applied: Vec<(String, i64)>,
    /// (school, reported at).
    pub overblocking: Vec<(String, i64)>,
}

fn decode<M: Message + Default>(event: &EventEnvelope) -> Option<M> {
    M::decode(event.payload.as_slice()).ok()
}

fn category_index(category: i32) -> usize {
    usize::try_from(category).ok().filter(|index| *index < CATEGORIES).unwrap_or(0)
}

impl ReportState {
    /// The event types this state reads; the projection's filter.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        ev::SCHOOL_REGISTERED,
        ev::SCHOOL_PUPIL_NUMBERS_CHANGED,
        ev::BREACH_OBSERVED,
        ev::BREACH_REPEATS_COLLAPSED,
        ev::ALERT_RAISED,
        ev::ALERT_ACKNOWLEDGED,
        ev::FILTERING_CHANGE_APPLIED,
        ev::FILTER_CHECK_RECORDED,
        ev::OVERBLOCKING_REPORTED,
        ev::CONCERN_RAISED,
        ev::CASE_OPENED,
        ev::CASE_RISK_CHANGED,
        ev::CASE_ACTION_RECORDED,
        ev::REFERRAL_MADE,
        ev::REFERRAL_OUTCOME_RECORDED,
        ev::CASE_CLOSED,
        ev::DEVICE_SEIZED,
        ev::DEVICE_QUARANTINED,
        ev::DEVICE_HOLD_LIFTED,
        ev::DEVICE_HANDED_TO_POLICE,
        ev::DEVICE_RETURNED,
    ];

    /// Pupils on roll at `school_id` at `at` (the first known count before any change).
    pub fn pupils_at(&self, school_id: &str, at: i64) -> u32 {
        let Some(history) = self.pupils.get(school_id) else { return 0 };
        history.iter().rev().find(|(from, _)| *from <= at).or(history.first()).map_or(0, |(_, count)| *count)
    }

    /// Applies one committed event.
    pub fn apply(&mut self, event: &EventEnvelope) {
        let at = secs(event.occurred_at.as_ref());
        match event.event_type.as_str() {
            ev::SCHOOL_REGISTERED => {
                if let Some(school) = decode::<pb::SchoolRegistered>(event) {
                    self.pupils.entry(school.school_id).or_default().push((at, school.pupil_count));
                }
            }
            ev::SCHOOL_PUPIL_NUMBERS_CHANGED => {
                if let Some(change) = decode::<pb::SchoolPupilNumbersChanged>(event) {
                    self.pupils.entry(change.school_id).or_default().push((at, change.pupil_count));
                }
            }
            ev::BREACH_OBSERVED => {
                if let Some(breach) = decode::<pb::BreachObserved>(event) {
                    let when = breach.occurred_at.as_ref().map_or(at, |t| t.seconds);
                    let key = BreachKey {
                        school_id: breach.school_id.clone(),
                        hour: hour_start(when),
                        category: category_index(breach.category),
                        action: breach.action,
                    };
                    let count = u64::from(breach.repeat_count.max(1));
                    self.count_breach(&key, count);
                    if !breach.subject_id.is_empty() {
                        let tally = self.subjects.entry(breach.subject_id).or_default();
                        *tally.by_school.entry(breach.school_id).or_default() += count;
                    }
                    self.breach_keys.insert(event.event_id.clone(), key);
                }
            }
            ev::BREACH_REPEATS_COLLAPSED => {
                if let Some(repeats) = decode::<pb::BreachRepeatsCollapsed>(event)
                    && let Some(key) = self.breach_keys.get(&repeats.breach_event_id).cloned()
                {
                    self.count_breach(&key, u64::from(repeats.additional_count));
                }
            }
            ev::ALERT_RAISED => {
                if let Some(alert) = decode::<pb::SafeguardingAlertRaised>(event) {
                    self.alerts.insert(
                        alert.alert_id,
                        Alert {
                            school_id: alert.school_id,
                            severity: alert.severity,
                            category: alert.category,
                            raised_at: at,
                            acknowledge_by: alert.acknowledge_by.map(|t| t.seconds),
                            acknowledged: None,
                        },
                    );
                }
            }
            ev::ALERT_ACKNOWLEDGED => {
                if let Some(ack) = decode::<pb::SafeguardingAlertAcknowledged>(event)
                    && let Some(alert) = self.alerts.get_mut(&ack.alert_id)
                {
                    alert.acknowledged.get_or_insert((at, ack.within_deadline));
                }
            }
            ev::FILTERING_CHANGE_APPLIED => {
                if let Some(change) = decode::<pb::FilteringChangeApplied>(event) {
                    self.changes_applied.push((change.school_id, at));
                }
            }
            ev::FILTER_CHECK_RECORDED => {
                if let Some(check) = decode::<pb::FilterCheckRecorded>(event) {
                    self.filter_checks.push(FilterCheck {
                        school_id: check.school_id,
                        checked_at: at,
                        outcome: check.outcome,
                        next_check_due_at: check.next_check_due_at.map(|t| t.seconds),
                    });
                }
            }
            ev::OVERBLOCKING_REPORTED => {
                if let Some(report) = decode::<pb::OverblockingReported>(event) {
                    self.overblocking.push((report.school_id, at));
                }
            }
            ev::CONCERN_RAISED => {
                if let Some(concern) = decode::<pb::ConcernRaised>(event) {
                    self.concerns.push((concern.school_id, at));
                }
            }
            ev::CASE_OPENED => {
                if let Some(case) = decode::<pb::CaseOpened>(event) {
                    let checklist = case
                        .checklist
                        .iter()
                        .map(|item| {
                            let action =
                                ChecklistAction { due_at: item.due_at.map(|t| t.seconds), status: item.status };
                            (item.action_key.clone(), action)
                        })
                        .collect();
                    let restricted = case.access_policy == pb::CaseAccessPolicy::PrincipalAndGrantees as i32
                        || [pb::CaseType::AllegationAgainstStaff as i32, pb::CaseType::LowLevelConcern as i32]
                            .contains(&case.case_type);
                    self.cases.insert(
                        case.case_id,
                        Case {
                            school_id: case.school_id,
                            case_type: case.case_type,
                            risk_level: case.risk_level,
                            opened_at: at,
                            closed_at: None,
                            lead_user_id: case.lead_user_id,
                            restricted,
                            staff_user_ids: case.staff_user_ids,
                            checklist,
                        },
                    );
                }
            }
            ev::CASE_RISK_CHANGED => {
                if let Some(change) = decode::<pb::CaseRiskChanged>(event)
                    && let Some(case) = self.cases.get_mut(&change.case_id)
                {
                    case.risk_level = change.risk_level;
                }
            }
            ev::CASE_ACTION_RECORDED => {
                if let Some(action) = decode::<pb::CaseActionRecorded>(event)
                    && let Some(case) = self.cases.get_mut(&action.case_id)
                {
                    case.checklist.entry(action.action_key).or_default().status = action.status;
                }
            }
            ev::CASE_CLOSED => {
                if let Some(closed) = decode::<pb::CaseClosed>(event)
                    && let Some(case) = self.cases.get_mut(&closed.case_id)
                {
                    case.closed_at.get_or_insert(at);
                }
            }
            ev::REFERRAL_MADE => {
                if let Some(made) = decode::<pb::ReferralMade>(event) {
                    let referral = self.referrals.entry(made.referral_id).or_insert_with(|| Referral {
                        case_id: made.case_id,
                        school_id: made.school_id,
                        agency: made.agency,
                        referred_at: at,
                        ..Default::default()
                    });
                    // A later ReferralMade with the same id carries the reference that arrived.
                    if !made.reference_number.is_empty() {
                        referral.reference_number = made.reference_number;
                    }
                }
            }
            ev::REFERRAL_OUTCOME_RECORDED => {
                if let Some(outcome) = decode::<pb::ReferralOutcomeRecorded>(event)
                    && let Some(referral) = self.referrals.get_mut(&outcome.referral_id)
                {
                    referral.outcome = outcome.outcome;
                    referral.allegation_outcome = outcome.allegation_outcome;
                    referral.outcome_at = Some(at);
                }
            }
            ev::DEVICE_SEIZED => {
                if let Some(seized) = decode::<pb::DeviceSeized>(event) {
                    self.custody.insert(
                        seized.custody_id,
                        Custody {
                            school_id: seized.school_id,
                            case_id: seized.case_id,
                            seized_at: at,
                            hold: None,
                            ended: None,
                        },
                    );
                }
            }
            ev::DEVICE_QUARANTINED => {
                if let Some(hold) = decode::<pb::DeviceQuarantined>(event)
                    && let Some(custody) = self.custody.get_mut(&hold.custody_id)
                {
                    custody.hold = Some(hold.kind);
                }
            }
            ev::DEVICE_HOLD_LIFTED => {
                if let Some(lifted) = decode::<pb::DeviceHoldLifted>(event)
                    && let Some(custody) = self.custody.get_mut(&lifted.custody_id)
                {
                    custody.hold = None;
                }
            }
            ev::DEVICE_HANDED_TO_POLICE => {
                if let Some(handed) = decode::<pb::DeviceHandedToPolice>(event)
                    && let Some(custody) = self.custody.get_mut(&handed.custody_id)
                {
                    custody.ended.get_or_insert((at, CustodyEnd::HandedToPolice));
                }
            }
            ev::DEVICE_RETURNED => {
                if let Some(returned) = decode::<pb::DeviceReturned>(event)
                    && let Some(custody) = self.custody.get_mut(&returned.custody_id)
                {
                    custody.ended.get_or_insert((at, CustodyEnd::Returned));
                }
            }
            _ => {}
        }
    }

    fn count_breach(&mut self, key: &BreachKey, count: u64) {
        let cell = self.breach_hours.entry((key.school_id.clone(), key.hour)).or_default();
        cell.by_category[key.category] += count;
        match pb::BreachAction::try_from(key.action) {
            Ok(pb::BreachAction::Flagged) => cell.flagged += count,
            Ok(pb::BreachAction::Allowed) => cell.allowed += count,
            _ => cell.blocked += count,
        }
    }
}
