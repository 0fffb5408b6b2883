//! The audit views: read straight from the log, never from a projection, so they show exactly
//! what the log holds.
//!
//! ```text
//!  GetStreamHistory ──▶ read_stream, cut at a position (or the first event recorded at/after a time)
//!  ListActorActions ──▶ read_all scan, envelope.actor.principal_id == p      (bounded per call)
//!  ListRecordAccesses ─▶ access-<stream>  (+ subjectaccess-<school> for subject-<id>)
//!  VerifyChain ───────▶ read_all, recompute SHA-256(prev ‖ envelope without hash)
//!  each view of a sensitive stream ──append──▶ access-<stream>   reporting.StreamHistoryViewed
//!  each verification ───────────────append──▶ audit-chain        reporting.ChainVerified
//!  AuditPack (pack.rs): period ─▶ positions ─▶ chain 0..end, events, accesses, seal
//!                                       ───append──▶ audit-pack   reporting.AuditPackExported
//! ```

mod chain;
mod json;
mod pack;

use std::sync::Arc;

use haven_eventlog_client::chain::GENESIS_HASH;
use haven_eventlog_client::{EventLog, ReadStream};
use haven_kernel::{ExpectedVersion, Position, StreamId, Version};
use haven_proto::v1::{self as pb, EventEnvelope, EventFilter};
use prost::Message;
use prost_types::Timestamp;

pub use chain::{BrokenLink, ChainCheck};
pub use json::payload_json;
pub use pack::{ACCESS_EVENT_TYPES, AuditPack};

use crate::config::Limits;
use crate::events;
use crate::{Error, RecordContext};

/// Stream categories whose history is a sensitive record: reading one is recorded.
pub const SENSITIVE_CATEGORIES: &[&str] = &["concern", "incident", "custody", "subject", "alert"];

/// Events per log read.
const LOG_PAGE: u32 = 1_000;

/// The point in the past a history is read as of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsOf {
    Now,
    /// Events at positions below this one.
    Position(u64),
    /// Events the log had recorded before this time (by `recorded_at`).
    Time(Timestamp),
}

/// One page of a stream's history as of a point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamHistory {
    pub events: Vec<EventEnvelope>,
    pub stream_exists: bool,
    /// The exclusive position bound the answer was cut at.
    pub as_of_position: u64,
    pub next_version: u64,
    pub end_of_stream: bool,
}

/// The verdict of one `VerifyChain` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    pub from_position: u64,
    /// Where checking stopped: the end asked for when complete, or where to continue.
    pub next_position: u64,
    pub events_checked: u64,
    pub last_hash: [u8; 32],
    pub broken: Option<BrokenLink>,
    /// An `expected_hash` was given and the recomputed hash at `next_position - 1` differs.
    pub expected_hash_mismatch: bool,
}

impl ChainReport {
    pub fn ok(&self) -> bool {
        self.broken.is_none() && !self.expected_hash_mismatch
    }
}

/// A page of audit rows and where to go on.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub rows: Vec<T>,
    /// Empty on the last page.
    pub next_page_token: String,
}

