//! Given events, when a command, then events or a refusal.

use haven_authz::{Role, RoleGrant, Scope, UserId};
use haven_kernel::{Decider, SchoolId, fold};
use proptest::prelude::*;

use super::*;

const T0: UnixTime = UnixTime(1_800_000_000);
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn oak() -> SchoolId {
    SchoolId::parse("oak").unwrap()
}

fn register() -> UserCommand {
    UserCommand::Register {
        user_id: UserId::parse("r-ahmed").unwrap(),
        display_name: "Rosa Ahmed".into(),
        login: "r.ahmed@example.org".into(),
        home_school: Some(oak()),
        registered_by: "user-admin".into(),
        at: T0,
    }
}

fn dsl_at_oak() -> RoleGrant {
    RoleGrant { role: Role::Dsl, scope: Scope::School(oak()) }
}

fn grant(grant: RoleGrant) -> UserCommand {
    UserCommand::GrantRole { grant, granted_by: "user-admin".into(), reason: "named DSL from September".into(), at: T0 }
}

/// Runs commands in order, each against the state the previous ones left; returns the history.
fn given(commands: &[UserCommand]) -> Vec<UserEvent> {
    let mut history = Vec::new();
    for command in commands {
        let state = fold::<UserDecider>(&history);
        history.extend(UserDecider::decide(&state, command).unwrap());
    }
    history
}

fn when(history: &[UserEvent], command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
    UserDecider::decide(&fold::<UserDecider>(history), command)
}

fn state(history: &[UserEvent]) -> User {
    fold::<UserDecider>(history).unwrap()
}

fn session(id: &str, at: UnixTime) -> UserCommand {
    UserCommand::StartSession {
        session_id: id.into(),
        refresh_secret_sha256: [7; 32],
        expires_at: UnixTime(at.0 + 3_600),
        at,
    }
}

#[test]
fn a_user_registers_once_with_a_valid_name_and_login() {
    let history = given(&[register()]);
    assert_eq!(state(&history).login, "r.ahmed@example.org");
    assert_eq!(when(&history, &register()), Err(UserError::AlreadyRegistered));
    let UserCommand::Register { user_id, home_school, registered_by, at, .. } = register() else { unreachable!() };
    let bad_login = UserCommand::Register {
        user_id: user_id.clone(),
        display_name: "Rosa Ahmed".into(),
        login: "R Ahmed".into(),
        home_school: home_school.clone(),
        registered_by: registered_by.clone(),
        at,
    };
    assert!(matches!(when(&[], &bad_login), Err(UserError::InvalidLogin(_))));
    let bad_name = UserCommand::Register {
        user_id,
        display_name: "".into(),
        login: "ra".repeat(2),
        home_school,
        registered_by,
        at,
    };
    assert!(matches!(when(&[], &bad_name), Err(UserError::InvalidDisplayName(_))));
}

#[test]
fn nothing_happens_to_an_unregistered_user() {
    assert_eq!(when(&[], &grant(dsl_at_oak())), Err(UserError::NotRegistered));
    assert_eq!(when(&[], &UserCommand::RecordSignInFailure { at: T0 }), Err(UserError::NotRegistered));
}

#[test]
fn a_grant_records_who_when_and_why_and_is_held_once() {
    let history = given(&[register(), grant(dsl_at_oak())]);
    let user = state(&history);
    assert_eq!(user.role_grants(), vec![dsl_at_oak()]);
    assert_eq!(user.grants[0].granted_by, "user-admin");
    assert_eq!(user.grants[0].granted_at, T0);
    assert_eq!(user.grants[0].reason, "named DSL from September");
    assert_eq!(when(&history, &grant(dsl_at_oak())), Err(UserError::AlreadyGranted));
}

#[test]
fn a_grant_needs_a_reason_and_a_scope_the_role_fits() {
    let history = given(&[register()]);
    let no_reason =
        UserCommand::GrantRole { grant: dsl_at_oak(), granted_by: "user-admin".into(), reason: "  ".into(), at: T0 };
    assert!(matches!(when(&history, &no_reason), Err(UserError::InvalidReason(_))));
    let dsl_of_the_trust = RoleGrant { role: Role::Dsl, scope: Scope::Trust };
    assert!(matches!(when(&history, &grant(dsl_of_the_trust)), Err(UserError::RoleNotAllowedInScope { .. })));
    let admin_of_a_school = RoleGrant { role: Role::TrustAdmin, scope: Scope::School(oak()) };
    assert!(matches!(when(&history, &grant(admin_of_a_school)), Err(UserError::RoleNotAllowedInScope { .. })));
}

