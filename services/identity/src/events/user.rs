//! The events of stream `user-<id>`. Display names and logins are personal data: they live
//! only in these payloads, never in a stream id, event type, log line or metric.

use haven_authz::{Role, RoleGrant, Scope, UserId};
use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use prost::Message;

use super::{payload, time_from_proto, time_to_proto, unreadable};
use crate::Error;
use crate::domain::user::Departure;
use crate::domain::{GrantRecord, UserEvent};

pub const USER_REGISTERED: &str = "identity.UserRegistered";
pub const USER_PASSWORD_SET: &str = "identity.UserPasswordSet";
pub const ROLE_GRANTED: &str = "identity.RoleGranted";
pub const ROLE_REVOKED: &str = "identity.RoleRevoked";
pub const AUP_ACCEPTED: &str = "identity.AupAccepted";
pub const USER_SIGNED_IN: &str = "identity.UserSignedIn";
pub const USER_SIGN_IN_FAILED: &str = "identity.UserSignInFailed";
pub const USER_SESSION_REFRESHED: &str = "identity.UserSessionRefreshed";
pub const REFRESH_TOKEN_REUSED: &str = "identity.RefreshTokenReused";
pub const SESSIONS_REVOKED: &str = "identity.SessionsRevoked";
pub const USER_DISABLED: &str = "identity.UserDisabled";

/// A refresh secret's SHA-256 as recorded.
fn digest(bytes: &[u8], envelope: &pb::EventEnvelope) -> Result<[u8; 32], Error> {
    bytes.try_into().map_err(|_| super::unreadable(envelope)("refresh_secret_sha256 is not 32 bytes".into()))
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Staff => pb::Role::Staff,
        Role::TechnicalStaff => pb::Role::TechnicalStaff,
        Role::Principal => pb::Role::Principal,
        Role::Dsl => pb::Role::Dsl,
        Role::DeputyDsl => pb::Role::DeputyDsl,
        Role::OnlineSafetyCoordinator => pb::Role::OnlineSafetyCoordinator,
        Role::Governor => pb::Role::Governor,
        Role::Auditor => pb::Role::Auditor,
        Role::TrustSafeguardingLead => pb::Role::TrustSafeguardingLead,
        Role::TrustAdmin => pb::Role::TrustAdmin,
    }
}

/// `None` for UNSPECIFIED or an unknown value.
pub fn role_from_proto(raw: i32) -> Option<Role> {
    Some(match pb::Role::try_from(raw).ok()? {
        pb::Role::Unspecified => return None,
        pb::Role::Staff => Role::Staff,
        pb::Role::TechnicalStaff => Role::TechnicalStaff,
        pb::Role::Principal => Role::Principal,
        pb::Role::Dsl => Role::Dsl,
        pb::Role::DeputyDsl => Role::DeputyDsl,
        pb::Role::OnlineSafetyCoordinator => Role::OnlineSafetyCoordinator,
        pb::Role::Governor => Role::Governor,
        pb::Role::Auditor => Role::Auditor,
        pb::Role::TrustSafeguardingLead => Role::TrustSafeguardingLead,
        pb::Role::TrustAdmin => Role::TrustAdmin,
    })
}

/// An empty school id is the trust.
pub fn scope_from_proto(school_id: &str) -> Result<Scope, haven_kernel::IdError> {
    if school_id.is_empty() { Ok(Scope::Trust) } else { SchoolId::parse(school_id).map(Scope::School) }
}

fn scope_to_proto(scope: &Scope) -> String {
    scope.school().map(ToString::to_string).unwrap_or_default()
}