/// The audit views over one event log.
#[derive(Clone)]
pub struct Audit {
    log: Arc<dyn EventLog>,
    limits: Limits,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Audit {
    pub fn new(log: Arc<dyn EventLog>, limits: Limits) -> Self {
        Audit { log, limits }
    }

    /// The first position whose event was recorded at or after `time` (the head if none):
    /// a binary search over `$all`, whose `recorded_at` never goes backwards.
    pub async fn position_at(&self, time: &Timestamp) -> Result<u64, Error> {
        let head = self.log.head().await?.next_position.0;
        let (mut low, mut high) = (0, head);
        while low < high {
            let middle = low + (high - low) / 2;
            let slice = self.log.read_all(Position(middle), 1, &EventFilter::default()).await?;
            let Some(event) = slice.events.first() else { break };
            if before(event.recorded_at.as_ref(), time) {
                low = event.position + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    async fn resolve(&self, as_of: &AsOf) -> Result<u64, Error> {
        Ok(match as_of {
            AsOf::Now => self.log.head().await?.next_position.0,
            AsOf::Position(position) => *position,
            AsOf::Time(time) => self.position_at(time).await?,
        })
    }

    /// One page of `stream_id` as the log held it at `as_of`, from `from_version`. Reading a
    /// sensitive stream (see [`SENSITIVE_CATEGORIES`]) is recorded in `access-<stream_id>`
    /// before the history is returned.
    pub async fn stream_history(
        &self,
        stream_id: &StreamId,
        as_of: &AsOf,
        from_version: u64,
        limit: u32,
        viewer: Option<(&RecordContext, &str)>,
    ) -> Result<StreamHistory, Error> {
        let limit = Limits::page(limit, self.limits.default_read_limit, self.limits.max_read_limit, "limit")?;
        let bound = self.resolve(as_of).await?;
        let first = self.log.read_stream(ReadStream::forwards(stream_id.clone(), Version(0), 1)).await?;
        let stream_exists = first.events.first().is_some_and(|event| event.position < bound);
        let mut history =
            StreamHistory { stream_exists, as_of_position: bound, next_version: from_version, ..Default::default() };
        if stream_exists {
            let slice =
                self.log.read_stream(ReadStream::forwards(stream_id.clone(), Version(from_version), limit)).await?;
            history.end_of_stream = slice.end_of_stream;
            for event in slice.events {
                if event.position >= bound {
                    history.end_of_stream = true;
                    break;
                }
                history.next_version = event.version + 1;
                history.events.push(event);
            }
        } else {
            history.end_of_stream = true;
        }
        if let Some((context, purpose)) = viewer
            && SENSITIVE_CATEGORIES.contains(&stream_id.category())
        {
            let school_id = first.events.first().map(|event| event.school_id.clone()).unwrap_or_default();
            let payload = pb::StreamHistoryViewed {
                viewed_stream_id: stream_id.as_str().to_owned(),
                school_id: school_id.clone(),
                viewed_by_principal_id: context.actor.principal_id.clone(),
                as_of_position: bound,
                purpose: purpose.to_owned(),
            };
            let access = StreamId::parse(&format!("access-{}", stream_id.as_str()))
                .map_err(|error| Error::invalid("stream_id", error.to_string()))?;
            self.record(&access, context, events::STREAM_HISTORY_VIEWED, &school_id, payload.encode_to_vec()).await?;
        }
        Ok(history)
    }

    /// Everything `principal_id` did, by `recorded_at` in `[from, to)`, in log order.
    pub async fn actor_actions(
        &self,
        principal_id: &str,
        from: Option<&Timestamp>,
        to: Option<&Timestamp>,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<pb::ActorAction>, Error> {
        if principal_id.is_empty() || principal_id.len() > 128 {
            return Err(Error::invalid("principal_id", "1 to 128 characters"));
        }
        let page_size =
            Limits::page(page_size, self.limits.default_page_size, self.limits.max_page_size, "page_size")? as usize;
        let mut position = match (parse_token(page_token)?, from) {
            (Some(position), _) => position,
            (None, Some(from)) => self.position_at(from).await?,
            (None, None) => 0,
        };
        let scan_end = position.saturating_add(self.limits.max_scan_events);
        let mut rows = Vec::new();
        loop {
            let slice = self.log.read_all(Position(position), LOG_PAGE, &EventFilter::default()).await?;
            for event in &slice.events {
                if to.is_some_and(|to| !before(event.recorded_at.as_ref(), to)) {
                    return Ok(Page { rows, next_page_token: String::new() });
                }
                position = event.position + 1;
                if event.actor.as_ref().is_some_and(|actor| actor.principal_id == principal_id) {
                    rows.push(action_row(event));
                    if rows.len() == page_size {
                        return Ok(Page { rows, next_page_token: position.to_string() });
                    }
                }
            }
            position = position.max(slice.next_position.0);
            if slice.end_of_log {
                return Ok(Page { rows, next_page_token: String::new() });
            }
            if position >= scan_end {
                return Ok(Page { rows, next_page_token: position.to_string() });
            }
        }
    }

    /// Every recorded read or export of the record in `stream_id`, by `occurred_at` in
    /// `[from, to)`, in log order. For `subject-<id>` it includes identity's directory reads
    /// (`identity.SubjectRecordViewed` in `subjectaccess-<school>`), listings of the school
    /// included.
    pub async fn record_accesses(
        &self,
        stream_id: &StreamId,
        from: Option<&Timestamp>,
        to: Option<&Timestamp>,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<pb::RecordAccess>, Error> {
        let page_size =
            Limits::page(page_size, self.limits.default_page_size, self.limits.max_page_size, "page_size")? as usize;
        let start = parse_token(page_token)?.unwrap_or(0);
        let access = StreamId::parse(&format!("access-{}", stream_id.as_str()))
            .map_err(|error| Error::invalid("stream_id", error.to_string()))?;
        let mut found = self.read_whole(&access).await?;
        if stream_id.category() == "subject" {
            let subject_id = &stream_id.as_str()["subject-".len()..];
            let first = self.log.read_stream(ReadStream::forwards(stream_id.clone(), Version(0), 1)).await?;
            if let Some(registered) = first.events.first()
                && let Ok(directory) = StreamId::new("subjectaccess", &registered.school_id)
            {
                for event in self.read_whole(&directory).await? {
                    let viewed = pb::SubjectRecordViewed::decode(event.payload.as_slice()).unwrap_or_default();
                    if viewed.subject_id.is_empty() || viewed.subject_id == subject_id {
                        found.push(event);
                    }
                }
            }
        }
        found.sort_by_key(|event| event.position);
        let mut rows = Vec::new();
        for event in found.into_iter().filter(|event| event.position >= start) {
            if from.is_some_and(|from| before(event.occurred_at.as_ref(), from))
                || to.is_some_and(|to| !before(event.occurred_at.as_ref(), to))
            {
                continue;
            }
            if rows.len() == page_size {
                return Ok(Page { rows, next_page_token: event.position.to_string() });
            }
            rows.push(access_row(&event));
        }
        Ok(Page { rows, next_page_token: String::new() })
    }

    /// Recomputes the chain over `[from_position, to_position)` (0 = the head), at most
    /// `max_verify_events` per call, and records the verdict in `audit-chain`.
    pub async fn verify_chain(
        &self,
        from_position: u64,
        to_position: u64,
        expected_hash: Option<[u8; 32]>,
        context: Option<&RecordContext>,
    ) -> Result<ChainReport, Error> {
        let head = self.log.head().await?.next_position.0;
        let to_position = if to_position == 0 { head } else { to_position };
        if from_position > to_position || to_position > head {
            return Err(Error::invalid(
                "to_position",
                format!("the range {from_position}..{to_position} is not within the log's 0..{head}"),
            ));
        }
        let end = to_position.min(from_position.saturating_add(self.limits.max_verify_events));
        let previous = if from_position == 0 {
            GENESIS_HASH
        } else {
            let slice = self.log.read_all(Position(from_position - 1), 1, &EventFilter::default()).await?;
            let event =
                slice.events.first().ok_or_else(|| Error::NotFound(format!("position {}", from_position - 1)))?;
            event
                .hash
                .as_slice()
                .try_into()
                .map_err(|_| Error::invalid("from_position", "stored hash is not 32 bytes"))?
        };
        let mut check = ChainCheck::new(from_position, previous);
        while check.next_position < end && check.broken.is_none() {
            let want = u32::try_from(end - check.next_position).unwrap_or(LOG_PAGE).min(LOG_PAGE);
            let slice = self.log.read_all(Position(check.next_position), want, &EventFilter::default()).await?;
            let events: Vec<_> = slice.events.into_iter().filter(|event| event.position < end).collect();
            if events.is_empty() {
                check.feed(&[EventEnvelope { position: u64::MAX, ..Default::default() }]);
                break;
            }
            check.feed(&events);
        }
        let complete = check.broken.is_none() && check.next_position == to_position;
        let expected_hash_mismatch = complete && expected_hash.is_some_and(|hash| hash != check.last_hash);
        let report = ChainReport {
            from_position,
            next_position: check.next_position,
            events_checked: check.events_checked,
            last_hash: check.last_hash,
            broken: check.broken,
            expected_hash_mismatch,
        };
        if let Some(context) = context {
            let payload = pb::ChainVerified {
                from_position,
                to_position: report.next_position,
                ok: report.ok(),
                first_bad_position: report.broken.as_ref().map_or(0, |broken| broken.position),
                last_hash: report.last_hash.to_vec(),
                verified_by_principal_id: context.actor.principal_id.clone(),
            };
            let stream = StreamId::parse("audit-chain").expect("a valid stream id");
            self.record(&stream, context, events::CHAIN_VERIFIED, "", payload.encode_to_vec()).await?;
        }
        Ok(report)
    }

    /// Records that a referral register was opened (`access-register-lado` or
    /// `access-register-police`), for the schools it covered (`None`: the trust).
    pub async fn register_viewed(
        &self,
        context: &RecordContext,
        kind: pb::RegisterKind,
        schools: Option<&[String]>,
        purpose: &str,
    ) -> Result<(), Error> {
        let stream = match kind {
            pb::RegisterKind::Lado => "access-register-lado",
            _ => "access-register-police",
        };
        let payload = pb::RegisterViewed {
            register: kind as i32,
            school_ids: schools.map(<[String]>::to_vec).unwrap_or_default(),
            viewed_by_user_id: context.actor.principal_id.clone(),
            purpose: purpose.to_owned(),
        };
        let stream = StreamId::parse(stream).expect("a valid stream id");
        self.record(&stream, context, events::REGISTER_VIEWED, "", payload.encode_to_vec()).await
    }

    /// Appends one reporting event about reporting's own use.
    pub(crate) async fn record(
        &self,
        stream: &StreamId,
        context: &RecordContext,
        event_type: &str,
        school_id: &str,
        payload: Vec<u8>,
    ) -> Result<(), Error> {
        let event = context.proposed(event_type, school_id, payload);
        self.log.append(stream, ExpectedVersion::Any, vec![event]).await?;
        Ok(())
    }

    async fn read_whole(&self, stream_id: &StreamId) -> Result<Vec<EventEnvelope>, Error> {
        let mut events = Vec::new();
        let mut version = 0;
        loop {
            let slice =
                self.log.read_stream(ReadStream::forwards(stream_id.clone(), Version(version), LOG_PAGE)).await?;
            let read = slice.events.len();
            if let Some(last) = slice.events.last() {
                version = last.version + 1;
            }
            events.extend(slice.events);
            if slice.end_of_stream || read == 0 || events.len() as u64 >= self.limits.max_scan_events {
                return Ok(events);
            }
        }
    }
}

/// Whether `time` is strictly before `bound` (unset is the start of time).
fn before(time: Option<&Timestamp>, bound: &Timestamp) -> bool {
    let time = time.map_or((0, 0), |t| (t.seconds, t.nanos));
    time < (bound.seconds, bound.nanos)
}

fn parse_token(token: &str) -> Result<Option<u64>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    token.parse().map(Some).map_err(|_| Error::invalid("page_token", "not a token this service issued"))
}

fn action_row(event: &EventEnvelope) -> pb::ActorAction {
    pb::ActorAction {
        position: event.position,
        stream_id: event.stream_id.clone(),
        event_type: event.event_type.clone(),
        school_id: event.school_id.clone(),
        occurred_at: event.occurred_at,
        recorded_at: event.recorded_at,
        roles: event.actor.as_ref().map(|actor| actor.roles.clone()).unwrap_or_default(),
    }
}

fn access_row(event: &EventEnvelope) -> pb::RecordAccess {
    let (view, purpose) = match event.event_type.as_str() {
        events::CASE_ACCESSED => {
            let accessed = pb::CaseAccessed::decode(event.payload.as_slice()).unwrap_or_default();
            (accessed.view, accessed.purpose)
        }
        events::STREAM_HISTORY_VIEWED => {
            (0, pb::StreamHistoryViewed::decode(event.payload.as_slice()).unwrap_or_default().purpose)
        }
        events::CUSTODY_TRAIL_EXPORTED => {
            (0, pb::CustodyTrailExported::decode(event.payload.as_slice()).unwrap_or_default().purpose)
        }
        events::SUBJECT_RECORD_VIEWED => {
            (0, pb::SubjectRecordViewed::decode(event.payload.as_slice()).unwrap_or_default().purpose)
        }
        _ => (0, String::new()),
    };
    let actor = event.actor.clone().unwrap_or_default();
    pb::RecordAccess {
        position: event.position,
        accessed_at: event.occurred_at,
        principal_id: actor.principal_id,
        roles: actor.roles,
        event_type: event.event_type.clone(),
        view,
        purpose,
    }
}
