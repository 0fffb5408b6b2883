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

/// Subscribers started at different moments while four writers append concurrently: each sees
/// every position from where it started, in order, once — across the switch from history to live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_to_live_under_concurrent_appends_loses_and_duplicates_nothing() {
    const WRITERS: u64 = 4;
    const CALLS: u64 = 150;
    const PER_CALL: u64 = 2;
    let total = WRITERS * CALLS * PER_CALL;
    let dir = tempfile::tempdir().unwrap();
    // Small pages so the catch-up runs many reads while the writers are busy.
    let config = EventLogConfig { default_read_limit: 7, ..EventLogConfig::default() };
    let log = LocalEventLog::open(dir.path(), config).unwrap();

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let log = log.clone();
        writers.push(tokio::spawn(async move {
            let stream = StreamId::parse(&format!("busy-{w}")).unwrap();
            for i in 0..CALLS {
                let events = (0..PER_CALL).map(|j| conformance::event("t.Busy", "", &[w as u8, i as u8, j as u8]));
                log.append(&stream, ExpectedVersion::Any, events.collect()).await.unwrap();
            }
        }));
    }

    let mut readers = Vec::new();
    for (start_after, from) in [(0u64, 0u64), (100, 0), (300, 250), (600, 599)] {
        let log = log.clone();
        readers.push(tokio::spawn(async move {
            while log.head().await.unwrap().next_position.0 < start_after {
                tokio::task::yield_now().await;
            }
            let mut subscription = log.subscribe(Position(from), Default::default()).await.unwrap();
            let mut seen = Vec::new();
            while (seen.len() as u64) < total - from {
                let batch = tokio::time::timeout(Duration::from_secs(30), subscription.next())
                    .await
                    .expect("the subscription keeps delivering")
                    .expect("the subscription does not end")
                    .expect("no error");
                seen.extend(batch.events.iter().map(|e| e.position));
            }
            (from, seen)
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    for reader in readers {
        let (from, seen) = reader.await.unwrap();
        let want: Vec<u64> = (from..total).collect();
        assert_eq!(seen, want, "subscriber from {from}: every position once, in order");
    }
    log.close().await;
}
