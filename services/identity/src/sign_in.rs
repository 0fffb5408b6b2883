//! Signing in: passwords set under the policy, checked with backoff and lockout.
//!
//! ```text
//!  login ─▶ user directory ─▶ user id ─▶ user stream (authoritative) ─▶ may attempt now?
//!     ├─ unknown login, no password, disabled ─▶ a dummy verification ─▶ SignInRefused
//!     ├─ locked or backing off ─▶ Locked / TryLater (nothing verified, nothing written)
//!     └─ verify (argon2id, a blocking thread) ─▶ ok: the user │ wrong: SignInFailed appended
//! ```
//! Every refusal of a password says the same thing, so it does not tell whether an account
//! exists.

use std::sync::Arc;

use haven_authz::UserId;
use haven_proto::v1 as pb;

use crate::app::{CommandContext, EventIds};
use crate::domain::{UnixTime, User, UserCommand, UserError};
use crate::events::time_to_proto;
use crate::password::{self, PasswordHasher};
use crate::{Error, IdentityApp, UserDirectory};

/// Passwords and sign-in over the identity app.
#[derive(Clone, Debug)]
pub struct Accounts {
    app: IdentityApp,
    users: UserDirectory,
    hasher: Arc<PasswordHasher>,
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

impl Accounts {
    pub fn new(app: IdentityApp, users: UserDirectory, hasher: PasswordHasher) -> Self {
        Accounts { app, users, hasher: Arc::new(hasher) }
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
