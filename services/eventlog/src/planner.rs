//! Turns a group of validated append requests into one [`WriteSet`]: the only place where
//! positions, versions and chain hashes are assigned, expected versions are checked and
//! retries are recognised.
//!
//! ```text
//!  requests ──plan──▶ per request: outcomes (or a refusal)     ──▶ replies after the fsync
//!      │                 └─ reads: the group's pending writes, then the store
//!      └──────────────▶ records, stream heads, new head        ──▶ one Store::write
//! ```
//! Each request is planned in two steps: *decide* reads but changes nothing and may refuse
//! the whole request; *apply* assigns positions. So a refused request leaves no trace in the
//! group, and requests later in the group see the effects of earlier ones.

use std::collections::HashMap;

use haven_eventlog_client::{AppendOutcome, BatchItemOutcome, LogError, StreamAppend, WrongExpectedVersion};
use haven_kernel::{EventId, Position, StreamId, Version};
use haven_proto::v1::{EventEnvelope, ProposedEvent};

use crate::record;
use crate::store::{NewRecord, Store, StoreHead, WriteSet};

/// An event written earlier in the current group, not yet durable: the index of its record
/// (decoded again only when a retry has to be compared with it, which is rare).
#[derive(Debug)]
struct PendingEvent {
    record: usize,
}

/// Where an already-written event lives, and what it holds.
#[derive(Debug)]
struct Existing {
    position: Position,
    stream_id: String,
    version: Version,
    envelope: EventEnvelope,
}

/// What one stream append will do, decided before anything is applied.
#[derive(Debug)]
enum Decision {
    Write { first_version: Version },
    Duplicate(AppendOutcome),
    Wrong(WrongExpectedVersion),
}

/// The writes of one group commit under construction.
#[derive(Debug)]
pub struct Planner<'s> {
    store: &'s dyn Store,
    head: StoreHead,
    recorded_at: prost_types::Timestamp,
    records: Vec<NewRecord>,
    stream_heads: HashMap<StreamId, Version>,
    pending: HashMap<EventId, PendingEvent>,
    bytes: usize,
}

impl<'s> Planner<'s> {
    /// Starts a group on top of the durable `head`; every event gets `recorded_at`.
    pub fn new(store: &'s dyn Store, head: StoreHead, recorded_at: prost_types::Timestamp) -> Self {
        Planner {
            store,
            head,
            recorded_at,
            records: Vec::new(),
            stream_heads: HashMap::new(),
            pending: HashMap::new(),
            bytes: 0,
        }
    }

    /// Stamps the events planned from now on with `recorded_at` (raft: each entry carries
    /// its leader's time).
    pub fn set_recorded_at(&mut self, recorded_at: prost_types::Timestamp) {
        self.recorded_at = recorded_at;
    }

    /// Encoded bytes planned so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Plans a batch: either one outcome per stream append, or a refusal of the whole batch.
    pub fn plan(&mut self, appends: &[StreamAppend]) -> Result<Vec<BatchItemOutcome>, LogError> {
        // Decide every stream append first; streams repeated within the batch see the
        // versions the earlier ones will create.
        let mut local_heads: HashMap<&StreamId, Option<Version>> = HashMap::new();
        let mut decisions = Vec::with_capacity(appends.len());
        for append in appends {
            let current = match local_heads.get(&append.stream_id) {
                Some(known) => *known,
                None => self.last_version(&append.stream_id)?,
            };
            let decision = self.decide(append, current)?;
            if let Decision::Write { first_version } = decision {
                let last = Version(first_version.0 + append.events.len() as u64 - 1);
                local_heads.insert(&append.stream_id, Some(last));
            }
            decisions.push(decision);
        }
        Ok(appends
            .iter()
            .zip(decisions)
            .map(|(append, decision)| match decision {
                Decision::Write { first_version } => Ok(self.apply(append, first_version)),
                Decision::Duplicate(outcome) => Ok(outcome),
                Decision::Wrong(wrong) => Err(wrong),
            })
            .collect())
    }

    /// Finishes the group: `None` when nothing is to be written.
    pub fn finish(self) -> (Option<WriteSet>, StoreHead) {
        if self.records.is_empty() {
            return (None, self.head);
        }
        let set = WriteSet {
            records: self.records,
            stream_heads: self.stream_heads.into_iter().collect(),
            head: self.head,
            tag: None,
        };
        (Some(set), self.head)
    }

    fn last_version(&self, stream_id: &StreamId) -> Result<Option<Version>, LogError> {
        match self.stream_heads.get(stream_id) {
            Some(version) => Ok(Some(*version)),
            None => self.store.last_version(stream_id),
        }
    }

    /// Where each id was already written (in this group or before), and what it holds.
    fn existing(&self, event_ids: &[EventId]) -> Result<Vec<Option<Existing>>, LogError> {
        let stored = self.store.find_events(event_ids)?;
        event_ids
            .iter()
            .zip(stored)
            .map(|(event_id, stored)| {
                if let Some(pending) = self.pending.get(event_id) {
                    let record = &self.records[pending.record];
                    let envelope = record::decode(record.position, &record.value)?;
                    return Ok(Some(Existing {
                        position: record.position,
                        stream_id: record.stream_id.as_str().to_owned(),
                        version: record.version,
                        envelope,
                    }));
                }
                let Some(position) = stored else { return Ok(None) };
                let envelope = self.store.get(position)?.ok_or_else(|| {
                    LogError::Internal(format!("event id index points at missing position {position}"))
                })?;
                Ok(Some(Existing {
                    position,
                    stream_id: envelope.stream_id.clone(),
                    version: Version(envelope.version),
                    envelope,
                }))
            })
            .collect()
    }

