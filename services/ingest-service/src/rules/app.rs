//! Recording and reading alert-rule changes (ADR 0028): a change is checked against the guard
//! rails, then appended to its scope's stream at the version the caller read, so of two
//! concurrent changes one wins and the other is told which versions it met.
//!
//! ```text
//!  SetAlertRules ─▶ check (field named) ─▶ read the scope's version ─▶ = expected? else Conflict
//!                ─▶ append AlertRulesChanged (expected version) ─▶ the book takes it at once
//!  GetAlertRules ◀─ the trust's and the school's streams, folded ◀─ the log
//! ```

use std::sync::Arc;

use haven_eventlog_client::{EventLog, LogError, ReadStream};
use haven_kernel::{ErrorCode, ExpectedVersion, SchoolId, StreamId, Version};
use haven_proto::v1 as pb;
use prost::Message;

use super::book::{ALERT_RULES_CHANGED, RuleBook, STREAM_CATEGORY};
use super::settings::{self, Refusal};

/// Changes listed by `GetAlertRules`, newest first.
pub const MAX_CHANGES_LISTED: usize = 200;
/// Events read per page of a scope's stream.
const PAGE: u32 = 1_000;
/// Most changes a scope's stream may hold to be read: rules change a few times a year.
pub const MAX_STREAM_EVENTS: usize = 10_000;

/// Why a change was not recorded, or the rules could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The guard rails refused the change; nothing was appended.
    #[error("invalid {0}")]
    Refused(#[from] Refusal),
    /// Another change was recorded since the caller read the rules.
    #[error("{stream} is at version {actual}, not the version {expected} this change was made against; read it again")]
    Conflict { stream: String, expected: u64, actual: u64 },
    #[error("{stream} holds more than {limit} events")]
    TooLong { stream: String, limit: usize },
    #[error("event at position {position} is not a readable ingest.AlertRulesChanged")]
    Unreadable { position: u64 },
    #[error(transparent)]
    Log(#[from] LogError),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Refused(_) => ErrorCode::InvalidArgument,
            Error::Conflict { .. } => ErrorCode::Conflict,
            Error::TooLong { .. } => ErrorCode::ResourceExhausted,
            Error::Unreadable { .. } => ErrorCode::DataLoss,
            Error::Log(error) => error.code(),
        }
    }

    /// The gRPC status: the code decides; the message names the field or both versions.
    pub fn status(&self) -> tonic::Status {
        tonic::Status::new(tonic::Code::from_i32(self.code().grpc_code()), self.to_string())
    }
}

/// The stream of a scope's rules: `alertrules-trust`, or `alertrules-school-<school>`.
pub fn rules_stream(school: Option<&SchoolId>) -> StreamId {
    let id = school.map_or_else(|| "trust".to_owned(), |school| format!("school-{school}"));
    StreamId::new(STREAM_CATEGORY, &id).expect("school ids are valid in stream ids")
}

/// A recorded change with where it is.
pub type Recorded = (pb::AlertRulesChanged, pb::EventEnvelope);

/// What `GetAlertRules` answers.
#[derive(Clone, Debug)]
pub struct RulesView {
    pub effective: super::RuleSettings,
    pub trust_version: u64,
    pub school_version: u64,
    /// The trust's and the school's changes, newest first, at most [`MAX_CHANGES_LISTED`].
    pub changes: Vec<Recorded>,
}

/// Records and reads alert-rule changes.
#[derive(Clone)]
pub struct RulesApp {
    log: Arc<dyn EventLog>,
    book: RuleBook,
}

impl std::fmt::Debug for RulesApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulesApp").finish_non_exhaustive()
    }
}

impl RulesApp {
    pub fn new(log: Arc<dyn EventLog>, book: RuleBook) -> Self {
        RulesApp { log, book }
    }

