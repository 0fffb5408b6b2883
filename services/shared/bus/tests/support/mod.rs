//! Fixtures shared by the bus tests: a real log, a real NATS server, a recording projection.
#![allow(dead_code)]

pub mod nats_server;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use haven_bus::{HandlerError, ProjectionName, RedbHandler, RedbProjection};
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventFilter, EventLog};
use haven_kernel::{ExpectedVersion, Position, StreamId};
use haven_proto::v1::{Actor, ActorKind, EventEnvelope, ProposedEvent};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::watch;

pub use nats_server::NatsServer;

pub const POISON: &str = "test.Poisoned";

pub fn open_log(dir: &Path) -> Arc<LocalEventLog> {
    Arc::new(LocalEventLog::open(&dir.join("eventlog"), EventLogConfig::default()).unwrap())
}

/// Appends `count` events in calls of `per_call`, spread over ten streams and two schools;
/// event types from `event_type(position)`.
pub async fn append(log: &dyn EventLog, count: u64, per_call: u64, event_type: impl Fn(u64) -> &'static str) {
    let first = log.head().await.unwrap().next_position.0;
    let mut written = 0;
    while written < count {
        let n = per_call.min(count - written);
        let stream = StreamId::parse(&format!("thing-{}", (first + written) % 10)).unwrap();
        let events = (0..n)
            .map(|i| ProposedEvent {
                event_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
                event_type: event_type(first + written + i).into(),
                schema_version: 1,
                school_id: if (first + written + i) % 3 == 0 { String::new() } else { "oakfield".into() },
                payload: (first + written + i).to_le_bytes().to_vec(),
                actor: Some(Actor { principal_id: "haven".into(), kind: ActorKind::System as i32, roles: vec![] }),
                ..Default::default()
            })
            .collect();
        log.append(&stream, ExpectedVersion::Any, events).await.unwrap();
        written += n;
    }
}

pub fn plain(_: u64) -> &'static str {
    "test.Happened"
}

/// Everything in the log, in order.
pub async fn read_everything(log: &dyn EventLog) -> Vec<EventEnvelope> {
    let mut events = Vec::new();
    let mut from = Position(0);
    loop {
        let slice = log.read_all(from, 1_000, &EventFilter::default()).await.unwrap();
        events.extend(slice.events);
        from = slice.next_position;
        if slice.end_of_log {
            return events;
        }
    }
}

const HANDLED: TableDefinition<u64, &[u8]> = TableDefinition::new("handled");
const VIOLATIONS: TableDefinition<u64, &str> = TableDefinition::new("violations");

/// A projection that records every event it handles, in its own table, and records a
/// violation (instead of failing) when an event comes twice or out of order. It refuses
/// `POISON` events when `refuse_poison`, and panics once at `crash_at` (mid-transaction).
pub struct Recorder {
    pub refuse_poison: bool,
    pub crash_at: Option<(u64, Arc<AtomicBool>)>,
}

impl RedbHandler for Recorder {
    fn handle(&mut self, txn: &WriteTransaction, event: &EventEnvelope) -> Result<(), HandlerError> {
        if self.refuse_poison && event.event_type == POISON {
            return Err(HandlerError::new("poison", format!("cannot handle position {}", event.position)));
        }
        let mut handled = txn.open_table(HANDLED).unwrap();
        let last = handled.last().unwrap().map(|(position, _)| position.value());
        if handled.get(event.position).unwrap().is_some() {
            txn.open_table(VIOLATIONS).unwrap().insert(event.position, "handled twice").unwrap();
        } else if last.is_some_and(|last| last >= event.position) {
            txn.open_table(VIOLATIONS).unwrap().insert(event.position, "out of order").unwrap();
        }
        handled.insert(event.position, event.event_id.as_slice()).unwrap();
        if let Some((at, crashed)) = &self.crash_at
            && event.position == *at
            && !crashed.swap(true, Ordering::SeqCst)
        {
            panic!("simulated crash after handling position {at}, before the commit");
        }
        Ok(())
    }

    fn reset(&mut self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        txn.delete_table(HANDLED)?;
        txn.delete_table(VIOLATIONS)?;
        Ok(())
    }
}

pub fn recorder(dir: &Path, name: &str) -> RedbProjection<Recorder> {
    recorder_with(dir, name, Recorder { refuse_poison: false, crash_at: None })
}

pub fn recorder_with(dir: &Path, name: &str, handler: Recorder) -> RedbProjection<Recorder> {
    let path = dir.join(format!("{name}.redb"));
    RedbProjection::open(&path, ProjectionName::parse(name).unwrap(), EventFilter::default(), handler).unwrap()
}

/// (position, event id) of every handled event, in position order.
pub fn handled(database: &Database) -> Vec<(u64, Vec<u8>)> {
    let txn = database.begin_read().unwrap();
    let Ok(table) = txn.open_table(HANDLED) else { return Vec::new() };
    table.iter().unwrap().map(|entry| entry.map(|(k, v)| (k.value(), v.value().to_vec())).unwrap()).collect()
}

pub fn violations(database: &Database) -> Vec<(u64, String)> {
    let txn = database.begin_read().unwrap();
    let Ok(table) = txn.open_table(VIOLATIONS) else { return Vec::new() };
    table.iter().unwrap().map(|entry| entry.map(|(k, v)| (k.value(), v.value().to_owned())).unwrap()).collect()
}

/// Asserts the recorder handled exactly the log's events `0..count`, each once, in order.
pub async fn assert_exactly_once_in_order(log: &dyn EventLog, database: &Database, except: &[u64]) {
    assert_eq!(violations(database), vec![], "events handled twice or out of order");
    let expected: Vec<(u64, Vec<u8>)> = read_everything(log)
        .await
        .into_iter()
        .filter(|event| !except.contains(&event.position))
        .map(|event| (event.position, event.event_id))
        .collect();
    let got = handled(database);
    assert_eq!(got.len(), expected.len(), "handled {} events, the log has {}", got.len(), expected.len());
    assert!(got == expected, "handled events differ from the log's");
}

/// Waits (at most a minute: a hang fails the test, time is not what is tested) for `target`.
pub async fn wait_for(progress: &mut watch::Receiver<Position>, target: u64) {
    let reached =
        matches!(tokio::time::timeout(Duration::from_secs(60), progress.wait_for(|p| p.0 >= target)).await, Ok(Ok(_)));
    assert!(reached, "checkpoint stuck at {} before {target}", progress.borrow().0);
}
