//! The first start of a real deployment: the trust and its first trust admin, who then
//! registers schools and people through the API. Without it only the demo could sign in.
//!
//! ```text
//!  check the password policy ─▶ trust established? refuse (bootstrap runs once)
//!  ─▶ register the admin ─▶ grant trust admin ─▶ set the password ─▶ establish the trust
//! ```
//! The trust is established last: it is the step that makes bootstrap done. A run cut short
//! before it is completed by running it again with the same admin (registration and grant
//! are found already done; the password is set anew). Whoever can append to the log can
//! run this, which is why the log's RPCs stay inside the cluster (ADR 0010).

use haven_authz::{Role, RoleGrant, Scope, UserId};
use haven_proto::v1 as pb;

use crate::app::{CommandContext, EventIds};
use crate::domain::{TrustCommand, UnixTime, UserCommand, UserError};
use crate::password::{PasswordHasher, check_policy};
use crate::{Error, IdentityApp};

/// What `haven identity bootstrap` asks for.
#[derive(Clone)]
pub struct Bootstrap {
    pub trust_id: String,
    pub trust_name: String,
    pub admin_id: UserId,
    pub admin_name: String,
    pub admin_login: String,
    pub password: String,
    /// When, read by the caller (the domain never reads a clock).
    pub at: UnixTime,
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names, logins and the password are personal data or secret: ids only.
        f.debug_struct("Bootstrap")
            .field("trust_id", &self.trust_id)
            .field("admin_id", &self.admin_id.as_str())
            .finish_non_exhaustive()
    }
}

/// Establishes the trust with its first trust admin; refuses once the trust exists.
pub async fn bootstrap(app: &IdentityApp, hasher: &PasswordHasher, request: Bootstrap) -> Result<(), Error> {
    check_policy(&request.password, &request.admin_login)
        .map_err(|reason| Error::invalid("password", reason.to_string()))?;
    if app.trust_position(&request.trust_id).await?.is_some() {
        return Err(Error::invalid(
            "trust_id",
            format!(
                "trust {} is already established: bootstrap runs once; the trust admin adds people through the API",
                request.trust_id
            ),
        ));
    }
    let context = CommandContext {
        actor: pb::Actor {
            principal_id: "haven-bootstrap".into(),
            kind: pb::ActorKind::System as i32,
            roles: vec!["bootstrap".into()],
        },
        occurred_at: prost_types::Timestamp { seconds: request.at.0, nanos: 0 },
        event_ids: EventIds::Fresh,
    };
    let register = UserCommand::Register {
        user_id: request.admin_id.clone(),
        display_name: request.admin_name.clone(),
        login: request.admin_login.clone(),
        home_school: None,
        registered_by: "haven-bootstrap".into(),
        at: request.at,
    };
    match app.register_user(&context, register).await {
        Ok(_) | Err(Error::User(UserError::AlreadyRegistered)) => {}
        Err(other) => return Err(other),
    }
    let grant = UserCommand::GrantRole {
        grant: RoleGrant { role: Role::TrustAdmin, scope: Scope::Trust },
        granted_by: "haven-bootstrap".into(),
        reason: "the trust's first administrator".into(),
        at: request.at,
    };
    match app.user_command(&context, &request.admin_id, grant).await {
        Ok(_) | Err(Error::User(UserError::AlreadyGranted)) => {}
        Err(other) => return Err(other),
    }
    let password_hash = hasher.hash(&request.password).map_err(Error::Internal)?;
    app.user_command(&context, &request.admin_id, UserCommand::SetPassword { password_hash }).await?;
    let trust = TrustCommand::Establish { trust_id: request.trust_id.clone(), name: request.trust_name.clone() };
    app.establish_trust(&context, trust).await?;
    Ok(())
}
