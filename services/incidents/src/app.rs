//! The shell around incidents' aggregates: load a stream, fold it, decide, append with the
//! version that was read.
//!
//! ```text
//!  command ─▶ load(stream) ─▶ fold ─▶ decide ─▶ append(Exact(version read))
//!                                                 └─ WrongExpectedVersion:
//!                                                    caller named a version? ─▶ Error::Conflict
//!                                                    otherwise             ─▶ again, on the new state
//! ```
//! A caller that decided on what it saw (closing a case, changing its risk) passes the version
//! it saw: if another DSL got there first it gets a typed conflict and decides again itself.

use std::sync::Arc;

use haven_authz::UserId;
use haven_eventlog_client::{EventLog, LogError, ReadStream};
use haven_kernel::{Decider, ExpectedVersion, SchoolId, StreamId, Version, fold};
use haven_proto::v1 as pb;

use crate::Error;
use crate::domain::*;
use crate::events::{self, Encoded};

/// How many times a command is re-decided when the stream moved under it.
const MAX_ATTEMPTS: u32 = 5;
/// Events read per page when loading a stream.
const LOAD_PAGE: u32 = 1_000;

/// Where new event ids come from.
#[derive(Clone, Debug)]
pub enum EventIds {
    /// A fresh UUIDv7 per event.
    Fresh,
    /// UUIDv5 ids derived from the client's request id: a retried request proposes the same ids.
    Derived { key: String },
}

impl EventIds {
    fn id(&self, index: usize) -> Vec<u8> {
        match self {
            EventIds::Fresh => uuid::Uuid::now_v7().as_bytes().to_vec(),
            EventIds::Derived { key } => {
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("haven:incidents:{key}:{index}").as_bytes())
                    .as_bytes()
                    .to_vec()
            }
        }
    }
}

/// Who asks, when, and how events are identified.
#[derive(Clone, Debug)]
pub struct CommandContext {
    pub actor: pb::Actor,
    pub user: UserId,
    pub at: UnixTime,
    pub event_ids: EventIds,
}

impl CommandContext {
    /// A person's command at `at`.
    pub fn user(user: UserId, roles: Vec<String>, at: UnixTime, event_ids: EventIds) -> Self {
        let actor = pb::Actor { principal_id: user.principal_id(), kind: pb::ActorKind::User as i32, roles };
        CommandContext { actor, user, at, event_ids }
    }

    /// Haven's own escalation timer.
    pub fn system(at: UnixTime) -> Self {
        let actor = pb::Actor {
            principal_id: "haven".into(),
            kind: pb::ActorKind::System as i32,
            roles: vec!["incidents".into()],
        };
        let user = UserId::parse("haven").expect("`haven` is a valid user id");
        CommandContext { actor, user, at, event_ids: EventIds::Fresh }
    }
}

/// How one aggregate's events are stored.
struct Codec<'a, D: Decider> {
    decode: fn(&pb::EventEnvelope) -> Result<D::Event, Error>,
    encode: &'a (dyn Fn(&D::Event) -> Encoded + Sync),
    school: &'a SchoolId,
}

/// Incidents' application service.
#[derive(Clone)]
pub struct IncidentsApp {
    log: Arc<dyn EventLog>,
    escalation: EscalationPolicy,
}

impl std::fmt::Debug for IncidentsApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncidentsApp").field("escalation", &self.escalation).finish_non_exhaustive()
    }
}

fn stream(category: &str, id: &str) -> Result<StreamId, Error> {
    StreamId::new(category, id).map_err(|e| Error::invalid(category, e.to_string()))
}

pub fn case_stream(case_id: &CaseId) -> Result<StreamId, Error> {
    stream("incident", case_id.as_str())
}

pub fn concern_stream(concern_id: &ConcernId) -> Result<StreamId, Error> {
    stream("concern", concern_id.as_str())
}

pub fn alert_stream(alert_id: &AlertId) -> Result<StreamId, Error> {
    stream("alert", alert_id.as_str())
}

