//! The shell around the filtering record's deciders: load a stream, fold it, decide, append
//! with the version that was read, and retry from the top when another writer got there first.
//! A retried request (same request id) finds its first event already in the stream and returns
//! what was recorded then, appending nothing. It also looks up the facts the domain needs: the
//! school's over-blocking reports, and whether a governor holds the governor role (from
//! identity's events in `user-<id>`, read from the log, never identity's crate).

use std::collections::BTreeSet;
use std::sync::Arc;

use haven_eventlog_client::{EventLog, LogError, ReadStream};
use haven_kernel::{Decider, ExpectedVersion, SchoolId, StreamId, Version, fold};
use haven_proto::v1 as pb;
use prost::Message;

use super::domain::{Change, ChangeCommand, ChangeDecider, RecordCommand, RecordDecider, SchoolFiltering, Stamped};
use super::error::Error;
use super::events;

/// How many times a command is re-decided when the stream moved under it.
const MAX_ATTEMPTS: u32 = 5;
/// Events read per page when loading a stream.
const LOAD_PAGE: u32 = 1_000;
/// Most events a stream may hold to be loaded: a school's filtering record grows by a few
/// events a week, so this is decades; a change holds four.
pub const MAX_STREAM_EVENTS: usize = 20_000;

/// Who asks, when, and how events are identified.
#[derive(Clone, Debug)]
pub struct CommandContext {
    pub actor: pb::Actor,
    /// The client's request id: event ids are derived from it, so a retry writes nothing new.
    pub request_id: String,
}

impl CommandContext {
    fn event_id(&self, index: usize) -> Vec<u8> {
        derived_uuid(&format!("haven:ingest-governance:{}:{index}", self.request_id)).as_bytes().to_vec()
    }
}

fn derived_uuid(name: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes())
}

/// An id for what a request creates (a change, a check, a report, a review), derived from the
/// request id so a retry names the same thing.
pub fn derived_id(kind: &str, request_id: &str) -> String {
    derived_uuid(&format!("haven:ingest-governance:{kind}:{request_id}")).simple().to_string()
}

pub fn change_stream(change_id: &str) -> Result<StreamId, Error> {
    StreamId::new("filterchange", change_id).map_err(|e| Error::invalid("change_id", e.to_string()))
}

pub fn record_stream(school: &SchoolId) -> Result<StreamId, Error> {
    StreamId::new("filtering", school.as_str()).map_err(|e| Error::invalid("school_id", e.to_string()))
}

/// What a command came to: the state after it, and the position of its (first) event.
#[derive(Clone, Debug)]
pub struct Outcome<S> {
    pub state: S,
    pub position: u64,
}

/// The filtering record's application service.
#[derive(Clone)]
pub struct GovernanceApp {
    log: Arc<dyn EventLog>,
}

impl std::fmt::Debug for GovernanceApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernanceApp").finish_non_exhaustive()
    }
}

type History<F> = Vec<(pb::EventEnvelope, Stamped<F>)>;

