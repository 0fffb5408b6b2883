//! Property: the indexes the projection keeps up to date event by event — open cases and their
//! overdue actions and critical cases, and the weekly counts the trends read — equal what
//! walking every case, alert and referral afresh gives, after any history.

use std::collections::BTreeMap;

use haven_proto::v1 as pb;
use haven_reporting::ReportState;
use haven_reporting::projection::dashboard::{ROW_LIMIT, age_band, dashboard, dashboard_listing};
use haven_reporting::projection::state::{OpenWork, outstanding};
use haven_reporting::projection::trends::{TrendQuery, trends};
use haven_reporting::time::week_start;
use proptest::prelude::*;
use prost::Message;

const START: i64 = 1_736_726_400; // Monday 2025-01-13 00:00 UTC
const DAY: i64 = 86_400;

fn envelope(position: u64, event_type: &str, at: i64, payload: Vec<u8>) -> pb::EventEnvelope {
    pb::EventEnvelope {
        event_id: position.to_be_bytes().to_vec(),
        position,
        event_type: event_type.to_owned(),
        occurred_at: Some(prost_types::Timestamp { seconds: at, nanos: 0 }),
        recorded_at: Some(prost_types::Timestamp { seconds: at, nanos: 0 }),
        payload,
        ..Default::default()
    }
}

const KEYS: [&str; 3] = ["record-concern", "inform-parents", "strategy-discussion"];

/// One step of a history, from a few random numbers.
fn event(position: u64, opened: &mut u32, step: (u8, u8, u8, u32)) -> pb::EventEnvelope {
    let (kind, pick, value, offset) = step;
    let at = START + i64::from(offset);
    let school = format!("school-{}", pick % 3);
    // Cases already opened are picked by number; a new one takes the next number.
    let case = |opened: u32| format!("case-{}", u32::from(pick) % opened.max(1));
    match kind % 7 {
        0 => {
            let case_id = format!("case-{opened}");
            *opened += 1;
            let checklist = KEYS
                .iter()
                .enumerate()
                .map(|(index, key)| pb::ChecklistItem {
                    action_key: (*key).to_owned(),
                    status: [pb::ActionStatus::Outstanding, pb::ActionStatus::Done][usize::from(value >> index) % 2]
                        as i32,
                    due_at: Some(prost_types::Timestamp { seconds: at + i64::from(value % 5) * DAY, nanos: 0 }),
                    ..Default::default()
                })
                .collect();
            let opened = pb::CaseOpened {
                case_id,
                school_id: school,
                case_type: [pb::CaseType::FilteringBreach, pb::CaseType::SharingNudes, pb::CaseType::LowLevelConcern]
                    [usize::from(value) % 3] as i32,
                risk_level: i32::from(value % 5),
                lead_user_id: "user-dsl".into(),
                checklist,
                ..Default::default()
            };
            envelope(position, "incidents.CaseOpened", at, opened.encode_to_vec())
        }
        1 => {
            let change =
                pb::CaseRiskChanged { case_id: case(*opened), risk_level: i32::from(value % 5), ..Default::default() };
            envelope(position, "incidents.CaseRiskChanged", at, change.encode_to_vec())
        }
        2 => {
            let action = pb::CaseActionRecorded {
                case_id: case(*opened),
                action_key: KEYS[usize::from(value) % 3].to_owned(),
                status: i32::from(value % 4),
                ..Default::default()
            };
            envelope(position, "incidents.CaseActionRecorded", at, action.encode_to_vec())
        }
        3 => {
            let closed = pb::CaseClosed { case_id: case(*opened), ..Default::default() };
            envelope(position, "incidents.CaseClosed", at, closed.encode_to_vec())
        }
        4 => {
            let alert = pb::SafeguardingAlertRaised {
                alert_id: format!("alert-{}", value % 8),
                school_id: school,
                category: i32::from(value % 4),
                ..Default::default()
            };
            envelope(position, "ingest.SafeguardingAlertRaised", at, alert.encode_to_vec())
        }
        5 => {
            let made = pb::ReferralMade {
                case_id: case(*opened),
                referral_id: format!("ref-{}", value % 8),
                school_id: school,
                ..Default::default()
            };
            envelope(position, "incidents.ReferralMade", at, made.encode_to_vec())
        }
        _ => {
            let concern = pb::ConcernRaised { school_id: school, ..Default::default() };
            envelope(position, "incidents.ConcernRaised", at, concern.encode_to_vec())
        }
    }
}

