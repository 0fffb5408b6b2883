//! The read model every report is answered from, and how one event changes it.
//!
//! [`ReportState::apply`] is pure and deterministic: no clock, no I/O. Applying the same
//! events in the same order always gives the same state, which is what makes a rebuild from
//! position 0 equal to the live projection. Events that cannot be decoded change nothing:
//! a report never fails because one service wrote something it does not understand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use haven_proto::v1::{self as pb, EventEnvelope};
use prost::Message;

use crate::events as ev;
use crate::time::{DAY_SECS, HOUR_SECS, hour_of_day, secs, week_start};

/// Breach categories, indexed by their protobuf number (0..=13).
pub const CATEGORIES: usize = 14;

/// Breaches at one school in one clock hour.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HourCell {
    pub by_category: [u64; CATEGORIES],
    pub actions: ActionCounts,
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

    fn add(&mut self, category: usize, action: u8, count: u64) {
        self.by_category[category] += count;
        self.actions.add(action, count);
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
    /// UTC day start → breaches blocked, flagged and allowed that day: a trust-wide dashboard
    /// reads a school's whole days here and only its partial first and last day by the hour.
    pub days: BTreeMap<i64, ActionCounts>,
}

/// Breaches by what the filter did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActionCounts {
    pub blocked: u64,
    pub flagged: u64,
    pub allowed: u64,
}

impl ActionCounts {
    fn add(&mut self, action: u8, count: u64) {
        match pb::BreachAction::try_from(i32::from(action)) {
            Ok(pb::BreachAction::Flagged) => self.flagged += count,
            Ok(pb::BreachAction::Allowed) => self.allowed += count,
            _ => self.blocked += count,
        }
    }

    pub fn plus(self, other: ActionCounts) -> ActionCounts {
        ActionCounts {
            blocked: self.blocked + other.blocked,
            flagged: self.flagged + other.flagged,
            allowed: self.allowed + other.allowed,
        }
    }
}

impl SchoolBreaches {
    /// Breaches by action in the hours starting in `[from, to)`: whole UTC days from the day
    /// cells, the hours before the first and after the last whole day from the hour cells.
    pub fn by_action(&self, from: i64, to: i64) -> ActionCounts {
        let hours = |from: i64, to: i64| {
            self.hours
                .range(from..to.max(from))
                .fold(ActionCounts::default(), |total, (_, cell)| total.plus(cell.actions))
        };
        let first_day =
            from.div_euclid(DAY_SECS) * DAY_SECS + if from.rem_euclid(DAY_SECS) == 0 { 0 } else { DAY_SECS };
        let last_day = to.div_euclid(DAY_SECS) * DAY_SECS;
        if first_day >= last_day {
            return hours(from, to);
        }
        let days =
            self.days.range(first_day..last_day).fold(ActionCounts::default(), |total, (_, day)| total.plus(*day));
        hours(from, first_day).plus(days).plus(hours(last_day, to))
    }

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

/// Where a recorded breach was counted, so later repeats are counted with it (12 bytes: ten
/// million of them are a breach a minute for nineteen years).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreachKey {
    /// Index into [`Breaches`]' schools.
    pub school: u32,
    /// Hours since the Unix epoch.
    pub hour: i32,
    pub category: u8,
    /// `BreachAction`.
    pub action: u8,
}

impl BreachKey {
    fn hour_start(&self) -> i64 {
        i64::from(self.hour) * HOUR_SECS
    }
}

/// Hashes a 16-byte event id by folding it: ids are UUIDs (v7: a timestamp, then random bits)
/// or SHA-256 prefixes, so their low half is already uniformly spread — SipHash would only
/// cost time on the rebuild's hottest path.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventIdHasher(u64);

impl Hasher for EventIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            // A multiply-rotate mix (as in FxHash): every input bit reaches the top bits
            // hashbrown uses for its control bytes.
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
}

type EventIdMap<V> = HashMap<[u8; 16], V, BuildHasherDefault<EventIdHasher>>;

/// Repeats of a breach arrive within minutes of it (ingest's collapse window); breach keys are
/// remembered for this long after the breach was recorded, in two generations, so memory
/// holds at most two days of breaches however long the log. Repeats of an older breach are
/// not counted (see ADR 0020). Measured on the events' `recorded_at`, never the clock, so a
/// rebuild forgets exactly what the live projection forgot.
pub const REPEAT_MEMORY_SECS: i64 = DAY_SECS;

