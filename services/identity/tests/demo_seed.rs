//! The demo seed writes its trust, schools, people, AUP and learners once, however often it
//! runs, across restarts.

use std::sync::Arc;
use std::time::Duration;

use haven_authz::UserId;
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::EventLog;
use haven_identity::demo::{self, DEMO_LEARNERS, DEMO_PASSWORD, DEMO_PEOPLE, DEMO_SCHOOLS};
use haven_identity::password::{PasswordCost, PasswordHasher};
use haven_identity::{IdentityApp, SchoolDirectory};
use haven_kernel::SchoolId;
use haven_runtime::{Readiness, Shutdown};

fn hasher() -> PasswordHasher {
    PasswordHasher::new(PasswordCost::for_tests()).unwrap()
}

/// The trust, the schools, each person's registration, grant and password, the AUP, the
/// learners, the school system's credential.
const SEEDED: usize = 1 + DEMO_SCHOOLS.len() + 3 * DEMO_PEOPLE.len() + 1 + DEMO_LEARNERS.len() + 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_is_idempotent_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first_head = {
        let log = LocalEventLog::open(dir.path(), EventLogConfig::default()).unwrap();
        let app = IdentityApp::new(Arc::new(log.clone()));
        let report = demo::seed(&app, &hasher()).await.unwrap();
        assert_eq!(report.written, SEEDED);
        assert_eq!(report.already_present, 0);
        let again = demo::seed(&app, &hasher()).await.unwrap();
        assert_eq!(again.written, 0, "a second run in the same process writes nothing");
        let head = log.head().await.unwrap();
        log.close().await;
        head
    };
    assert_eq!(first_head.next_position.0, SEEDED as u64);

    let log = LocalEventLog::open(dir.path(), EventLogConfig::default()).unwrap();
    let app = IdentityApp::new(Arc::new(log.clone()));
    let report = demo::seed(&app, &hasher()).await.unwrap();
    assert_eq!(report, demo::SeedReport { written: 0, already_present: SEEDED });
    assert_eq!(log.head().await.unwrap(), first_head, "a restart seeds nothing new");

    let (school, version) = app.school(&SchoolId::parse("heronsgate-academy").unwrap()).await.unwrap().unwrap();
    assert_eq!((school.pupil_count, version.0), (1_184, 0));
    let (dsl, _) = app.user(&UserId::parse("kestrel-dsl").unwrap()).await.unwrap().unwrap();
    assert!(hasher().verify(DEMO_PASSWORD, dsl.password_hash.as_deref().unwrap()), "demo people can sign in");
    assert_eq!(dsl.role_grants().len(), 1);
    assert_eq!(app.aup().await.unwrap().unwrap().version, 1);
    let system = app.system(demo::DEMO_SYSTEM.0).await.unwrap().unwrap();
    assert_eq!(system.school_id.as_str(), demo::DEMO_SYSTEM.1);
    assert!(hasher().verify(demo::DEMO_SYSTEM_SECRET, &system.secret_hash), "the demo collector can exchange it");
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_catches_up_and_then_says_ready() {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalEventLog::open(dir.path(), EventLogConfig::default()).unwrap();
    let shared: Arc<dyn EventLog> = Arc::new(log.clone());
    let app = IdentityApp::new(Arc::clone(&shared));
    demo::seed(&app, &hasher()).await.unwrap();

    let readiness = Readiness::default();
    let handle = readiness.register("identity", "catching up");
    let shutdown = Shutdown::default();
    let directory = SchoolDirectory::default();
    let follower = tokio::spawn(directory.clone().follow(shared, handle, shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !readiness.is_ready() {
        assert!(tokio::time::Instant::now() < deadline, "the directory never caught up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(directory.list().len(), DEMO_SCHOOLS.len());

    let context = haven_identity::CommandContext {
        actor: haven_proto::v1::Actor { principal_id: "haven".into(), kind: 3, roles: vec![] },
        occurred_at: prost_types::Timestamp { seconds: 0, nanos: 0 },
        event_ids: haven_identity::EventIds::Fresh,
    };
    let kestrel = SchoolId::parse("kestrel-primary").unwrap();
    app.change_pupil_numbers(&context, &kestrel, 420).await.unwrap();
    while directory.get(&kestrel).unwrap().0.pupil_count != 420 {
        assert!(tokio::time::Instant::now() < deadline, "the change never reached the directory");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(directory.get(&kestrel).unwrap().1.0, 1, "the directory knows the stream version");
    shutdown.trigger();
    follower.await.unwrap();
    log.close().await;
}