fn fold(history: &[(u8, u8, u8, u32)]) -> ReportState {
    let mut state = ReportState::default();
    for school in 0..3u64 {
        let registered =
            pb::SchoolRegistered { school_id: format!("school-{school}"), pupil_count: 100, ..Default::default() };
        state.apply(&envelope(school, "identity.SchoolRegistered", START - 60 * DAY, registered.encode_to_vec()));
    }
    let mut opened = 0;
    for (position, step) in history.iter().enumerate() {
        state.apply(&event(3 + position as u64, &mut opened, *step));
    }
    state
}

/// Counts per (school, week) of `rows`, as the trends read them.
fn per_week<'a>(rows: impl Iterator<Item = (&'a str, i64)>) -> BTreeMap<(String, i64), u64> {
    let mut counts = BTreeMap::new();
    for (school, at) in rows {
        *counts.entry((school.to_owned(), week_start(at))).or_default() += 1;
    }
    counts
}

fn trend_counts(state: &ReportState, metric: pb::TrendMetric) -> BTreeMap<(String, i64), u64> {
    let query = TrendQuery { metric: metric as i32, until: START + 40 * DAY, weeks: 10, ..Default::default() };
    trends(state, None, &query)
        .schools
        .into_iter()
        .filter(|row| row.count > 0)
        .map(|row| ((row.school_id, row.week_start.map_or(0, |t| t.seconds)), row.count))
        .collect()
}

proptest! {
    #[test]
    fn the_indexes_kept_on_apply_equal_a_walk_of_every_record(
        history in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), 0u32..(30 * 86_400)), 0..120),
        now_offset in 0i64..(40 * DAY),
    ) {
        let state = fold(&history);
        prop_assert_eq!(&state.open, &OpenWork::from_cases(&state.cases));

        // The dashboard's case figures against a walk of every case (the way it was done before).
        let now = START + now_offset;
        let board = dashboard(&state, None, START, START + DAY, now).response;
        let mut open: BTreeMap<(String, i32, i32, i32), u32> = BTreeMap::new();
        let mut overdue = Vec::new();
        let mut critical = Vec::new();
        for (case_id, case) in state.cases.iter().filter(|(_, case)| case.closed_at.is_none()) {
            let band = age_band(case.opened_at, now) as i32;
            *open.entry((case.school_id.clone(), case.case_type, case.risk_level, band)).or_default() += 1;
            if case.restricted {
                continue;
            }
            for (key, action) in &case.checklist {
                if action.due_at.is_some_and(|due| due < now) && outstanding(action) {
                    overdue.push((action.due_at.unwrap_or_default(), case_id.clone(), key.clone()));
                }
            }
            if case.risk_level == pb::RiskLevel::Critical as i32 {
                critical.push((case.opened_at, case_id.clone()));
            }
        }
        let board_open: BTreeMap<_, _> = board
            .open_cases
            .iter()
            .map(|row| ((row.school_id.clone(), row.case_type, row.risk_level, row.age_band), row.count))
            .collect();
        prop_assert_eq!(board_open, open);
        overdue.sort();
        critical.sort();
        let board_overdue: Vec<_> = board
            .overdue_actions
            .iter()
            .map(|row| (row.due_at.map_or(0, |t| t.seconds), row.case_id.clone(), row.action_key.clone()))
            .collect();
        prop_assert!(overdue.len() < ROW_LIMIT);
        prop_assert_eq!(board_overdue, overdue.clone());
        let board_critical: Vec<_> =
            board.critical_cases.iter().map(|row| (row.opened_at.map_or(0, |t| t.seconds), row.case_id.clone())).collect();
        prop_assert_eq!(board_critical, critical.clone());
        let work_overdue: u32 = board.case_work.iter().map(|row| row.overdue_actions).sum();
        let work_critical: u32 = board.case_work.iter().map(|row| row.critical_cases).sum();
        prop_assert_eq!(work_overdue as usize, overdue.len());
        prop_assert_eq!(work_critical as usize, critical.len());

        // Where cases may not be listed, they are counted in `open_cases` only.
        let hidden = dashboard_listing(&state, None, START, START + DAY, now, &|school| school != "school-0").response;
        prop_assert!(hidden.overdue_actions.iter().all(|row| row.school_id != "school-0"));
        prop_assert!(hidden.critical_cases.iter().all(|row| row.school_id != "school-0"));
        prop_assert!(hidden.case_work.iter().all(|row| row.school_id != "school-0"));
        prop_assert_eq!(hidden.open_cases, board.open_cases);

        // The weekly counts against the records themselves.
        let weeks_of = |counts: BTreeMap<(String, i64), u64>| -> BTreeMap<(String, i64), u64> {
            counts.into_iter().filter(|((_, week), _)| *week >= START && *week < START + 40 * DAY).collect()
        };
        let cases = per_week(state.cases.values().map(|case| (case.school_id.as_str(), case.opened_at)));
        prop_assert_eq!(trend_counts(&state, pb::TrendMetric::CasesOpened), weeks_of(cases));
        let alerts = per_week(state.alerts.values().map(|alert| (alert.school_id.as_str(), alert.raised_at)));
        prop_assert_eq!(trend_counts(&state, pb::TrendMetric::Alerts), weeks_of(alerts));
        let referrals = per_week(state.referrals.values().map(|r| (r.school_id.as_str(), r.referred_at)));
        prop_assert_eq!(trend_counts(&state, pb::TrendMetric::Referrals), weeks_of(referrals));
        let concerns = per_week(state.concerns.iter().map(|(school, at)| (school.as_str(), *at)));
        prop_assert_eq!(trend_counts(&state, pb::TrendMetric::ConcernsRaised), weeks_of(concerns));
    }
}