/// Every school's breaches, and where each recent breach event was counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Breaches {
    /// Hour start → every school's breaches in that hour: what a trust-wide dashboard reads
    /// for its categories and hours.
    pub trust_hours: BTreeMap<i64, HourCell>,
    /// School ids in the order first seen; a [`BreachKey`] names a school by its index here.
    ids: Vec<String>,
    index: HashMap<String, u32>,
    schools: Vec<SchoolBreaches>,
    /// Breach events counted.
    events: u64,
    /// Breach event id → where it was counted, for breaches recorded in the current
    /// [`REPEAT_MEMORY_SECS`] period (`generation`) and the one before.
    keys: EventIdMap<BreachKey>,
    older_keys: EventIdMap<BreachKey>,
    generation: i64,
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
    pub fn events(&self) -> u64 {
        self.events
    }

    fn count(&mut self, key: BreachKey, count: u64) {
        let school = &mut self.schools[key.school as usize];
        let hour = key.hour_start();
        let category = usize::from(key.category);
        let cell = school.hours.entry(hour).or_insert_with(|| HourCell::new(hour));
        cell.add(category, key.action, count);
        school.weeks.entry(cell.week).or_insert([0; CATEGORIES])[category] += count;
        school.days.entry(hour.div_euclid(DAY_SECS) * DAY_SECS).or_default().add(key.action, count);
        let trust = match self.trust_hours.get_mut(&hour) {
            Some(trust) => trust,
            // The same hour of the day and week as the school's cell: no time-zone work again.
            None => self.trust_hours.entry(hour).or_insert(HourCell {
                hour_of_day: cell.hour_of_day,
                week: cell.week,
                ..Default::default()
            }),
        };
        trust.add(category, key.action, count);
    }

    /// Moves the memory of breach keys on to the period holding `recorded_at` (a breach's or
    /// its repeats' recording time): keys older than the period before are forgotten.
    fn advance(&mut self, recorded_at: i64) {
        let generation = recorded_at.div_euclid(REPEAT_MEMORY_SECS);
        if generation > self.generation {
            self.older_keys =
                if generation == self.generation + 1 { std::mem::take(&mut self.keys) } else { EventIdMap::default() };
            self.keys.clear();
            self.generation = generation;
        }
    }

    /// Remembers where breach `id`, recorded at `recorded_at`, was counted.
    fn remember(&mut self, id: [u8; 16], key: BreachKey, recorded_at: i64) {
        self.advance(recorded_at);
        self.keys.insert(id, key);
    }

    fn recall(&self, id: &[u8; 16]) -> Option<BreachKey> {
        self.keys.get(id).or_else(|| self.older_keys.get(id)).copied()
    }
}

/// The fields of `ingest.BreachObserved` the reports read, under the same tags: decoding one
/// skips the rest (vendor category, host, path HMAC, addresses, line hash) without allocating
/// them — a rebuild decodes ten million of these.
#[derive(Clone, PartialEq, prost::Message)]
struct BreachCounted {
    #[prost(string, tag = "1")]
    school_id: String,
    #[prost(message, optional, tag = "2")]
    occurred_at: Option<prost_types::Timestamp>,
    #[prost(int32, tag = "6")]
    category: i32,
    #[prost(int32, tag = "8")]
    action: i32,
    #[prost(string, tag = "12")]
    subject_id: String,
    #[prost(uint32, tag = "16")]
    repeat_count: u32,
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
    /// The referral's case is restricted (allegations, low-level concerns): never listed to
    /// others. Worked out when the referral is made.
    pub restricted: bool,
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

/// Whether an action on the checklist still waits to be done.
pub fn outstanding(action: &ChecklistAction) -> bool {
    matches!(
        pb::ActionStatus::try_from(action.status),
        Ok(pb::ActionStatus::Unspecified | pb::ActionStatus::Outstanding)
    )
}

/// The open cases as the dashboard reads them, kept up to date on apply, so a dashboard never
/// walks every case the trust ever opened (ADR 0020).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenWork {
    /// (school, case type, risk level) → opened at → open cases opened then.
    pub counts: BTreeMap<(String, i32, i32), BTreeMap<i64, u32>>,
    /// Per school: outstanding actions with a due date, on open cases that may be listed (not
    /// restricted), as (due at, case id, action key) → the case type — oldest due first.
    pub due: BTreeMap<String, BTreeMap<(i64, String, String), i32>>,
    /// Per school: open critical cases that may be listed, as (opened at, case id).
    pub critical: BTreeMap<String, BTreeSet<(i64, String)>>,
}

