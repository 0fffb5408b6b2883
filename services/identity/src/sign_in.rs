//! Signing in: passwords set under the policy, checked with backoff and lockout; sessions
//! and tokens; the AUP; school systems' client credentials.
//!
//! ```text
//!  login ─▶ user directory ─▶ user id ─▶ user stream (authoritative) ─▶ may attempt now?
//!     ├─ unknown login, no password, disabled ─▶ a dummy verification ─▶ SignInRefused
//!     ├─ locked or backing off ─▶ Locked / TryLater (nothing verified, nothing written)
//!     └─ verify (argon2id, a blocking thread) ─▶ ok: the user │ wrong: SignInFailed appended
//! ```
//! Every refusal of a password says the same thing, so it does not tell whether an account
//! exists. A sign-in starts a session (`UserSignedIn`, the refresh secret's SHA-256) and
//! returns an access token carrying the grants and the accepted AUP version; a refresh
//! checks the session (live, not revoked, secret equal in constant time, account enabled)
//! and returns a new access token with the grants as they are now.

use std::sync::Arc;

use haven_authz::UserId;
use haven_proto::v1 as pb;

use haven_authz::Principal;
use haven_kernel::SchoolId;

use crate::app::{CommandContext, EventIds};
use crate::domain::{SystemCommand, UnixTime, User, UserCommand, UserError};
use crate::events::time_to_proto;
use crate::password::{self, PasswordHasher};
use crate::tokens::{RefreshToken, TokenPair, Tokens};
use crate::{Error, IdentityApp, UserDirectory};

/// Passwords, sign-in, sessions and tokens over the identity app.
#[derive(Clone, Debug)]
pub struct Accounts {
    app: IdentityApp,
    users: UserDirectory,
    hasher: Arc<PasswordHasher>,
    tokens: Tokens,
}

/// The context of what Haven records on its own account (a failed sign-in has no signed-in actor).
fn system_context(at: UnixTime) -> CommandContext {
    CommandContext {
        actor: pb::Actor {
            principal_id: "haven".into(),
            kind: pb::ActorKind::System as i32,
            roles: vec!["sign-in".into()],
        },
        occurred_at: time_to_proto(at),
        event_ids: EventIds::Fresh,
    }
}

/// The context of what a person does to their own sessions (signing in, refreshing).
fn own_context(user: &User, at: UnixTime) -> CommandContext {
    let mut context = system_context(at);
    context.actor = pb::Actor {
        principal_id: user.user_id.principal_id(),
        kind: pb::ActorKind::User as i32,
        roles: user.role_grants().iter().map(|grant| grant.role.as_str().to_owned()).collect(),
    };
    context
}

/// The context of what a signed-in person does.
pub fn user_context(principal: &Principal, at: UnixTime) -> CommandContext {
    CommandContext {
        actor: pb::Actor {
            principal_id: principal.id.clone(),
            kind: match principal.kind {
                haven_authz::PrincipalKind::User => pb::ActorKind::User,
                haven_authz::PrincipalKind::SchoolSystem => pb::ActorKind::SchoolSystem,
            } as i32,
            roles: principal.grants.iter().map(|grant| grant.role.as_str().to_owned()).collect(),
        },
        occurred_at: time_to_proto(at),
        event_ids: EventIds::Fresh,
    }
}

