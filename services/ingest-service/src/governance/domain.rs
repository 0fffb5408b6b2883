//! The filtering record's pure domain (policy 7.3.1, ADR 0022): two deciders, no clock, no
//! random ids, no I/O. Time, ids and looked-up facts (the school's over-blocking reports, whether
//! the governor named holds the governor role) arrive in the command.
//!
//! ```text
//!  filterchange-<id>:  Request ─▶ Requested ─┬─ Approve ─▶ Approved ── Apply ─▶ Applied
//!                                            └─ Reject  ─▶ Rejected
//!  filtering-<school>: RecordCheck · ReportOverblocking · RecordReview (append-only facts)
//! ```
//! The events are the protobuf messages of `haven.v1` themselves: they are the contract and
//! have no other shape here (ADR 0022). The envelope's time comes with each as `at`.

use std::collections::{BTreeMap, BTreeSet};

use haven_kernel::Decider;
use haven_proto::v1 as pb;

/// Longest free text (a reason, a risk assessment, findings), in characters.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Longest short field (a host, a filter group, a reference), in characters.
pub const MAX_SHORT_CHARS: usize = 253;
/// Most entries in a list field (filter groups, assessors, reports, participants).
pub const MAX_LIST: usize = 20;

/// Why a command was refused. Carries no free text of the request: it is returned and may be
/// logged by position and kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GovernanceError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("no such filtering change")]
    NoSuchChange,
    #[error("the filtering change exists already")]
    AlreadyRequested,
    #[error("the change is {0} and can no longer be decided")]
    NotPending(ChangeStatus),
    #[error("the change is {0}: only an approved change is applied")]
    NotApproved(ChangeStatus),
    #[error("nobody decides a filtering change they asked for themselves")]
    DeciderIsRequester,
    #[error("overblocking_report_ids: {0} is not an over-blocking report of this school")]
    UnknownReport(String),
    #[error("governor_user_id: the user does not hold the governor role for this school or the trust")]
    NotAGovernor,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> GovernanceError {
    GovernanceError::Invalid { field, reason: reason.into() }
}

/// A required text field: 1..=`MAX_TEXT_CHARS`, no control characters but line breaks and tabs.
pub fn text(field: &'static str, value: &str) -> Result<(), GovernanceError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    optional_text(field, value)
}

pub fn optional_text(field: &'static str, value: &str) -> Result<(), GovernanceError> {
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(invalid(field, format!("at most {MAX_TEXT_CHARS} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn short(field: &'static str, value: &str) -> Result<(), GovernanceError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_SHORT_CHARS || value.chars().any(char::is_control) {
        return Err(invalid(field, format!("1 to {MAX_SHORT_CHARS} characters, no control characters")));
    }
    Ok(())
}

/// A host only: lowercase letters, digits, `-` and `.`; never a scheme, path, port or query.
pub fn host(field: &'static str, value: &str) -> Result<(), GovernanceError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_SHORT_CHARS
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !value.starts_with('.')
        && !value.ends_with('.')
        && !value.contains("..");
    if ok { Ok(()) } else { Err(invalid(field, "a lowercase host name only (no scheme, port, path or query)")) }
}

fn list(field: &'static str, values: &[String]) -> Result<(), GovernanceError> {
    if values.len() > MAX_LIST {
        return Err(invalid(field, format!("at most {MAX_LIST} entries")));
    }
    values.iter().try_for_each(|value| short(field, value))
}

fn category(raw: i32) -> Option<pb::BreachCategory> {
    pb::BreachCategory::try_from(raw).ok().filter(|c| *c != pb::BreachCategory::Unspecified)
}

/// The lifecycle of a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeStatus {
    Requested,
    Approved,
    Rejected,
    Applied,
}

impl std::fmt::Display for ChangeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChangeStatus::Requested => "requested",
            ChangeStatus::Approved => "approved",
            ChangeStatus::Rejected => "rejected",
            ChangeStatus::Applied => "applied",
        })
    }
}

/// A filtering change as its stream says.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub status: ChangeStatus,
    pub requested: pb::FilteringChangeRequested,
    pub requested_at: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    /// The approval's notes or the rejection's reason.
    pub decision_notes: String,
    pub leadership_consent: bool,
    pub applied: Option<pb::FilteringChangeApplied>,
    pub applied_at: Option<i64>,
}

