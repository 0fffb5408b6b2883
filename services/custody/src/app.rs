//! The shell around custody's aggregates: load a stream, fold it, decide, append with the
//! version that was read, and retry from the top when another writer got there first. It
//! also exports a record's trail (signed, recorded in `access-custody-<id>`) and runs the
//! end-of-day sweep.

use std::sync::Arc;

use haven_eventlog_client::{EventLog, LogError, ReadStream};
use haven_kernel::{Decider, ExpectedVersion, StreamId, Version, fold};
use haven_proto::v1 as pb;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::domain::{
    CustodyCommand, CustodyDecider, CustodyEvent, CustodyRecord, EndOfDayAction, RegisterCommand, RegisterDecider,
    SchoolDay, SchoolDevice, UnixTime,
};
use crate::events;
use crate::export::{self, SignedTrail, TrailHeader, TrailSigner, TrailStep};

/// How many times a command is re-decided when the stream moved under it.
const MAX_ATTEMPTS: u32 = 5;
/// Events read per page when loading a stream.
const LOAD_PAGE: u32 = 1_000;
/// Most events one custody record may hold: a bound on loading and exporting it.
pub const MAX_TRAIL_EVENTS: usize = export::MAX_ENTRIES;

/// Who asks, when, and how events are identified.
#[derive(Clone, Debug)]
pub struct CommandContext {
    pub actor: pb::Actor,
    pub occurred_at: prost_types::Timestamp,
    /// The client's request id: event ids are derived from it, so a retry writes nothing new.
    pub request_id: String,
}

impl CommandContext {
    /// Whether this request's first event is already in the stream (the request is a retry).
    fn already_applied<'a>(&self, mut history: impl Iterator<Item = &'a pb::EventEnvelope>) -> bool {
        let first = self.event_id(0);
        history.any(|envelope| envelope.event_id == first)
    }

    fn event_id(&self, index: usize) -> Vec<u8> {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("haven:custody:{}:{index}", self.request_id).as_bytes())
            .as_bytes()
            .to_vec()
    }
}

/// An exported trail in its three forms.
#[derive(Clone, Debug)]
pub struct ExportedTrail {
    pub signed: SignedTrail,
    /// The evidence file (`haven custody verify FILE`).
    pub json: Vec<u8>,
    pub html: String,
}

/// Custody's application service.
#[derive(Clone)]
pub struct CustodyApp {
    log: Arc<dyn EventLog>,
    signer: Arc<TrailSigner>,
}

impl std::fmt::Debug for CustodyApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustodyApp").field("signer", &self.signer).finish_non_exhaustive()
    }
}

pub fn custody_stream(custody_id: &str) -> Result<StreamId, Error> {
    StreamId::new("custody", custody_id).map_err(|e| Error::invalid("custody_id", e.to_string()))
}

pub fn device_stream(device_id: &str) -> Result<StreamId, Error> {
    StreamId::new("device", device_id).map_err(|e| Error::invalid("device_id", e.to_string()))
}

impl CustodyApp {
    pub fn new(log: Arc<dyn EventLog>, signer: Arc<TrailSigner>) -> Self {
        CustodyApp { log, signer }
    }

