//! The vocabulary shared by concerns, cases and alerts: case types, the 4 Cs, risk, agencies,
//! outcomes, and time as the command gives it.

use std::fmt;

/// Seconds since the Unix epoch, as a command carries it (the domain never reads a clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(pub i64);

impl UnixTime {
    pub const fn plus_seconds(self, seconds: i64) -> UnixTime {
        UnixTime(self.0.saturating_add(seconds))
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// One case type per procedure in the policy (see `checklist.rs` for each one's actions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaseType {
    FilteringBreach,
    OnlineSexualViolenceHarassment,
    SharingNudes,
    OnlineAbuseExploitation,
    IndecentImagesOfChildren,
    Cyberbullying,
    OnlineHate,
    RadicalisationExtremism,
    AllegationAgainstStaff,
    LowLevelConcern,
    ConcernAboutParentCarer,
    Commerce,
}

impl CaseType {
    pub const ALL: [CaseType; 12] = [
        CaseType::FilteringBreach,
        CaseType::OnlineSexualViolenceHarassment,
        CaseType::SharingNudes,
        CaseType::OnlineAbuseExploitation,
        CaseType::IndecentImagesOfChildren,
        CaseType::Cyberbullying,
        CaseType::OnlineHate,
        CaseType::RadicalisationExtremism,
        CaseType::AllegationAgainstStaff,
        CaseType::LowLevelConcern,
        CaseType::ConcernAboutParentCarer,
        CaseType::Commerce,
    ];

    /// Cases about a member of staff: only the principal and whom they grant see them.
    pub const fn is_about_staff(self) -> bool {
        matches!(self, CaseType::AllegationAgainstStaff | CaseType::LowLevelConcern)
    }

    /// Who may see the case beyond the people it names.
    pub const fn access_policy(self) -> AccessPolicy {
        if self.is_about_staff() { AccessPolicy::PrincipalAndGrantees } else { AccessPolicy::SafeguardingTeam }
    }

    /// Whether the case concerns imagery that may need viewing or deleting.
    pub const fn involves_imagery(self) -> bool {
        matches!(self, CaseType::SharingNudes | CaseType::IndecentImagesOfChildren)
    }
}

/// The 4 Cs of online risk (KCSIE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FourCs {
    Content,
    Contact,
    Conduct,
    Commerce,
}

/// The DSL's judgement of the risk to a child, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    /// Immediate risk of harm: police 999.
    Critical,
}

/// Whom a concern is about; it decides who triages it (policy 10.1–10.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConcernAbout {
    Learner,
    /// Goes to the principal (allegations against staff, 10.2).
    Colleague,
    ParentCarer,
}

/// Where a checklist action stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionStatus {
    Done,
    /// Considered and judged not to apply; the reason is recorded with it.
    NotApplicable,
    Outstanding,
}

/// Where a referral or request for advice went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Agency {
    Csws,
    Police101,
    /// Immediate danger or risk of harm.
    Police999,
    Lado,
    Ceop,
    Iwf,
    PreventChannel,
    EducationSafeguardingService,
    Other,
}

impl Agency {
    /// A referral made because someone is at immediate risk.
    pub const fn is_immediate_risk(self) -> bool {
        matches!(self, Agency::Police999)
    }
}

/// What an agency decided about a referral.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReferralOutcome {
    AdviceGiven,
    AcceptedForAssessment,
    InvestigationOpened,
    ReferredOn,
    ContentRemoved,
    NoFurtherAction,
    Other,
}

/// How an allegation against staff was concluded (KCSIE definitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllegationOutcome {
    Substantiated,
    Unsubstantiated,
    Unfounded,
    False,
    Malicious,
}

/// How parents/carers were told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContactMethod {
    InPerson,
    Phone,
    Letter,
    Email,
}

/// Who may see a case beyond the people it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessPolicy {
    /// The school's DSL and deputies, the principal, the trust's safeguarding lead, grantees.
    SafeguardingTeam,
    /// Only the school's principal and users they grant.
    PrincipalAndGrantees,
}

/// Longest free text a command may carry (what happened, reasons, summaries), in bytes.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Longest short field (references, keys, agency names), in bytes.
pub const MAX_SHORT_BYTES: usize = 200;
/// Most ids of one kind (subjects, staff, concerns, people present) a command may name.
pub const MAX_IDS: usize = 100;
