//! The pure domain: concerns, cases, alerts, the checklist table and need to know. No clock,
//! no random ids, no I/O: time, ids and looked-up facts (is the caller the principal?) arrive
//! in the commands.

pub mod access;
pub mod alert;
pub mod case;
pub mod checklist;
pub mod concern;
pub mod ids;
pub mod types;
mod validate;
pub mod working_days;

pub use access::{AccessRefusal, Reader, may_see_case, may_see_concern, may_triage};
pub use alert::{
    Acknowledgement, Alert, AlertCommand, AlertDecider, AlertError, AlertEvent, EscalationPolicy, EscalationStep,
    SchoolHours, Severity, escalations_due,
};
pub use case::{
    Case, CaseChange, CaseCommand, CaseDecider, CaseError, CaseEvent, CaseRequest, CaseStatus, ChecklistItem, Closure,
    Deletion, Escalation, OpenCase, ParentsDecision, RecordedOutcome, Referral, ReferralDeclined, ViewingRecord,
};
pub use checklist::{CHECKLIST, CHECKLIST_VERSION, ChecklistRow};
pub use concern::{
    Concern, ConcernCommand, ConcernDecider, ConcernDetails, ConcernError, ConcernEvent, Triage, TriageDecision,
};
pub use ids::{AlertId, CaseId, ConcernId, ReferralId, SubjectId};
pub use types::*;