/// What happened to a change.
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeFact {
    Requested(pb::FilteringChangeRequested),
    Approved(pb::FilteringChangeApproved),
    Rejected(pb::FilteringChangeRejected),
    Applied(pb::FilteringChangeApplied),
}

/// A fact with its time (the envelope's `occurred_at`, Unix seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct Stamped<F> {
    pub at: i64,
    pub fact: F,
}

pub type ChangeEvent = Stamped<ChangeFact>;

/// What is asked of a change.
#[derive(Clone, Debug)]
pub enum ChangeCommand {
    /// `event` is the request as it will be recorded (the requester first among the assessors);
    /// `school_reports` the over-blocking reports the school has recorded.
    Request {
        event: pb::FilteringChangeRequested,
        school_reports: BTreeSet<String>,
        at: i64,
    },
    Approve {
        by: String,
        leadership_consent: bool,
        notes: String,
        at: i64,
    },
    Reject {
        by: String,
        reason: String,
        at: i64,
    },
    Apply {
        by: String,
        filter_reference: String,
        effective_at: Option<prost_types::Timestamp>,
        at: i64,
    },
}

/// One filtering change (`filterchange-<change_id>`).
#[derive(Debug)]
pub struct ChangeDecider;

impl ChangeDecider {
    fn request(event: &pb::FilteringChangeRequested, reports: &BTreeSet<String>) -> Result<(), GovernanceError> {
        use pb::FilteringChangeKind as Kind;
        let kind = Kind::try_from(event.kind).unwrap_or(Kind::Unspecified);
        match kind {
            Kind::Unspecified => return Err(invalid("kind", "say what the change does")),
            Kind::AllowSite | Kind::BlockSite => host("url_host", &event.url_host)?,
            Kind::ChangeCategoryAction => {
                if category(event.category).is_none() {
                    return Err(invalid("category", "a category change names the category"));
                }
                let action = pb::BreachAction::try_from(event.desired_action).unwrap_or_default();
                if action == pb::BreachAction::Unspecified {
                    return Err(invalid("desired_action", "a category change names the action wanted"));
                }
            }
            Kind::ChangeMonitoring | Kind::Other => {
                if !event.url_host.is_empty() {
                    host("url_host", &event.url_host)?;
                }
            }
        }
        if event.category != 0 && category(event.category).is_none() {
            return Err(invalid("category", format!("unknown value {}", event.category)));
        }
        if pb::BreachAction::try_from(event.desired_action).is_err() {
            return Err(invalid("desired_action", format!("unknown value {}", event.desired_action)));
        }
        list("filter_groups", &event.filter_groups)?;
        text("reason", &event.reason)?;
        text("risk_assessment", &event.risk_assessment)?;
        list("risk_assessed_by_user_ids", &event.risk_assessed_by_user_ids)?;
        list("overblocking_report_ids", &event.overblocking_report_ids)?;
        if let Some(unknown) = event.overblocking_report_ids.iter().find(|id| !reports.contains(*id)) {
            return Err(GovernanceError::UnknownReport(unknown.clone()));
        }
        Ok(())
    }

    fn pending<'a>(state: &'a Option<Change>, by: &str) -> Result<&'a Change, GovernanceError> {
        let change = state.as_ref().ok_or(GovernanceError::NoSuchChange)?;
        if change.status != ChangeStatus::Requested {
            return Err(GovernanceError::NotPending(change.status));
        }
        if change.requested.requested_by_user_id == by {
            return Err(GovernanceError::DeciderIsRequester);
        }
        Ok(change)
    }
}

