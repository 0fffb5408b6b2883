//! End to end (issue 7): filter lines over real syslog sockets into a real log — breaches
//! recorded, a self-harm search and a burst of repeats raised as alerts that incidents reads,
//! garbage quarantined, resent lines not recorded twice, nothing of the raw line stored.

use std::sync::Arc;
use std::time::Duration;

use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventEnvelope, EventFilter, EventLog};
use haven_ingest_service::{IngestConfig, SourceSpec, demo};
use haven_kernel::Position;
use haven_proto::v1 as pb;
use haven_runtime::Shutdown;
use prost::Message;
use tokio::io::AsyncWriteExt;

async fn everything(log: &dyn EventLog) -> Vec<EventEnvelope> {
    log.read_all(Position(0), 10_000, &EventFilter::default()).await.unwrap().events
}

/// Waits until the log's breaches stand for `count` requests (repeats folded into one event
/// count as theirs: how lines fall into batches does not change the total).
async fn wait_for_requests(log: &dyn EventLog, count: u32) -> Vec<EventEnvelope> {
    for _ in 0..400 {
        let events: Vec<_> =
            everything(log).await.into_iter().filter(|e| e.event_type == "ingest.BreachObserved").collect();
        let requests: u32 =
            events.iter().map(|e| pb::BreachObserved::decode(e.payload.as_slice()).unwrap().repeat_count).sum();
        assert!(requests <= count, "more requests recorded than sent: {requests}");
        if requests == count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the log's breaches never stood for {count} requests");
}

/// Waits until the log holds `count` events of `event_type`.
async fn wait_for(log: &dyn EventLog, event_type: &str, count: usize) -> Vec<EventEnvelope> {
    for _ in 0..400 {
        let events: Vec<_> = everything(log).await.into_iter().filter(|e| e.event_type == event_type).collect();
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the log never held {count} {event_type}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_lines_become_breaches_and_alerts_that_incidents_reads() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalEventLog::open(&dir.path().join("log"), EventLogConfig::default()).unwrap();
    let log: Arc<dyn EventLog> = Arc::new(local.clone());
    let config = IngestConfig {
        sources: vec![SourceSpec {
            school_id: "kestrel-primary".into(),
            source_id: "fortigate-1".into(),
            format: Some("fortigate".into()),
            timezone: "Europe/London".into(),
            syslog_tcp: Some("127.0.0.1:0".parse().unwrap()),
            syslog_udp: Some("127.0.0.1:0".parse().unwrap()),
            buffer: false,
            tls: None,
        }],
        ..IngestConfig::default()
    };
    let shutdown = Shutdown::default();
    let metrics = haven_runtime::Metrics::default();
    let running = haven_ingest_service::start(
        &config,
        Arc::clone(&log),
        &dir.path().join("ingest/key"),
        &metrics,
        &haven_runtime::Readiness::default(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let bound = &running.sources[0];

    let now = jiff::Timestamp::now();
    let self_harm = demo::fortigate_line(now, 20, 17, "Self-harm", "dark-thoughts.example", 1);
    let gambling: Vec<String> =
        (0..3).map(|i| demo::fortigate_line(now, 20, 42, "Gambling", "lucky-spins.example", 10 + i)).collect();
    let games = demo::fortigate_line(now, 20, 99, "Games", "arcade.example", 20);
    let mut tcp = tokio::net::TcpStream::connect(bound.syslog_tcp.unwrap()).await.unwrap();
    let mut stream = String::new();
    // RFC 5424 header around the first line, octet-counted framing for the second.
    stream.push_str(&format!("<134>1 2026-12-07T09:00:00Z fw-kestrel FortiGate - - - {self_harm}\n"));
    let framed = format!("<134>1 2026-12-07T09:00:00Z fw-kestrel FortiGate - - - {}", gambling[0]);
    stream.push_str(&format!("{} {framed}", framed.len()));
    for line in [&gambling[1], &gambling[2], &games, &games, &"this is not a filter log".to_owned()] {
        stream.push_str(line);
        stream.push('\n');
    }
    tcp.write_all(stream.as_bytes()).await.unwrap();
    tcp.flush().await.unwrap();

    let alerts = wait_for(log.as_ref(), "ingest.SafeguardingAlertRaised", 2).await;
    // Self-harm, three gambling attempts (distinct lines, one request repeated: folded into one
    // breach with its count when they share a batch), one games line (sent twice, the same bytes:
    // the second dropped).
    let breaches = wait_for_requests(log.as_ref(), 5).await;
    let day = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    for breach in &breaches {
        assert_eq!(breach.stream_id, format!("breaches-kestrel-primary-{day}"));
        assert_eq!(breach.school_id, "kestrel-primary");
        let payload = pb::BreachObserved::decode(breach.payload.as_slice()).unwrap();
        assert_eq!(payload.source_id, "fortigate-1");
        assert_eq!(payload.source_format, pb::SourceFormat::Fortigate as i32);
        assert!(!payload.url_host.is_empty() && payload.line_sha256.len() == 32);
        let text = String::from_utf8_lossy(&breach.payload);
        assert!(!text.contains("logid") && !text.contains("srcport"), "the raw line is never stored");
    }
    let mut raised: Vec<pb::SafeguardingAlertRaised> =
        alerts.iter().map(|e| pb::SafeguardingAlertRaised::decode(e.payload.as_slice()).unwrap()).collect();
    raised.sort_by_key(|a| std::cmp::Reverse(a.severity));
    assert_eq!(raised[0].severity, pb::AlertSeverity::Critical as i32);
    assert_eq!(raised[0].triggers, vec![pb::AlertTrigger::RiskToLife as i32]);
    assert_eq!(raised[0].category, pb::BreachCategory::SelfHarm as i32);
    assert_eq!(raised[1].severity, pb::AlertSeverity::Medium as i32);
    assert_eq!(raised[1].triggers, vec![pb::AlertTrigger::RepeatedAttempts as i32]);
    assert_eq!(raised[1].url_host, "lucky-spins.example");
    let by = raised[0].acknowledge_by.unwrap().seconds - raised[0].first_occurred_at.unwrap().seconds;
    assert_eq!(by, 15 * 60, "a critical alert is due within 15 minutes");

    // Incidents sees the critical alert as its own.
    let incidents = haven_incidents::IncidentsApp::new(Arc::clone(&log), Default::default());
    let alert_id = haven_incidents::domain::AlertId::parse(&raised[0].alert_id).unwrap();
    let (alert, _) = incidents.alert(&alert_id).await.unwrap().expect("incidents reads the alert");
    assert_eq!(alert.severity, haven_incidents::domain::Severity::Critical);
    assert!(alert.acknowledged.is_none());

    // The same lines again (a collector resending after a reconnect): nothing new is recorded.
    let head = log.head().await.unwrap().next_position;
    let mut again = tokio::net::TcpStream::connect(bound.syslog_tcp.unwrap()).await.unwrap();
    again.write_all(format!("{}\n{}\n", gambling[1], games).as_bytes()).await.unwrap();
    drop(again);
    // A UDP datagram is one message.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let extremism = demo::fortigate_line(now, 20, 7, "Extremist Groups", "radical-voice.example", 30);
    udp.send_to(extremism.as_bytes(), bound.syslog_udp.unwrap()).await.unwrap();
    let alerts = wait_for(log.as_ref(), "ingest.SafeguardingAlertRaised", 3).await;
    wait_for_requests(log.as_ref(), 6).await;
    assert_eq!(alerts.len(), 3, "extremism alerts on its own (high)");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(log.head().await.unwrap().next_position.0, head.0 + 2, "only the UDP line and its alert are new");

    let text = metrics.encode();
    assert!(
        text.contains(
            "haven_ingest_quarantined_total{school=\"kestrel-primary\",format=\"fortigate\",reason=\"missing_field\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("haven_ingest_alerts_total{school=\"kestrel-primary\",severity=\"ALERT_SEVERITY_CRITICAL\"} 1"),
        "{text}"
    );
    shutdown.trigger();
    for task in running.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    local.close().await;
}

/// A batch of more lines than the log takes appends in one call (each breach and alert is its
/// own append) is written in parts, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_one_log_call_is_appended_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalEventLog::open(&dir.path().join("log"), EventLogConfig::default()).unwrap();
    let log: Arc<dyn EventLog> = Arc::new(local.clone());
    let pipeline = haven_ingest_service::Pipeline::new(
        Arc::clone(&log),
        haven_ingest_service::PathKey::from_bytes([7; 32]),
        haven_ingest_service::RuleSettings::default(),
        haven_ingest_service::IngestMetrics::default(),
    );
    let school = haven_kernel::SchoolId::parse("kestrel-primary").unwrap();
    let mut config = haven_ingest::SourceConfig::new(school.clone());
    config.format = Some("fortigate".parse().unwrap());
    let source = haven_ingest_service::Source::new(school, "fortigate-1", config, "syslog-test".into());
    let now = jiff::Timestamp::now();
    let lines: Vec<_> = (0..12_000u64)
        .map(|i| haven_ingest_service::Line {
            bytes: demo::fortigate_line(now, 20, i as u32, "Games", &format!("site-{i}.example"), i).into_bytes(),
            received_at: now,
        })
        .collect();
    let summary = pipeline.submit(&source, &lines).await.unwrap();
    assert_eq!((summary.lines_received, summary.breaches_observed), (12_000, 12_000));
    assert_eq!(log.head().await.unwrap().next_position.0, 12_000);
    assert_eq!(pipeline.lines_processed(), 12_000);
    local.close().await;
}