#[test]
fn a_revoked_grant_is_gone_and_cannot_be_revoked_twice() {
    let revoke = UserCommand::RevokeRole { grant: dsl_at_oak(), revoked_by: "user-admin".into(), at: T0 };
    let history = given(&[register(), grant(dsl_at_oak()), revoke.clone()]);
    assert!(state(&history).role_grants().is_empty());
    assert_eq!(when(&history, &revoke), Err(UserError::NotGranted));
}

#[test]
fn only_the_current_aup_can_be_accepted() {
    let history = given(&[register()]);
    let accept = |version, current| UserCommand::AcceptAup { version, current_version: current, at: T0 };
    assert_eq!(when(&history, &accept(1, None)), Err(UserError::NoAupPublished));
    assert_eq!(when(&history, &accept(1, Some(2))), Err(UserError::NotCurrentAup { offered: 1, current: 2 }));
    let accepted = given(&[register(), accept(2, Some(2))]);
    assert_eq!(state(&accepted).aup_accepted, Some(2));
    assert!(when(&accepted, &accept(2, Some(2))).unwrap().is_empty(), "accepting again changes nothing");
    assert_eq!(when(&accepted, &accept(3, Some(3))).unwrap().len(), 1, "a new version is accepted anew");
}

#[test]
fn a_password_must_be_an_argon2id_hash() {
    let history = given(&[register()]);
    assert_eq!(
        when(&history, &UserCommand::SetPassword { password_hash: "plaintext-password".into() }),
        Err(UserError::NotArgon2id)
    );
    let set = given(&[register(), UserCommand::SetPassword { password_hash: HASH.into() }]);
    assert_eq!(state(&set).password_hash.as_deref(), Some(HASH));
}

#[test]
fn a_leaver_is_disabled_with_every_session_revoked_at_once() {
    let later = UnixTime(T0.0 + 10);
    let history = given(&[register(), grant(dsl_at_oak()), session("s1", T0), session("s2", later)]);
    assert_eq!(state(&history).active_sessions(later).count(), 2);
    let disable = UserCommand::Disable { disabled_by: "user-admin".into(), left_on: later, at: later };
    let events = when(&history, &disable).unwrap();
    assert!(matches!(events[0], UserEvent::Disabled(_)));
    assert!(matches!(events[1], UserEvent::SessionsRevoked { session_id: None, .. }));
    let all: Vec<_> = history.iter().cloned().chain(events).collect();
    let user = state(&all);
    assert!(user.is_disabled());
    assert_eq!(user.active_sessions(later).count(), 0);
    assert_eq!(user.session_for_refresh("s1", &[7; 32], later), Err(UserError::Disabled));
    // Nothing else is allowed on a leaver's account.
    assert_eq!(
        when(&all, &grant(RoleGrant { role: Role::Staff, scope: Scope::School(oak()) })),
        Err(UserError::Disabled)
    );
    assert_eq!(when(&all, &session("s3", later)), Err(UserError::Disabled));
    assert_eq!(when(&all, &disable), Err(UserError::AlreadyDisabled));
}

fn refresh(presented: u8, new: u8, at: UnixTime) -> UserCommand {
    UserCommand::RefreshSession {
        session_id: "s1".into(),
        presented_sha256: [presented; 32],
        new_secret_sha256: [new; 32],
        at,
    }
}