impl Decider for ChangeDecider {
    type State = Option<Change>;
    type Command = ChangeCommand;
    type Event = ChangeEvent;
    type Error = GovernanceError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<ChangeEvent>, GovernanceError> {
        let stamped = |at: i64, fact| vec![Stamped { at, fact }];
        match command {
            ChangeCommand::Request { event, school_reports, at } => {
                if state.is_some() {
                    return Err(GovernanceError::AlreadyRequested);
                }
                Self::request(event, school_reports)?;
                Ok(stamped(*at, ChangeFact::Requested(event.clone())))
            }
            ChangeCommand::Approve { by, leadership_consent, notes, at } => {
                let change = Self::pending(state, by)?;
                optional_text("notes", notes)?;
                Ok(stamped(
                    *at,
                    ChangeFact::Approved(pb::FilteringChangeApproved {
                        change_id: change.requested.change_id.clone(),
                        school_id: change.requested.school_id.clone(),
                        approved_by_user_id: by.clone(),
                        leadership_consent: *leadership_consent,
                        notes: notes.clone(),
                    }),
                ))
            }
            ChangeCommand::Reject { by, reason, at } => {
                let change = Self::pending(state, by)?;
                text("reason", reason)?;
                Ok(stamped(
                    *at,
                    ChangeFact::Rejected(pb::FilteringChangeRejected {
                        change_id: change.requested.change_id.clone(),
                        school_id: change.requested.school_id.clone(),
                        rejected_by_user_id: by.clone(),
                        reason: reason.clone(),
                    }),
                ))
            }
            ChangeCommand::Apply { by, filter_reference, effective_at, at } => {
                let change = state.as_ref().ok_or(GovernanceError::NoSuchChange)?;
                if change.status != ChangeStatus::Approved {
                    return Err(GovernanceError::NotApproved(change.status));
                }
                if !filter_reference.is_empty() {
                    short("filter_reference", filter_reference)?;
                }
                if effective_at.is_some_and(|t| t.seconds < change.requested_at) {
                    return Err(invalid("effective_at", "must not be before the change was requested"));
                }
                Ok(stamped(
                    *at,
                    ChangeFact::Applied(pb::FilteringChangeApplied {
                        change_id: change.requested.change_id.clone(),
                        school_id: change.requested.school_id.clone(),
                        applied_by_user_id: by.clone(),
                        filter_reference: filter_reference.clone(),
                        effective_at: Some(effective_at.unwrap_or(prost_types::Timestamp { seconds: *at, nanos: 0 })),
                    }),
                ))
            }
        }
    }

    fn evolve(state: Self::State, event: &ChangeEvent) -> Self::State {
        match (&event.fact, state) {
            (ChangeFact::Requested(requested), _) => Some(Change {
                status: ChangeStatus::Requested,
                requested: requested.clone(),
                requested_at: event.at,
                decided_by: None,
                decided_at: None,
                decision_notes: String::new(),
                leadership_consent: false,
                applied: None,
                applied_at: None,
            }),
            (ChangeFact::Approved(approved), Some(change)) => Some(Change {
                status: ChangeStatus::Approved,
                decided_by: Some(approved.approved_by_user_id.clone()),
                decided_at: Some(event.at),
                decision_notes: approved.notes.clone(),
                leadership_consent: approved.leadership_consent,
                ..change
            }),
            (ChangeFact::Rejected(rejected), Some(change)) => Some(Change {
                status: ChangeStatus::Rejected,
                decided_by: Some(rejected.rejected_by_user_id.clone()),
                decided_at: Some(event.at),
                decision_notes: rejected.reason.clone(),
                ..change
            }),
            (ChangeFact::Applied(applied), Some(change)) => Some(Change {
                status: ChangeStatus::Applied,
                applied: Some(applied.clone()),
                applied_at: Some(event.at),
                ..change
            }),
            // A decision without a request cannot be decided; a stream holding one is left as is.
            (_, state) => state,
        }
    }
}

/// A school's filtering record (`filtering-<school_id>`): its checks, over-blocking reports and
/// annual reviews, each with its time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchoolFiltering {
    pub checks: Vec<Stamped<pb::FilterCheckRecorded>>,
    /// By report id.
    pub reports: BTreeMap<String, Stamped<pb::OverblockingReported>>,
    pub reviews: Vec<Stamped<pb::FilteringReviewRecorded>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RecordFact {
    CheckRecorded(pb::FilterCheckRecorded),
    OverblockingReported(pb::OverblockingReported),
    ReviewRecorded(pb::FilteringReviewRecorded),
}

pub type RecordEvent = Stamped<RecordFact>;

/// What is recorded on a school's filtering record. Each carries the event as it will be
/// recorded; `governor_holds_role` is looked up by the shell.
#[derive(Clone, Debug)]
pub enum RecordCommand {
    RecordCheck { event: pb::FilterCheckRecorded, at: i64 },
    ReportOverblocking { event: pb::OverblockingReported, at: i64 },
    RecordReview { event: pb::FilteringReviewRecorded, governor_holds_role: bool, at: i64 },
}