    /// Any custody command; a seizure starts the record. Returns the record and its version.
    pub async fn custody_command(
        &self,
        context: &CommandContext,
        custody_id: &str,
        command: CustodyCommand,
    ) -> Result<(CustodyRecord, Version), Error> {
        let stream_id = custody_stream(custody_id)?;
        for _attempt in 0..MAX_ATTEMPTS {
            let (history, version) = self.load(&stream_id).await?;
            let state = fold::<CustodyDecider>(history.iter().map(|(_, event)| event));
            if let (Some(record), Some(version)) = (&state, version)
                && context.already_applied(history.iter().map(|(envelope, _)| envelope))
            {
                // A retry of a request that was recorded: the record as it is, nothing new.
                return Ok((record.clone(), version));
            }
            let new_events = CustodyDecider::decide(&state, &command)?;
            let new_state = new_events.iter().fold(state, CustodyDecider::evolve);
            let Some(record) = new_state else {
                return Err(Error::NotFound(format!("custody record {custody_id}")));
            };
            if new_events.is_empty() {
                // Nothing new (an end-of-day action already raised): the record as it is.
                let version = version.ok_or_else(|| Error::NotFound(format!("custody record {custody_id}")))?;
                return Ok((record, version));
            }
            let proposed = new_events
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    let (event_type, payload) = events::encode_custody(custody_id, record.school_id.as_str(), event);
                    pb::ProposedEvent {
                        event_id: context.event_id(index),
                        event_type: event_type.to_owned(),
                        schema_version: 1,
                        school_id: record.school_id.to_string(),
                        // The step's own time: the domain's, which the command carried.
                        occurred_at: Some(events::time_to_proto(event.at())),
                        actor: Some(context.actor.clone()),
                        correlation_id: vec![],
                        causation_id: vec![],
                        trace_context: None,
                        payload,
                    }
                })
                .collect();
            let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self.log.append(&stream_id, expected, proposed).await {
                Ok(outcome) => return Ok((record, outcome.last_version)),
                Err(LogError::WrongExpectedVersion(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Contended { stream: stream_id.to_string(), attempts: MAX_ATTEMPTS })
    }

    /// A record as its stream says now, with the stream's version.
    pub async fn record(&self, custody_id: &str) -> Result<Option<(CustodyRecord, Version)>, Error> {
        let (history, version) = self.load(&custody_stream(custody_id)?).await?;
        Ok(fold::<CustodyDecider>(history.iter().map(|(_, event)| event)).zip(version))
    }

    /// A record and every logged step, oldest first.
    pub async fn trail(
        &self,
        custody_id: &str,
    ) -> Result<(CustodyRecord, Vec<(pb::EventEnvelope, CustodyEvent)>), Error> {
        let (history, _) = self.load(&custody_stream(custody_id)?).await?;
        let record = fold::<CustodyDecider>(history.iter().map(|(_, event)| event))
            .ok_or_else(|| Error::NotFound(format!("custody record {custody_id}")))?;
        Ok((record, history))
    }

    /// Exports a record's trail, signed, and records the export in `access-custody-<id>`.
    pub async fn export_trail(
        &self,
        context: &CommandContext,
        custody_id: &str,
        purpose: &str,
    ) -> Result<ExportedTrail, Error> {
        if purpose.trim().is_empty() || purpose.chars().count() > crate::domain::MAX_TEXT_CHARS {
            return Err(Error::invalid("purpose", "must be 1..=2000 characters"));
        }
        let (record, history) = self.trail(custody_id).await?;
        let head = self.log.head().await?;
        let steps: Vec<TrailStep> = history
            .iter()
            .map(|(envelope, event)| {
                let (by_user_id, witness_user_id, summary) = events::describe(event);
                TrailStep {
                    position: envelope.position,
                    event_type: envelope.event_type.clone(),
                    occurred_at: event.at().0,
                    recorded_by: envelope.actor.as_ref().map(|a| a.principal_id.clone()).unwrap_or_default(),
                    by_user_id,
                    witness_user_id,
                    summary,
                    payload: envelope.payload.clone(),
                    log_hash: envelope.hash.clone(),
                }
            })
            .collect();
        let exported_by = context.actor.principal_id.clone();
        let header = TrailHeader {
            custody_id: record.custody_id.clone(),
            school_id: record.school_id.to_string(),
            case_id: record.case_id.clone().unwrap_or_default(),
            device_description: record.device_description.clone(),
            generated_at: context.occurred_at.seconds,
            generated_by_user_id: exported_by.clone(),
            purpose: purpose.to_owned(),
            head_position: head.next_position.0,
            head_hash: head.head_hash.to_vec(),
        };
        let signed = export::export(&header, &steps, &self.signer);
        let json = signed.to_json();
        let html = export::render_html(&signed);
        let access_stream =
            StreamId::new("access-custody", custody_id).map_err(|e| Error::invalid("custody_id", e.to_string()))?;
        let exported = pb::CustodyTrailExported {
            custody_id: custody_id.to_owned(),
            school_id: record.school_id.to_string(),
            exported_by_user_id: exported_by,
            purpose: purpose.to_owned(),
            document_sha256: Sha256::digest(&json).to_vec(),
            key_id: self.signer.key_id().to_owned(),
        };
        let event = pb::ProposedEvent {
            event_id: context.event_id(0),
            event_type: events::TRAIL_EXPORTED.to_owned(),
            schema_version: 1,
            school_id: record.school_id.to_string(),
            occurred_at: Some(context.occurred_at),
            actor: Some(context.actor.clone()),
            correlation_id: vec![],
            causation_id: vec![],
            trace_context: None,
            payload: exported.encode_to_vec(),
        };
        self.log.append(&access_stream, ExpectedVersion::Any, vec![event]).await?;
        Ok(ExportedTrail { signed, json, html })
    }

    /// The end-of-day sweep over `custody_ids` (the school's records open today): raises each
    /// outstanding device's action once and returns the actions raised now.
    pub async fn end_of_day_sweep(
        &self,
        context: &CommandContext,
        custody_ids: &[String],
        day: SchoolDay,
        at: UnixTime,
    ) -> Result<Vec<EndOfDayAction>, Error> {
        let mut records = Vec::with_capacity(custody_ids.len());
        for custody_id in custody_ids {
            if let Some((record, _)) = self.record(custody_id).await? {
                records.push(record);
            }
        }
        let actions = crate::domain::end_of_day_sweep(&records, day);
        for action in &actions {
            let context = CommandContext {
                request_id: format!("{}:end-of-day:{}:{}", context.request_id, action.custody_id, day.ends_at.0),
                ..context.clone()
            };
            self.custody_command(&context, &action.custody_id, action.command(at)).await?;
        }
        Ok(actions)
    }

    /// Any register command; registering starts the device's stream. Returns the device and
    /// its version.
    pub async fn register_command(
        &self,
        context: &CommandContext,
        device_id: &str,
        command: RegisterCommand,
    ) -> Result<(SchoolDevice, Version), Error> {
        let stream_id = device_stream(device_id)?;
        for _attempt in 0..MAX_ATTEMPTS {
            let (history, version) = self.load_with(&stream_id, events::decode_register).await?;
            let state = fold::<RegisterDecider>(history.iter().map(|(_, event)| event));
            if let (Some(device), Some(version)) = (&state, version)
                && context.already_applied(history.iter().map(|(envelope, _)| envelope))
            {
                return Ok((device.clone(), version));
            }
            let new_events = RegisterDecider::decide(&state, &command)?;
            let new_state = new_events.iter().fold(state, RegisterDecider::evolve);
            let Some(device) = new_state else {
                return Err(Error::NotFound(format!("school device {device_id}")));
            };
            let proposed = new_events
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    let (event_type, payload) = events::encode_register(device_id, device.school_id.as_str(), event);
                    pb::ProposedEvent {
                        event_id: context.event_id(index),
                        event_type: event_type.to_owned(),
                        schema_version: 1,
                        school_id: device.school_id.to_string(),
                        occurred_at: Some(events::time_to_proto(event.at())),
                        actor: Some(context.actor.clone()),
                        correlation_id: vec![],
                        causation_id: vec![],
                        trace_context: None,
                        payload,
                    }
                })
                .collect();
            let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self.log.append(&stream_id, expected, proposed).await {
                Ok(outcome) => return Ok((device, outcome.last_version)),
                Err(LogError::WrongExpectedVersion(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Contended { stream: stream_id.to_string(), attempts: MAX_ATTEMPTS })
    }

    /// A school-owned device as its stream says now, with the stream's version.
    pub async fn device(&self, device_id: &str) -> Result<Option<(SchoolDevice, Version)>, Error> {
        let (history, version) = self.load_with(&device_stream(device_id)?, events::decode_register).await?;
        Ok(fold::<RegisterDecider>(history.iter().map(|(_, event)| event)).zip(version))
    }

    /// The position of a stream's first event (0 when it has none).
    pub async fn first_position(&self, stream_id: &StreamId) -> Result<u64, Error> {
        let slice = self.log.read_stream(ReadStream::forwards(stream_id.clone(), Version(0), 1)).await?;
        Ok(slice.events.first().map_or(0, |envelope| envelope.position))
    }

    async fn load(
        &self,
        stream_id: &StreamId,
    ) -> Result<(Vec<(pb::EventEnvelope, CustodyEvent)>, Option<Version>), Error> {
        self.load_with(stream_id, events::decode_custody).await
    }

    async fn load_with<E>(
        &self,
        stream_id: &StreamId,
        decode: fn(&pb::EventEnvelope) -> Result<E, Error>,
    ) -> Result<(Vec<(pb::EventEnvelope, E)>, Option<Version>), Error> {
        let mut history = Vec::new();
        let mut from = Version(0);
        loop {
            let slice = self.log.read_stream(ReadStream::forwards(stream_id.clone(), from, LOAD_PAGE)).await?;
            let page_was_empty = slice.events.is_empty();
            for envelope in slice.events {
                let event = decode(&envelope)?;
                history.push((envelope, event));
            }
            if history.len() > MAX_TRAIL_EVENTS {
                return Err(Error::invalid(
                    "custody_id",
                    format!("the record holds more than {MAX_TRAIL_EVENTS} events"),
                ));
            }
            if slice.end_of_stream || page_was_empty {
                return Ok((history, slice.last_version));
            }
            from = Version(history.last().map_or(0, |(e, _)| e.version + 1));
        }
    }
}