/// (event type, payload) of a user event.
pub fn encode_user(user_id: &UserId, event: &UserEvent) -> (&'static str, Vec<u8>) {
    let user_id = user_id.to_string();
    match event {
        UserEvent::Registered { display_name, login, home_school, registered_by, at, .. } => (
            USER_REGISTERED,
            pb::UserRegistered {
                user_id,
                display_name: display_name.clone(),
                login: login.clone(),
                home_school_id: home_school.as_ref().map(ToString::to_string).unwrap_or_default(),
                registered_by: registered_by.clone(),
                registered_at: Some(time_to_proto(*at)),
            }
            .encode_to_vec(),
        ),
        UserEvent::PasswordSet { password_hash } => {
            (USER_PASSWORD_SET, pb::UserPasswordSet { user_id, password_hash: password_hash.clone() }.encode_to_vec())
        }
        UserEvent::RoleGranted(record) => (
            ROLE_GRANTED,
            pb::RoleGranted {
                user_id,
                role: role_to_proto(record.grant.role) as i32,
                school_id: scope_to_proto(&record.grant.scope),
                granted_by_user_id: record.granted_by.clone(),
                reason: record.reason.clone(),
                granted_at: Some(time_to_proto(record.granted_at)),
            }
            .encode_to_vec(),
        ),
        UserEvent::RoleRevoked { grant, revoked_by, at } => (
            ROLE_REVOKED,
            pb::RoleRevoked {
                user_id,
                role: role_to_proto(grant.role) as i32,
                school_id: scope_to_proto(&grant.scope),
                revoked_by_user_id: revoked_by.clone(),
                revoked_at: Some(time_to_proto(*at)),
            }
            .encode_to_vec(),
        ),
        UserEvent::AupAccepted { version, at } => (
            AUP_ACCEPTED,
            pb::AupAccepted { user_id, aup_version: *version, accepted_at: Some(time_to_proto(*at)) }.encode_to_vec(),
        ),
        UserEvent::SignedIn { session_id, refresh_secret_sha256, expires_at, at } => (
            USER_SIGNED_IN,
            pb::UserSignedIn {
                user_id,
                session_id: session_id.clone(),
                expires_at: Some(time_to_proto(*expires_at)),
                refresh_secret_sha256: refresh_secret_sha256.to_vec(),
                signed_in_at: Some(time_to_proto(*at)),
            }
            .encode_to_vec(),
        ),
        UserEvent::SessionRefreshed { session_id, refresh_secret_sha256, at } => (
            USER_SESSION_REFRESHED,
            pb::UserSessionRefreshed {
                user_id,
                session_id: session_id.clone(),
                refresh_secret_sha256: refresh_secret_sha256.to_vec(),
                refreshed_at: Some(time_to_proto(*at)),
            }
            .encode_to_vec(),
        ),
        UserEvent::RefreshTokenReused { session_id, at } => (
            REFRESH_TOKEN_REUSED,
            pb::RefreshTokenReused { user_id, session_id: session_id.clone(), detected_at: Some(time_to_proto(*at)) }
                .encode_to_vec(),
        ),
        UserEvent::SignInFailed { consecutive_failures, locked_until, at } => (
            USER_SIGN_IN_FAILED,
            pb::UserSignInFailed {
                user_id,
                consecutive_failures: *consecutive_failures,
                locked_until: locked_until.map(time_to_proto),
                failed_at: Some(time_to_proto(*at)),
            }
            .encode_to_vec(),
        ),
        UserEvent::SessionsRevoked { session_id, revoked_by, at } => (
            SESSIONS_REVOKED,
            pb::SessionsRevoked {
                user_id,
                session_id: session_id.clone().unwrap_or_default(),
                revoked_by_user_id: revoked_by.clone(),
                revoked_at: Some(time_to_proto(*at)),
            }
            .encode_to_vec(),
        ),
        UserEvent::Disabled(Departure { disabled_by, left_on }) => (
            USER_DISABLED,
            pb::UserDisabled {
                user_id,
                disabled_by_user_id: disabled_by.clone(),
                left_on: Some(time_to_proto(*left_on)),
            }
            .encode_to_vec(),
        ),
    }
}

