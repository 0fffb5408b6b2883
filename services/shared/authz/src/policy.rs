//! The one policy function: (principal, action, resource) → allow, or deny with the reason.
//!
//! ```text
//!  school system ─▶ only SubmitBreaches and RecordDeviceLeases, only for its own school
//!  person ─▶ AUP in force accepted? (unless the action is exempt)
//!         ─▶ is it about them? deny │ does it change their own access? deny
//!         ─▶ theirs (own account, a concern they raised)? allow for owner actions
//!         ─▶ a grant in ROLE_TABLE for the action: trust-wide, or in the resource's school
//! ```
//! Deny by default: an action missing from [`ROLE_TABLE`] is allowed to nobody, and a
//! school-scoped grant never reaches another school or the trust as a whole.

use crate::{Action, Principal, PrincipalKind, Resource, Role, Scope};

/// Where a grant must be held for a table entry to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// A grant in the school the resource belongs to.
    School,
    /// A trust-wide grant: reaches every school and the trust itself.
    Trust,
}

use Reach::{School as S, Trust as T};
use Role::*;

/// Everyone who works in a school (not governors): any of them may report over-blocking,
/// raise a concern or seize a device.
const SCHOOL_STAFF: &[(Role, Reach)] =
    &[(Staff, S), (TechnicalStaff, S), (OnlineSafetyCoordinator, S), (Dsl, S), (DeputyDsl, S), (Principal, S)];

/// The school's leadership team as Haven knows it: who may search a device (DfE searching,
/// screening and confiscation; policy 9.3).
pub const LEADERSHIP: &[(Role, Reach)] = &[(Principal, S), (Dsl, S)];

/// A school's safeguarding team: who triages concerns (policy 10.1–10.3).
const SAFEGUARDING_TEAM: &[(Role, Reach)] = &[(Dsl, S), (DeputyDsl, S), (Principal, S)];

/// The safeguarding team and the trust's safeguarding lead: who works cases and alerts.
const SAFEGUARDING_TEAM_AND_LEAD: &[(Role, Reach)] =
    &[(Dsl, S), (DeputyDsl, S), (Principal, S), (TrustSafeguardingLead, T)];

