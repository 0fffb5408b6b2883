//! The quarantine's counts survive a restart: each batch's refusals are appended with it as
//! `ingest.LinesQuarantined` (counts, never the lines) and read back when ingest starts.

use std::sync::Arc;

use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventFilter, EventLog};
use haven_ingest::SourceConfig;
use haven_ingest_service::{IngestConfig, Line, Source, demo};
use haven_kernel::{Position, SchoolId};
use haven_runtime::{Metrics, Readiness, Shutdown};

async fn start(log: &Arc<dyn EventLog>, dir: &std::path::Path) -> (haven_ingest_service::Running, Shutdown) {
    let shutdown = Shutdown::default();
    let running = haven_ingest_service::start(
        &IngestConfig::default(),
        Arc::clone(log),
        &dir.join("ingest.key"),
        &Metrics::default(),
        &Readiness::default(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    (running, shutdown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarantines_counts_survive_a_restart_and_a_resent_batch_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalEventLog::open(&dir.path().join("log"), EventLogConfig::default()).unwrap();
    let log: Arc<dyn EventLog> = Arc::new(local.clone());
    let (first, stop) = start(&log, dir.path()).await;
    let school = SchoolId::parse("oak").unwrap();
    let mut config = SourceConfig::new(school.clone());
    config.format = Some("fortigate".parse().unwrap());
    let source = Source::new(school, "fortigate-1", config, "syslog-test".into());
    let now = jiff::Timestamp::now();
    let secret = "date=2026-12-07 user=pupil.name srcip=10.1.2.3 url=https://example.org/?q=private";
    let lines: Vec<Line> =
        [demo::fortigate_line(now, 20, 4, "Games", "arcade.example", 2).as_str(), secret, "not a filter line"]
            .iter()
            .map(|line| Line { bytes: line.as_bytes().to_vec(), received_at: now })
            .collect();
    let summary = first.pipeline.submit(&source, &lines).await.unwrap();
    assert_eq!(summary.quarantined.values().sum::<u64>(), 2);
    let before = first.pipeline.quarantine().school("oak", None).counts;
    assert_eq!(before.iter().map(|(_, n)| n).sum::<u64>(), 2);
    // The collector resends the batch: the log recognises the refusals' record.
    first.pipeline.submit(&source, &lines).await.unwrap();
    stop.trigger();

    let events = log.read_all(Position(0), 100, &EventFilter::default()).await.unwrap().events;
    let recorded: Vec<_> = events.iter().filter(|e| e.event_type == "ingest.LinesQuarantined").collect();
    assert_eq!(recorded.len(), 1, "one format, one event; the resend adds none");
    assert!(recorded[0].stream_id.starts_with("quarantine-oak-"));
    let payload = String::from_utf8_lossy(&recorded[0].payload);
    assert!(!payload.contains("pupil") && !payload.contains("private") && !payload.contains("10.1.2.3"));

    let (second, stop) = start(&log, dir.path()).await;
    let after = second.pipeline.quarantine().school("oak", None);
    assert_eq!(after.counts, before, "counted once, as before the restart");
    assert!(after.counts.iter().all(|((source, ..), _)| source == "fortigate-1"));
    assert!(after.recent.is_empty(), "positions are held in memory only");
    assert!(second.pipeline.quarantine().started_at() <= now, "since the first refusal recorded");
    stop.trigger();
    local.close().await;
}