#[derive(Debug)]
pub struct RecordDecider;

impl RecordDecider {
    fn check(event: &pb::FilterCheckRecorded) -> Result<(), GovernanceError> {
        use pb::FilterCheckOutcome as Outcome;
        let method = pb::FilterCheckMethod::try_from(event.method).unwrap_or_default();
        if method == pb::FilterCheckMethod::Unspecified {
            return Err(invalid("method", "say how the check was carried out"));
        }
        let outcome = Outcome::try_from(event.outcome).unwrap_or_default();
        if outcome == Outcome::Unspecified {
            return Err(invalid("outcome", "say whether the filter passed"));
        }
        if event.results.len() > 64 {
            return Err(invalid("results", "at most 64 results"));
        }
        for result in &event.results {
            if category(result.category).is_none() {
                return Err(invalid("results", "each result names a category"));
            }
            for action in [result.expected_action, result.observed_action] {
                if pb::BreachAction::try_from(action).unwrap_or_default() == pb::BreachAction::Unspecified {
                    return Err(invalid("results", "each result names the expected and the observed action"));
                }
            }
        }
        let failures = event.results.iter().filter(|r| r.expected_action != r.observed_action).count();
        if outcome == Outcome::Passed && failures > 0 {
            return Err(invalid("outcome", format!("PASSED, but {failures} result(s) did not behave as expected")));
        }
        if outcome != Outcome::Passed && !event.results.is_empty() && failures == 0 {
            return Err(invalid("outcome", "not PASSED, but every result behaved as expected"));
        }
        if !event.device_id.is_empty() {
            short("device_id", &event.device_id)?;
        }
        list("filter_groups", &event.filter_groups)?;
        optional_text("notes", &event.notes)
    }

    fn review(event: &pb::FilteringReviewRecorded, governor_holds_role: bool) -> Result<(), GovernanceError> {
        short("governor_user_id", &event.governor_user_id)?;
        if !governor_holds_role {
            return Err(GovernanceError::NotAGovernor);
        }
        list("participant_user_ids", &event.participant_user_ids)?;
        text("findings", &event.findings)?;
        optional_text("actions", &event.actions)?;
        let held = event.held_at.map_or(0, |t| t.seconds);
        if event.next_review_due_at.is_some_and(|due| due.seconds <= held) {
            return Err(invalid("next_review_due_at", "must be after the review was held"));
        }
        Ok(())
    }
}

impl Decider for RecordDecider {
    type State = SchoolFiltering;
    type Command = RecordCommand;
    type Event = RecordEvent;
    type Error = GovernanceError;

    fn initial() -> Self::State {
        SchoolFiltering::default()
    }

    fn decide(_state: &Self::State, command: &Self::Command) -> Result<Vec<RecordEvent>, GovernanceError> {
        let (at, fact) = match command {
            RecordCommand::RecordCheck { event, at } => {
                Self::check(event)?;
                (*at, RecordFact::CheckRecorded(event.clone()))
            }
            RecordCommand::ReportOverblocking { event, at } => {
                host("url_host", &event.url_host)?;
                if event.category != 0 && category(event.category).is_none() {
                    return Err(invalid("category", format!("unknown value {}", event.category)));
                }
                text("impact", &event.impact)?;
                (*at, RecordFact::OverblockingReported(event.clone()))
            }
            RecordCommand::RecordReview { event, governor_holds_role, at } => {
                Self::review(event, *governor_holds_role)?;
                (*at, RecordFact::ReviewRecorded(event.clone()))
            }
        };
        Ok(vec![Stamped { at, fact }])
    }

    fn evolve(mut state: Self::State, event: &RecordEvent) -> Self::State {
        let at = event.at;
        match &event.fact {
            RecordFact::CheckRecorded(check) => state.checks.push(Stamped { at, fact: check.clone() }),
            RecordFact::OverblockingReported(report) => {
                state.reports.insert(report.report_id.clone(), Stamped { at, fact: report.clone() });
            }
            RecordFact::ReviewRecorded(review) => state.reviews.push(Stamped { at, fact: review.clone() }),
        }
        state
    }
}

#[cfg(test)]
mod tests;