impl GovernanceApp {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        GovernanceApp { log }
    }

    /// Any command on one change; a request starts it.
    pub async fn change_command(
        &self,
        context: &CommandContext,
        change_id: &str,
        school_id: &str,
        command: ChangeCommand,
    ) -> Result<Outcome<Change>, Error> {
        let stream_id = change_stream(change_id)?;
        let outcome = self
            .execute::<ChangeDecider, _>(
                context,
                &stream_id,
                school_id,
                events::decode_change,
                events::encode_change,
                command,
            )
            .await?;
        let state = outcome.state.ok_or(super::domain::GovernanceError::NoSuchChange)?;
        Ok(Outcome { state, position: outcome.position })
    }

    /// Any command on a school's filtering record.
    pub async fn record_command(
        &self,
        context: &CommandContext,
        school: &SchoolId,
        command: RecordCommand,
    ) -> Result<Outcome<SchoolFiltering>, Error> {
        let stream_id = record_stream(school)?;
        self.execute::<RecordDecider, _>(
            context,
            &stream_id,
            school.as_str(),
            events::decode_record,
            events::encode_record,
            command,
        )
        .await
    }

    /// A change as its stream says now.
    pub async fn change(&self, change_id: &str) -> Result<Option<Change>, Error> {
        let (history, _) = self.load(&change_stream(change_id)?, events::decode_change).await?;
        Ok(fold::<ChangeDecider>(history.iter().map(|(_, event)| event)))
    }

    /// The ids of the over-blocking reports a school has recorded.
    pub async fn school_reports(&self, school: &SchoolId) -> Result<BTreeSet<String>, Error> {
        let (history, _) = self.load(&record_stream(school)?, events::decode_record).await?;
        Ok(fold::<RecordDecider>(history.iter().map(|(_, event)| event)).reports.into_keys().collect())
    }

    /// Whether `user_id` holds the governor role for `school` or the trust, and has not left,
    /// as identity's events in `user-<id>` say.
    pub async fn holds_governor_role(&self, user_id: &str, school: &SchoolId) -> Result<bool, Error> {
        let stream_id =
            StreamId::new("user", user_id).map_err(|e| Error::invalid("governor_user_id", e.to_string()))?;
        let governor = pb::Role::Governor as i32;
        let reaches = |grant_school: &str| grant_school.is_empty() || grant_school == school.as_str();
        let mut grants = 0i32;
        let mut from = Version(0);
        loop {
            let slice = self.log.read_stream(ReadStream::forwards(stream_id.clone(), from, LOAD_PAGE)).await?;
            for envelope in &slice.events {
                match envelope.event_type.as_str() {
                    "identity.RoleGranted" => {
                        let grant = pb::RoleGranted::decode(envelope.payload.as_slice()).unwrap_or_default();
                        grants += i32::from(grant.role == governor && reaches(&grant.school_id));
                    }
                    "identity.RoleRevoked" => {
                        let revoked = pb::RoleRevoked::decode(envelope.payload.as_slice()).unwrap_or_default();
                        grants -= i32::from(revoked.role == governor && reaches(&revoked.school_id));
                    }
                    "identity.UserDisabled" => return Ok(false),
                    _ => {}
                }
            }
            let Some(last) = slice.events.last() else { break };
            if slice.end_of_stream {
                break;
            }
            from = Version(last.version + 1);
        }
        Ok(grants > 0)
    }

    async fn execute<D, F>(
        &self,
        context: &CommandContext,
        stream_id: &StreamId,
        school_id: &str,
        decode: fn(&pb::EventEnvelope) -> Result<Stamped<F>, Error>,
        encode: fn(&F) -> (&'static str, Vec<u8>),
        command: D::Command,
    ) -> Result<Outcome<D::State>, Error>
    where
        D: Decider<Event = Stamped<F>, Error = super::domain::GovernanceError>,
    {
        let first_event_id = context.event_id(0);
        for _attempt in 0..MAX_ATTEMPTS {
            let (history, version) = self.load(stream_id, decode).await?;
            let state = fold::<D>(history.iter().map(|(_, event)| event));
            if let Some((envelope, _)) = history.iter().find(|(envelope, _)| envelope.event_id == first_event_id) {
                // A retry of a request that was recorded: the record as it is, nothing new.
                return Ok(Outcome { state, position: envelope.position });
            }
            let new_events = D::decide(&state, &command)?;
            let proposed = new_events
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    let (event_type, payload) = encode(&event.fact);
                    pb::ProposedEvent {
                        event_id: context.event_id(index),
                        event_type: event_type.to_owned(),
                        schema_version: 1,
                        school_id: school_id.to_owned(),
                        occurred_at: Some(prost_types::Timestamp { seconds: event.at, nanos: 0 }),
                        actor: Some(context.actor.clone()),
                        correlation_id: vec![],
                        causation_id: vec![],
                        trace_context: None,
                        payload,
                    }
                })
                .collect();
            let state = new_events.iter().fold(state, D::evolve);
            let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self.log.append(stream_id, expected, proposed).await {
                Ok(outcome) => return Ok(Outcome { state, position: outcome.first_position.0 }),
                Err(LogError::WrongExpectedVersion(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Contended { stream: stream_id.to_string(), attempts: MAX_ATTEMPTS })
    }

    async fn load<F>(
        &self,
        stream_id: &StreamId,
        decode: fn(&pb::EventEnvelope) -> Result<Stamped<F>, Error>,
    ) -> Result<(History<F>, Option<Version>), Error> {
        let mut history = Vec::new();
        let mut from = Version(0);
        loop {
            let slice = self.log.read_stream(ReadStream::forwards(stream_id.clone(), from, LOAD_PAGE)).await?;
            let page_was_empty = slice.events.is_empty();
            for envelope in slice.events {
                let event = decode(&envelope)?;
                history.push((envelope, event));
            }
            if history.len() > MAX_STREAM_EVENTS {
                return Err(Error::TooLong { stream: stream_id.to_string(), limit: MAX_STREAM_EVENTS });
            }
            if slice.end_of_stream || page_was_empty {
                return Ok((history, slice.last_version));
            }
            from = Version(history.last().map_or(0, |(e, _)| e.version + 1));
        }
    }
}
