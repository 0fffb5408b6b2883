//! The event types reporting reads (other services' contracts) and the ones it writes.

// Written by reporting, about its own use.
pub const STREAM_HISTORY_VIEWED: &str = "reporting.StreamHistoryViewed";
pub const REGISTER_VIEWED: &str = "reporting.RegisterViewed";
pub const CHAIN_VERIFIED: &str = "reporting.ChainVerified";
pub const PROJECTION_REBUILD_REQUESTED: &str = "reporting.ProjectionRebuildRequested";
pub const AUDIT_PACK_EXPORTED: &str = "reporting.AuditPackExported";

// identity
pub const SCHOOL_REGISTERED: &str = "identity.SchoolRegistered";
pub const SCHOOL_PUPIL_NUMBERS_CHANGED: &str = "identity.SchoolPupilNumbersChanged";
pub const SUBJECT_RECORD_VIEWED: &str = "identity.SubjectRecordViewed";

// ingest
pub const BREACH_OBSERVED: &str = "ingest.BreachObserved";
pub const BREACH_REPEATS_COLLAPSED: &str = "ingest.BreachRepeatsCollapsed";
pub const ALERT_RAISED: &str = "ingest.SafeguardingAlertRaised";
pub const ALERT_ACKNOWLEDGED: &str = "incidents.SafeguardingAlertAcknowledged";
pub const FILTERING_CHANGE_APPLIED: &str = "ingest.FilteringChangeApplied";
pub const FILTER_CHECK_RECORDED: &str = "ingest.FilterCheckRecorded";
pub const OVERBLOCKING_REPORTED: &str = "ingest.OverblockingReported";

// incidents
pub const CONCERN_RAISED: &str = "incidents.ConcernRaised";
pub const CASE_OPENED: &str = "incidents.CaseOpened";
pub const CASE_RISK_CHANGED: &str = "incidents.CaseRiskChanged";
pub const CASE_ACTION_RECORDED: &str = "incidents.CaseActionRecorded";
pub const REFERRAL_MADE: &str = "incidents.ReferralMade";
pub const REFERRAL_OUTCOME_RECORDED: &str = "incidents.ReferralOutcomeRecorded";
pub const CASE_CLOSED: &str = "incidents.CaseClosed";
pub const CASE_ACCESSED: &str = "incidents.CaseAccessed";

// custody
pub const DEVICE_SEIZED: &str = "custody.DeviceSeized";
pub const DEVICE_QUARANTINED: &str = "custody.DeviceQuarantined";
pub const DEVICE_HOLD_LIFTED: &str = "custody.DeviceHoldLifted";
pub const DEVICE_HANDED_TO_POLICE: &str = "custody.DeviceHandedToPolice";
pub const DEVICE_RETURNED: &str = "custody.DeviceReturned";
pub const CUSTODY_TRAIL_EXPORTED: &str = "custody.CustodyTrailExported";
