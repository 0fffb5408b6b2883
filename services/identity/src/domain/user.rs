//! A person's account (stream `user-<id>`): registration, password, role grants with who
//! granted them and why, AUP acceptance, sessions, failed sign-ins with backoff and lockout,
//! and leaving (disabled, every session revoked at once).
//!
//! ```text
//!  Register ─▶ SetPassword ─▶ GrantRole/RevokeRole ─▶ AcceptAup ─▶ StartSession … RevokeSessions
//!                               RecordSignInFailure (backoff, lock)          Disable (a leaver)
//! ```
//! Time, session ids and the password hash arrive in the command; nothing here reads a clock.

use std::collections::BTreeMap;

use haven_authz::{Role, RoleGrant, UserId};
use haven_kernel::{Decider, SchoolId};

use super::UnixTime;

/// Consecutive failures after which each further attempt must wait (1 s, 2 s, 4 s … 60 s).
pub const BACKOFF_AFTER_FAILURES: u32 = 3;
/// The longest wait between attempts, in seconds.
pub const MAX_BACKOFF_S: i64 = 60;
/// Consecutive failures that lock the account.
pub const LOCK_AFTER_FAILURES: u32 = 10;
/// How long a lock lasts, in seconds. Every failure after the lock ends locks it again.
pub const LOCK_S: i64 = 15 * 60;
/// Sessions a user may hold at once; starting one more revokes the oldest.
pub const MAX_ACTIVE_SESSIONS: usize = 10;
/// Longest written reason for a grant, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// One session: a refresh-token family that can be revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub signed_in_at: UnixTime,
    pub expires_at: UnixTime,
    /// SHA-256 of the refresh token's secret.
    pub refresh_secret_sha256: [u8; 32],
    /// The secrets this session's refresh token had before each refresh replaced it, with
    /// when (the newest [`MAX_REMEMBERED_SECRETS`]): one presented again means the token was
    /// copied.
    pub replaced_secrets_sha256: Vec<([u8; 32], UnixTime)>,
    pub revoked: bool,
}

/// How many replaced refresh secrets a session remembers to recognise reuse.
pub const MAX_REMEMBERED_SECRETS: usize = 64;

/// A secret presented this soon after a refresh replaced it is refused without ending the
/// session: two requests of one browser that both found the access token expired race to
/// refresh with the same cookie, and the loser is not a thief.
pub const REUSE_LEEWAY_S: i64 = 30;

/// What presenting a refresh token's secret to its session means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshCheck {
    /// The current secret of a live session.
    Current,
    /// A secret this session had before a refresh replaced it: the token was copied (or a
    /// client retried with a stale one). The session must end.
    Replaced,
}

/// A role grant as the register keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    pub grant: RoleGrant,
    /// The principal who granted it (`user-…` or `haven`).
    pub granted_by: String,
    pub granted_at: UnixTime,
    pub reason: String,
}

/// Why a leaver's account is disabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Departure {
    pub disabled_by: String,
    pub left_on: UnixTime,
}

/// A user as the stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub user_id: UserId,
    pub display_name: String,
    pub login: String,
    pub home_school: Option<SchoolId>,
    /// The argon2id PHC string.
    pub password_hash: Option<String>,
    pub grants: Vec<GrantRecord>,
    pub aup_accepted: Option<u32>,
    pub departed: Option<Departure>,
    pub sessions: BTreeMap<String, Session>,
    pub consecutive_failures: u32,
    pub last_failure_at: Option<UnixTime>,
    pub locked_until: Option<UnixTime>,
}

impl User {
    pub fn is_disabled(&self) -> bool {
        self.departed.is_some()
    }

    /// The role grants held now.
    pub fn role_grants(&self) -> Vec<RoleGrant> {
        self.grants.iter().map(|record| record.grant.clone()).collect()
    }

    /// Sessions neither revoked nor expired at `now`.
    pub fn active_sessions(&self, now: UnixTime) -> impl Iterator<Item = (&String, &Session)> {
        self.sessions.iter().filter(move |(_, session)| !session.revoked && session.expires_at > now)
    }

