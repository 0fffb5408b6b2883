//! The reporting projection fed by the bus's consumer from a real log: the live projection and
//! a rebuild from position 0 give the same answers.

mod common;

use std::time::Duration;

use common::TestLog;
use haven_bus::{BusMetrics, Consumer, EmbeddedSource};
use haven_proto::v1 as pb;
use haven_reporting::projection::{dashboard, governors, registers, trends};
use haven_reporting::{ReportState, ReportingProjection};
use haven_runtime::Shutdown;

const MONDAY: i64 = 1_736_726_400; // 2025-01-13 00:00 UTC (GMT)
const DAY: i64 = 86_400;

async fn seed(log: &TestLog, offset: i64) {
    for (school, pupils) in [("school-a", 200), ("school-b", 400), ("school-c", 400)] {
        if offset == 0 {
            let registered =
                pb::SchoolRegistered { school_id: school.into(), pupil_count: pupils, ..Default::default() };
            log.append(
                &format!("school-{school}"),
                "identity.SchoolRegistered",
                school,
                "haven",
                MONDAY - 30 * DAY,
                registered,
            )
            .await;
        }
    }
    // School A: 20 self-harm breaches (10 per 100 pupils); B and C: 2 each.
    for (school, count) in [("school-a", 20), ("school-b", 2), ("school-c", 2)] {
        for index in 0..count {
            let at = MONDAY + 7 * DAY + offset + index * 60;
            let breach = pb::BreachObserved {
                school_id: school.into(),
                occurred_at: Some(prost_types::Timestamp { seconds: at, nanos: 0 }),
                category: pb::BreachCategory::SelfHarm as i32,
                action: pb::BreachAction::Blocked as i32,
                subject_id: if index < 3 { "subj-1".into() } else { String::new() },
                repeat_count: 1,
                ..Default::default()
            };
            log.append(
                &format!("breaches-{school}-2025-01-20"),
                "ingest.BreachObserved",
                school,
                "system-filter",
                at,
                breach,
            )
            .await;
        }
    }
    let case_id = format!("case-{offset}");
    let opened = pb::CaseOpened {
        case_id: case_id.clone(),
        school_id: "school-a".into(),
        case_type: pb::CaseType::SharingNudes as i32,
        risk_level: pb::RiskLevel::Critical as i32,
        checklist: vec![pb::ChecklistItem {
            action_key: "inform-parents".into(),
            due_at: Some(prost_types::Timestamp { seconds: MONDAY + 8 * DAY, nanos: 0 }),
            ..Default::default()
        }],
        ..Default::default()
    };
    log.append(
        &format!("incident-{case_id}"),
        "incidents.CaseOpened",
        "school-a",
        "user-dsl",
        MONDAY + 7 * DAY,
        opened,
    )
    .await;
    let referral = pb::ReferralMade {
        case_id: case_id.clone(),
        school_id: "school-a".into(),
        referral_id: format!("ref-{offset}"),
        agency: pb::ReferralAgency::Police101 as i32,
        reference_number: "=CR/1".into(),
        ..Default::default()
    };
    log.append(
        &format!("incident-{case_id}"),
        "incidents.ReferralMade",
        "school-a",
        "user-dsl",
        MONDAY + 7 * DAY,
        referral,
    )
    .await;
    let seized = pb::DeviceSeized {
        custody_id: format!("cust-{offset}"),
        school_id: "school-a".into(),
        case_id: case_id.clone(),
        ..Default::default()
    };
    log.append(
        &format!("custody-cust-{offset}"),
        "custody.DeviceSeized",
        "school-a",
        "user-dsl",
        MONDAY + 7 * DAY,
        seized,
    )
    .await;
}

async fn wait_for(progress: &mut tokio::sync::watch::Receiver<haven_kernel::Position>, head: u64) {
    tokio::time::timeout(Duration::from_secs(10), progress.wait_for(|checkpoint| checkpoint.0 >= head))
        .await
        .expect("the consumer catches up")
        .unwrap();
}

