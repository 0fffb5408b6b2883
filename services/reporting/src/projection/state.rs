//! The read model every report is answered from, and how one event changes it.
//!
//! [`ReportState::apply`] is pure and deterministic: no clock, no I/O. Applying the same
//! events in the same order always gives the same state, which is what makes a rebuild from
//! position 0 equal to the live projection. Events that cannot be decoded change nothing:
//! a report never fails because one service wrote something it does not understand.

use std::collections::{BTreeMap, HashMap};

use haven_proto::v1::{self as pb, EventEnvelope};
use prost::Message;

use crate::events as ev;
use crate::time::{hour_of_day, hour_start, secs, week_start};

/// Breach categories, indexed by their protobuf number (0..=13).
pub const CATEGORIES: usize = 14;

/// Breaches at one school in one clock hour.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HourCell {
    pub by_category: [u64; CATEGORIES],
    pub blocked: u64,
    pub flagged: u64,
    pub allowed: u64,
    /// The hour of the day in Europe/London (0..=23), worked out once when the cell is made.
    pub hour_of_day: u8,
    /// The start of its week (Monday 00:00 Europe/London), likewise.
    pub week: i64,
}

impl HourCell {
    fn new(hour: i64) -> Self {
        HourCell { hour_of_day: hour_of_day(hour), week: week_start(hour), ..Default::default() }
    }

    pub fn total(&self) -> u64 {
        self.by_category.iter().sum()
    }
}

/// One school's breaches, pre-aggregated by clock hour and by week, so a query reads only
/// the cells of its window (never the events).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchoolBreaches {
    /// Hour start → breaches in that hour.
    pub hours: BTreeMap<i64, HourCell>,
    /// Week start (Monday 00:00 Europe/London) → breaches by category that week.
    pub weeks: BTreeMap<i64, [u64; CATEGORIES]>,
}

impl SchoolBreaches {
    /// Breaches by category in the hours starting in `[from, to)`.
    pub fn by_category(&self, from: i64, to: i64) -> [u64; CATEGORIES] {
        let mut totals = [0u64; CATEGORIES];
        for cell in self.hours.range(from..to.max(from)).map(|(_, cell)| cell) {
            for (total, count) in totals.iter_mut().zip(cell.by_category) {
                *total += count;
            }
        }
        totals
    }
}

/// Where a recorded breach was counted, so later repeats are counted with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreachKey {
    /// Index into [`Breaches`]' schools.
    pub school: u32,
    pub hour: i64,
    pub category: u8,
    pub action: i32,
}

/// Every school's breaches, and where each breach event was counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Breaches {
    /// School ids in the order first seen; a [`BreachKey`] names a school by its index here.
    ids: Vec<String>,
    index: HashMap<String, u32>,
    schools: Vec<SchoolBreaches>,
    /// Breach event id → where it was counted (event ids are 16 bytes in the log).
    keys: HashMap<[u8; 16], BreachKey>,
}

impl Breaches {
    fn school_index(&mut self, school_id: &str) -> u32 {
        if let Some(index) = self.index.get(school_id) {
            return *index;
        }
        let index = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.ids.push(school_id.to_owned());
        self.index.insert(school_id.to_owned(), index);
        self.schools.push(SchoolBreaches::default());
        index
    }

    pub fn school(&self, school_id: &str) -> Option<&SchoolBreaches> {
        self.index.get(school_id).map(|index| &self.schools[*index as usize])
    }

    /// The schools with breaches that are in `scope` (`None`: all), ordered by id.
    pub fn in_scope<'a>(&'a self, scope: Option<&[String]>) -> Vec<(&'a str, &'a SchoolBreaches)> {
        let mut schools: Vec<(&str, &SchoolBreaches)> = match scope {
            None => self.ids.iter().map(String::as_str).zip(&self.schools).collect(),
            Some(scope) => scope
                .iter()
                .filter_map(|id| self.index.get_key_value(id.as_str()))
                .map(|(id, index)| (id.as_str(), &self.schools[*index as usize]))
                .collect(),
        };
        schools.sort_unstable_by_key(|(id, _)| *id);
        schools.dedup_by_key(|(id, _)| *id);
        schools
    }

    /// Breach events counted.
    pub fn events(&self) -> usize {
        self.keys.len()
    }

    fn count(&mut self, key: BreachKey, count: u64) {
        let school = &mut self.schools[key.school as usize];
        let cell = school.hours.entry(key.hour).or_insert_with(|| HourCell::new(key.hour));
        let category = usize::from(key.category);
        cell.by_category[category] += count;
        match pb::BreachAction::try_from(key.action) {
            Ok(pb::BreachAction::Flagged) => cell.flagged += count,
            Ok(pb::BreachAction::Allowed) => cell.allowed += count,
            _ => cell.blocked += count,
        }
        school.weeks.entry(cell.week).or_insert([0; CATEGORIES])[category] += count;
    }
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
    pub breaches: Breaches,
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

fn category_index(category: i32) -> u8 {
    u8::try_from(category).ok().filter(|index| usize::from(*index) < CATEGORIES).unwrap_or(0)
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
                        school: self.breaches.school_index(&breach.school_id),
                        hour: hour_start(when),
                        category: category_index(breach.category),
                        action: breach.action,
                    };
                    let count = u64::from(breach.repeat_count.max(1));
                    self.breaches.count(key, count);
                    if !breach.subject_id.is_empty() {
                        let tally = self.subjects.entry(breach.subject_id).or_default();
                        *tally.by_school.entry(breach.school_id).or_default() += count;
                    }
                    if let Ok(id) = <[u8; 16]>::try_from(event.event_id.as_slice()) {
                        self.breaches.keys.insert(id, key);
                    }
                }
            }
            ev::BREACH_REPEATS_COLLAPSED => {
                if let Some(repeats) = decode::<pb::BreachRepeatsCollapsed>(event)
                    && let Ok(id) = <[u8; 16]>::try_from(repeats.breach_event_id.as_slice())
                    && let Some(key) = self.breaches.keys.get(&id).copied()
                {
                    self.breaches.count(key, u64::from(repeats.additional_count));
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
}
