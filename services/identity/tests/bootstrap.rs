//! The first trust admin of a real deployment: bootstrap, then sign in; a second run, a weak
//! password and a run cut short.

mod common;

use common::{Fixture, accounts, now, user};
use haven_authz::{Role, Scope};
use haven_identity::bootstrap::{Bootstrap, bootstrap};
use haven_identity::password::{PasswordCost, PasswordHasher};
use haven_identity::{Error, IdentityApp};

const PASSWORD: &str = "kettle meadow lantern 7";

fn request(password: &str) -> Bootstrap {
    Bootstrap {
        trust_id: "fernhill".into(),
        trust_name: "Fernhill Learning Trust (invented)".into(),
        admin_id: user("first-admin"),
        admin_name: "Invented Administrator".into(),
        admin_login: "first-admin@fernhill.example".into(),
        password: password.into(),
        at: now(),
    }
}

fn hasher() -> PasswordHasher {
    PasswordHasher::new(PasswordCost::for_tests()).unwrap()
}

#[tokio::test]
async fn bootstrap_makes_a_trust_admin_who_can_sign_in_and_runs_once() {
    let fixture = Fixture::start().await;
    let app = IdentityApp::new(fixture.shared.clone());
    bootstrap(&app, &hasher(), request(PASSWORD)).await.unwrap();
    assert!(app.trust_position("fernhill").await.unwrap().is_some(), "the trust is established");
    let (admin, _) = app.user(&user("first-admin")).await.unwrap().expect("the admin exists");
    assert!(
        admin.grants.iter().any(|g| g.grant.role == Role::TrustAdmin && g.grant.scope == Scope::Trust),
        "granted trust admin: {:?}",
        admin.grants
    );
    let users = fixture.users.clone();
    fixture
        .wait_until("the admin reaches the directory", || users.by_login("first-admin@fernhill.example").is_some())
        .await;
    accounts(&fixture).sign_in("first-admin@fernhill.example", PASSWORD, now()).await.expect("the admin signs in");

    let head = fixture.shared.head().await.unwrap();
    let again = bootstrap(&app, &hasher(), request(PASSWORD)).await.unwrap_err();
    assert!(again.to_string().contains("already established"), "{again}");
    assert_eq!(fixture.shared.head().await.unwrap(), head, "a refused bootstrap writes nothing");
}

#[tokio::test]
async fn a_weak_password_is_refused_before_anything_is_written() {
    let fixture = Fixture::start().await;
    let app = IdentityApp::new(fixture.shared.clone());
    let head = fixture.shared.head().await.unwrap();
    let error = bootstrap(&app, &hasher(), request("short")).await.unwrap_err();
    assert!(matches!(&error, Error::InvalidArgument { field, .. } if field == "password"), "{error:?}");
    assert_eq!(fixture.shared.head().await.unwrap(), head);
}

#[tokio::test]
async fn a_run_cut_short_before_the_trust_is_completed_by_running_again() {
    let fixture = Fixture::start().await;
    let app = IdentityApp::new(fixture.shared.clone());
    // As if the first run stopped after registering the admin.
    app.register_user(
        &common::admin(),
        haven_identity::domain::UserCommand::Register {
            user_id: user("first-admin"),
            display_name: "Invented Administrator".into(),
            login: "first-admin@fernhill.example".into(),
            home_school: None,
            registered_by: "haven-bootstrap".into(),
            at: now(),
        },
    )
    .await
    .unwrap();
    bootstrap(&app, &hasher(), request(PASSWORD)).await.unwrap();
    assert!(app.trust_position("fernhill").await.unwrap().is_some());
}