#[test]
fn a_refresh_uses_up_the_secret_and_a_used_up_one_presented_again_ends_the_session() {
    let history = given(&[register(), session("s1", T0), session("s2", T0), refresh(7, 8, T0)]);
    let user = state(&history);
    assert_eq!(user.sessions["s1"].refresh_secret_sha256, [8; 32]);
    assert!(user.session_for_refresh("s1", &[8; 32], T0).is_ok(), "the new secret works");
    assert!(user.session_for_refresh("s1", &[7; 32], T0).is_err(), "the old one does not");

    // A secret the session never had: refused, nothing written.
    assert_eq!(when(&history, &refresh(9, 10, T0)), Err(UserError::SessionNotUsable));
    // The used-up secret within the leeway (a browser's racing request): refused, nothing written.
    let racing = UnixTime(T0.0 + REUSE_LEEWAY_S - 1);
    assert_eq!(when(&history, &refresh(7, 11, racing)), Err(UserError::SessionNotUsable));
    // After it: the session ends, and says why.
    let later = UnixTime(T0.0 + REUSE_LEEWAY_S);
    let reuse = when(&history, &refresh(7, 11, later)).unwrap();
    assert_eq!(
        reuse,
        vec![
            UserEvent::RefreshTokenReused { session_id: "s1".into(), at: later },
            UserEvent::SessionsRevoked { session_id: Some("s1".into()), revoked_by: "haven".into(), at: later },
        ]
    );
    let after: Vec<_> = history.iter().cloned().chain(reuse).collect();
    let user = state(&after);
    assert!(user.session_for_refresh("s1", &[8; 32], T0).is_err(), "the newer token ends with it");
    assert!(user.session_for_refresh("s2", &[7; 32], T0).is_ok(), "other sessions go on");
    assert_eq!(when(&after, &refresh(8, 12, T0)), Err(UserError::SessionNotUsable));
}

#[test]
fn a_session_remembers_a_bounded_number_of_used_up_secrets() {
    let mut commands = vec![register(), session("s1", T0)];
    // 7 → 0 → 1 → … : 100 refreshes.
    commands.push(refresh(7, 0, T0));
    for n in 0..99u8 {
        commands.push(refresh(n, n + 1, T0));
    }
    let history = given(&commands);
    let user = state(&history);
    assert_eq!(user.sessions["s1"].replaced_secrets_sha256.len(), MAX_REMEMBERED_SECRETS);
    assert_eq!(user.sessions["s1"].refresh_secret_sha256, [99; 32]);
    // The most recent used-up secrets are recognised; the oldest are forgotten (refused only).
    let later = UnixTime(T0.0 + REUSE_LEEWAY_S);
    assert!(matches!(when(&history, &refresh(98, 200, later)).unwrap()[0], UserEvent::RefreshTokenReused { .. }));
    assert_eq!(when(&history, &refresh(7, 200, later)), Err(UserError::SessionNotUsable));
}

#[test]
fn sessions_are_revoked_one_or_all_and_refresh_needs_a_live_matching_session() {
    let history = given(&[register(), session("s1", T0), session("s2", T0)]);
    let user = state(&history);
    assert!(user.session_for_refresh("s1", &[7; 32], T0).is_ok());
    assert_eq!(user.session_for_refresh("s1", &[8; 32], T0), Err(UserError::SessionNotUsable), "wrong secret");
    assert_eq!(user.session_for_refresh("nope", &[7; 32], T0), Err(UserError::SessionNotUsable));
    assert_eq!(
        user.session_for_refresh("s1", &[7; 32], UnixTime(T0.0 + 3_600)),
        Err(UserError::SessionNotUsable),
        "expired"
    );
    let one = UserCommand::RevokeSessions { session_id: Some("s1".into()), revoked_by: "user-r-ahmed".into(), at: T0 };
    let after = given(&[register(), session("s1", T0), session("s2", T0), one.clone()]);
    let user = state(&after);
    assert_eq!(user.session_for_refresh("s1", &[7; 32], T0), Err(UserError::SessionNotUsable));
    assert!(user.session_for_refresh("s2", &[7; 32], T0).is_ok());
    assert!(when(&after, &one).unwrap().is_empty(), "revoking a revoked session writes nothing");
}

#[test]
fn the_oldest_session_makes_room_for_a_new_one() {
    let mut commands = vec![register()];
    for n in 0..MAX_ACTIVE_SESSIONS {
        commands.push(session(&format!("s{n:02}"), UnixTime(T0.0 + n as i64)));
    }
    let history = given(&commands);
    let at = UnixTime(T0.0 + 100);
    let events = when(&history, &session("new", at)).unwrap();
    assert_eq!(
        events[0],
        UserEvent::SessionsRevoked { session_id: Some("s00".into()), revoked_by: "haven".into(), at }
    );
    let all: Vec<_> = history.into_iter().chain(events).collect();
    assert_eq!(state(&all).active_sessions(at).count(), MAX_ACTIVE_SESSIONS);
}