/// Who may do what: for each action, the roles and where they must be held. Actions any
/// signed-in person may do for themselves are in [`SELF_SERVICE`]; the rest are denied.
pub const ROLE_TABLE: &[(Action, &[(Role, Reach)])] = &[
    (Action::EstablishTrust, &[(TrustAdmin, T)]),
    (Action::RegisterSchool, &[(TrustAdmin, T)]),
    (Action::ChangePupilNumbers, &[(TrustAdmin, T), (Principal, S)]),
    (Action::RegisterUser, &[(TrustAdmin, T), (Principal, S)]),
    (Action::SetPassword, &[(TrustAdmin, T), (Principal, S)]),
    (Action::GrantRole, &[(TrustAdmin, T), (Principal, S)]),
    (Action::RevokeRole, &[(TrustAdmin, T), (Principal, S)]),
    (Action::DisableUser, &[(TrustAdmin, T), (Principal, S)]),
    (Action::GetUser, &[(TrustAdmin, T), (Auditor, T), (Principal, S)]),
    (Action::ListAccessRegister, &[(TrustAdmin, T), (Auditor, T), (Principal, S), (Dsl, S)]),
    (Action::PublishAup, &[(TrustAdmin, T)]),
    (Action::RotateSigningKeys, &[(TrustAdmin, T)]),
    (Action::ManageSchoolSystems, &[(TrustAdmin, T), (Principal, S), (TechnicalStaff, S)]),
    (Action::WriteSubjects, &[(Dsl, S), (DeputyDsl, S), (Principal, S), (TrustSafeguardingLead, T)]),
    (Action::ReadSubjects, &[(Dsl, S), (DeputyDsl, S), (Principal, S), (TrustSafeguardingLead, T)]),
    // Network logins map a filter's users to learners (ADR 0025): who runs the school's
    // network (technical staff), its principal, and the trust admin who runs the platform.
    (Action::SetNetworkLogins, &[(TechnicalStaff, S), (Principal, S), (TrustAdmin, T)]),
    (Action::ParseLines, &[(TechnicalStaff, S)]),
    // Filtering governance (policy 7.3.1, ADR 0022): technical staff ask for a change with its
    // risk assessment and make it once the leadership team (principal, DSL) approved it; any
    // member of staff reports over-blocking (the unblock request); the leadership records the
    // annual review held with the governor.
    (Action::RequestFilteringChange, &[(TechnicalStaff, S)]),
    (Action::DecideFilteringChange, LEADERSHIP),
    (Action::ApplyFilteringChange, &[(TechnicalStaff, S)]),
    (
        Action::ListFilteringChanges,
        &[
            (TechnicalStaff, S),
            (OnlineSafetyCoordinator, S),
            (Dsl, S),
            (DeputyDsl, S),
            (Principal, S),
            (TrustSafeguardingLead, T),
            (Auditor, T),
        ],
    ),
    (Action::RecordFilterCheck, &[(TechnicalStaff, S), (OnlineSafetyCoordinator, S)]),
    (Action::ReportOverblocking, SCHOOL_STAFF),
    (Action::RecordFilteringReview, LEADERSHIP),
    // Refusal counts and positions, never line content: the school's technical staff and
    // online-safety coordinator, and the trust admin who runs the platform.
    (Action::ListQuarantine, &[(TechnicalStaff, S), (OnlineSafetyCoordinator, S), (TrustAdmin, T)]),
    // Leases of the school's network: its systems (above) and, for a back-fill, its technical staff.
    (Action::RecordDeviceLeases, &[(TechnicalStaff, S)]),
    // Alert rules (ADR 0028) decide what a DSL is told: the trust's safeguarding lead sets the
    // trust's and any school's; a school's DSL or principal only their own school's (a school
    // grant never reaches the trust). Read by whoever answers alerts, and the auditor.
    (Action::SetAlertRules, &[(Dsl, S), (Principal, S), (TrustSafeguardingLead, T)]),
    (
        Action::ReadAlertRules,
        &[
            (Dsl, S),
            (DeputyDsl, S),
            (Principal, S),
            (OnlineSafetyCoordinator, S),
            (TrustSafeguardingLead, T),
            (Auditor, T),
        ],
    ),
    // Custody: any member of staff confiscates and seals; the leadership team (principal,
    // DSL) searches; the DSL or principal decides holds, handovers and returns.
    (Action::SeizeDevice, SCHOOL_STAFF),
    (Action::RecordCustodyStep, &[(Staff, S), (OnlineSafetyCoordinator, S), (Dsl, S), (DeputyDsl, S), (Principal, S)]),
    (Action::SearchDevice, LEADERSHIP),
    (Action::HoldDevice, &[(Dsl, S), (DeputyDsl, S), (Principal, S)]),
    (Action::HandDeviceToPolice, &[(Dsl, S), (Principal, S)]),
    (Action::ReturnDevice, &[(Dsl, S), (Principal, S)]),
    (Action::ReadCustody, &[(Dsl, S), (DeputyDsl, S), (Principal, S), (TrustSafeguardingLead, T)]),
    (Action::ExportCustodyTrail, &[(Dsl, S), (Principal, S), (TrustSafeguardingLead, T)]),
    (Action::ManageSchoolDevices, &[(TechnicalStaff, S), (Principal, S)]),
    (Action::ListAllocations, &[(TechnicalStaff, S), (Principal, S), (TrustAdmin, T)]),
    // Incidents: any member of staff raises a concern (and sees the ones they raised, as their
    // owner); the school's DSL, deputies and principal triage and work cases; the trust's
    // safeguarding lead works cases across the trust and is the last step of escalation.
    // Technical staff and governors see no case. Allegations against staff and "nobody about
    // themselves" are checked on the case by incidents (its access rules), on top of these.
    (Action::RaiseConcern, SCHOOL_STAFF),
    (Action::TriageConcern, SAFEGUARDING_TEAM),
    (Action::ManageCase, SAFEGUARDING_TEAM_AND_LEAD),
    (Action::ListCases, SAFEGUARDING_TEAM_AND_LEAD),
    (Action::AcknowledgeAlert, SAFEGUARDING_TEAM_AND_LEAD),
    (
        Action::ReadBreaches,
        &[
            (TechnicalStaff, S),
            (OnlineSafetyCoordinator, S),
            (Dsl, S),
            (DeputyDsl, S),
            (Principal, S),
            (TrustSafeguardingLead, T),
        ],
    ),
    (Action::ReadCase, &[(Dsl, S), (DeputyDsl, S), (Principal, S), (TrustSafeguardingLead, T)]),
    (
        Action::ReadAggregates,
        &[
            (Governor, S),
            (Governor, T),
            (Principal, S),
            (Dsl, S),
            (TrustSafeguardingLead, T),
            (TrustAdmin, T),
            (Auditor, T),
        ],
    ),
    (Action::ReadAuditTrail, &[(Auditor, T)]),
    (Action::ManageProjections, &[(TrustSafeguardingLead, T), (TrustAdmin, T)]),
];

