//! What identity's integration tests share: a real log in a temporary directory, the app,
//! the read models following it, and invented people.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use haven_authz::{Role, RoleGrant, Scope, UserId};
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::EventLog;
use haven_identity::domain::{SchoolCommand, SchoolPhase, UnixTime, UserCommand};
use haven_identity::{CommandContext, EventIds, IdentityApp, SchoolDirectory, UserDirectory};
use haven_kernel::SchoolId;
use haven_runtime::{Readiness, Shutdown};

pub const T0: UnixTime = UnixTime(1_800_000_000);

/// The real time: tokens' `exp` and `nbf` are checked against the system clock.
pub fn now() -> UnixTime {
    UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64)
}

/// Accounts over the fixture, with cheap password hashing and a fresh key ring.
pub fn accounts(fixture: &Fixture) -> haven_identity::Accounts {
    use haven_identity::password::{PasswordCost, PasswordHasher};
    use haven_identity::tokens::{TokenLifetimes, Tokens};
    let lifetimes = TokenLifetimes { access_s: 900, refresh_s: 12 * 3600 };
    let tokens = Tokens::open(&fixture.dir.path().join("keys"), now().0, fixture.verifier.clone(), lifetimes).unwrap();
    haven_identity::Accounts::new(
        fixture.app.clone(),
        fixture.users.clone(),
        PasswordHasher::new(PasswordCost::for_tests()).unwrap(),
        tokens,
    )
}

pub fn admin() -> CommandContext {
    CommandContext {
        actor: haven_proto::v1::Actor { principal_id: "user-admin".into(), kind: 1, roles: vec!["trust_admin".into()] },
        occurred_at: prost_types::Timestamp { seconds: T0.0, nanos: 0 },
        event_ids: EventIds::Fresh,
    }
}

pub fn school(id: &str) -> SchoolId {
    SchoolId::parse(id).unwrap()
}

pub fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

pub fn register(user_id: &str, home: Option<&str>) -> UserCommand {
    UserCommand::Register {
        user_id: user(user_id),
        display_name: "Invented Person".into(),
        login: format!("{user_id}@example.org"),
        home_school: home.map(school),
        registered_by: "user-admin".into(),
        at: T0,
    }
}

pub fn grant(role: Role, scope: Scope) -> UserCommand {
    UserCommand::GrantRole {
        grant: RoleGrant { role, scope },
        granted_by: "user-admin".into(),
        reason: "appointed".into(),
        at: T0,
    }
}

/// A log with schools `oak` and `elm`, the app, and the read models following it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub log: LocalEventLog,
    pub shared: Arc<dyn EventLog>,
    pub app: IdentityApp,
    pub schools: SchoolDirectory,
    pub users: UserDirectory,
    pub readiness: Readiness,
    pub shutdown: Shutdown,
    pub verifier: haven_authz::TokenVerifier,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fixture {
    pub async fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalEventLog::open(dir.path(), EventLogConfig::default()).unwrap();
        let shared: Arc<dyn EventLog> = Arc::new(log.clone());
        let app = IdentityApp::new(Arc::clone(&shared));
        for id in ["oak", "elm"] {
            let command = SchoolCommand::Register {
                school_id: school(id),
                trust_id: "t".into(),
                name: format!("{id} academy"),
                phase: SchoolPhase::Primary,
                pupil_count: 100,
            };
            app.register_school(&admin(), command).await.unwrap();
        }
        let readiness = Readiness::default();
        let shutdown = Shutdown::default();
        let (schools, users) = (SchoolDirectory::default(), UserDirectory::default());
        let tasks = vec![
            tokio::spawn(schools.clone().follow(
                Arc::clone(&shared),
                readiness.register("schools", "catching up"),
                shutdown.clone(),
            )),
            tokio::spawn(users.clone().follow(
                Arc::clone(&shared),
                readiness.register("users", "catching up"),
                shutdown.clone(),
            )),
        ];
        let verifier = haven_authz::TokenVerifier::default();
        let fixture = Fixture { dir, log, shared, app, schools, users, readiness, shutdown, verifier, tasks };
        fixture.wait_until("the read models catch up", || fixture.readiness.is_ready()).await;
        fixture
    }

    /// Waits (up to 10 s) for a read model to show something.
    pub async fn wait_until(&self, what: &str, condition: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        for task in self.tasks {
            task.await.unwrap();
        }
        self.log.close().await;
    }
}