impl Accounts {
    pub fn new(app: IdentityApp, users: UserDirectory, hasher: PasswordHasher, tokens: Tokens) -> Self {
        Accounts { app, users, hasher: Arc::new(hasher), tokens }
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Signs in: a new session and its tokens.
    pub async fn sign_in(&self, login: &str, password: &str, now: UnixTime) -> Result<TokenPair, Error> {
        let user = self.check_password(login, password, now).await?;
        let refresh = RefreshToken::generate(&user.user_id);
        let refresh_expires_at = UnixTime(now.0 + self.tokens.lifetimes().refresh_s);
        let start = UserCommand::StartSession {
            session_id: refresh.session_id.clone(),
            refresh_secret_sha256: refresh.secret_sha256(),
            expires_at: refresh_expires_at,
            at: now,
        };
        let context = own_context(&user, now);
        let (user, _) = self.app.user_command(&context, &user.user_id, start).await?;
        self.token_pair(&user, refresh, refresh_expires_at, now).await
    }

    /// A new access token for a live session, and a new refresh token: the one presented is
    /// used up (`SessionRefreshed`). Presenting a used-up one again ends the session
    /// (`RefreshTokenReused`, `SessionsRevoked`): whoever holds a copy and whoever holds the
    /// newer token both have to sign in again, and the copy is worthless.
    pub async fn refresh(&self, raw: &str, now: UnixTime) -> Result<TokenPair, Error> {
        let not_usable = || Error::User(UserError::SessionNotUsable);
        let presented = RefreshToken::parse(raw).ok_or_else(not_usable)?;
        let (user, _) = self.app.user(&presented.user_id).await?.ok_or_else(not_usable)?;
        let next = presented.rotated();
        let command = UserCommand::RefreshSession {
            session_id: presented.session_id.clone(),
            presented_sha256: presented.secret_sha256(),
            new_secret_sha256: next.secret_sha256(),
            at: now,
        };
        let context = own_context(&user, now);
        // An unknown, revoked or expired session, or a secret it never had: refused by the
        // decider, nothing written.
        let (user, _) = self.app.user_command(&context, &presented.user_id, command).await?;
        let session = user.sessions.get(&presented.session_id).filter(|session| !session.revoked);
        let Some(session) = session else {
            tracing::warn!(session = %presented.session_id, "a used-up refresh token was presented: session ended");
            return Err(not_usable());
        };
        let expires_at = session.expires_at;
        self.token_pair(&user, next, expires_at, now).await
    }

    /// Ends the caller's session: its refresh token stops working, and its access tokens are
    /// refused wherever revocations are followed.
    pub async fn sign_out(&self, principal: &Principal, now: UnixTime) -> Result<(), Error> {
        let (Some(user_id), Some(session_id)) = (principal.user_id(), principal.session_id.clone()) else {
            return Err(Error::invalid("principal", "only a person's session can be signed out"));
        };
        let command =
            UserCommand::RevokeSessions { session_id: Some(session_id), revoked_by: principal.id.clone(), at: now };
        self.app.user_command(&user_context(principal, now), &user_id, command).await?;
        Ok(())
    }

    /// The caller accepts the AUP in force; returns an access token that carries it.
    pub async fn accept_aup(&self, principal: &Principal, version: u32, now: UnixTime) -> Result<TokenPair, Error> {
        let (Some(user_id), Some(session_id)) = (principal.user_id(), principal.session_id.clone()) else {
            return Err(Error::invalid("principal", "only a person accepts the AUP"));
        };
        let (user, _) = self.app.accept_aup(&user_context(principal, now), &user_id, version, now).await?;
        let session = user
            .sessions
            .get(&session_id)
            .filter(|session| !session.revoked && session.expires_at > now)
            .ok_or(Error::User(UserError::SessionNotUsable))?;
        let (access_token, access_expires_at) =
            self.tokens.for_user(&user_id, &session_id, &user.role_grants(), version, now.0)?;
        Ok(TokenPair {
            access_token,
            access_expires_at,
            refresh_token: None,
            refresh_expires_at: session.expires_at.0,
            aup_required: false,
        })
    }

    async fn token_pair(
        &self,
        user: &User,
        refresh: RefreshToken,
        refresh_expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<TokenPair, Error> {
        let current_aup = self.app.aup().await?.map(|aup| aup.version);
        let accepted = user.aup_accepted.unwrap_or(0);
        let (access_token, access_expires_at) =
            self.tokens.for_user(&user.user_id, &refresh.session_id, &user.role_grants(), accepted, now.0)?;
        Ok(TokenPair {
            access_token,
            access_expires_at,
            refresh_token: Some(refresh.encode()),
            refresh_expires_at: refresh_expires_at.0,
            aup_required: current_aup.is_none_or(|current| current != accepted),
        })
    }

    /// Issues a credential for a school system; returns the client secret, shown once.
    pub async fn issue_system_credential(
        &self,
        context: &CommandContext,
        system_id: &str,
        school_id: &SchoolId,
        at: UnixTime,
    ) -> Result<String, Error> {
        let secret = crate::secret::random_token(32);
        let hasher = Arc::clone(&self.hasher);
        let to_hash = secret.clone();
        let secret_hash = tokio::task::spawn_blocking(move || hasher.hash(&to_hash))
            .await
            .map_err(|e| Error::Internal(format!("hashing task: {e}")))?
            .map_err(|e| Error::Internal(format!("hashing: {e}")))?;
        let command = SystemCommand::Issue {
            system_id: system_id.to_owned(),
            school_id: school_id.clone(),
            secret_hash,
            issued_by: context.actor.principal_id.clone(),
            at,
        };
        self.app.system_command(context, system_id, command).await?;
        Ok(secret)
    }

    /// Client credentials for an access token scoped to the system's school, ingest only.
    pub async fn exchange_client_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
        now: UnixTime,
    ) -> Result<TokenPair, Error> {
        let system = match crate::domain::system::check_system_id(client_id) {
            true => self.app.system(client_id).await?.filter(|system| !system.revoked),
            false => None,
        };
        let Some(system) = system else {
            self.blocking(client_secret, None).await?;
            return Err(Error::SignInRefused);
        };
        if !self.blocking(client_secret, Some(system.secret_hash.clone())).await? {
            return Err(Error::SignInRefused);
        }
        let (access_token, access_expires_at) =
            self.tokens.for_school_system(&system.system_id, &system.school_id, now.0)?;
        Ok(TokenPair {
            access_token,
            access_expires_at,
            refresh_token: None,
            refresh_expires_at: 0,
            aup_required: false,
        })
    }

    pub fn app(&self) -> &IdentityApp {
        &self.app
    }

    pub fn users(&self) -> &UserDirectory {
        &self.users
    }

    /// Sets a password. `current` is required when people set their own (it is checked like a
    /// sign-in, with backoff and lockout); an admin setting a first password passes `None`.
    pub async fn set_password(
        &self,
        context: &CommandContext,
        user_id: &UserId,
        new_password: &str,
        current: Option<(&str, UnixTime)>,
    ) -> Result<User, Error> {
        let (user, _) = self.app.user(user_id).await?.ok_or_else(|| Error::NotFound(format!("user {user_id}")))?;
        password::check_policy(new_password, &user.login)
            .map_err(|reason| Error::invalid("new_password", reason.to_string()))?;
        if let Some((current_password, now)) = current {
            self.verify(&user, current_password, now).await?;
        }
        let hasher = Arc::clone(&self.hasher);
        let new_password = new_password.to_owned();
        let password_hash = tokio::task::spawn_blocking(move || hasher.hash(&new_password))
            .await
            .map_err(|e| Error::Internal(format!("hashing task: {e}")))?
            .map_err(|e| Error::Internal(format!("hashing: {e}")))?;
        let (user, _) = self.app.user_command(context, user_id, UserCommand::SetPassword { password_hash }).await?;
        Ok(user)
    }

    /// The account whose login and password these are, if it may sign in at `now`.
    pub async fn check_password(&self, login: &str, password: &str, now: UnixTime) -> Result<User, Error> {
        let user = match self.users.by_login(login) {
            Some(user_id) => self.app.user(&user_id).await?.map(|(user, _)| user),
            None => None,
        };
        match user {
            Some(user) => self.verify(&user, password, now).await.map(|()| user),
            None => {
                self.blocking(password, None).await?;
                Err(Error::SignInRefused)
            }
        }
    }

    async fn verify(&self, user: &User, password: &str, now: UnixTime) -> Result<(), Error> {
        match user.may_attempt_sign_in(now) {
            Ok(()) => {}
            Err(UserError::Disabled) => {
                self.blocking(password, None).await?;
                return Err(Error::SignInRefused);
            }
            Err(refusal) => return Err(Error::User(refusal)),
        }
        if self.blocking(password, user.password_hash.clone()).await? {
            return Ok(());
        }
        let failure = UserCommand::RecordSignInFailure { at: now };
        match self.app.user_command(&system_context(now), &user.user_id, failure).await {
            Ok(_) => {}
            // Another attempt recorded the failure that locks it first: still a refusal.
            Err(Error::User(UserError::Locked { .. } | UserError::TryLater { .. })) => {}
            Err(other) => return Err(other),
        }
        Err(Error::SignInRefused)
    }

    /// Verifies on a blocking thread; without a hash, spends the same time and fails.
    async fn blocking(&self, password: &str, hash: Option<String>) -> Result<bool, Error> {
        let hasher = Arc::clone(&self.hasher);
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || match hash {
            Some(hash) => hasher.verify(&password, &hash),
            None => hasher.verify_nothing(&password),
        })
        .await
        .map_err(|e| Error::Internal(format!("verification task: {e}")))
    }
}
