//! A subscriber that stops reading is ended with a clear status, not buffered without bound.

use std::time::Duration;

use futures_util::StreamExt;
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventLog, LogError, conformance};
use haven_kernel::{ExpectedVersion, Position, StreamId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_ended_with_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let config = EventLogConfig {
        default_read_limit: 1,
        subscriber_buffer_batches: 2,
        slow_subscriber_timeout_ms: 200,
        ..EventLogConfig::default()
    };
    let log = LocalEventLog::open(dir.path(), config).unwrap();
    let stream = StreamId::parse("slow-1").unwrap();
    for i in 0..10u8 {
        log.append(&stream, ExpectedVersion::Any, vec![conformance::event("t.A", "", &[i])]).await.unwrap();
    }
    let mut subscription = log.subscribe(Position(0), Default::default()).await.unwrap();
    // Read nothing until the buffer (2 batches of 1 event) has stayed full past the timeout.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let mut delivered = 0;
    let ending = loop {
        match tokio::time::timeout(Duration::from_secs(10), subscription.next()).await.expect("ends in time") {
            Some(Ok(batch)) => delivered += batch.events.len(),
            Some(Err(error)) => break error,
            None => panic!("ended without saying why"),
        }
    };
    assert!(delivered <= 3, "only what fitted the bounded buffer was delivered, got {delivered}");
    match ending {
        LogError::ResourceExhausted(reason) => {
            assert!(reason.contains("resume from position"), "{reason}")
        }
        other => panic!("expected ResourceExhausted, got {other:?}"),
    }
    log.close().await;
}