impl OpenWork {
    /// The index worked out afresh from every case: what [`ReportState::apply`] keeps up to
    /// date event by event (a test compares the two).
    pub fn from_cases(cases: &BTreeMap<String, Case>) -> Self {
        let mut work = OpenWork::default();
        for (case_id, case) in cases {
            work.add(case_id, case);
        }
        work
    }

    fn add(&mut self, case_id: &str, case: &Case) {
        if case.closed_at.is_some() {
            return;
        }
        let key = (case.school_id.clone(), case.case_type, case.risk_level);
        *self.counts.entry(key).or_default().entry(case.opened_at).or_default() += 1;
        if case.restricted {
            return;
        }
        for (action_key, action) in &case.checklist {
            if let Some(due) = action.due_at.filter(|_| outstanding(action)) {
                let due_set = self.due.entry(case.school_id.clone()).or_default();
                due_set.insert((due, case_id.to_owned(), action_key.clone()), case.case_type);
            }
        }
        if case.risk_level == pb::RiskLevel::Critical as i32 {
            self.critical.entry(case.school_id.clone()).or_default().insert((case.opened_at, case_id.to_owned()));
        }
    }

    fn remove(&mut self, case_id: &str, case: &Case) {
        if case.closed_at.is_some() {
            return;
        }
        let key = (case.school_id.clone(), case.case_type, case.risk_level);
        if let Some(opened) = self.counts.get_mut(&key) {
            if let Some(count) = opened.get_mut(&case.opened_at) {
                *count -= 1;
                if *count == 0 {
                    opened.remove(&case.opened_at);
                }
            }
            if opened.is_empty() {
                self.counts.remove(&key);
            }
        }
        if case.restricted {
            return;
        }
        if let Some(due_set) = self.due.get_mut(&case.school_id) {
            for (action_key, action) in &case.checklist {
                if let Some(due) = action.due_at.filter(|_| outstanding(action)) {
                    due_set.remove(&(due, case_id.to_owned(), action_key.clone()));
                }
            }
            if due_set.is_empty() {
                self.due.remove(&case.school_id);
            }
        }
        if let Some(critical) = self.critical.get_mut(&case.school_id) {
            critical.remove(&(case.opened_at, case_id.to_owned()));
            if critical.is_empty() {
                self.critical.remove(&case.school_id);
            }
        }
    }
}

/// Per school: events counted by (week start, kind), a week starting Monday 00:00
/// Europe/London, the kind a case type for cases opened, a breach category for alerts, and 0
/// where there is none — so a trend reads a few hundred cells, never every case or alert.
pub type WeekTally = BTreeMap<String, BTreeMap<(i64, i32), u64>>;

fn tally(counts: &mut WeekTally, school_id: &str, at: i64, kind: i32) {
    let weeks = match counts.get_mut(school_id) {
        Some(weeks) => weeks,
        None => counts.entry(school_id.to_owned()).or_default(),
    };
    *weeks.entry((week_start(at), kind)).or_default() += 1;
}

/// The trend metrics other than breaches, counted per school and week on apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Weekly {
    /// Kind: the alert's breach category.
    pub alerts: WeekTally,
    pub concerns: WeekTally,
    /// Kind: the case type.
    pub cases_opened: WeekTally,
    pub referrals: WeekTally,
    pub overblocking: WeekTally,
}

