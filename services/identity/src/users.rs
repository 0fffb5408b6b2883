//! The user directory and the access register: a read model of every account (by id and by
//! login, for sign-in) and the written register of who was given access to what, by whom,
//! when and why — kept because the policy requires it. Fed by a subscription to `user`
//! streams and rebuilt from position 0 on every start.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use haven_authz::{RoleGrant, Scope, UserId};
use haven_eventlog_client::{EventEnvelope, EventFilter, EventLog, follow_log};
use haven_kernel::{Decider, Position, SchoolId, Version};
use haven_runtime::{ReadinessHandle, Shutdown};

use crate::domain::{UnixTime, User, UserDecider, UserEvent};
use crate::events;

/// What an access-register entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessChange {
    UserRegistered,
    RoleGranted,
    RoleRevoked,
    AupAccepted,
    UserDisabled,
}

/// One line of the access register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRegisterEntry {
    pub position: Position,
    pub at: UnixTime,
    pub user_id: UserId,
    pub change: AccessChange,
    /// The grant, for grants and revocations.
    pub grant: Option<RoleGrant>,
    /// The principal who made the change.
    pub by: String,
    pub reason: String,
    pub aup_version: Option<u32>,
    /// The user's home school when the entry was written.
    pub home_school: Option<SchoolId>,
}

impl AccessRegisterEntry {
    /// Whether the entry concerns a school: a grant in it, or a person whose home it is.
    pub fn concerns(&self, school_id: &SchoolId) -> bool {
        let granted_there = self.grant.as_ref().is_some_and(|grant| grant.scope == Scope::School(school_id.clone()));
        granted_there || self.home_school.as_ref() == Some(school_id)
    }
}

#[derive(Debug, Default)]
struct Users {
    by_id: BTreeMap<UserId, (User, Version)>,
    by_login: HashMap<String, UserId>,
    register: Vec<AccessRegisterEntry>,
}

/// Every account and the access register.
#[derive(Clone, Debug, Default)]
pub struct UserDirectory {
    users: Arc<RwLock<Users>>,
}

impl UserDirectory {
    pub fn get(&self, user_id: &UserId) -> Option<(User, Version)> {
        self.users.read().expect("users lock").by_id.get(user_id).cloned()
    }

    /// The account a login names.
    pub fn by_login(&self, login: &str) -> Option<UserId> {
        self.users.read().expect("users lock").by_login.get(login).cloned()
    }

    /// Every entry, oldest first; only those concerning `school` when given.
    pub fn access_register(&self, school: Option<&SchoolId>) -> Vec<AccessRegisterEntry> {
        let users = self.users.read().expect("users lock");
        users.register.iter().filter(|entry| school.is_none_or(|school| entry.concerns(school))).cloned().collect()
    }

    /// Follows the log until `shutdown`.
    pub async fn follow(self, log: Arc<dyn EventLog>, readiness: ReadinessHandle, shutdown: Shutdown) {
        let filter = EventFilter { stream_categories: vec!["user".into()], ..Default::default() };
        follow_log(log, filter, "users", |envelope| self.apply(envelope), readiness, shutdown).await;
    }

    /// Applies one event (also used by tests that feed events directly).
    pub fn apply(&self, envelope: &EventEnvelope) {
        let event = match events::decode_user(envelope) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, "user directory skipped an unreadable event");
                return;
            }
        };
        let Some(user_id) = envelope.stream_id.strip_prefix("user-").and_then(|id| UserId::parse(id).ok()) else {
            tracing::error!(position = envelope.position, "user event outside a user stream skipped");
            return;
        };
        let mut users = self.users.write().expect("users lock");
        let current = users.by_id.remove(&user_id).map(|(user, _)| user);
        let Some(user) = UserDecider::evolve(current, &event) else { return };
        let entry = register_entry(envelope, &user, &event);
        users.by_login.insert(user.login.clone(), user_id.clone());
        users.by_id.insert(user_id, (user, Version(envelope.version)));
        if let Some(entry) = entry {
            users.register.push(entry);
        }
    }
}

fn register_entry(envelope: &EventEnvelope, user: &User, event: &UserEvent) -> Option<AccessRegisterEntry> {
    let entry = |change, at, by: &str| AccessRegisterEntry {
        position: Position(envelope.position),
        at,
        user_id: user.user_id.clone(),
        change,
        grant: None,
        by: by.to_owned(),
        reason: String::new(),
        aup_version: None,
        home_school: user.home_school.clone(),
    };
    let actor = envelope.actor.as_ref().map(|actor| actor.principal_id.as_str()).unwrap_or_default();
    Some(match event {
        UserEvent::Registered { registered_by, at, .. } => entry(AccessChange::UserRegistered, *at, registered_by),
        UserEvent::RoleGranted(record) => AccessRegisterEntry {
            grant: Some(record.grant.clone()),
            reason: record.reason.clone(),
            ..entry(AccessChange::RoleGranted, record.granted_at, &record.granted_by)
        },
        UserEvent::RoleRevoked { grant, revoked_by, at } => {
            AccessRegisterEntry { grant: Some(grant.clone()), ..entry(AccessChange::RoleRevoked, *at, revoked_by) }
        }
        UserEvent::AupAccepted { version, at } => {
            AccessRegisterEntry { aup_version: Some(*version), ..entry(AccessChange::AupAccepted, *at, actor) }
        }
        UserEvent::Disabled(departure) => entry(AccessChange::UserDisabled, departure.left_on, &departure.disabled_by),
        UserEvent::PasswordSet { .. }
        | UserEvent::SignedIn { .. }
        | UserEvent::SessionRefreshed { .. }
        | UserEvent::RefreshTokenReused { .. }
        | UserEvent::SignInFailed { .. }
        | UserEvent::SessionsRevoked { .. } => return None,
    })
}
