//! The NATS ingest buffer as an input, against a real nats-server and a real log: every line
//! of every batch recorded exactly once across an ingest restart mid-stream and a batch whose
//! acknowledgement was lost after its append; batches for a school without a buffer source, or
//! in a format its source does not read, refused and not recorded.

#[path = "../../shared/bus/tests/support/nats_server.rs"]
#[allow(dead_code)]
mod nats_server;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use haven_bus::IngestBuffer;
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventFilter, EventLog};
use haven_ingest_service::buffer::{self, BufferSources};
use haven_ingest_service::{IngestConfig, IngestMetrics, PathKey, Pipeline, RuleSettings, SourceSpec, Summary, demo};
use haven_kernel::{Position, SchoolId};
use haven_proto::v1 as pb;
use haven_runtime::Shutdown;
use nats_server::NatsServer;
use prost::Message;
use tokio::sync::mpsc;

const BATCHES: u64 = 40;
const LINES_PER_BATCH: u64 = 100;

fn config() -> IngestConfig {
    let source = |school: &str, buffer: bool| SourceSpec {
        school_id: school.into(),
        source_id: "collector".into(),
        format: Some("fortigate".into()),
        timezone: "Europe/London".into(),
        syslog_tcp: None,
        syslog_udp: (!buffer).then(|| "127.0.0.1:0".parse().unwrap()),
        buffer,
        tls: None,
    };
    // Kestrel reads the buffer; Marram has a source, but only a syslog one.
    IngestConfig {
        sources: vec![source("kestrel-primary", true), source("marram-primary", false)],
        ..Default::default()
    }
}

/// A pipeline as a fresh ingest process has it (nothing remembered of earlier lines).
fn pipeline(log: &Arc<dyn EventLog>, metrics: &IngestMetrics) -> Arc<Pipeline> {
    Arc::new(Pipeline::new(Arc::clone(log), PathKey::from_bytes([7; 32]), RuleSettings::default(), metrics.clone()))
}

/// An ingest process consuming the buffer: its task, its stop, and each batch's summary.
async fn run_ingest(
    server: &NatsServer,
    log: &Arc<dyn EventLog>,
    metrics: &IngestMetrics,
) -> (tokio::task::JoinHandle<()>, Shutdown, mpsc::UnboundedReceiver<Summary>) {
    let stop = Shutdown::default();
    let (batches, done) = mpsc::unbounded_channel::<Summary>();
    let sources = BufferSources::from_config(&config());
    let task = buffer::start(pipeline(log, metrics), server.connect().await, sources, stop.clone(), Some(batches))
        .await
        .unwrap();
    (task, stop, done)
}

/// Every breach in the log: the digest of its line, and how many lines it stands for.
async fn breaches(log: &dyn EventLog) -> Vec<(Vec<u8>, u32)> {
    let mut found = Vec::new();
    let mut from = Position(0);
    loop {
        let slice = log.read_all(from, 5_000, &EventFilter::default()).await.unwrap();
        for event in slice.events.iter().filter(|e| e.event_type == "ingest.BreachObserved") {
            let breach = pb::BreachObserved::decode(event.payload.as_slice()).unwrap();
            assert_eq!(breach.school_id, "kestrel-primary", "only the configured school is recorded");
            assert_eq!(breach.source_id, "collector");
            found.push((breach.line_sha256, breach.repeat_count));
        }
        from = slice.next_position;
        if slice.end_of_log {
            return found;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_buffered_line_is_recorded_once_across_restarts_and_lost_acknowledgements() {
    let server = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let local = LocalEventLog::open(&dir.path().join("log"), EventLogConfig::default()).unwrap();
    let log: Arc<dyn EventLog> = Arc::new(local.clone());
    let publisher = IngestBuffer::new(server.connect().await).await.unwrap();
    let kestrel = SchoolId::parse("kestrel-primary").unwrap();
    let now = jiff::Timestamp::now();
    for batch in 0..BATCHES {
        let lines: Vec<String> = (0..LINES_PER_BATCH)
            .map(|i| {
                let n = batch * LINES_PER_BATCH + i;
                demo::fortigate_line(now, 20, n as u32, "Games", &format!("site-{n}.example"), n)
            })
            .collect();
        publisher.publish(&kestrel, "fortigate", &format!("batch-{batch}"), &lines).await.unwrap();
    }
    // Not for Kestrel's source: a school whose only source is syslog, and another format.
    let line = demo::fortigate_line(now, 21, 1, "Games", "other-school.example", 1);
    publisher
        .publish(&SchoolId::parse("marram-primary").unwrap(), "fortigate", "marram-1", std::slice::from_ref(&line))
        .await
        .unwrap();
    publisher.publish(&kestrel, "pan_os", "kestrel-pan", &[line]).await.unwrap();

    let sources = || BufferSources::from_config(&config());
    let metrics = IngestMetrics::default();

    // The first ingest process takes a few batches and is stopped mid-stream.
    let (first, first_stop, mut first_done) = run_ingest(&server, &log, &metrics).await;
    let mut recorded_first = 0;
    for _ in 0..5 {
        recorded_first += first_done.recv().await.unwrap().breaches_observed;
    }
    first_stop.trigger();
    first.await.unwrap();
    assert!(recorded_first >= 5 * LINES_PER_BATCH);
    assert!(breaches(log.as_ref()).await.len() < (BATCHES * LINES_PER_BATCH) as usize, "stopped mid-stream");

    // A second one appends a batch and dies before acknowledging it: the batch comes back.
    let mut raw = IngestBuffer::new(server.connect().await).await.unwrap().consumer(buffer::CONSUMER).await.unwrap();
    let taken = raw.next().await.unwrap();
    let source = sources().source_for(&taken.school_id, &taken.format).unwrap();
    let appended = pipeline(&log, &metrics).submit(&source, &buffer::lines(&taken)).await.unwrap();
    assert_eq!(appended.breaches_observed, LINES_PER_BATCH);
    taken.retry_later(Duration::ZERO).await.unwrap();
    raw.release().await;

    // A third takes the rest, the appended-but-unacknowledged batch among them.
    let (last, last_stop, mut last_done) = run_ingest(&server, &log, &metrics).await;
    let nats = server.connect().await;
    let mut stream = nats.jetstream().get_stream(haven_bus::INGEST_STREAM).await.unwrap();
    let mut duplicates = 0;
    while stream.info().await.unwrap().state.messages > 0 {
        if let Ok(Some(summary)) = tokio::time::timeout(Duration::from_millis(100), last_done.recv()).await {
            duplicates += summary.duplicates_dropped;
        }
    }
    last_stop.trigger();
    last.await.unwrap();
    while let Ok(summary) = last_done.try_recv() {
        duplicates += summary.duplicates_dropped;
    }
    assert_eq!(duplicates, LINES_PER_BATCH, "the redelivered batch's lines were recognised, not recorded again");

    let recorded = breaches(log.as_ref()).await;
    assert_eq!(recorded.len() as u64, BATCHES * LINES_PER_BATCH, "every line recorded");
    assert!(recorded.iter().all(|(_, repeats)| *repeats == 1));
    let distinct: HashSet<_> = recorded.iter().map(|(digest, _)| digest.clone()).collect();
    assert_eq!(distinct.len(), recorded.len(), "no line recorded twice");
    assert_eq!(metrics.buffer_refused_count("unconfigured_school"), 1);
    assert_eq!(metrics.buffer_refused_count("format_mismatch"), 1);
    local.close().await;
}