/// What every signed-in person may do for themselves.
pub const SELF_SERVICE: &[Action] = &[Action::GetAup, Action::AcceptAup, Action::WhoAmI, Action::SignOut];

/// Actions a person may do to what is theirs (the resource's owner): their own account and
/// password, a concern they raised.
pub const OWNER_ACTIONS: &[Action] = &[Action::GetUser, Action::SetOwnPassword, Action::ReadCase];

/// Roles only a trust admin may grant or revoke.
pub const TRUST_GRANTED_ROLES: &[Role] = &[Principal, Auditor, TrustSafeguardingLead, TrustAdmin];

/// Why a request is refused. Carries no personal data: it is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// School systems may only submit their own school's ingest events.
    SchoolSystemLimit,
    /// The AUP in force has not been accepted.
    AupNotAccepted,
    /// Nobody sees what is about them (an allegation against them).
    AboutThemselves,
    /// Nobody changes their own access.
    OwnAccess,
    /// Only a trust admin grants or revokes this role.
    TrustAdminOnly,
    /// No grant of the principal allows this action here.
    NoGrant,
}

impl DenyReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            DenyReason::SchoolSystemLimit => "school systems may only submit their own school's events",
            DenyReason::AupNotAccepted => "the acceptable use policy in force has not been accepted",
            DenyReason::AboutThemselves => "nobody may see what is about themselves",
            DenyReason::OwnAccess => "nobody may change their own access",
            DenyReason::TrustAdminOnly => "only a trust admin grants or revokes this role",
            DenyReason::NoGrant => "no role held allows this here",
        }
    }

    /// A short, stable name (a metric label).
    pub const fn code(self) -> &'static str {
        match self {
            DenyReason::SchoolSystemLimit => "school_system_limit",
            DenyReason::AupNotAccepted => "aup_not_accepted",
            DenyReason::AboutThemselves => "about_themselves",
            DenyReason::OwnAccess => "own_access",
            DenyReason::TrustAdminOnly => "trust_admin_only",
            DenyReason::NoGrant => "no_grant",
        }
    }
}

/// The answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenyReason),
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// The roles and reaches allowed an action (empty: nobody).
pub fn allowed(action: Action) -> &'static [(Role, Reach)] {
    ROLE_TABLE.iter().find(|(entry, _)| *entry == action).map_or(&[], |(_, allowed)| *allowed)
}

/// Decides whether `principal` may do `action` to `resource`. `aup_current` is whether the
/// principal has accepted the AUP in force (the caller knows the current version).
pub fn authorize(principal: &Principal, aup_current: bool, action: Action, resource: &Resource) -> Decision {
    use Decision::{Allow, Deny};
    if principal.kind == PrincipalKind::SchoolSystem {
        let own_school = principal.school.is_some() && principal.school == resource.school;
        return if action.for_school_systems() && own_school { Allow } else { Deny(DenyReason::SchoolSystemLimit) };
    }
    if !aup_current && !action.aup_exempt() {
        return Deny(DenyReason::AupNotAccepted);
    }
    if resource.about.as_deref() == Some(principal.id.as_str()) {
        return Deny(DenyReason::AboutThemselves);
    }
    let own = resource.owner.as_deref() == Some(principal.id.as_str());
    if own && action.changes_access() {
        return Deny(DenyReason::OwnAccess);
    }
    if SELF_SERVICE.contains(&action) || (own && OWNER_ACTIONS.contains(&action)) {
        return Allow;
    }
    if matches!(action, Action::GrantRole | Action::RevokeRole)
        && resource.role.is_some_and(|role| TRUST_GRANTED_ROLES.contains(&role))
        && !principal.holds(TrustAdmin, &Scope::Trust)
    {
        return Deny(DenyReason::TrustAdminOnly);
    }
    let permitted = allowed(action).iter().any(|(role, reach)| {
        principal.grants.iter().any(|grant| {
            grant.role == *role
                && match (reach, &grant.scope) {
                    (Reach::Trust, Scope::Trust) => true,
                    (Reach::School, Scope::School(school)) => resource.school.as_ref() == Some(school),
                    _ => false,
                }
        })
    });
    if permitted { Allow } else { Deny(DenyReason::NoGrant) }
}