/// The id of the concern an alert opens (a UUIDv5 of the alert id).
pub fn concern_id_for_alert(alert_id: &AlertId) -> ConcernId {
    let uuid =
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("haven:incidents:concern:alert:{alert_id}").as_bytes());
    ConcernId::parse(&uuid.to_string()).expect("a UUID is a valid id")
}

impl IncidentsApp {
    pub fn new(log: Arc<dyn EventLog>, escalation: EscalationPolicy) -> Self {
        IncidentsApp { log, escalation }
    }

    pub fn escalation_policy(&self) -> &EscalationPolicy {
        &self.escalation
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    // --- concerns --------------------------------------------------------------------------

    pub async fn raise_concern(
        &self,
        context: &CommandContext,
        details: ConcernDetails,
    ) -> Result<(Concern, Version), Error> {
        let concern_id = details.concern_id.clone();
        let school_id = details.school_id.clone();
        self.concern_command(context, &concern_id, &school_id, ConcernCommand::Raise(details)).await
    }

    pub async fn concern(&self, concern_id: &ConcernId) -> Result<Option<(Concern, Version)>, Error> {
        let (history, version) = self.load(&concern_stream(concern_id)?, events::decode_concern).await?;
        Ok(fold::<ConcernDecider>(&history).zip(version))
    }

    pub async fn concern_command(
        &self,
        context: &CommandContext,
        concern_id: &ConcernId,
        school_id: &SchoolId,
        command: ConcernCommand,
    ) -> Result<(Concern, Version), Error> {
        let encode = |event: &ConcernEvent| events::encode_concern(concern_id, school_id, event);
        let (state, version) = self
            .execute::<ConcernDecider>(
                &concern_stream(concern_id)?,
                &command,
                context,
                None,
                Codec { decode: events::decode_concern, encode: &encode, school: school_id },
            )
            .await?;
        let concern = state.ok_or_else(|| Error::NotFound(format!("concern {concern_id}")))?;
        Ok((concern, version.unwrap_or(Version(0))))
    }

    // --- cases -----------------------------------------------------------------------------

    pub async fn case(&self, case_id: &CaseId) -> Result<Option<(Case, Version)>, Error> {
        let (history, version) = self.load(&case_stream(case_id)?, events::decode_case).await?;
        Ok(fold::<CaseDecider>(&history).zip(version))
    }

    /// A case's events with their envelopes, oldest first (its chronology).
    pub async fn case_history(&self, case_id: &CaseId) -> Result<Vec<pb::EventEnvelope>, Error> {
        self.envelopes(&case_stream(case_id)?).await
    }

    /// A concern's events with their envelopes, oldest first.
    pub async fn concern_history(&self, concern_id: &ConcernId) -> Result<Vec<pb::EventEnvelope>, Error> {
        self.envelopes(&concern_stream(concern_id)?).await
    }

    /// Runs a request on a case. With `expected`, the request was decided on that version:
    /// if the case moved on, `Error::Conflict`; without it, it is re-decided on the new state.
    pub async fn case_command(
        &self,
        context: &CommandContext,
        case_id: &CaseId,
        school_id: &SchoolId,
        request: CaseRequest,
        expected: Option<Version>,
    ) -> Result<(Case, Version), Error> {
        let command = CaseCommand { by: context.user.clone(), at: context.at, request };
        let encode = |event: &CaseEvent| events::encode_case(case_id, school_id, event);
        let (state, version) = self
            .execute::<CaseDecider>(
                &case_stream(case_id)?,
                &command,
                context,
                expected,
                Codec { decode: events::decode_case, encode: &encode, school: school_id },
            )
            .await?;
        let case = state.ok_or_else(|| Error::NotFound(format!("case {case_id}")))?;
        Ok((case, version.unwrap_or(Version(0))))
    }

    pub async fn open_case(&self, context: &CommandContext, open: OpenCase) -> Result<(Case, Version), Error> {
        let case_id = open.case_id.clone();
        let school_id = open.school_id.clone();
        self.case_command(context, &case_id, &school_id, CaseRequest::Open(open), None).await
    }

    /// Records a read of a sensitive record in `access-incident-<case_id>` (or
    /// `access-concern-<concern_id>`), kept apart so reading never contends with writing.
    pub async fn record_access(&self, context: &CommandContext, access: pb::CaseAccessed) -> Result<(), Error> {
        let stream_id = if access.case_id.is_empty() {
            stream("access", &format!("concern-{}", access.concern_id))?
        } else {
            stream("access", &format!("incident-{}", access.case_id))?
        };
        let school = SchoolId::parse(&access.school_id).map_err(|e| Error::invalid("school_id", e.to_string()))?;
        let event = proposed(context, 0, events::CASE_ACCESSED, &school, prost::Message::encode_to_vec(&access));
        self.log.append(&stream_id, ExpectedVersion::Any, vec![event]).await?;
        Ok(())
    }

    // --- alerts ----------------------------------------------------------------------------

    pub async fn alert(&self, alert_id: &AlertId) -> Result<Option<(Alert, Version)>, Error> {
        let (history, version) = self.load(&alert_stream(alert_id)?, events::decode_alert).await?;
        Ok(fold::<AlertDecider>(&history).zip(version))
    }

    pub async fn acknowledge_alert(
        &self,
        context: &CommandContext,
        alert_id: &AlertId,
        concern_id: Option<ConcernId>,
        note: String,
    ) -> Result<(Alert, Version), Error> {
        let command = AlertCommand::Acknowledge {
            by: context.user.clone(),
            at: context.at,
            concern_id,
            note,
            policy: self.escalation.clone(),
        };
        self.alert_command(context, alert_id, command).await
    }

    /// The concern an alert opens: id derived from the alert's, so it is raised once whoever
    /// raises it (the timer on its first tick, or a DSL acknowledging). `None` when ingest's
    /// alert names no learner (a DSL then raises it with `RaiseConcern`).
    pub async fn concern_from_alert(
        &self,
        context: &CommandContext,
        alert_id: &AlertId,
        note: &str,
    ) -> Result<Option<ConcernId>, Error> {
        let (alert, _) = self.alert(alert_id).await?.ok_or_else(|| Error::NotFound(format!("alert {alert_id}")))?;
        let first = self.log.read_stream(ReadStream::forwards(alert_stream(alert_id)?, Version(0), 1)).await?;
        let raised = first
            .events
            .first()
            .and_then(|envelope| {
                <pb::SafeguardingAlertRaised as prost::Message>::decode(envelope.payload.as_slice()).ok()
            })
            .unwrap_or_default();
        if raised.subject_id.is_empty() {
            return Ok(None);
        }
        let concern_id = concern_id_for_alert(alert_id);
        let details = ConcernDetails {
            concern_id: concern_id.clone(),
            school_id: alert.school_id.clone(),
            raised_by: context.user.clone(),
            raised_at: context.at,
            about: ConcernAbout::Learner,
            subject_ids: vec![
                SubjectId::parse(&raised.subject_id).map_err(|e| Error::invalid("subject_id", e.to_string()))?,
            ],
            staff_ids: Vec::new(),
            what_happened: note.to_owned(),
            incident_occurred_at: Some(alert.raised_at),
            suspected_type: None,
            immediate_risk: alert.severity == Severity::Critical,
            dsl_told_verbally: None,
            alert_id: Some(alert_id.clone()),
            device_ids: if raised.device_id.is_empty() { Vec::new() } else { vec![raised.device_id] },
        };
        match self.raise_concern(context, details).await {
            Ok(_) | Err(Error::Concern(ConcernError::AlreadyRaised)) => Ok(Some(concern_id)),
            Err(other) => Err(other),
        }
    }

    /// The escalation timer's tick for one alert: appends every step due at `context.at`.
    pub async fn escalate_alert(
        &self,
        context: &CommandContext,
        alert_id: &AlertId,
    ) -> Result<(Alert, Version), Error> {
        let command = AlertCommand::Escalate { now: context.at, policy: self.escalation.clone() };
        self.alert_command(context, alert_id, command).await
    }

    async fn alert_command(
        &self,
        context: &CommandContext,
        alert_id: &AlertId,
        command: AlertCommand,
    ) -> Result<(Alert, Version), Error> {
        let (alert, _) = self.alert(alert_id).await?.ok_or_else(|| Error::NotFound(format!("alert {alert_id}")))?;
        let school_id = alert.school_id.clone();
        let encode = |event: &AlertEvent| events::encode_alert(alert_id, &school_id, event);
        let (state, version) = self
            .execute::<AlertDecider>(
                &alert_stream(alert_id)?,
                &command,
                context,
                None,
                Codec { decode: events::decode_alert, encode: &encode, school: &school_id },
            )
            .await?;
        let alert = state.ok_or_else(|| Error::NotFound(format!("alert {alert_id}")))?;
        Ok((alert, version.unwrap_or(Version(0))))
    }

    // --- the loop --------------------------------------------------------------------------

    async fn envelopes(&self, stream_id: &StreamId) -> Result<Vec<pb::EventEnvelope>, Error> {
        let mut all = Vec::new();
        let mut from = Version(0);
        loop {
            let slice = self.log.read_stream(ReadStream::forwards(stream_id.clone(), from, LOAD_PAGE)).await?;
            let done = slice.end_of_stream || slice.events.is_empty();
            from = Version(slice.events.last().map_or(0, |e| e.version) + 1);
            all.extend(slice.events);
            if done {
                return Ok(all);
            }
        }
    }

    /// Every event of a stream, decoded, and its last version.
    async fn load<E>(
        &self,
        stream_id: &StreamId,
        decode: fn(&pb::EventEnvelope) -> Result<E, Error>,
    ) -> Result<(Vec<E>, Option<Version>), Error> {
        let envelopes = self.envelopes(stream_id).await?;
        let version = envelopes.last().map(|e| Version(e.version));
        let history = envelopes.iter().map(decode).collect::<Result<_, _>>()?;
        Ok((history, version))
    }

    /// Load → fold → decide → append at the version read.
    async fn execute<D>(
        &self,
        stream_id: &StreamId,
        command: &D::Command,
        context: &CommandContext,
        expected: Option<Version>,
        codec: Codec<'_, D>,
    ) -> Result<(D::State, Option<Version>), Error>
    where
        D: Decider,
        Error: From<D::Error>,
    {
        for _attempt in 0..MAX_ATTEMPTS {
            let (history, version) = self.load(stream_id, codec.decode).await?;
            if let Some(seen) = expected
                && version != Some(seen)
            {
                return Err(Error::Conflict { stream: stream_id.to_string(), expected: seen, actual: version });
            }
            let state = fold::<D>(&history);
            let new_events = D::decide(&state, command)?;
            if new_events.is_empty() {
                return Ok((state, version));
            }
            let new_state = new_events.iter().fold(state, D::evolve);
            let proposed_events = new_events
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    let (event_type, payload) = (codec.encode)(event);
                    proposed(context, index, event_type, codec.school, payload)
                })
                .collect();
            let at = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self.log.append(stream_id, at, proposed_events).await {
                Ok(outcome) => return Ok((new_state, Some(outcome.last_version))),
                Err(LogError::WrongExpectedVersion(wrong)) => {
                    if let Some(seen) = expected {
                        return Err(Error::Conflict {
                            stream: stream_id.to_string(),
                            expected: seen,
                            actual: wrong.actual,
                        });
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Contended { stream: stream_id.to_string(), attempts: MAX_ATTEMPTS })
    }
}

fn proposed(
    context: &CommandContext,
    index: usize,
    event_type: &str,
    school_id: &SchoolId,
    payload: Vec<u8>,
) -> pb::ProposedEvent {
    pb::ProposedEvent {
        event_id: context.event_ids.id(index),
        event_type: event_type.to_owned(),
        schema_version: 1,
        school_id: school_id.to_string(),
        occurred_at: Some(events::time_to_proto(context.at)),
        actor: Some(context.actor.clone()),
        correlation_id: vec![],
        causation_id: vec![],
        trace_context: None,
        payload,
    }
}
