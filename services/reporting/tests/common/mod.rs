//! A real log in a temporary directory, and events as the other services write them.
#![allow(dead_code)]

use std::sync::Arc;

use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::EventLog;
use haven_kernel::{ExpectedVersion, StreamId};
use haven_proto::v1 as pb;
use haven_reporting::RecordContext;
use prost::Message;

pub struct TestLog {
    pub log: Arc<dyn EventLog>,
    _dir: tempfile::TempDir,
}

impl TestLog {
    pub fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalEventLog::open(dir.path(), EventLogConfig::default()).unwrap();
        TestLog { log: Arc::new(log), _dir: dir }
    }

    /// Appends one event to `stream`; returns its position.
    pub async fn append(
        &self,
        stream: &str,
        event_type: &str,
        school_id: &str,
        principal: &str,
        occurred_at: i64,
        payload: impl Message,
    ) -> u64 {
        let event = proposed(event_type, school_id, principal, occurred_at, payload.encode_to_vec());
        let outcome =
            self.log.append(&StreamId::parse(stream).unwrap(), ExpectedVersion::Any, vec![event]).await.unwrap();
        outcome.first_position.0
    }
}

pub fn actor(principal: &str) -> pb::Actor {
    pb::Actor { principal_id: principal.to_owned(), kind: pb::ActorKind::User as i32, roles: vec!["dsl".to_owned()] }
}

pub fn proposed(
    event_type: &str,
    school_id: &str,
    principal: &str,
    occurred_at: i64,
    payload: Vec<u8>,
) -> pb::ProposedEvent {
    pb::ProposedEvent {
        event_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        school_id: school_id.to_owned(),
        occurred_at: Some(prost_types::Timestamp { seconds: occurred_at, nanos: 0 }),
        actor: Some(actor(principal)),
        payload,
        ..Default::default()
    }
}

pub fn context(principal: &str, at: i64) -> RecordContext {
    RecordContext {
        actor: actor(principal),
        occurred_at: prost_types::Timestamp { seconds: at, nanos: 0 },
        event_id: *uuid::Uuid::now_v7().as_bytes(),
    }
}