    /// Replaces the overrides of the trust (`school` `None`) or one school, if the scope is at
    /// `expected` (0: never changed). Returns the new version and the event's position.
    pub async fn set(
        &self,
        school: Option<&SchoolId>,
        expected: u64,
        overrides: pb::AlertRuleSettings,
        reason: &str,
        actor: pb::Actor,
    ) -> Result<(u64, u64), Error> {
        settings::check(&overrides, reason)?;
        let stream = rules_stream(school);
        let actual = self.load(&stream).await?.len() as u64;
        if actual != expected {
            return Err(Error::Conflict { stream: stream.to_string(), expected, actual });
        }
        let change = pb::AlertRulesChanged {
            school_id: school.map(ToString::to_string).unwrap_or_default(),
            version: expected + 1,
            settings: Some(overrides),
            changed_by: actor.principal_id.clone(),
            reason: reason.trim().to_owned(),
        };
        let mut event_id = [0u8; 16];
        getrandom::fill(&mut event_id).map_err(|e| LogError::Internal(format!("no randomness: {e}")))?;
        let event = pb::ProposedEvent {
            event_id: event_id.to_vec(),
            event_type: ALERT_RULES_CHANGED.to_owned(),
            schema_version: 1,
            school_id: change.school_id.clone(),
            occurred_at: Some(crate::pipeline::to_proto(jiff::Timestamp::now())),
            actor: Some(actor),
            correlation_id: vec![],
            causation_id: vec![],
            trace_context: None,
            payload: change.encode_to_vec(),
        };
        // The log's versions count from 0: a scope at rules version n has its last event at n - 1.
        let at = if expected == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(Version(expected - 1)) };
        match self.log.append(&stream, at, vec![event]).await {
            Ok(outcome) => {
                self.book.record(&change);
                Ok((change.version, outcome.first_position.0))
            }
            Err(LogError::WrongExpectedVersion(wrong)) => Err(Error::Conflict {
                stream: stream.to_string(),
                expected,
                actual: wrong.actual.map_or(0, |version| version.0 + 1),
            }),
            Err(other) => Err(other.into()),
        }
    }

    /// The rules in force for `school` (the trust's own for `None`) as the log says now, with
    /// the versions and the changes that made them.
    pub async fn view(&self, school: Option<&SchoolId>) -> Result<RulesView, Error> {
        let trust = self.load(&rules_stream(None)).await?;
        let own = match school {
            Some(_) => self.load(&rules_stream(school)).await?,
            None => Vec::new(),
        };
        let latest = |changes: &[Recorded]| changes.last().and_then(|(change, _)| change.settings.clone());
        let trust_settings = settings::merge(&self.book.defaults(), &latest(&trust).unwrap_or_default());
        let effective = settings::merge(&trust_settings, &latest(&own).unwrap_or_default());
        let (trust_version, school_version) = (trust.len() as u64, own.len() as u64);
        let mut changes: Vec<Recorded> = trust.into_iter().chain(own).collect();
        changes.sort_by_key(|(_, envelope)| std::cmp::Reverse(envelope.position));
        changes.truncate(MAX_CHANGES_LISTED);
        Ok(RulesView { effective, trust_version, school_version, changes })
    }

    /// Every change of one scope, oldest first.
    async fn load(&self, stream: &StreamId) -> Result<Vec<Recorded>, Error> {
        let mut changes = Vec::new();
        let mut from = Version(0);
        loop {
            let slice = self.log.read_stream(ReadStream::forwards(stream.clone(), from, PAGE)).await?;
            let page_was_empty = slice.events.is_empty();
            for envelope in slice.events {
                let change = pb::AlertRulesChanged::decode(envelope.payload.as_slice())
                    .map_err(|_| Error::Unreadable { position: envelope.position })?;
                from = Version(envelope.version + 1);
                changes.push((change, envelope));
            }
            if changes.len() > MAX_STREAM_EVENTS {
                return Err(Error::TooLong { stream: stream.to_string(), limit: MAX_STREAM_EVENTS });
            }
            if slice.end_of_stream || page_was_empty {
                return Ok(changes);
            }
        }
    }
}