#[test]
fn failures_back_off_then_lock_and_a_success_clears_them() {
    let mut history = given(&[register()]);
    let mut at = T0;
    for failure in 1..=LOCK_AFTER_FAILURES {
        // Wait out any backoff, as a patient attacker would.
        while let Err(UserError::TryLater { retry_after_s }) = state(&history).may_attempt_sign_in(at) {
            assert!((1..=MAX_BACKOFF_S).contains(&retry_after_s), "{retry_after_s}");
            at = UnixTime(at.0 + retry_after_s);
        }
        history.extend(when(&history, &UserCommand::RecordSignInFailure { at }).unwrap());
        assert_eq!(state(&history).consecutive_failures, failure);
        if failure == BACKOFF_AFTER_FAILURES {
            assert_eq!(
                when(&history, &session("s", at)),
                Err(UserError::TryLater { retry_after_s: 1 }),
                "an attempt at once after the third failure waits"
            );
        }
    }
    let locked_until = UnixTime(at.0 + LOCK_S);
    assert_eq!(state(&history).locked_until, Some(locked_until));
    let during = UnixTime(at.0 + LOCK_S - 1);
    assert_eq!(when(&history, &session("s", during)), Err(UserError::Locked { until: locked_until }));
    assert_eq!(
        when(&history, &UserCommand::RecordSignInFailure { at: during }),
        Err(UserError::Locked { until: locked_until }),
        "no failure is even recorded while locked"
    );
    history.extend(when(&history, &session("s", locked_until)).unwrap());
    let user = state(&history);
    assert_eq!((user.consecutive_failures, user.locked_until), (0, None));
}

#[test]
fn digests_compare_equal_only_when_equal() {
    assert!(constant_time_eq(&[3; 32], &[3; 32]));
    let mut other = [3; 32];
    other[31] = 4;
    assert!(!constant_time_eq(&[3; 32], &other));
}

fn any_command() -> impl Strategy<Value = UserCommand> {
    let at = (0_i64..5_000).prop_map(|s| UnixTime(T0.0 + s));
    let grant = (0..Role::ALL.len(), any::<bool>()).prop_map(|(role, trust)| RoleGrant {
        role: Role::ALL[role],
        scope: if trust { Scope::Trust } else { Scope::School(oak()) },
    });
    prop_oneof![
        Just(register()),
        (grant.clone(), at.clone()).prop_map(|(grant, at)| UserCommand::GrantRole {
            grant,
            granted_by: "user-admin".into(),
            reason: "needed".into(),
            at
        }),
        (grant, at.clone()).prop_map(|(grant, at)| UserCommand::RevokeRole {
            grant,
            revoked_by: "user-admin".into(),
            at
        }),
        (0_u32..3, at.clone()).prop_map(|(version, at)| UserCommand::AcceptAup {
            version,
            current_version: Some(2),
            at
        }),
        (0_u8..4, at.clone()).prop_map(|(n, at)| session(&format!("s{n}"), at)),
        at.clone().prop_map(|at| UserCommand::RecordSignInFailure { at }),
        (proptest::option::of(0_u8..4), at.clone()).prop_map(|(n, at)| UserCommand::RevokeSessions {
            session_id: n.map(|n| format!("s{n}")),
            revoked_by: "user-admin".into(),
            at
        }),
        at.prop_map(|at| UserCommand::Disable { disabled_by: "user-admin".into(), left_on: at, at }),
    ]
}

proptest! {
    /// Whatever is asked: a refused command writes nothing, and once disabled, nothing but
    /// refusals follow; grants are never held twice.
    #[test]
    fn invariants_hold_for_any_sequence(commands in proptest::collection::vec(any_command(), 1..40)) {
        let mut history = Vec::new();
        for command in &commands {
            let before = fold::<UserDecider>(&history);
            match UserDecider::decide(&before, command) {
                Ok(events) => {
                    prop_assert!(!before.as_ref().is_some_and(User::is_disabled), "a disabled account changed");
                    history.extend(events);
                }
                Err(_) => prop_assert_eq!(fold::<UserDecider>(&history), before),
            }
            if let Some(user) = fold::<UserDecider>(&history) {
                let mut grants = user.role_grants();
                grants.sort();
                grants.dedup();
                prop_assert_eq!(grants.len(), user.grants.len());
                prop_assert!(user.grants.iter().all(|g| g.grant.role.allowed_in(&g.grant.scope)));
                if user.is_disabled() {
                    prop_assert!(user.sessions.values().all(|s| s.revoked));
                }
            }
        }
    }
}
