//! Passwords and sign-in against a real log: the policy, verification, backoff, lockout,
//! leavers, and that no refusal tells whether an account exists.

mod common;

use common::{Fixture, T0, accounts, admin, register, user};
use haven_identity::domain::user::{LOCK_AFTER_FAILURES, LOCK_S};
use haven_identity::domain::{UnixTime, UserCommand, UserError};
use haven_identity::{Accounts, Error};
use haven_kernel::ErrorCode;

const GOOD: &str = "heron lamp orchard 42";

async fn with_account() -> (Fixture, Accounts) {
    let fixture = Fixture::start().await;
    let accounts = accounts(&fixture);
    fixture.app.register_user(&admin(), register("r-ahmed", Some("oak"))).await.unwrap();
    accounts.set_password(&admin(), &user("r-ahmed"), GOOD, None).await.unwrap();
    let users = fixture.users.clone();
    fixture
        .wait_until("the password reaches the directory", || {
            users.get(&user("r-ahmed")).is_some_and(|(u, _)| u.password_hash.is_some())
        })
        .await;
    (fixture, accounts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_password_is_refused_and_writes_nothing() {
    let (fixture, accounts) = with_account().await;
    let head = fixture.shared.head().await.unwrap();
    for weak in ["sh0rt!", "Password1234", "r-ahmed-is-my-password", "zzzzzzzzzzzzzzzz"] {
        let error = accounts.set_password(&admin(), &user("r-ahmed"), weak, None).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidArgument, "{weak}: {error}");
        assert!(error.to_string().contains("new_password"), "{error}");
        assert!(!error.to_string().contains(weak), "the message never repeats the password");
    }
    assert_eq!(fixture.shared.head().await.unwrap(), head);
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_password_signs_in_and_no_wrong_one_says_why() {
    let (fixture, accounts) = with_account().await;
    let signed_in = accounts.check_password("r-ahmed@example.org", GOOD, T0).await.unwrap();
    assert_eq!(signed_in.user_id, user("r-ahmed"));
    for (login, password) in [("r-ahmed@example.org", "heron lamp orchard 43"), ("nobody@example.org", GOOD)] {
        let error = accounts.check_password(login, password, T0).await.unwrap_err();
        assert!(matches!(error, Error::SignInRefused), "{error}");
        assert_eq!(error.to_string(), "the login or password is wrong");
    }
    // Changing one's own password needs the current one.
    let error = accounts.set_password(&admin(), &user("r-ahmed"), "new heron lamp 77", Some(("wrong one", T0))).await;
    assert!(matches!(error, Err(Error::SignInRefused)));
    accounts
        .set_password(&admin(), &user("r-ahmed"), "new heron lamp 77", Some((GOOD, UnixTime(T0.0 + 5))))
        .await
        .unwrap();
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_back_off_then_lock_even_the_right_password_out() {
    let (fixture, accounts) = with_account().await;
    let login = "r-ahmed@example.org";
    let mut now = T0;
    let mut failures = 0;
    while failures < LOCK_AFTER_FAILURES {
        match accounts.check_password(login, "not the password!", now).await {
            Err(Error::SignInRefused) => failures += 1,
            Err(Error::User(UserError::TryLater { retry_after_s })) => {
                assert!(failures >= 3, "backoff starts at the third failure");
                // The right password is refused too while backing off, and nothing is written.
                let head = fixture.shared.head().await.unwrap();
                let error = accounts.check_password(login, GOOD, now).await.unwrap_err();
                assert_eq!(error.code(), ErrorCode::ResourceExhausted);
                assert_eq!(fixture.shared.head().await.unwrap(), head);
                now = UnixTime(now.0 + retry_after_s);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let error = accounts.check_password(login, GOOD, UnixTime(now.0 + 60)).await.unwrap_err();
    assert!(matches!(error, Error::User(UserError::Locked { .. })), "{error}");
    let after_lock = UnixTime(now.0 + LOCK_S);
    accounts.check_password(login, GOOD, after_lock).await.expect("the lock is temporary");
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaver_cannot_sign_in() {
    let (fixture, accounts) = with_account().await;
    let leave = UserCommand::Disable { disabled_by: "user-admin".into(), left_on: T0, at: T0 };
    fixture.app.user_command(&admin(), &user("r-ahmed"), leave).await.unwrap();
    let error = accounts.check_password("r-ahmed@example.org", GOOD, T0).await.unwrap_err();
    assert!(matches!(error, Error::SignInRefused), "{error}");
    fixture.stop().await;
}