/// Everything the reports read, pre-aggregated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportState {
    /// Pupils on roll per school, as (from when, count), oldest first.
    pub pupils: BTreeMap<String, Vec<(i64, u32)>>,
    pub breaches: Breaches,
    /// By pseudonymous subject id (a hash map: 200 000 learners are looked up once per
    /// attributed breach; every report that lists them sorts its rows).
    pub subjects: HashMap<String, SubjectTally>,
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
    /// The open cases, indexed for the dashboard.
    pub open: OpenWork,
    /// Trend metrics per school and week.
    pub weekly: Weekly,
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

    /// Changes one case, keeping the open-work index in step.
    fn change_case(&mut self, case_id: &str, change: impl FnOnce(&mut Case)) {
        if let Some(case) = self.cases.get_mut(case_id) {
            self.open.remove(case_id, case);
            change(case);
            self.open.add(case_id, case);
        }
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
                if let Some(breach) = decode::<BreachCounted>(event) {
                    let when = breach.occurred_at.as_ref().map_or(at, |t| t.seconds);
                    let key = BreachKey {
                        school: self.breaches.school_index(&breach.school_id),
                        hour: i32::try_from(when.div_euclid(HOUR_SECS)).unwrap_or(0),
                        category: category_index(breach.category),
                        action: u8::try_from(breach.action).unwrap_or(0),
                    };
                    let count = u64::from(breach.repeat_count.max(1));
                    self.breaches.count(key, count);
                    self.breaches.events += 1;
                    if !breach.subject_id.is_empty() {
                        let tally = self.subjects.entry(breach.subject_id).or_default();
                        *tally.by_school.entry(breach.school_id).or_default() += count;
                    }
                    if let Ok(id) = <[u8; 16]>::try_from(event.event_id.as_slice()) {
                        self.breaches.remember(id, key, secs(event.recorded_at.as_ref()));
                    }
                }
            }
            ev::BREACH_REPEATS_COLLAPSED => {
                if let Some(repeats) = decode::<pb::BreachRepeatsCollapsed>(event) {
                    self.breaches.advance(secs(event.recorded_at.as_ref()));
                    if let Ok(id) = <[u8; 16]>::try_from(repeats.breach_event_id.as_slice())
                        && let Some(key) = self.breaches.recall(&id)
                    {
                        self.breaches.count(key, u64::from(repeats.additional_count));
                    }
                }
            }
            ev::ALERT_RAISED => {
                if let Some(alert) = decode::<pb::SafeguardingAlertRaised>(event) {
                    // An alert is raised once (its stream's first event); a repeat changes nothing.
                    if let std::collections::btree_map::Entry::Vacant(entry) = self.alerts.entry(alert.alert_id) {
                        tally(&mut self.weekly.alerts, &alert.school_id, at, alert.category);
                        entry.insert(Alert {
                            school_id: alert.school_id,
                            severity: alert.severity,
                            category: alert.category,
                            raised_at: at,
                            acknowledge_by: alert.acknowledge_by.map(|t| t.seconds),
                            acknowledged: None,
                        });
                    }
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
                    tally(&mut self.weekly.overblocking, &report.school_id, at, 0);
                    self.overblocking.push((report.school_id, at));
                }
            }
            ev::CONCERN_RAISED => {
                if let Some(concern) = decode::<pb::ConcernRaised>(event) {
                    tally(&mut self.weekly.concerns, &concern.school_id, at, 0);
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
                    let case_id = case.case_id;
                    if let Some(before) = self.cases.get(&case_id) {
                        self.open.remove(&case_id, before);
                    } else {
                        tally(&mut self.weekly.cases_opened, &case.school_id, at, case.case_type);
                    }
                    let opened = self.cases.entry(case_id.clone()).or_default();
                    *opened = Case {
                        school_id: case.school_id,
                        case_type: case.case_type,
                        risk_level: case.risk_level,
                        opened_at: at,
                        closed_at: None,
                        lead_user_id: case.lead_user_id,
                        restricted,
                        staff_user_ids: case.staff_user_ids,
                        checklist,
                    };
                    self.open.add(&case_id, opened);
                }
            }
            ev::CASE_RISK_CHANGED => {
                if let Some(change) = decode::<pb::CaseRiskChanged>(event) {
                    self.change_case(&change.case_id, |case| case.risk_level = change.risk_level);
                }
            }
            ev::CASE_ACTION_RECORDED => {
                if let Some(action) = decode::<pb::CaseActionRecorded>(event) {
                    self.change_case(&action.case_id, |case| {
                        case.checklist.entry(action.action_key).or_default().status = action.status;
                    });
                }
            }
            ev::CASE_CLOSED => {
                if let Some(closed) = decode::<pb::CaseClosed>(event) {
                    self.change_case(&closed.case_id, |case| {
                        case.closed_at.get_or_insert(at);
                    });
                }
            }
            ev::REFERRAL_MADE => {
                if let Some(made) = decode::<pb::ReferralMade>(event) {
                    if !self.referrals.contains_key(&made.referral_id) {
                        tally(&mut self.weekly.referrals, &made.school_id, at, 0);
                    }
                    let restricted = self.cases.get(&made.case_id).is_some_and(|case| case.restricted);
                    let referral = self.referrals.entry(made.referral_id).or_insert_with(|| Referral {
                        restricted,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(event_id: [u8; 16], event_type: &str, recorded_at: i64, payload: Vec<u8>) -> EventEnvelope {
        EventEnvelope {
            event_id: event_id.to_vec(),
            event_type: event_type.to_owned(),
            occurred_at: Some(prost_types::Timestamp { seconds: recorded_at, nanos: 0 }),
            recorded_at: Some(prost_types::Timestamp { seconds: recorded_at, nanos: 0 }),
            payload,
            ..Default::default()
        }
    }

    #[test]
    fn the_lean_breach_decode_reads_what_the_full_message_holds() {
        let full = pb::BreachObserved {
            school_id: "school-a".into(),
            occurred_at: Some(prost_types::Timestamp { seconds: 1_752_667_200, nanos: 5 }),
            received_at: Some(prost_types::Timestamp { seconds: 1_752_667_201, nanos: 0 }),
            source_id: "proxy".into(),
            category: pb::BreachCategory::SelfHarm as i32,
            vendor_category: "Suicide".into(),
            action: pb::BreachAction::Flagged as i32,
            vendor_severity: 4,
            url_host: "example.org".into(),
            url_path_hmac: vec![7; 32],
            subject_id: "subj-1".into(),
            user_id: "someone".into(),
            device_id: "dev".into(),
            source_ip: "10.0.0.1".into(),
            repeat_count: 3,
            line_sha256: vec![9; 32],
            ..Default::default()
        };
        let lean = BreachCounted::decode(full.encode_to_vec().as_slice()).unwrap();
        assert_eq!(lean.school_id, full.school_id);
        assert_eq!(lean.occurred_at, full.occurred_at);
        assert_eq!(lean.category, full.category);
        assert_eq!(lean.action, full.action);
        assert_eq!(lean.subject_id, full.subject_id);
        assert_eq!(lean.repeat_count, full.repeat_count);
    }

    #[test]
    fn repeats_count_with_their_breach_while_it_is_remembered() {
        let day = REPEAT_MEMORY_SECS;
        let start = 20_000 * day;
        let breach = pb::BreachObserved {
            school_id: "school-a".into(),
            category: pb::BreachCategory::Gambling as i32,
            repeat_count: 1,
            occurred_at: Some(prost_types::Timestamp { seconds: start, nanos: 0 }),
            ..Default::default()
        };
        let repeats = |id: [u8; 16], additional_count| pb::BreachRepeatsCollapsed {
            breach_event_id: id.to_vec(),
            additional_count,
            ..Default::default()
        };
        let mut state = ReportState::default();
        let first = [1u8; 16];
        state.apply(&envelope(first, ev::BREACH_OBSERVED, start, breach.encode_to_vec()));
        // The next day: still remembered (the previous generation).
        state.apply(&envelope([2; 16], ev::BREACH_REPEATS_COLLAPSED, start + day, repeats(first, 4).encode_to_vec()));
        let counted = |state: &ReportState| {
            state.breaches.school("school-a").unwrap().by_category(0, i64::MAX)[pb::BreachCategory::Gambling as usize]
        };
        assert_eq!(counted(&state), 5);
        // Two days on it is forgotten: the repeats change nothing, on every node alike.
        state.apply(&envelope(
            [3; 16],
            ev::BREACH_REPEATS_COLLAPSED,
            start + 2 * day,
            repeats(first, 4).encode_to_vec(),
        ));
        assert_eq!(counted(&state), 5);
        // An unknown breach id changes nothing either.
        state.apply(&envelope(
            [4; 16],
            ev::BREACH_REPEATS_COLLAPSED,
            start + 2 * day,
            repeats([9; 16], 4).encode_to_vec(),
        ));
        assert_eq!(counted(&state), 5);
        assert_eq!(state.breaches.events(), 1);
    }

    #[test]
    fn event_ids_hash_apart() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<EventIdHasher>::default();
        let hashes: std::collections::HashSet<u64> = (0u64..10_000)
            .map(|n| {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&n.to_be_bytes());
                build.hash_one(id)
            })
            .collect();
        assert_eq!(hashes.len(), 10_000, "ids differing in one half hash apart");
    }
}