    /// Whether the user may try a password at `now`: refused while locked or backing off.
    pub fn may_attempt_sign_in(&self, now: UnixTime) -> Result<(), UserError> {
        if self.is_disabled() {
            return Err(UserError::Disabled);
        }
        if let Some(until) = self.locked_until
            && until > now
        {
            return Err(UserError::Locked { until });
        }
        if self.consecutive_failures >= BACKOFF_AFTER_FAILURES
            && let Some(last) = self.last_failure_at
        {
            let wait_s = backoff_s(self.consecutive_failures);
            let allowed_at = UnixTime(last.0 + wait_s);
            if allowed_at > now {
                return Err(UserError::TryLater { retry_after_s: allowed_at.0 - now.0 });
            }
        }
        Ok(())
    }

    /// The session a refresh token names, if it may still be used at `now`. The secret's
    /// hash is compared in constant time.
    pub fn session_for_refresh(
        &self,
        session_id: &str,
        secret_sha256: &[u8; 32],
        now: UnixTime,
    ) -> Result<&Session, UserError> {
        if self.is_disabled() {
            return Err(UserError::Disabled);
        }
        let session = self.sessions.get(session_id).ok_or(UserError::SessionNotUsable)?;
        let same = constant_time_eq(&session.refresh_secret_sha256, secret_sha256);
        if !same || session.revoked || session.expires_at <= now {
            return Err(UserError::SessionNotUsable);
        }
        Ok(session)
    }

    /// Whether `secret_sha256` is the current or a replaced secret of a live session.
    fn check_refresh(
        &self,
        session_id: &str,
        secret_sha256: &[u8; 32],
        now: UnixTime,
    ) -> Result<RefreshCheck, UserError> {
        if self.is_disabled() {
            return Err(UserError::Disabled);
        }
        let session = self.sessions.get(session_id).ok_or(UserError::SessionNotUsable)?;
        if session.revoked || session.expires_at <= now {
            return Err(UserError::SessionNotUsable);
        }
        if constant_time_eq(&session.refresh_secret_sha256, secret_sha256) {
            return Ok(RefreshCheck::Current);
        }
        // Every remembered secret is compared, so the time taken says nothing about which.
        let replaced_at = session
            .replaced_secrets_sha256
            .iter()
            .fold(None, |found, (old, at)| if constant_time_eq(old, secret_sha256) { Some(*at) } else { found });
        match replaced_at {
            Some(at) if now.0 - at.0 >= REUSE_LEEWAY_S => Ok(RefreshCheck::Replaced),
            _ => Err(UserError::SessionNotUsable),
        }
    }
}