    fn decide(&self, append: &StreamAppend, current: Option<Version>) -> Result<Decision, LogError> {
        let event_ids: Vec<EventId> = append
            .events
            .iter()
            .map(|event| EventId::from_slice(&event.event_id).expect("validated before planning"))
            .collect();
        let existing = self.existing(&event_ids)?;
        let found: Vec<(EventId, Option<Existing>)> = event_ids.into_iter().zip(existing).collect();
        if found.iter().all(|(_, existing)| existing.is_none()) {
            if !append.expected.is_met_by(current) {
                return Ok(Decision::Wrong(WrongExpectedVersion {
                    stream_id: append.stream_id.clone(),
                    expected: append.expected,
                    actual: current,
                }));
            }
            let first_version = current.map_or(Version(0), |v| Version(v.0 + 1));
            return Ok(Decision::Write { first_version });
        }
        // Some ids are known: this is a retry, and it must be an exact one — the same events,
        // same content, same stream, consecutive, nothing added. Anything else is refused.
        let mut previous: Option<&Existing> = None;
        for ((event_id, existing), proposed) in found.iter().zip(&append.events) {
            let conflict = || LogError::EventIdConflict { event_id: event_id.to_string() };
            let Some(existing) = existing else {
                // Part of the call is new: report the first id that was already there.
                let known = found.iter().find_map(|(id, e)| e.as_ref().map(|_| id)).expect("some id is known");
                return Err(LogError::EventIdConflict { event_id: known.to_string() });
            };
            if existing.stream_id != append.stream_id.as_str() || !same_content(&existing.envelope, proposed) {
                return Err(conflict());
            }
            if let Some(prev) = previous
                && (existing.version.0 != prev.version.0 + 1 || existing.position.0 <= prev.position.0)
            {
                return Err(conflict());
            }
            previous = Some(existing);
        }
        let first = found[0].1.as_ref().expect("all known");
        let last = found[found.len() - 1].1.as_ref().expect("all known");
        Ok(Decision::Duplicate(AppendOutcome {
            first_version: first.version,
            last_version: last.version,
            first_position: first.position,
            last_position: last.position,
            duplicate: true,
        }))
    }

    fn apply(&mut self, append: &StreamAppend, first_version: Version) -> AppendOutcome {
        let first_position = self.head.next_position;
        let mut version = first_version;
        for proposed in &append.events {
            let position = self.head.next_position;
            let envelope = envelope_of(proposed, &append.stream_id, version, position, &self.recorded_at);
            let (value, hash) = record::encode(&envelope, &self.head.head_hash);
            let event_id = EventId::from_slice(&proposed.event_id).expect("validated before planning");
            self.bytes += value.len();
            self.records.push(NewRecord { position, stream_id: append.stream_id.clone(), version, event_id, value });
            self.pending.insert(event_id, PendingEvent { record: self.records.len() - 1 });
            self.head = StoreHead { next_position: Position(position.0 + 1), head_hash: hash };
            version = Version(version.0 + 1);
        }
        let last_version = Version(version.0 - 1);
        self.stream_heads.insert(append.stream_id.clone(), last_version);
        AppendOutcome {
            first_version,
            last_version,
            first_position,
            last_position: Position(self.head.next_position.0 - 1),
            duplicate: false,
        }
    }
}

/// The envelope the log stores for a proposed event (hash empty: it is computed on encoding).
fn envelope_of(
    proposed: &ProposedEvent,
    stream_id: &StreamId,
    version: Version,
    position: Position,
    recorded_at: &prost_types::Timestamp,
) -> EventEnvelope {
    EventEnvelope {
        event_id: proposed.event_id.clone(),
        stream_id: stream_id.as_str().to_owned(),
        version: version.0,
        position: position.0,
        event_type: proposed.event_type.clone(),
        schema_version: proposed.schema_version,
        school_id: proposed.school_id.clone(),
        occurred_at: proposed.occurred_at,
        recorded_at: Some(*recorded_at),
        actor: proposed.actor.clone(),
        correlation_id: proposed.correlation_id.clone(),
        causation_id: proposed.causation_id.clone(),
        trace_context: proposed.trace_context.clone(),
        payload: proposed.payload.clone(),
        hash: Vec::new(),
    }
}

/// Whether a stored event holds exactly what a writer proposes again. The trace context is
/// not content: a retry sent from another trace (or stamped by another append) is still the
/// same event (ADR 0021).
fn same_content(stored: &EventEnvelope, proposed: &ProposedEvent) -> bool {
    stored.event_type == proposed.event_type
        && stored.schema_version == proposed.schema_version
        && stored.school_id == proposed.school_id
        && stored.occurred_at == proposed.occurred_at
        && stored.actor == proposed.actor
        && stored.correlation_id == proposed.correlation_id
        && stored.causation_id == proposed.causation_id
        && stored.payload == proposed.payload
}
