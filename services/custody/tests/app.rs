//! The shell against a real log in a temporary directory: commands are appended and read back,
//! refusals write nothing, retries are idempotent, exports verify, the sweep raises once.

use std::sync::Arc;

use haven_custody::domain::{
    CustodyCommand, CustodyError, CustodyStatus, HoldKind, Owner, ReturnRecipient, SchoolDay, UnixTime,
};
use haven_custody::export::{VerifyOptions, verify};
use haven_custody::{CommandContext, CustodyApp, Error};
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventLog, ReadStream};
use haven_kernel::{SchoolId, StreamId, Version};
use haven_proto::v1 as pb;

const MORNING: i64 = 1_700_000_000;

fn context(request_id: &str, at: i64) -> CommandContext {
    CommandContext {
        actor: pb::Actor { principal_id: "dsl-1".into(), kind: pb::ActorKind::User as i32, roles: vec!["dsl".into()] },
        occurred_at: prost_types::Timestamp { seconds: at, nanos: 0 },
        request_id: request_id.into(),
    }
}

fn seize(id: &str, at: i64) -> CustodyCommand {
    CustodyCommand::Seize {
        custody_id: id.into(),
        school_id: SchoolId::parse("elm-academy").unwrap(),
        device_id: None,
        device_description: "blue tablet".into(),
        from: Owner::Learner { subject_id: "subj-9".into() },
        seized_by: "teacher-1".into(),
        witness: Some("teacher-2".into()),
        reason: "messages feared to be harassment".into(),
        case_id: None,
        return_due_at: UnixTime(at + 8 * 3600),
        at: UnixTime(at),
    }
}

fn seal(number: &str, at: i64) -> CustodyCommand {
    CustodyCommand::Seal {
        seal_number: number.into(),
        sealed_by: "teacher-1".into(),
        witness: None,
        powered_off: true,
        note: String::new(),
        at: UnixTime(at),
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    log: Arc<LocalEventLog>,
    app: CustodyApp,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(LocalEventLog::open(dir.path(), EventLogConfig::default()).unwrap());
    let signer = Arc::new(haven_custody::export::TrailSigner::from_seed("custody-1", &[5u8; 32]));
    let app = CustodyApp::new(log.clone(), signer);
    Harness { _dir: dir, log, app }
}

async fn stream_len(log: &LocalEventLog, stream: &str) -> usize {
    let slice = log.read_stream(ReadStream::forwards(StreamId::parse(stream).unwrap(), Version(0), 100)).await.unwrap();
    slice.events.len()
}

#[tokio::test]
async fn steps_are_logged_and_read_back() {
    let h = harness();
    h.app.custody_command(&context("r1", MORNING), "c1", seize("c1", MORNING)).await.unwrap();
    let (record, version) =
        h.app.custody_command(&context("r2", MORNING + 60), "c1", seal("S-1", MORNING + 60)).await.unwrap();
    assert_eq!(version, Version(1));
    assert_eq!(record.status(), CustodyStatus::Sealed);
    let (reloaded, _) = h.app.record("c1").await.unwrap().unwrap();
    assert_eq!(reloaded, record);
    // The step's time is in the envelope.
    let (_, history) = h.app.trail("c1").await.unwrap();
    assert_eq!(history[1].0.occurred_at.unwrap().seconds, MORNING + 60);
}

#[tokio::test]
async fn a_retried_request_writes_nothing_new_and_a_refusal_writes_nothing() {
    let h = harness();
    h.app.custody_command(&context("r1", MORNING), "c1", seize("c1", MORNING)).await.unwrap();
    let hold = CustodyCommand::PlaceHold {
        kind: HoldKind::Quarantine,
        reason: "pending police advice".into(),
        police_reference: None,
        authorised_by: "dsl-1".into(),
        at: UnixTime(MORNING + 10),
    };
    h.app.custody_command(&context("r2", MORNING + 10), "c1", hold.clone()).await.unwrap();
    let give_back = CustodyCommand::Return {
        recipient: ReturnRecipient::Learner,
        collected_by: None,
        returned_by: "dsl-1".into(),
        witness: None,
        at: UnixTime(MORNING + 20),
    };
    let refused = h.app.custody_command(&context("r3", MORNING + 20), "c1", give_back).await;
    assert!(matches!(refused, Err(Error::Custody(CustodyError::HoldStands(HoldKind::Quarantine)))));
    assert_eq!(stream_len(&h.log, "custody-c1").await, 2);
    // The same request again (same request id): the first result, and nothing is written.
    let (record, version) = h.app.custody_command(&context("r2", MORNING + 10), "c1", hold.clone()).await.unwrap();
    assert_eq!((record.holds.len(), version), (1, Version(1)));
    assert_eq!(stream_len(&h.log, "custody-c1").await, 2);
    // A new request for the same hold: the domain refuses it, and nothing is written.
    assert!(matches!(
        h.app.custody_command(&context("r5", MORNING + 30), "c1", hold).await,
        Err(Error::Custody(CustodyError::HoldAlreadyStands(HoldKind::Quarantine)))
    ));
    assert_eq!(stream_len(&h.log, "custody-c1").await, 2);
    assert!(matches!(
        h.app.custody_command(&context("r4", MORNING), "nope", seal("S-1", MORNING)).await,
        Err(Error::Custody(CustodyError::NotSeized))
    ));
}

#[tokio::test]
async fn an_export_verifies_offline_and_is_recorded() {
    let h = harness();
    h.app.custody_command(&context("r1", MORNING), "c1", seize("c1", MORNING)).await.unwrap();
    h.app.custody_command(&context("r2", MORNING + 60), "c1", seal("S-1", MORNING + 60)).await.unwrap();
    let exported = h.app.export_trail(&context("r3", MORNING + 120), "c1", "police evidence").await.unwrap();
    let verified = verify(&exported.json, &VerifyOptions::default()).unwrap();
    let entries = &verified.trail.document.entries;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].event_type, "custody.DeviceSeized");
    assert_eq!(entries[1].summary, "powered off and sealed, seal S-1");
    assert!(exported.html.contains("seal S-1"));
    assert_eq!(stream_len(&h.log, "access-custody-c1").await, 1);
    // The log hashes in the document are the log's own.
    let (_, history) = h.app.trail("c1").await.unwrap();
    assert_eq!(entries[1].log_hash, hex::encode(&history[1].0.hash));
}