/// Compares two digests without an early exit, so timing tells nothing about where they differ.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Seconds to wait after `failures` consecutive failures.
fn backoff_s(failures: u32) -> i64 {
    let exponent = failures.saturating_sub(BACKOFF_AFTER_FAILURES).min(6);
    (1_i64 << exponent).min(MAX_BACKOFF_S)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserCommand {
    Register {
        user_id: UserId,
        display_name: String,
        login: String,
        home_school: Option<SchoolId>,
        registered_by: String,
        at: UnixTime,
    },
    SetPassword {
        password_hash: String,
    },
    GrantRole {
        grant: RoleGrant,
        granted_by: String,
        reason: String,
        at: UnixTime,
    },
    RevokeRole {
        grant: RoleGrant,
        revoked_by: String,
        at: UnixTime,
    },
    /// `current_version` is the AUP in force (looked up by the shell; `None`: none published).
    AcceptAup {
        version: u32,
        current_version: Option<u32>,
        at: UnixTime,
    },
    /// After the password was verified.
    StartSession {
        session_id: String,
        refresh_secret_sha256: [u8; 32],
        expires_at: UnixTime,
        at: UnixTime,
    },
    /// A refresh: the presented secret must be the session's current one; it is replaced by
    /// `new_secret_sha256`. A replaced secret presented again ends the session.
    RefreshSession {
        session_id: String,
        presented_sha256: [u8; 32],
        new_secret_sha256: [u8; 32],
        at: UnixTime,
    },
    RecordSignInFailure {
        at: UnixTime,
    },
    /// One session (`Some`) or every session of the user.
    RevokeSessions {
        session_id: Option<String>,
        revoked_by: String,
        at: UnixTime,
    },
    /// A leaver.
    Disable {
        disabled_by: String,
        left_on: UnixTime,
        at: UnixTime,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserEvent {
    Registered {
        user_id: UserId,
        display_name: String,
        login: String,
        home_school: Option<SchoolId>,
        registered_by: String,
        at: UnixTime,
    },
    PasswordSet {
        password_hash: String,
    },
    RoleGranted(GrantRecord),
    RoleRevoked {
        grant: RoleGrant,
        revoked_by: String,
        at: UnixTime,
    },
    AupAccepted {
        version: u32,
        at: UnixTime,
    },
    SignedIn {
        session_id: String,
        refresh_secret_sha256: [u8; 32],
        expires_at: UnixTime,
        at: UnixTime,
    },
    /// The session's refresh token was exchanged; its secret is now `refresh_secret_sha256`.
    SessionRefreshed {
        session_id: String,
        refresh_secret_sha256: [u8; 32],
        at: UnixTime,
    },
    /// A refresh token whose secret had already been replaced was presented: a copy is in
    /// someone's hands. Always followed by the session's `SessionsRevoked`.
    RefreshTokenReused {
        session_id: String,
        at: UnixTime,
    },
    SignInFailed {
        consecutive_failures: u32,
        locked_until: Option<UnixTime>,
        at: UnixTime,
    },
    SessionsRevoked {
        session_id: Option<String>,
        revoked_by: String,
        at: UnixTime,
    },
    Disabled(Departure),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the user is already registered")]
    AlreadyRegistered,
    #[error("the user is not registered")]
    NotRegistered,
    #[error("the account is disabled")]
    Disabled,
    #[error("display_name {0}")]
    InvalidDisplayName(&'static str),
    #[error("login {0}")]
    InvalidLogin(&'static str),
    #[error("reason {0}")]
    InvalidReason(&'static str),
    #[error("the role {role} cannot be held in the {scope}")]
    RoleNotAllowedInScope { role: Role, scope: String },
    #[error("the user already holds this role in this scope")]
    AlreadyGranted,
    #[error("the user does not hold this role in this scope")]
    NotGranted,
    #[error("password_hash is not an argon2id hash")]
    NotArgon2id,
    #[error("no acceptable use policy has been published")]
    NoAupPublished,
    #[error("AUP version {offered} is not the current one ({current})")]
    NotCurrentAup { offered: u32, current: u32 },
    #[error("the account is locked after repeated failed sign-ins; try after {until}")]
    Locked { until: UnixTime },
    #[error("too many failed sign-ins; try again in {retry_after_s} s")]
    TryLater { retry_after_s: i64 },
    #[error("expires_at must be after the sign-in")]
    SessionExpiresBeforeStart,
    #[error("the session is unknown, revoked or expired")]
    SessionNotUsable,
    #[error("the account is already disabled")]
    AlreadyDisabled,
}

/// A login: 3..=254 characters, lowercase, no spaces or control characters.
pub fn check_login(login: &str) -> Result<(), &'static str> {
    let chars = login.chars().count();
    if !(3..=254).contains(&chars) {
        return Err("must be 3 to 254 characters");
    }
    if login.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    if login.chars().any(char::is_uppercase) {
        return Err("must be lowercase");
    }
    Ok(())
}

fn check_reason(reason: &str) -> Result<(), UserError> {
    if reason.trim().is_empty() {
        return Err(UserError::InvalidReason("must say why the access is needed"));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(UserError::InvalidReason("is longer than 500 characters"));
    }
    if reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(UserError::InvalidReason("must not contain control characters"));
    }
    Ok(())
}

/// The user aggregate.
#[derive(Debug)]
pub struct UserDecider;

impl Decider for UserDecider {
    type State = Option<User>;
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        let user = match (state, command) {
            (Some(_), UserCommand::Register { .. }) => return Err(UserError::AlreadyRegistered),
            (None, UserCommand::Register { user_id, display_name, login, home_school, registered_by, at }) => {
                super::check_name(display_name).map_err(UserError::InvalidDisplayName)?;
                check_login(login).map_err(UserError::InvalidLogin)?;
                return Ok(vec![UserEvent::Registered {
                    user_id: user_id.clone(),
                    display_name: display_name.clone(),
                    login: login.clone(),
                    home_school: home_school.clone(),
                    registered_by: registered_by.clone(),
                    at: *at,
                }]);
            }
            (None, _) => return Err(UserError::NotRegistered),
            (Some(user), _) => user,
        };
        // Nothing changes a leaver's account; a second disabling says so.
        if user.is_disabled() {
            return Err(match command {
                UserCommand::Disable { .. } => UserError::AlreadyDisabled,
                _ => UserError::Disabled,
            });
        }
        match command {
            UserCommand::Register { .. } => unreachable!("handled above"),
            UserCommand::SetPassword { password_hash } => {
                if !password_hash.starts_with("$argon2id$") {
                    return Err(UserError::NotArgon2id);
                }
                Ok(vec![UserEvent::PasswordSet { password_hash: password_hash.clone() }])
            }
            UserCommand::GrantRole { grant, granted_by, reason, at } => {
                if !grant.role.allowed_in(&grant.scope) {
                    return Err(UserError::RoleNotAllowedInScope { role: grant.role, scope: grant.scope.to_string() });
                }
                check_reason(reason)?;
                if user.grants.iter().any(|held| held.grant == *grant) {
                    return Err(UserError::AlreadyGranted);
                }
                Ok(vec![UserEvent::RoleGranted(GrantRecord {
                    grant: grant.clone(),
                    granted_by: granted_by.clone(),
                    granted_at: *at,
                    reason: reason.clone(),
                })])
            }
            UserCommand::RevokeRole { grant, revoked_by, at } => {
                if !user.grants.iter().any(|held| held.grant == *grant) {
                    return Err(UserError::NotGranted);
                }
                Ok(vec![UserEvent::RoleRevoked { grant: grant.clone(), revoked_by: revoked_by.clone(), at: *at }])
            }
            UserCommand::AcceptAup { version, current_version, at } => {
                let current = current_version.ok_or(UserError::NoAupPublished)?;
                if *version != current {
                    return Err(UserError::NotCurrentAup { offered: *version, current });
                }
                if user.aup_accepted == Some(current) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::AupAccepted { version: current, at: *at }])
            }
            UserCommand::StartSession { session_id, refresh_secret_sha256, expires_at, at } => {
                user.may_attempt_sign_in(*at)?;
                if expires_at <= at {
                    return Err(UserError::SessionExpiresBeforeStart);
                }
                let mut events = Vec::new();
                let active: Vec<_> = user.active_sessions(*at).collect();
                if active.len() >= MAX_ACTIVE_SESSIONS {
                    // The oldest session makes room.
                    if let Some((oldest, _)) = active.iter().min_by_key(|(id, session)| (session.signed_in_at, *id)) {
                        events.push(UserEvent::SessionsRevoked {
                            session_id: Some((*oldest).clone()),
                            revoked_by: "haven".into(),
                            at: *at,
                        });
                    }
                }
                events.push(UserEvent::SignedIn {
                    session_id: session_id.clone(),
                    refresh_secret_sha256: *refresh_secret_sha256,
                    expires_at: *expires_at,
                    at: *at,
                });
                Ok(events)
            }
            UserCommand::RefreshSession { session_id, presented_sha256, new_secret_sha256, at } => {
                match user.check_refresh(session_id, presented_sha256, *at)? {
                    RefreshCheck::Current => Ok(vec![UserEvent::SessionRefreshed {
                        session_id: session_id.clone(),
                        refresh_secret_sha256: *new_secret_sha256,
                        at: *at,
                    }]),
                    RefreshCheck::Replaced => Ok(vec![
                        UserEvent::RefreshTokenReused { session_id: session_id.clone(), at: *at },
                        UserEvent::SessionsRevoked {
                            session_id: Some(session_id.clone()),
                            revoked_by: "haven".into(),
                            at: *at,
                        },
                    ]),
                }
            }
            UserCommand::RecordSignInFailure { at } => {
                user.may_attempt_sign_in(*at)?;
                let consecutive_failures = user.consecutive_failures + 1;
                let locked_until = (consecutive_failures >= LOCK_AFTER_FAILURES).then_some(UnixTime(at.0 + LOCK_S));
                Ok(vec![UserEvent::SignInFailed { consecutive_failures, locked_until, at: *at }])
            }
            UserCommand::RevokeSessions { session_id, revoked_by, at } => {
                let to_revoke = match session_id {
                    Some(id) => user.sessions.get(id).is_some_and(|session| !session.revoked),
                    None => user.sessions.values().any(|session| !session.revoked),
                };
                if !to_revoke {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::SessionsRevoked {
                    session_id: session_id.clone(),
                    revoked_by: revoked_by.clone(),
                    at: *at,
                }])
            }
            UserCommand::Disable { disabled_by, left_on, at } => Ok(vec![
                UserEvent::Disabled(Departure { disabled_by: disabled_by.clone(), left_on: *left_on }),
                UserEvent::SessionsRevoked { session_id: None, revoked_by: disabled_by.clone(), at: *at },
            ]),
        }
    }

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State {
        if let UserEvent::Registered { user_id, display_name, login, home_school, .. } = event {
            return Some(User {
                user_id: user_id.clone(),
                display_name: display_name.clone(),
                login: login.clone(),
                home_school: home_school.clone(),
                password_hash: None,
                grants: Vec::new(),
                aup_accepted: None,
                departed: None,
                sessions: BTreeMap::new(),
                consecutive_failures: 0,
                last_failure_at: None,
                locked_until: None,
            });
        }
        let Some(mut user) = state else {
            debug_assert!(false, "a user event before registration");
            return None;
        };
        match event {
            UserEvent::Registered { .. } => unreachable!("handled above"),
            UserEvent::PasswordSet { password_hash } => user.password_hash = Some(password_hash.clone()),
            UserEvent::RoleGranted(record) => user.grants.push(record.clone()),
            UserEvent::RoleRevoked { grant, .. } => user.grants.retain(|held| held.grant != *grant),
            UserEvent::AupAccepted { version, .. } => user.aup_accepted = Some(*version),
            UserEvent::SignedIn { session_id, refresh_secret_sha256, expires_at, at } => {
                // Expired sessions are forgotten, so the state stays small.
                user.sessions.retain(|_, session| session.expires_at > *at);
                user.sessions.insert(
                    session_id.clone(),
                    Session {
                        signed_in_at: *at,
                        expires_at: *expires_at,
                        refresh_secret_sha256: *refresh_secret_sha256,
                        replaced_secrets_sha256: Vec::new(),
                        revoked: false,
                    },
                );
                user.consecutive_failures = 0;
                user.last_failure_at = None;
                user.locked_until = None;
            }
            UserEvent::SessionRefreshed { session_id, refresh_secret_sha256, at } => {
                if let Some(session) = user.sessions.get_mut(session_id) {
                    let replaced = std::mem::replace(&mut session.refresh_secret_sha256, *refresh_secret_sha256);
                    session.replaced_secrets_sha256.push((replaced, *at));
                    let excess = session.replaced_secrets_sha256.len().saturating_sub(MAX_REMEMBERED_SECRETS);
                    session.replaced_secrets_sha256.drain(..excess);
                }
            }
            // What it means is in the `SessionsRevoked` that always follows it.
            UserEvent::RefreshTokenReused { .. } => {}
            UserEvent::SignInFailed { consecutive_failures, locked_until, at } => {
                user.consecutive_failures = *consecutive_failures;
                user.last_failure_at = Some(*at);
                if locked_until.is_some() {
                    user.locked_until = *locked_until;
                }
            }
            UserEvent::SessionsRevoked { session_id, .. } => {
                for (id, session) in &mut user.sessions {
                    if session_id.as_ref().is_none_or(|revoked| revoked == id) {
                        session.revoked = true;
                    }
                }
            }
            UserEvent::Disabled(departure) => user.departed = Some(departure.clone()),
        }
        Some(user)
    }
}

#[cfg(test)]
mod tests;
