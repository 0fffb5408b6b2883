//! Users, grants, the AUP and leavers through the app against a real log; the user directory
//! and the access register follow.

mod common;

use common::{Fixture, T0, admin, grant, register, school, user};
use haven_authz::{Role, Scope};
use haven_identity::domain::{UserCommand, UserError};
use haven_identity::{AccessChange, Error};
use haven_kernel::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_change_nothing_and_name_their_reason() {
    let fixture = Fixture::start().await;
    let (log, app) = (&fixture.shared, &fixture.app);
    let head = log.head().await.unwrap();
    let error = app.register_user(&admin(), register("ghost", Some("ash"))).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error}");
    assert!(error.to_string().contains("home_school_id"), "{error}");
    let nobody = user("nobody");
    let error = app.user_command(&admin(), &nobody, grant(Role::Staff, Scope::School(school("oak")))).await;
    assert!(matches!(error, Err(Error::User(UserError::NotRegistered))));
    app.register_user(&admin(), register("r-ahmed", Some("oak"))).await.unwrap();
    let r_ahmed = user("r-ahmed");
    let head_after_register = log.head().await.unwrap();
    assert_eq!(head_after_register.next_position.0, head.next_position.0 + 1);
    let error = app.user_command(&admin(), &r_ahmed, grant(Role::Dsl, Scope::School(school("ash")))).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidArgument, "a grant in an unknown school: {error}");
    let error = app.user_command(&admin(), &r_ahmed, grant(Role::Dsl, Scope::Trust)).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error}");
    let error = app.accept_aup(&admin(), &r_ahmed, 1, T0).await.unwrap_err();
    assert!(matches!(error, Error::User(UserError::NoAupPublished)), "{error}");
    assert_eq!(log.head().await.unwrap(), head_after_register, "no refusal wrote anything");
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_register_records_grants_acceptances_and_leavers() {
    let fixture = Fixture::start().await;
    let app = &fixture.app;
    let r_ahmed = user("r-ahmed");
    app.register_user(&admin(), register("r-ahmed", Some("oak"))).await.unwrap();
    app.register_user(&admin(), register("t-lead", None)).await.unwrap();
    app.user_command(&admin(), &r_ahmed, grant(Role::Dsl, Scope::School(school("oak")))).await.unwrap();
    let t_lead = user("t-lead");
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

    let directory = &fixture.users;
    fixture
        .wait_until("the leaver reaches the directory", || {
            directory.get(&r_ahmed).is_some_and(|(u, _)| u.is_disabled())
        })
        .await;
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
    fixture.stop().await;
}