#[tokio::test]
async fn the_end_of_day_sweep_raises_once() {
    let h = harness();
    h.app.custody_command(&context("r1", MORNING), "c1", seize("c1", MORNING)).await.unwrap();
    h.app.custody_command(&context("r2", MORNING), "c2", seize("c2", MORNING)).await.unwrap();
    let give_back = CustodyCommand::Return {
        recipient: ReturnRecipient::Learner,
        collected_by: None,
        returned_by: "dsl-1".into(),
        witness: None,
        at: UnixTime(MORNING + 20),
    };
    h.app.custody_command(&context("r3", MORNING + 20), "c2", give_back).await.unwrap();
    let day = SchoolDay { starts_at: UnixTime(MORNING - 3600), ends_at: UnixTime(MORNING + 8 * 3600) };
    let ids = vec!["c1".to_owned(), "c2".to_owned()];
    let sweep = context("sweep-1", MORNING + 8 * 3600);
    let raised = h.app.end_of_day_sweep(&sweep, &ids, day, UnixTime(MORNING + 8 * 3600)).await.unwrap();
    assert_eq!(raised.iter().map(|a| a.custody_id.as_str()).collect::<Vec<_>>(), ["c1"]);
    assert_eq!(stream_len(&h.log, "custody-c1").await, 2);
    let again = h
        .app
        .end_of_day_sweep(&context("sweep-2", MORNING + 8 * 3600 + 60), &ids, day, UnixTime(MORNING + 8 * 3600 + 60))
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(stream_len(&h.log, "custody-c1").await, 2);
}

/// The scheduled sweep: the school day from the configuration (Europe/London), the records
/// from the read model, each action raised once however often the sweep runs.
#[tokio::test]
async fn the_scheduled_sweep_follows_the_configured_day_and_raises_each_action_once() {
    use haven_custody::schedule::sweep_day;
    use haven_custody::{CustodyConfig, CustodyIndex};
    let h = harness();
    let config = CustodyConfig { school_day_ends: "15:00".into(), ..CustodyConfig::default() };
    let date = jiff::civil::date(2026, 10, 6); // BST: 08:00–15:00 local is 07:00–14:00 UTC.
    let day = config.school_day(date).unwrap();
    assert_eq!(day.ends_at.0 - day.starts_at.0, 7 * 3600);
    let at = day.starts_at.0 + 3600;
    // Outstanding; held (no action); seized the day before (another day's sweep).
    h.app.custody_command(&context("s1", at), "c1", seize("c1", at)).await.unwrap();
    h.app.custody_command(&context("s2", at), "c2", seize("c2", at)).await.unwrap();
    let hold = CustodyCommand::PlaceHold {
        kind: HoldKind::PoliceHold,
        reason: "police asked us to keep it".into(),
        police_reference: Some("REF-9".into()),
        authorised_by: "dsl-1".into(),
        at: UnixTime(at + 60),
    };
    h.app.custody_command(&context("s3", at + 60), "c2", hold).await.unwrap();
    h.app.custody_command(&context("s4", at - 86_400), "c3", seize("c3", at - 86_400)).await.unwrap();
    let index = CustodyIndex::default();
    let filter = pb::EventFilter::default();
    let slice = h.log.read_all(haven_kernel::Position(0), 100, &filter).await.unwrap();
    for envelope in &slice.events {
        index.apply(envelope);
    }
    assert_eq!(index.open_seized_between(day.starts_at, day.ends_at), ["c1", "c2"]);

    let before_the_end = sweep_day(&h.app, &index, &config, date, UnixTime(day.ends_at.0 - 1)).await.unwrap();
    assert!(before_the_end.is_empty(), "nothing before the school day ends");
    let after = UnixTime(day.ends_at.0 + 30);
    let raised = sweep_day(&h.app, &index, &config, date, after).await.unwrap();
    assert_eq!(raised.iter().map(|a| a.custody_id.as_str()).collect::<Vec<_>>(), ["c1"]);
    assert_eq!(raised[0].school_day_ends_at, day.ends_at);
    // Again later, and from a second process with its own read model: nothing new.
    assert!(sweep_day(&h.app, &index, &config, date, UnixTime(after.0 + 60)).await.unwrap().is_empty());
    let (_, history) = h.app.trail("c1").await.unwrap();
    let raised_events = history.iter().filter(|(e, _)| e.event_type == "custody.DeviceEndOfDayActionRaised").count();
    assert_eq!(raised_events, 1);
    assert_eq!(stream_len(&h.log, "custody-c2").await, 2, "a held device needs no action");
    assert_eq!(stream_len(&h.log, "custody-c3").await, 1, "yesterday's device is yesterday's sweep");
}