/// More overdue actions than a dashboard lists: the oldest are listed, every one is counted.
#[test]
fn a_long_list_is_cut_to_the_oldest_and_counted_whole() {
    let mut state = ReportState::default();
    let cases = ROW_LIMIT + 20;
    for index in 0..cases {
        let at = START + index as i64 * 60;
        let opened = pb::CaseOpened {
            case_id: format!("case-{index:04}"),
            school_id: format!("school-{}", index % 2),
            case_type: pb::CaseType::FilteringBreach as i32,
            risk_level: pb::RiskLevel::Critical as i32,
            checklist: vec![pb::ChecklistItem {
                action_key: "record-concern".into(),
                status: pb::ActionStatus::Outstanding as i32,
                due_at: Some(prost_types::Timestamp { seconds: at + 3_600, nanos: 0 }),
                ..Default::default()
            }],
            ..Default::default()
        };
        state.apply(&envelope(index as u64, "incidents.CaseOpened", at, opened.encode_to_vec()));
    }
    let board = dashboard(&state, None, START, START + DAY, START + 30 * DAY).response;
    assert_eq!(board.overdue_actions.len(), ROW_LIMIT);
    assert_eq!(board.critical_cases.len(), ROW_LIMIT);
    let due: Vec<i64> = board.overdue_actions.iter().map(|row| row.due_at.unwrap().seconds).collect();
    assert!(due.is_sorted(), "oldest due first");
    assert_eq!(due[0], START + 3_600, "the oldest is listed");
    assert_eq!(board.case_work.len(), 2);
    assert_eq!(board.case_work.iter().map(|row| row.overdue_actions as usize).sum::<usize>(), cases);
    assert_eq!(board.case_work.iter().map(|row| row.critical_cases as usize).sum::<usize>(), cases);
    assert_eq!(board.open_cases.iter().map(|row| row.count as usize).sum::<usize>(), cases);
}
