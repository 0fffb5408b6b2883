//! The shell against a real log (LocalEventLog in a temp dir): what is appended folds back to
//! the state decided, and two DSLs acting on one case at once get one winner and one typed
//! conflict that a retry on the new state resolves.

mod support;

use std::sync::Arc;

use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::EventLog;
use haven_incidents::domain::*;
use haven_incidents::events::{self, encode_alert};
use haven_incidents::{CommandContext, Error, EventIds, IncidentsApp, alert_stream};
use haven_kernel::{ExpectedVersion, Version};
use haven_proto::v1 as pb;
use support::*;

fn context(who: &str, at: UnixTime) -> CommandContext {
    CommandContext::user(user(who), vec!["dsl".into()], at, EventIds::Fresh)
}

fn open_log() -> (tempfile::TempDir, LocalEventLog, IncidentsApp) {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalEventLog::open(dir.path(), EventLogConfig::default()).unwrap();
    let app = IncidentsApp::new(Arc::new(log.clone()), EscalationPolicy::default());
    (dir, log, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_procedure_through_the_log_folds_back_to_the_same_case() {
    let (_dir, log, app) = open_log();
    let mut open = open_request(CaseType::SharingNudes, &["ln-1"], &[]);
    open.imagery_viewed = true;
    let case = case_id("case-1");
    let school = school(SCHOOL);
    let (_, v0) = app.open_case(&context(DSL, MONDAY_NOON), open).await.unwrap();
    assert_eq!(v0, Version(0));
    let refused = app
        .case_command(
            &context(DSL, MONDAY_NOON),
            &case,
            &school,
            CaseRequest::RecordAction {
                key: "notify-dsl".into(),
                title: String::new(),
                status: ActionStatus::Done,
                note: String::new(),
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Case(CaseError::ViewingRecordRequired)));
    let requests = vec![
        CaseRequest::RecordImageryViewed(ViewingRecord {
            viewed_by: user(DSL),
            viewed_at: MONDAY_NOON,
            present: vec![user(DEPUTY)],
            others_present: vec!["police officer".into()],
            reason: "clear safeguarding need".into(),
            description: "described, not reproduced".into(),
            custody_id: String::new(),
        }),
        CaseRequest::MakeReferral {
            referral_id: referral("ref-1"),
            agency: Agency::Police101,
            agency_other: String::new(),
            reference_number: "REF-1".into(),
            agency_contact: String::new(),
            reason: "possible offence".into(),
            follow_up_at: Some(MONDAY_NOON.plus_seconds(86_400)),
        },
        CaseRequest::InformParents {
            subject_ids: vec![subject("ln-1")],
            method: ContactMethod::InPerson,
            summary: "met".into(),
        },
        CaseRequest::ChangeRisk { risk: RiskLevel::High, reason: "shared widely".into() },
    ];
    let mut decided = None;
    for (step, request) in requests.into_iter().enumerate() {
        let at = MONDAY_NOON.plus_seconds(60 * (step as i64 + 1));
        decided = Some(app.case_command(&context(DSL, at), &case, &school, request, None).await.unwrap());
    }
    let (decided, version) = decided.unwrap();
    let (reloaded, reloaded_version) = app.case(&case).await.unwrap().unwrap();
    assert_eq!(reloaded, decided, "the protobuf round trip loses nothing");
    assert_eq!((version, reloaded_version), (Version(4), Version(4)));
    // The envelope carries tenancy and the recorder.
    let history = app.case_history(&case).await.unwrap();
    assert!(history.iter().all(|e| e.school_id == SCHOOL));
    assert_eq!(history[0].event_type, events::CASE_OPENED);
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dsls_at_once_one_wins_the_other_gets_a_conflict_and_retries() {
    let (_dir, log, app) = open_log();
    let case = case_id("case-1");
    let school = school(SCHOOL);
    let (_, seen) =
        app.open_case(&context(DSL, MONDAY_NOON), open_request(CaseType::Cyberbullying, &["ln-1"], &[])).await.unwrap();

    let change = |who: &'static str, risk: RiskLevel| {
        let app = app.clone();
        let case = case.clone();
        let school = school.clone();
        tokio::spawn(async move {
            let request = CaseRequest::ChangeRisk { risk, reason: format!("{who}'s judgement") };
            app.case_command(&context(who, MONDAY_NOON.plus_seconds(60)), &case, &school, request, Some(seen)).await
        })
    };
    let (first, second) = tokio::join!(change(DSL, RiskLevel::High), change(DEPUTY, RiskLevel::Low));
    let results = [first.unwrap(), second.unwrap()];
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one writer wins: {results:?}");
    let conflict = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    match conflict {
        Error::Conflict { expected, actual, .. } => {
            assert_eq!(*expected, seen);
            assert_eq!(*actual, Some(Version(1)));
        }
        other => panic!("expected a typed conflict, got {other:?}"),
    }
    assert_eq!(conflict.code(), haven_kernel::ErrorCode::Conflict);

    // The loser re-reads and decides again on the new state.
    let (now, version) = app.case(&case).await.unwrap().unwrap();
    let loser_risk = if now.risk == RiskLevel::High { RiskLevel::Low } else { RiskLevel::High };
    let (after, after_version) = app
        .case_command(
            &context(DEPUTY, MONDAY_NOON.plus_seconds(120)),
            &case,
            &school,
            CaseRequest::ChangeRisk { risk: loser_risk, reason: "on reflection".into() },
            Some(version),
        )
        .await
        .unwrap();
    assert_eq!((after.risk, after_version), (loser_risk, Version(2)));

    // Without a version seen, concurrent writers are both applied, one after the other.
    let record = |who: &'static str, key: &'static str| {
        let app = app.clone();
        let case = case.clone();
        let school = school.clone();
        tokio::spawn(async move {
            let request = CaseRequest::RecordAction {
                key: key.into(),
                title: String::new(),
                status: ActionStatus::Done,
                note: String::new(),
            };
            app.case_command(&context(who, MONDAY_NOON.plus_seconds(180)), &case, &school, request, None).await
        })
    };
    let (a, b) = tokio::join!(record(DSL, "support"), record(DEPUTY, "sanctions"));
    a.unwrap().unwrap();
    b.unwrap().unwrap();
    let (case_now, version_now) = app.case(&case).await.unwrap().unwrap();
    assert_eq!(version_now, Version(4));
    assert_eq!(case_now.outstanding().filter(|i| i.key == "support" || i.key == "sanctions").count(), 0);
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_alert_escalates_once_per_step_in_the_log() {
    let (_dir, log, app) = open_log();
    let alert_id = AlertId::parse("alert-9").unwrap();
    let raised = AlertEvent::Raised {
        alert_id: alert_id.clone(),
        school_id: school(SCHOOL),
        severity: Severity::Critical,
        raised_at: MONDAY_NOON,
    };
    let (event_type, payload) = encode_alert(&alert_id, &school(SCHOOL), &raised);
    let ingest = pb::ProposedEvent {
        event_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
        event_type: event_type.into(),
        schema_version: 1,
        school_id: SCHOOL.into(),
        occurred_at: Some(events::time_to_proto(MONDAY_NOON)),
        actor: Some(pb::Actor { principal_id: "haven".into(), kind: pb::ActorKind::System as i32, roles: vec![] }),
        correlation_id: vec![],
        causation_id: vec![],
        trace_context: None,
        payload,
    };
    log.append(&alert_stream(&alert_id).unwrap(), ExpectedVersion::NoStream, vec![ingest]).await.unwrap();

    let tick = |minutes: i64| CommandContext::system(MONDAY_NOON.plus_seconds(minutes * 60));
    let (alert, _) = app.escalate_alert(&tick(10), &alert_id).await.unwrap();
    assert!(alert.escalations.is_empty());
    let (alert, _) = app.escalate_alert(&tick(16), &alert_id).await.unwrap();
    assert_eq!(alert.escalations.len(), 1);
    let (alert, version) = app.escalate_alert(&tick(16), &alert_id).await.unwrap();
    assert_eq!((alert.escalations.len(), version), (1, Version(1)), "the same tick writes nothing twice");
    let (alert, _) = app
        .acknowledge_alert(&context(DSL, MONDAY_NOON.plus_seconds(20 * 60)), &alert_id, None, String::new())
        .await
        .unwrap();
    assert!(alert.acknowledged.as_ref().is_some_and(|a| !a.within_deadline));
    let (alert, _) = app.escalate_alert(&tick(120), &alert_id).await.unwrap();
    assert_eq!(alert.escalations.len(), 1, "acknowledged: no further escalation");
    log.close().await;
}
