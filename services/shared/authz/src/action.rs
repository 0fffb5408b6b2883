//! What a principal asks to do ([`Action`]) and to what ([`Resource`]).

use haven_kernel::SchoolId;

use crate::Role;

/// Everything that can be authorised. Each gRPC method maps to one (`rules.rs`); an action
/// with no entry in the policy table (`policy.rs`) is denied to everyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    // Identity: the trust and its schools.
    EstablishTrust,
    RegisterSchool,
    ChangePupilNumbers,
    // Identity: people and their access.
    RegisterUser,
    /// An admin setting another person's (first) password.
    SetPassword,
    /// A person changing their own password (with the current one).
    SetOwnPassword,
    GrantRole,
    RevokeRole,
    DisableUser,
    GetUser,
    ListAccessRegister,
    PublishAup,
    /// Rotate the token signing key.
    RotateSigningKeys,
    // Identity: what any signed-in person may do about themselves, AUP or not.
    GetAup,
    AcceptAup,
    WhoAmI,
    SignOut,
    // Identity: school systems.
    ManageSchoolSystems,
    // Identity: the protected directory of learners.
    WriteSubjects,
    ReadSubjects,
    /// Replace the network logins a school's filter reports for a learner (ADR 0025).
    SetNetworkLogins,
    // Ingest.
    SubmitBreaches,
    ParseLines,
    RequestFilteringChange,
    DecideFilteringChange,
    ApplyFilteringChange,
    ListFilteringChanges,
    RecordFilterCheck,
    ReportOverblocking,
    /// Record the annual filtering and monitoring review held with the governor.
    RecordFilteringReview,
    ListQuarantine,
    /// Record DHCP or device leases of a school's network (its systems and technical staff).
    RecordDeviceLeases,
    /// Replace the alert rules of the trust or of one school (ADR 0028).
    SetAlertRules,
    /// The alert rules in force and every change to them.
    ReadAlertRules,
    // Custody (issue 9): the chain of custody of confiscated devices and the device register.
    /// Confiscate a device (any member of staff, policy 9.3).
    SeizeDevice,
    /// Seal, store, check a seal, request or record a content deletion.
    RecordCustodyStep,
    /// Search a device: the leadership team.
    SearchDevice,
    /// Place or lift a quarantine or police hold.
    HoldDevice,
    HandDeviceToPolice,
    ReturnDevice,
    /// A custody record and its trail.
    ReadCustody,
    /// The signed trail for the police or a court (itself recorded).
    ExportCustodyTrail,
    /// Register, allocate, take back and wipe school-owned devices.
    ManageSchoolDevices,
    ListAllocations,
    // Incidents (issue 8): concerns, triage, cases, alerts. Need to know (who a case is about,
    // allegations against staff) is checked on the record itself by incidents.
    /// Raise a concern (any member of a school's staff, policy 10.1).
    RaiseConcern,
    /// Triage a concern: open a case, merge, link, no further action, false positive.
    TriageConcern,
    /// Open a case and work it: actions, referrals, parents, imagery records, links, risk,
    /// escalation, grants, closing and reopening.
    ManageCase,
    /// List case summaries (no free text): the safeguarding team only.
    ListCases,
    /// Acknowledge a safeguarding alert, stopping its escalation.
    AcknowledgeAlert,
    // Need-to-know reads the later services (incidents, reporting) authorise with.
    /// Breaches of a school's filter (technical staff see these, not case details).
    ReadBreaches,
    /// A case or concern: DSLs and leadership; staff only the concerns they raised.
    ReadCase,
    /// Aggregated figures with no personal data (governors see only these).
    ReadAggregates,
    /// History as of any time, every action of an actor, hash-chain verification.
    ReadAuditTrail,
    /// Rebuild reporting's projections from the log and list their progress.
    ManageProjections,
}