/// Decodes a stored user event.
pub fn decode_user(envelope: &pb::EventEnvelope) -> Result<UserEvent, Error> {
    let unreadable = unreadable(envelope);
    let grant = |role: i32, school_id: &str| -> Result<RoleGrant, Error> {
        let role = role_from_proto(role).ok_or_else(|| unreadable(format!("role {role}")))?;
        let scope = scope_from_proto(school_id).map_err(|e| unreadable(format!("school_id {e}")))?;
        Ok(RoleGrant { role, scope })
    };
    Ok(match envelope.event_type.as_str() {
        USER_REGISTERED => {
            let event: pb::UserRegistered = payload(envelope)?;
            let home_school = match event.home_school_id.as_str() {
                "" => None,
                raw => Some(SchoolId::parse(raw).map_err(|e| unreadable(format!("home_school_id {e}")))?),
            };
            UserEvent::Registered {
                user_id: UserId::parse(&event.user_id).map_err(|e| unreadable(format!("user_id {e}")))?,
                display_name: event.display_name,
                login: event.login,
                home_school,
                registered_by: event.registered_by,
                at: time_from_proto(event.registered_at.as_ref()),
            }
        }
        USER_PASSWORD_SET => {
            let event: pb::UserPasswordSet = payload(envelope)?;
            UserEvent::PasswordSet { password_hash: event.password_hash }
        }
        ROLE_GRANTED => {
            let event: pb::RoleGranted = payload(envelope)?;
            UserEvent::RoleGranted(GrantRecord {
                grant: grant(event.role, &event.school_id)?,
                granted_by: event.granted_by_user_id,
                granted_at: time_from_proto(event.granted_at.as_ref()),
                reason: event.reason,
            })
        }
        ROLE_REVOKED => {
            let event: pb::RoleRevoked = payload(envelope)?;
            UserEvent::RoleRevoked {
                grant: grant(event.role, &event.school_id)?,
                revoked_by: event.revoked_by_user_id,
                at: time_from_proto(event.revoked_at.as_ref()),
            }
        }
        AUP_ACCEPTED => {
            let event: pb::AupAccepted = payload(envelope)?;
            UserEvent::AupAccepted { version: event.aup_version, at: time_from_proto(event.accepted_at.as_ref()) }
        }
        USER_SIGNED_IN => {
            let event: pb::UserSignedIn = payload(envelope)?;
            UserEvent::SignedIn {
                refresh_secret_sha256: digest(&event.refresh_secret_sha256, envelope)?,
                session_id: event.session_id,
                expires_at: time_from_proto(event.expires_at.as_ref()),
                at: time_from_proto(event.signed_in_at.as_ref()),
            }
        }
        USER_SESSION_REFRESHED => {
            let event: pb::UserSessionRefreshed = payload(envelope)?;
            UserEvent::SessionRefreshed {
                refresh_secret_sha256: digest(&event.refresh_secret_sha256, envelope)?,
                session_id: event.session_id,
                at: time_from_proto(event.refreshed_at.as_ref()),
            }
        }
        REFRESH_TOKEN_REUSED => {
            let event: pb::RefreshTokenReused = payload(envelope)?;
            UserEvent::RefreshTokenReused {
                session_id: event.session_id,
                at: time_from_proto(event.detected_at.as_ref()),
            }
        }
        USER_SIGN_IN_FAILED => {
            let event: pb::UserSignInFailed = payload(envelope)?;
            UserEvent::SignInFailed {
                consecutive_failures: event.consecutive_failures,
                locked_until: event.locked_until.as_ref().map(|t| time_from_proto(Some(t))),
                at: time_from_proto(event.failed_at.as_ref()),
            }
        }
        SESSIONS_REVOKED => {
            let event: pb::SessionsRevoked = payload(envelope)?;
            UserEvent::SessionsRevoked {
                session_id: (!event.session_id.is_empty()).then_some(event.session_id),
                revoked_by: event.revoked_by_user_id,
                at: time_from_proto(event.revoked_at.as_ref()),
            }
        }
        USER_DISABLED => {
            let event: pb::UserDisabled = payload(envelope)?;
            UserEvent::Disabled(Departure {
                disabled_by: event.disabled_by_user_id,
                left_on: time_from_proto(event.left_on.as_ref()),
            })
        }
        other => return Err(unreadable(format!("{other} is not a user event"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnixTime;

    fn envelope(user_id: &UserId, event: &UserEvent) -> pb::EventEnvelope {
        let (event_type, payload) = encode_user(user_id, event);
        pb::EventEnvelope { event_type: event_type.into(), payload, ..Default::default() }
    }

    #[test]
    fn every_user_event_round_trips() {
        let user_id = UserId::parse("r-ahmed").unwrap();
        let at = UnixTime(1_800_000_000);
        let grant = RoleGrant { role: Role::DeputyDsl, scope: Scope::School(SchoolId::parse("oak").unwrap()) };
        let events = [
            UserEvent::Registered {
                user_id: user_id.clone(),
                display_name: "Rosa Ahmed".into(),
                login: "r.ahmed".into(),
                home_school: None,
                registered_by: "haven".into(),
                at,
            },
            UserEvent::PasswordSet { password_hash: "$argon2id$x".into() },
            UserEvent::RoleGranted(GrantRecord {
                grant: grant.clone(),
                granted_by: "user-admin".into(),
                granted_at: at,
                reason: "deputy".into(),
            }),
            UserEvent::RoleRevoked { grant, revoked_by: "user-admin".into(), at },
            UserEvent::AupAccepted { version: 3, at },
            UserEvent::SignedIn {
                session_id: "s".into(),
                refresh_secret_sha256: [9; 32],
                expires_at: UnixTime(at.0 + 1),
                at,
            },
            UserEvent::SessionRefreshed { session_id: "s".into(), refresh_secret_sha256: [3; 32], at },
            UserEvent::RefreshTokenReused { session_id: "s".into(), at },
            UserEvent::SignInFailed { consecutive_failures: 10, locked_until: Some(UnixTime(at.0 + 900)), at },
            UserEvent::SignInFailed { consecutive_failures: 1, locked_until: None, at },
            UserEvent::SessionsRevoked { session_id: None, revoked_by: "user-admin".into(), at },
            UserEvent::SessionsRevoked { session_id: Some("s".into()), revoked_by: "user-admin".into(), at },
            UserEvent::Disabled(Departure { disabled_by: "user-admin".into(), left_on: at }),
        ];
        for event in events {
            assert_eq!(decode_user(&envelope(&user_id, &event)).unwrap(), event);
        }
    }
}
