//! Every gRPC method Haven serves or declares, and the rule the authorisation layer applies
//! before the handler runs. A method missing from [`METHOD_RULES`] is denied (and a test over
//! the compiled descriptor set fails until it has a rule).

use crate::Action;

/// What the layer does with a call before its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No token needed: sign-in, token exchange, public keys, the public school directory,
    /// health and reflection.
    Public,
    /// A valid token whose principal could do this action somewhere; the handler then checks
    /// the action against the resource it names.
    Signed(Action),
    /// Node-to-node and service-to-log traffic, kept inside the cluster by binding and network
    /// policy, not by tokens: passed only by a layer built with `allow_internal`.
    Internal,
    /// Declared in the contracts but not served yet: denied to everyone.
    NotServed,
}

use Rule::{Internal, NotServed, Public, Signed};

/// Every method, by its gRPC path.
pub const METHOD_RULES: &[(&str, Rule)] = &[
    // haven.v1.Identity
    ("/haven.v1.Identity/EstablishTrust", Signed(Action::EstablishTrust)),
    ("/haven.v1.Identity/RegisterSchool", Signed(Action::RegisterSchool)),
    ("/haven.v1.Identity/ChangePupilNumbers", Signed(Action::ChangePupilNumbers)),
    ("/haven.v1.Identity/GetSchool", Public),
    ("/haven.v1.Identity/ListSchools", Public),
    ("/haven.v1.Identity/RegisterUser", Signed(Action::RegisterUser)),
    ("/haven.v1.Identity/SetPassword", Signed(Action::SetOwnPassword)),
    ("/haven.v1.Identity/GrantRole", Signed(Action::GrantRole)),
    ("/haven.v1.Identity/RevokeRole", Signed(Action::RevokeRole)),
    ("/haven.v1.Identity/DisableUser", Signed(Action::DisableUser)),
    ("/haven.v1.Identity/GetUser", Signed(Action::GetUser)),
    ("/haven.v1.Identity/ListAccessRegister", Signed(Action::ListAccessRegister)),
    ("/haven.v1.Identity/PublishAup", Signed(Action::PublishAup)),
    ("/haven.v1.Identity/GetAup", Signed(Action::GetAup)),
    ("/haven.v1.Identity/AcceptAup", Signed(Action::AcceptAup)),
    ("/haven.v1.Identity/SignIn", Public),
    ("/haven.v1.Identity/RefreshToken", Public),
    ("/haven.v1.Identity/SignOut", Signed(Action::SignOut)),
    ("/haven.v1.Identity/WhoAmI", Signed(Action::WhoAmI)),
    ("/haven.v1.Identity/GetJwks", Public),
    ("/haven.v1.Identity/RotateSigningKey", Signed(Action::RotateSigningKeys)),
    ("/haven.v1.Identity/IssueSchoolSystemCredential", Signed(Action::ManageSchoolSystems)),
    ("/haven.v1.Identity/RevokeSchoolSystemCredential", Signed(Action::ManageSchoolSystems)),
    ("/haven.v1.Identity/ExchangeClientCredentials", Public),
    ("/haven.v1.Identity/RegisterSubject", Signed(Action::WriteSubjects)),
    ("/haven.v1.Identity/ChangeSubjectFlags", Signed(Action::WriteSubjects)),
    ("/haven.v1.Identity/GetSubject", Signed(Action::ReadSubjects)),
    ("/haven.v1.Identity/ListSubjects", Signed(Action::ReadSubjects)),
    ("/haven.v1.Identity/ImportRoster", Signed(Action::WriteSubjects)),
    ("/haven.v1.Identity/SetSubjectNetworkLogins", Signed(Action::SetNetworkLogins)),
    // haven.v1.Ingest
    ("/haven.v1.Ingest/SubmitBreaches", Signed(Action::SubmitBreaches)),
    ("/haven.v1.Ingest/ParseLines", Signed(Action::ParseLines)),
    ("/haven.v1.Ingest/RequestFilteringChange", Signed(Action::RequestFilteringChange)),
    ("/haven.v1.Ingest/ApproveFilteringChange", Signed(Action::DecideFilteringChange)),
    ("/haven.v1.Ingest/RejectFilteringChange", Signed(Action::DecideFilteringChange)),
    ("/haven.v1.Ingest/ApplyFilteringChange", Signed(Action::ApplyFilteringChange)),
    ("/haven.v1.Ingest/ListFilteringChanges", Signed(Action::ListFilteringChanges)),
    ("/haven.v1.Ingest/RecordFilterCheck", Signed(Action::RecordFilterCheck)),
    ("/haven.v1.Ingest/ReportOverblocking", Signed(Action::ReportOverblocking)),
    ("/haven.v1.Ingest/RecordFilteringReview", Signed(Action::RecordFilteringReview)),
    ("/haven.v1.Ingest/GetFilteringReport", Signed(Action::ListFilteringChanges)),
    ("/haven.v1.Ingest/ListQuarantine", Signed(Action::ListQuarantine)),
    ("/haven.v1.Ingest/RecordDeviceLeases", Signed(Action::RecordDeviceLeases)),
    ("/haven.v1.Ingest/GetAlertRules", Signed(Action::ReadAlertRules)),
    ("/haven.v1.Ingest/SetAlertRules", Signed(Action::SetAlertRules)),
    // haven.v1.Custody
    ("/haven.v1.Custody/SeizeDevice", Signed(Action::SeizeDevice)),
    ("/haven.v1.Custody/SealDevice", Signed(Action::RecordCustodyStep)),
    ("/haven.v1.Custody/StoreDevice", Signed(Action::RecordCustodyStep)),
    ("/haven.v1.Custody/CheckSeal", Signed(Action::RecordCustodyStep)),
    ("/haven.v1.Custody/SearchDevice", Signed(Action::SearchDevice)),
    ("/haven.v1.Custody/QuarantineDevice", Signed(Action::HoldDevice)),
    ("/haven.v1.Custody/LiftHold", Signed(Action::HoldDevice)),
    ("/haven.v1.Custody/HandToPolice", Signed(Action::HandDeviceToPolice)),
    ("/haven.v1.Custody/ReturnDevice", Signed(Action::ReturnDevice)),
    ("/haven.v1.Custody/RequestContentDeletion", Signed(Action::RecordCustodyStep)),
    ("/haven.v1.Custody/RecordContentDeletion", Signed(Action::RecordCustodyStep)),
    ("/haven.v1.Custody/GetCustodyTrail", Signed(Action::ReadCustody)),
    ("/haven.v1.Custody/ExportCustodyTrail", Signed(Action::ExportCustodyTrail)),
    ("/haven.v1.Custody/RegisterSchoolDevice", Signed(Action::ManageSchoolDevices)),
    ("/haven.v1.Custody/AllocateDevice", Signed(Action::ManageSchoolDevices)),
    ("/haven.v1.Custody/ReturnAllocatedDevice", Signed(Action::ManageSchoolDevices)),
    ("/haven.v1.Custody/WipeDevice", Signed(Action::ManageSchoolDevices)),
    ("/haven.v1.Custody/ListAllocations", Signed(Action::ListAllocations)),
    // haven.v1.Incidents: every case method names its case; incidents checks the action against
    // the case's school and need to know (ADR 0010, ADR 0017). GetCase and ListConcerns are
    // ReadCase, an owner action: staff reach them for the concerns they raised.
    ("/haven.v1.Incidents/RaiseConcern", Signed(Action::RaiseConcern)),
    ("/haven.v1.Incidents/TriageConcern", Signed(Action::TriageConcern)),
    ("/haven.v1.Incidents/OpenCase", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/RecordAction", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/MakeReferral", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/RecordReferralOutcome", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/RecordParentsInformed", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/RecordImageryViewed", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/RecordMaterialDeletion", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/LinkCases", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/ChangeCaseRisk", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/EscalateCase", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/GrantCaseAccess", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/RevokeCaseAccess", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/CloseCase", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/ReopenCase", Signed(Action::ManageCase)),
    ("/haven.v1.Incidents/GetCase", Signed(Action::ReadCase)),
    ("/haven.v1.Incidents/ListCases", Signed(Action::ListCases)),
    ("/haven.v1.Incidents/ListConcerns", Signed(Action::ReadCase)),
    ("/haven.v1.Incidents/AcknowledgeAlert", Signed(Action::AcknowledgeAlert)),
    ("/haven.v1.Incidents/GetLearnerChronology", Signed(Action::ListCases)),
    // haven.v1.Reporting (issue 10): figures need ReadAggregates (a governor's only right),
    // anything naming a case ReadCase, the audit views ReadAuditTrail; each handler then checks
    // every school asked for (none named: the trust as a whole); projections are operated by the
    // trust safeguarding lead and trust admin (ManageProjections).
    ("/haven.v1.Reporting/GetTrustDashboard", Signed(Action::ReadAggregates)),
    ("/haven.v1.Reporting/GetCrossSchoolTrends", Signed(Action::ReadAggregates)),
    ("/haven.v1.Reporting/GetGovernorsReport", Signed(Action::ReadAggregates)),
    ("/haven.v1.Reporting/GetLadoRegister", Signed(Action::ReadCase)),
    ("/haven.v1.Reporting/GetPoliceRegister", Signed(Action::ReadCase)),
    ("/haven.v1.Reporting/GetStreamHistory", Signed(Action::ReadAuditTrail)),
    ("/haven.v1.Reporting/ListActorActions", Signed(Action::ReadAuditTrail)),
    ("/haven.v1.Reporting/ListRecordAccesses", Signed(Action::ReadAuditTrail)),
    ("/haven.v1.Reporting/VerifyChain", Signed(Action::ReadAuditTrail)),
    ("/haven.v1.Reporting/RebuildProjection", Signed(Action::ManageProjections)),
    ("/haven.v1.Reporting/ListProjections", Signed(Action::ManageProjections)),
    // haven.v1.EventLog, haven.v1.Raft, haven.v1.Cluster: inside the cluster only.
    ("/haven.v1.EventLog/Append", Internal),
    ("/haven.v1.EventLog/AppendBatch", Internal),
    ("/haven.v1.EventLog/ReadStream", Internal),
    ("/haven.v1.EventLog/ReadAll", Internal),
    ("/haven.v1.EventLog/Subscribe", Internal),
    ("/haven.v1.EventLog/GetHead", Internal),
    ("/haven.v1.Raft/AppendEntries", Internal),
    ("/haven.v1.Raft/Vote", Internal),
    ("/haven.v1.Raft/SnapshotHead", Internal),
    ("/haven.v1.Raft/InstallSnapshot", Internal),
    ("/haven.v1.Raft/Forward", Internal),
    ("/haven.v1.Raft/ReadIndex", Internal),
    ("/haven.v1.Cluster/Init", Internal),
    ("/haven.v1.Cluster/Backup", Internal),
    ("/haven.v1.Cluster/AddLearner", Internal),
    ("/haven.v1.Cluster/Promote", Internal),
    ("/haven.v1.Cluster/Remove", Internal),
    ("/haven.v1.Cluster/Status", Internal),
    // Health and reflection.
    ("/grpc.health.v1.Health/Check", Public),
    ("/grpc.health.v1.Health/Watch", Public),
    ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Public),
];

/// Services whose methods are declared but not served yet: every method denied until the
/// service arrives with its rules (every service is served today).
pub const NOT_SERVED_SERVICES: &[&str] = &[];

/// The rule for a gRPC path; `None` for a method nobody wrote a rule for (denied).
pub fn rule_for(path: &str) -> Option<Rule> {
    if let Some((_, rule)) = METHOD_RULES.iter().find(|(method, _)| *method == path) {
        return Some(*rule);
    }
    let service = path.strip_prefix('/').and_then(|rest| rest.split_once('/')).map(|(service, _)| service)?;
    NOT_SERVED_SERVICES.contains(&service).then_some(NotServed)
}