impl Action {
    /// Every action, for exhaustive tests.
    pub const ALL: [Action; 54] = [
        Action::EstablishTrust,
        Action::RegisterSchool,
        Action::ChangePupilNumbers,
        Action::RegisterUser,
        Action::SetPassword,
        Action::SetOwnPassword,
        Action::GrantRole,
        Action::RevokeRole,
        Action::DisableUser,
        Action::GetUser,
        Action::ListAccessRegister,
        Action::PublishAup,
        Action::GetAup,
        Action::AcceptAup,
        Action::WhoAmI,
        Action::SignOut,
        Action::RotateSigningKeys,
        Action::ManageSchoolSystems,
        Action::WriteSubjects,
        Action::ReadSubjects,
        Action::SetNetworkLogins,
        Action::SubmitBreaches,
        Action::ParseLines,
        Action::RequestFilteringChange,
        Action::DecideFilteringChange,
        Action::ApplyFilteringChange,
        Action::ListFilteringChanges,
        Action::RecordFilterCheck,
        Action::ReportOverblocking,
        Action::RecordFilteringReview,
        Action::ListQuarantine,
        Action::RecordDeviceLeases,
        Action::SetAlertRules,
        Action::ReadAlertRules,
        Action::SeizeDevice,
        Action::RecordCustodyStep,
        Action::SearchDevice,
        Action::HoldDevice,
        Action::HandDeviceToPolice,
        Action::ReturnDevice,
        Action::ReadCustody,
        Action::ExportCustodyTrail,
        Action::ManageSchoolDevices,
        Action::ListAllocations,
        Action::RaiseConcern,
        Action::TriageConcern,
        Action::ManageCase,
        Action::ListCases,
        Action::AcknowledgeAlert,
        Action::ReadBreaches,
        Action::ReadCase,
        Action::ReadAggregates,
        Action::ReadAuditTrail,
        Action::ManageProjections,
    ];

    /// Allowed before the AUP in force is accepted: reading and accepting it, knowing who one
    /// is, leaving, and (for a trust admin) publishing the first one.
    pub fn aup_exempt(self) -> bool {
        matches!(self, Action::GetAup | Action::AcceptAup | Action::WhoAmI | Action::SignOut | Action::PublishAup)
    }

    /// What a school system (a filter, proxy or edge collector) may do, for its own school only:
    /// submit its lines and the leases of its network.
    pub fn for_school_systems(self) -> bool {
        matches!(self, Action::SubmitBreaches | Action::RecordDeviceLeases)
    }

    /// Changes to someone's access, which nobody may make to their own account.
    pub fn changes_access(self) -> bool {
        matches!(self, Action::SetPassword | Action::GrantRole | Action::RevokeRole | Action::DisableUser)
    }
}

/// What an action is done to: where it belongs and whose it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    /// The school it belongs to; `None` for the trust as a whole.
    pub school: Option<SchoolId>,
    /// The principal it belongs to: the account itself, the person who raised a concern.
    pub owner: Option<String>,
    /// The principal it is about, who must never see it (an allegation against them).
    pub about: Option<String>,
    /// For grants and revocations: the role being given or taken.
    pub role: Option<Role>,
}

impl Resource {
    /// Something of the trust as a whole.
    pub fn trust() -> Resource {
        Resource::default()
    }

    /// Something of one school.
    pub fn school(school: SchoolId) -> Resource {
        Resource { school: Some(school), ..Resource::default() }
    }

    /// In a school, or trust-wide when `None`.
    pub fn in_scope(school: Option<SchoolId>) -> Resource {
        Resource { school, ..Resource::default() }
    }

    pub fn owned_by(self, principal_id: impl Into<String>) -> Resource {
        Resource { owner: Some(principal_id.into()), ..self }
    }

    pub fn about(self, principal_id: impl Into<String>) -> Resource {
        Resource { about: Some(principal_id.into()), ..self }
    }

    pub fn granting(self, role: Role) -> Resource {
        Resource { role: Some(role), ..self }
    }
}
