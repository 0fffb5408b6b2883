//! Conversions between identity's domain types and `haven.v1` messages: the only place that
//! knows both.

use haven_authz::{Caller, PrincipalKind, RoleGrant, Scope, UserId};
use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use tonic::{Code, Status};

use crate::domain::{GrantRecord, School, Subject, UnixTime, User};
use crate::events::{flag_to_proto, phase_to_proto, role_from_proto, role_to_proto, scope_from_proto, time_to_proto};
use crate::tokens::TokenPair;
use crate::users::{AccessChange, AccessRegisterEntry};
use crate::{Error, SchoolDirectory};

/// The gRPC status of an identity error (its code decides; the message names the field).
pub fn status(error: Error) -> Status {
    Status::new(Code::from_i32(error.code().grpc_code()), error.to_string())
}

pub fn invalid(field: &str, reason: impl Into<String>) -> Status {
    status(Error::invalid(field, reason))
}

pub fn school_id(raw: &str, field: &str) -> Result<SchoolId, Status> {
    SchoolId::parse(raw).map_err(|e| invalid(field, e.to_string()))
}

/// An optional school: empty means none (the trust).
pub fn optional_school(raw: &str, field: &str) -> Result<Option<SchoolId>, Status> {
    if raw.is_empty() { Ok(None) } else { school_id(raw, field).map(Some) }
}

pub fn user_id(raw: &str) -> Result<UserId, Status> {
    UserId::parse(raw).map_err(|e| invalid("user_id", e.to_string()))
}

pub fn grant(role: i32, school: &str) -> Result<RoleGrant, Status> {
    let role = role_from_proto(role).ok_or_else(|| invalid("role", format!("{role} is not a role")))?;
    let scope = scope_from_proto(school).map_err(|e| invalid("school_id", e.to_string()))?;
    Ok(RoleGrant { role, scope })
}

pub fn time(raw: Option<&prost_types::Timestamp>, field: &str) -> Result<UnixTime, Status> {
    raw.map(|t| UnixTime(t.seconds)).ok_or_else(|| invalid(field, "is required"))
}

pub fn school_to_proto(school: &School, version: u64) -> pb::School {
    pb::School {
        school_id: school.school_id.to_string(),
        name: school.name.clone(),
        pupil_count: school.pupil_count,
        phase: phase_to_proto(school.phase) as i32,
        version,
    }
}

fn grant_to_proto(record: &GrantRecord) -> pb::RoleGrant {
    pb::RoleGrant {
        role: role_to_proto(record.grant.role) as i32,
        school_id: scope_school(&record.grant.scope),
        granted_by: record.granted_by.clone(),
        granted_at: Some(time_to_proto(record.granted_at)),
        reason: record.reason.clone(),
    }
}

fn scope_school(scope: &Scope) -> String {
    scope.school().map(ToString::to_string).unwrap_or_default()
}

pub fn user_to_proto(user: &User, version: u64, now: UnixTime) -> pb::User {
    pb::User {
        user_id: user.user_id.to_string(),
        display_name: user.display_name.clone(),
        login: user.login.clone(),
        home_school_id: user.home_school.as_ref().map(ToString::to_string).unwrap_or_default(),
        grants: user.grants.iter().map(grant_to_proto).collect(),
        aup_accepted_version: user.aup_accepted.unwrap_or(0),
        disabled: user.is_disabled(),
        has_password: user.password_hash.is_some(),
        active_sessions: user.active_sessions(now).count() as u32,
        version,
    }
}

pub fn tokens_to_proto(pair: TokenPair) -> pb::TokenPair {
    pb::TokenPair {
        access_token: pair.access_token,
        access_expires_at: Some(time_to_proto(UnixTime(pair.access_expires_at))),
        refresh_token: pair.refresh_token.unwrap_or_default(),
        refresh_expires_at: (pair.refresh_expires_at > 0).then(|| time_to_proto(UnixTime(pair.refresh_expires_at))),
        aup_required: pair.aup_required,
    }
}

pub fn register_entry_to_proto(entry: &AccessRegisterEntry) -> pb::AccessRegisterEntry {
    let change = match entry.change {
        AccessChange::UserRegistered => pb::AccessChange::UserRegistered,
        AccessChange::RoleGranted => pb::AccessChange::RoleGranted,
        AccessChange::RoleRevoked => pb::AccessChange::RoleRevoked,
        AccessChange::AupAccepted => pb::AccessChange::AupAccepted,
        AccessChange::UserDisabled => pb::AccessChange::UserDisabled,
    };
    pb::AccessRegisterEntry {
        at: Some(time_to_proto(entry.at)),
        user_id: entry.user_id.to_string(),
        change: change as i32,
        role: entry.grant.as_ref().map_or(pb::Role::Unspecified, |grant| role_to_proto(grant.role)) as i32,
        school_id: entry.grant.as_ref().map(|grant| scope_school(&grant.scope)).unwrap_or_default(),
        by: entry.by.clone(),
        reason: entry.reason.clone(),
        aup_version: entry.aup_version.unwrap_or(0),
        position: entry.position.0,
    }
}

pub fn who_am_i(caller: &Caller) -> pb::WhoAmIResponse {
    let principal = &caller.principal;
    pb::WhoAmIResponse {
        principal_id: principal.id.clone(),
        kind: match principal.kind {
            PrincipalKind::User => pb::ActorKind::User,
            PrincipalKind::SchoolSystem => pb::ActorKind::SchoolSystem,
        } as i32,
        grants: principal
            .grants
            .iter()
            .map(|grant| pb::RoleGrant {
                role: role_to_proto(grant.role) as i32,
                school_id: scope_school(&grant.scope),
                ..Default::default()
            })
            .collect(),
        school_id: principal.school.as_ref().map(ToString::to_string).unwrap_or_default(),
        aup_required: !caller.aup_current,
    }
}

/// Schools as listed by the directory.
pub fn schools(directory: &SchoolDirectory) -> Vec<pb::School> {
    directory.list().iter().map(|(school, version)| school_to_proto(school, version.0)).collect()
}

pub fn subject_to_proto(subject: &Subject, version: u64) -> pb::Subject {
    pb::Subject {
        subject_id: subject.subject_id.clone(),
        school_id: subject.school_id.to_string(),
        display_name: subject.display_name.clone(),
        year_group: subject.year_group,
        flags: subject.flags.iter().map(|flag| flag_to_proto(*flag) as i32).collect(),
        version,
        network_logins: subject.network_logins.iter().cloned().collect(),
    }
}