#[tokio::test]
async fn the_live_projection_equals_a_rebuild_from_zero() {
    let log = TestLog::open();
    seed(&log, 0).await;
    let projection = ReportingProjection::new();
    let view = projection.view();
    let consumer = Consumer::new(projection, log.log.clone(), BusMetrics::default());
    let mut progress = consumer.progress();
    let shutdown = Shutdown::default();
    let task = tokio::spawn(consumer.run(EmbeddedSource::new(log.log.clone()), shutdown.clone()));
    wait_for(&mut progress, log.log.head().await.unwrap().next_position.0).await;
    // More events while it is live.
    seed(&log, 3_600).await;
    let head = log.log.head().await.unwrap().next_position.0;
    wait_for(&mut progress, head).await;

    let rebuilt = ReportingProjection::new();
    let rebuilt_view = rebuilt.view();
    let mut rebuild = Consumer::new(rebuilt, log.log.clone(), BusMetrics::default());
    assert_eq!(rebuild.rebuild().await.unwrap().0, head);
    let live: ReportState = view.read(|state, _| state.clone());
    let again: ReportState = rebuilt_view.read(|state, _| state.clone());
    assert_eq!(live, again);

    // The answers themselves.
    let now = MONDAY + 10 * DAY;
    let board = view.read(|state, _| dashboard::dashboard(state, None, MONDAY + 7 * DAY, MONDAY + 8 * DAY, now));
    let total: u64 = board.response.breaches_by_school.iter().map(|row| row.blocked).sum();
    assert_eq!(total, 48);
    assert_eq!(board.response.breaches_by_hour.len(), 24);
    assert_eq!(board.breaches_by_hour_of_day.iter().sum::<u64>(), 48);
    assert_eq!(board.response.critical_cases.len(), 2);
    assert_eq!(board.response.overdue_actions.len(), 2);
    assert_eq!(board.devices_in_custody.len(), 2);
    assert_eq!(board.devices_in_custody[0].age_days, 3);
    let only_b = ["school-b".to_owned()];
    let board_b = view.read(|state, _| dashboard::dashboard(state, Some(&only_b), MONDAY, now, now));
    assert!(board_b.response.critical_cases.is_empty());
    assert_eq!(board_b.response.breaches_by_school.len(), 1);

    let query =
        trends::TrendQuery { metric: pb::TrendMetric::Breaches as i32, until: now, weeks: 1, ..Default::default() };
    let trend = view.read(|state, _| trends::trends(state, None, &query));
    let week = trend.schools.iter().find(|row| row.school_id == "school-a").unwrap();
    assert_eq!(week.count, 40);
    assert!((week.rate_per_100_pupils - 20.0).abs() < 1e-9);
    assert!((week.week_on_week_change - 20.0).abs() < 1e-9);
    assert_eq!(trend.outliers.iter().map(|o| o.school_id.as_str()).collect::<Vec<_>>(), vec!["school-a"]);

    let repeat = view.read(|state, _| trends::repeat_subjects(state, None, 3));
    assert_eq!(repeat.len(), 1);
    assert_eq!(repeat[0].breaches, 14);
    assert_eq!(repeat[0].schools, vec!["school-a".to_owned(), "school-b".to_owned(), "school-c".to_owned()]);

    let police = view.read(|state, _| registers::police_register(state, None, 0, i64::MAX));
    assert_eq!(police.len(), 2);
    let csv = registers::police_csv(&police);
    assert!(csv.starts_with("case_id,school_id,case_type"));
    assert!(csv.contains(",'=CR/1,"), "formula-like references are defused: {csv}");

    shutdown.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn a_rebuild_on_request_swaps_in_a_state_identical_to_the_live_one() {
    let log = TestLog::open();
    seed(&log, 0).await;
    let projection = ReportingProjection::new();
    let view = projection.view();
    let consumer = Consumer::new(projection, log.log.clone(), BusMetrics::default());
    let mut progress = consumer.progress();
    let shutdown = Shutdown::default();
    let task = tokio::spawn(consumer.run(EmbeddedSource::new(log.log.clone()), shutdown.clone()));
    wait_for(&mut progress, log.log.head().await.unwrap().next_position.0).await;
    let live_before: ReportState = view.read(|state, _| state.clone());

    // Events keep arriving while the rebuild runs; it catches up with the live checkpoint
    // before swapping in.
    assert!(view.begin_rebuild());
    assert!(!view.begin_rebuild(), "one rebuild at a time");
    assert!(view.rebuild_status().rebuilding);
    let (rebuild_view, rebuild_log) = (view.clone(), log.log.clone());
    let rebuild = tokio::spawn(async move { rebuild_view.rebuild(rebuild_log.as_ref(), 42).await });
    seed(&log, 3_600).await;
    let rebuilt = rebuild.await.unwrap().unwrap();
    let head = log.log.head().await.unwrap().next_position.0;
    wait_for(&mut progress, head).await;

    let status = view.rebuild_status();
    assert!(!status.rebuilding);
    assert_eq!(status.last_rebuilt_at, Some(42));
    assert_eq!(status.last_events, rebuilt.events);
    assert_eq!(status.last_checkpoint, rebuilt.checkpoint);
    assert!(rebuilt.events > 0 && rebuilt.checkpoint <= head);

    // The state after the swap (and whatever the consumer applied after it) equals a rebuild
    // from zero by a second consumer, and differs from the state before the new events.
    let live: ReportState = view.read(|state, _| state.clone());
    let fresh = ReportingProjection::new();
    let fresh_view = fresh.view();
    let mut again = Consumer::new(fresh, log.log.clone(), BusMetrics::default());
    assert_eq!(again.rebuild().await.unwrap().0, head);
    assert_eq!(live, fresh_view.read(|state, _| state.clone()));
    assert_ne!(live, live_before, "the events written during the rebuild are in");
    assert_eq!(live.breaches.events(), 2 * 24, "each breach counted once");

    shutdown.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn the_governors_report_has_aggregates_only() {
    let log = TestLog::open();
    seed(&log, 0).await;
    let projection = ReportingProjection::new();
    let view = projection.view();
    let mut consumer = Consumer::new(projection, log.log.clone(), BusMetrics::default());
    consumer.catch_up().await.unwrap();
    let report = view
        .read(|state, _| governors::governors_report(state, "", "2024-25", haven_reporting::time::Term::Spring))
        .unwrap();
    assert_eq!(report.pupil_count, 1_000);
    assert_eq!(report.breaches_by_category.len(), 1);
    assert_eq!(report.breaches_by_category[0].breaches.unwrap().count, 24);
    assert!(report.devices_confiscated.unwrap().suppressed, "one device is a small number");
    let html = governors::governors_html(&report);
    assert!(html.contains("Self harm") && html.contains("fewer than 5"));
    for personal in ["case-0", "cust-0", "subj-1", "ref-0", "CR/1", "user-dsl"] {
        assert!(!html.contains(personal), "{personal} in the governors' report");
    }
}
