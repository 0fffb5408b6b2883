//! Who may hold what: roles, the scope a role is held in, and user ids.

use std::fmt;

use haven_kernel::{IdError, SchoolId};

/// A person's account id: 1..=63 bytes of lowercase letters, digits and `-`, starting with a
/// letter or digit (`j-okafor-7`). Its stream is `user-<id>`, its actor id `user-<id>`. Chosen
/// by whoever registers the account; it is not a name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(SchoolId);

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        SchoolId::parse(raw).map(UserId)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The id this user has as an event's actor and a token's subject: `user-<id>`.
    pub fn principal_id(&self) -> String {
        format!("user-{}", self.as_str())
    }

    /// Parses `user-<id>` back.
    pub fn from_principal_id(raw: &str) -> Option<Self> {
        raw.strip_prefix("user-").and_then(|id| UserId::parse(id).ok())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.as_str())
    }
}

/// A role a person can hold (DESIGN.md §1). Each is held in a [`Scope`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Staff,
    TechnicalStaff,
    Principal,
    Dsl,
    DeputyDsl,
    OnlineSafetyCoordinator,
    Governor,
    Auditor,
    TrustSafeguardingLead,
    TrustAdmin,
}

impl Role {
    /// Every role, for exhaustive tests.
    pub const ALL: [Role; 10] = [
        Role::Staff,
        Role::TechnicalStaff,
        Role::Principal,
        Role::Dsl,
        Role::DeputyDsl,
        Role::OnlineSafetyCoordinator,
        Role::Governor,
        Role::Auditor,
        Role::TrustSafeguardingLead,
        Role::TrustAdmin,
    ];

    /// Whether the role can be held in this kind of scope: the trust's own roles only
    /// trust-wide, a school's roles only in a school; governors sit on either board.
    pub fn allowed_in(self, scope: &Scope) -> bool {
        match self {
            Role::Auditor | Role::TrustSafeguardingLead | Role::TrustAdmin => *scope == Scope::Trust,
            Role::Governor => true,
            Role::Staff
            | Role::TechnicalStaff
            | Role::Principal
            | Role::Dsl
            | Role::DeputyDsl
            | Role::OnlineSafetyCoordinator => matches!(scope, Scope::School(_)),
        }
    }

    /// The stable snake_case name used in tokens and actor records.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::TechnicalStaff => "technical_staff",
            Role::Principal => "principal",
            Role::Dsl => "dsl",
            Role::DeputyDsl => "deputy_dsl",
            Role::OnlineSafetyCoordinator => "online_safety_coordinator",
            Role::Governor => "governor",
            Role::Auditor => "auditor",
            Role::TrustSafeguardingLead => "trust_safeguarding_lead",
            Role::TrustAdmin => "trust_admin",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a role is held: one school, or the whole trust.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Trust,
    School(SchoolId),
}

impl Scope {
    /// The school, for a school scope.
    pub fn school(&self) -> Option<&SchoolId> {
        match self {
            Scope::Trust => None,
            Scope::School(school_id) => Some(school_id),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Trust => f.write_str("trust"),
            Scope::School(school_id) => write!(f, "school {school_id}"),
        }
    }
}

/// What kind of principal a verified token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A person signed in through identity.
    User,
    /// A school's filter, proxy or edge collector: one school, ingest only.
    SchoolSystem,
}

/// Who is calling, as a verified token says. Ids are pseudonymous; names never appear here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `user-<id>` or `system-<id>`.
    pub id: String,
    pub kind: PrincipalKind,
    pub grants: Vec<RoleGrant>,
    /// A user's session.
    pub session_id: Option<String>,
    /// The AUP version accepted when the token was issued.
    pub aup_version: u32,
    /// A school system's school.
    pub school: Option<SchoolId>,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Principal {
    /// The user id of a person.
    pub fn user_id(&self) -> Option<UserId> {
        match self.kind {
            PrincipalKind::User => UserId::from_principal_id(&self.id),
            PrincipalKind::SchoolSystem => None,
        }
    }

    /// Whether the principal holds `role` in `scope` exactly.
    pub fn holds(&self, role: Role, scope: &Scope) -> bool {
        self.grants.iter().any(|grant| grant.role == role && grant.scope == *scope)
    }
}

/// A role in a scope: what a grant gives and a token carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleGrant {
    pub role: Role,
    pub scope: Scope,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip_and_are_unique() {
        for role in Role::ALL {
            assert_eq!(Role::from_name(role.as_str()), Some(role));
        }
        let names: std::collections::HashSet<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Role::ALL.len());
    }

    #[test]
    fn trust_roles_are_trust_wide_and_school_roles_are_in_a_school() {
        let school = Scope::School(SchoolId::parse("oak").unwrap());
        assert!(Role::TrustAdmin.allowed_in(&Scope::Trust));
        assert!(!Role::TrustAdmin.allowed_in(&school));
        assert!(Role::Dsl.allowed_in(&school));
        assert!(!Role::Dsl.allowed_in(&Scope::Trust));
        assert!(Role::Governor.allowed_in(&school) && Role::Governor.allowed_in(&Scope::Trust));
    }

    #[test]
    fn user_principal_ids_round_trip() {
        let id = UserId::parse("j-okafor-7").unwrap();
        assert_eq!(id.principal_id(), "user-j-okafor-7");
        assert_eq!(UserId::from_principal_id("user-j-okafor-7"), Some(id));
        assert_eq!(UserId::from_principal_id("system-x"), None);
    }
}
