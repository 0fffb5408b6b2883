//! Users, grants, the AUP and leavers through the app against a real log; the user directory
//! and the access register follow.

use std::sync::Arc;
use std::time::Duration;

use haven_authz::{Role, RoleGrant, Scope, UserId};
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::EventLog;
use haven_identity::domain::{SchoolCommand, SchoolPhase, UnixTime, UserCommand, UserError};
use haven_identity::{AccessChange, CommandContext, Error, EventIds, IdentityApp, UserDirectory};
use haven_kernel::{ErrorCode, SchoolId};
use haven_runtime::{Readiness, Shutdown};

const T0: UnixTime = UnixTime(1_800_000_000);

fn admin() -> CommandContext {
    CommandContext {
        actor: haven_proto::v1::Actor { principal_id: "user-admin".into(), kind: 1, roles: vec!["trust_admin".into()] },
        occurred_at: prost_types::Timestamp { seconds: T0.0, nanos: 0 },
        event_ids: EventIds::Fresh,
    }
}

fn school(id: &str) -> SchoolId {
    SchoolId::parse(id).unwrap()
}

fn register(user_id: &str, home: Option<&str>) -> UserCommand {
    UserCommand::Register {
        user_id: UserId::parse(user_id).unwrap(),
        display_name: "Invented Person".into(),
        login: format!("{user_id}@example.org"),
        home_school: home.map(school),
        registered_by: "user-admin".into(),
        at: T0,
    }
}

fn grant(role: Role, scope: Scope) -> UserCommand {
    UserCommand::GrantRole {
        grant: RoleGrant { role, scope },
        granted_by: "user-admin".into(),
        reason: "appointed".into(),
        at: T0,
    }
}

async fn app_with_school(dir: &std::path::Path) -> (LocalEventLog, IdentityApp) {
    let log = LocalEventLog::open(dir, EventLogConfig::default()).unwrap();
    let app = IdentityApp::new(Arc::new(log.clone()));
    let command = SchoolCommand::Register {
        school_id: school("oak"),
        trust_id: "t".into(),
        name: "Oak Academy".into(),
        phase: SchoolPhase::Primary,
        pupil_count: 100,
    };
    app.register_school(&admin(), command).await.unwrap();
    (log, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_change_nothing_and_name_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (log, app) = app_with_school(dir.path()).await;
    let head = log.head().await.unwrap();
    let error = app.register_user(&admin(), register("ghost", Some("elm"))).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error}");
    assert!(error.to_string().contains("home_school_id"), "{error}");
    let nobody = UserId::parse("nobody").unwrap();
    let error = app.user_command(&admin(), &nobody, grant(Role::Staff, Scope::School(school("oak")))).await;
    assert!(matches!(error, Err(Error::User(UserError::NotRegistered))));
    app.register_user(&admin(), register("r-ahmed", Some("oak"))).await.unwrap();
    let r_ahmed = UserId::parse("r-ahmed").unwrap();
    let head_after_register = log.head().await.unwrap();
    assert_eq!(head_after_register.next_position.0, head.next_position.0 + 1);
    let error = app.user_command(&admin(), &r_ahmed, grant(Role::Dsl, Scope::School(school("elm")))).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidArgument, "a grant in an unknown school: {error}");
    let error = app.user_command(&admin(), &r_ahmed, grant(Role::Dsl, Scope::Trust)).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error}");
    let error = app.accept_aup(&admin(), &r_ahmed, 1, T0).await.unwrap_err();
    assert!(matches!(error, Error::User(UserError::NoAupPublished)), "{error}");
    assert_eq!(log.head().await.unwrap(), head_after_register, "no refusal wrote anything");
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_register_records_grants_acceptances_and_leavers() {
    let dir = tempfile::tempdir().unwrap();
    let (log, app) = app_with_school(dir.path()).await;
    let shared: Arc<dyn EventLog> = Arc::new(log.clone());
    let r_ahmed = UserId::parse("r-ahmed").unwrap();
    app.register_user(&admin(), register("r-ahmed", Some("oak"))).await.unwrap();
    app.register_user(&admin(), register("t-lead", None)).await.unwrap();
    app.user_command(&admin(), &r_ahmed, grant(Role::Dsl, Scope::School(school("oak")))).await.unwrap();
    let t_lead = UserId::parse("t-lead").unwrap();
    app.user_command(&admin(), &t_lead, grant(Role::TrustSafeguardingLead, Scope::Trust)).await.unwrap();
    app.publish_aup(&admin(), 1, [1; 32]).await.unwrap();
    app.accept_aup(&admin(), &r_ahmed, 1, T0).await.unwrap();
    let error = app.publish_aup(&admin(), 1, [2; 32]).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Conflict, "{error}");
    app.publish_aup(&admin(), 2, [2; 32]).await.unwrap();
    let error = app.accept_aup(&admin(), &r_ahmed, 1, T0).await.unwrap_err();
    assert!(matches!(error, Error::User(UserError::NotCurrentAup { offered: 1, current: 2 })), "{error}");
    let leave = UserCommand::Disable { disabled_by: "user-admin".into(), left_on: T0, at: T0 };
    let (user, _) = app.user_command(&admin(), &r_ahmed, leave).await.unwrap();
    assert!(user.is_disabled());

    let directory = UserDirectory::default();
    let readiness = Readiness::default();
    let shutdown = Shutdown::default();
    let follower =
        tokio::spawn(directory.clone().follow(shared, readiness.register("users", "catching up"), shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !readiness.is_ready() {
        assert!(tokio::time::Instant::now() < deadline, "the user directory never caught up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(directory.by_login("r-ahmed@example.org"), Some(r_ahmed.clone()));
    assert!(directory.get(&r_ahmed).unwrap().0.is_disabled());
    let changes: Vec<_> = directory.access_register(None).iter().map(|entry| entry.change).collect();
    assert_eq!(
        changes,
        [
            AccessChange::UserRegistered,
            AccessChange::UserRegistered,
            AccessChange::RoleGranted,
            AccessChange::RoleGranted,
            AccessChange::AupAccepted,
            AccessChange::UserDisabled,
        ]
    );
    let at_oak = directory.access_register(Some(&school("oak")));
    assert!(at_oak.iter().all(|entry| entry.user_id == r_ahmed), "the trust lead is not an oak entry");
    let granted = at_oak.iter().find(|entry| entry.change == AccessChange::RoleGranted).unwrap();
    assert_eq!((granted.by.as_str(), granted.reason.as_str(), granted.at), ("user-admin", "appointed", T0));
    assert_eq!(at_oak.iter().find(|e| e.change == AccessChange::AupAccepted).unwrap().aup_version, Some(1));
    shutdown.trigger();
    follower.await.unwrap();
    log.close().await;
}
