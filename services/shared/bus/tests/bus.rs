//! The bus against a real log and a real nats-server (one per test, on a free loopback port).
//! Every test checks the same property: the projection handled every event of the log exactly
//! once, in position order, whatever failed on the way.

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use haven_bus::{
    BusMetrics, CheckpointFile, Consumer, Delivery, EmbeddedSource, IngestBuffer, Lease, NatsSource, Relay,
    RelayConfig, RetryPolicy, encode, parked_events,
};
use haven_eventlog_client::EventLog;
use haven_kernel::{Position, SchoolId};
use haven_runtime::Shutdown;
use support::*;

fn relay(log: Arc<dyn EventLog>, nats: haven_bus::Nats, dir: &std::path::Path, metrics: &BusMetrics) -> Relay {
    let mut config = RelayConfig::new(CheckpointFile::new(dir.join("relay.checkpoint")));
    config.lease_ttl = Duration::from_secs(1);
    config.checkpoint_interval = Duration::from_millis(20);
    Relay::new(log, nats, config, metrics.clone())
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy { attempts: 3, first_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(50) }
}

async fn stream_messages(nats: &haven_bus::Nats) -> u64 {
    let mut stream = nats.jetstream().get_stream(haven_bus::EVENTS_STREAM).await.unwrap();
    stream.info().await.unwrap().state.messages
}

/// What every source must give a consumer: history, live events, a stop, events written
/// while stopped, a restart from the stored checkpoint — each event handled once, in order.
async fn source_conformance<S: haven_bus::Source + 'static>(relayed: Relayed, source: impl Fn() -> S) {
    let mut projection = recorder(relayed.dir.path(), "conformance");
    let database = projection.database();
    append(&*relayed.log, 500, 10, plain).await;
    for round in 1..=2_u64 {
        let consumer = Consumer::new(projection, relayed.shared.clone(), relayed.metrics.clone());
        let mut progress = consumer.progress();
        let stop = Shutdown::default();
        let consuming = tokio::spawn(consumer.run(source(), stop.clone()));
        wait_for(&mut progress, round * 1_000 - 500).await;
        append(&*relayed.log, 500, 10, plain).await;
        wait_for(&mut progress, round * 1_000).await;
        stop.trigger();
        projection = consuming.await.unwrap();
        append(&*relayed.log, 500, 10, plain).await;
    }
    drop(projection);
    let log = relayed.log.clone();
    relayed.stop().await;
    let written_after_the_last_stop: Vec<u64> = (2_000..2_500).collect();
    assert_exactly_once_in_order(&*log, &database, &written_after_the_last_stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_source_conforms() {
    let relayed = Relayed::start().await;
    let log = relayed.shared.clone();
    source_conformance(relayed, move || EmbeddedSource::new(log.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_source_conforms() {
    let relayed = Relayed::start().await;
    let nats = relayed.server.connect().await;
    source_conformance(relayed, move || NatsSource::new(nats.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_and_restarted_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start().await;
    let log = open_log(dir.path());
    let shared: Arc<dyn EventLog> = log.clone();
    let metrics = BusMetrics::default();
    append(&*log, 1_500, 50, plain).await;

    let first =
        tokio::spawn(relay(shared.clone(), server.connect().await, dir.path(), &metrics).run(Shutdown::default()));
    let projection = recorder(dir.path(), "recorder");
    let database = projection.database();
    let consumer = Consumer::new(projection, shared.clone(), metrics.clone());
    let mut progress = consumer.progress();
    let shutdown = Shutdown::default();
    let consuming = tokio::spawn(consumer.run(NatsSource::new(server.connect().await), shutdown.clone()));
    wait_for(&mut progress, 700).await;
    first.abort(); // killed: no lease release, no final checkpoint
    append(&*log, 1_500, 50, plain).await;
    let second = relay(shared.clone(), server.connect().await, dir.path(), &metrics);
    let second_shutdown = Shutdown::default();
    let second_task = tokio::spawn(second.run(second_shutdown.clone()));
    wait_for(&mut progress, 3_000).await;

    shutdown.trigger();
    second_shutdown.trigger();
    consuming.await.unwrap();
    second_task.await.unwrap();
    assert_exactly_once_in_order(&*log, &database, &[]).await;
    assert_eq!(stream_messages(&server.connect().await).await, 3_000, "every event on the bus once");
}

/// A log and a relay to a fresh nats-server, running.
struct Relayed {
    dir: tempfile::TempDir,
    server: NatsServer,
    log: Arc<haven_eventlog::LocalEventLog>,
    shared: Arc<dyn EventLog>,
    metrics: BusMetrics,
    shutdown: Shutdown,
    relaying: tokio::task::JoinHandle<()>,
}

impl Relayed {
    async fn start() -> Relayed {
        let dir = tempfile::tempdir().unwrap();
        let server = NatsServer::start().await;
        let log = open_log(dir.path());
        let shared: Arc<dyn EventLog> = log.clone();
        let metrics = BusMetrics::default();
        let shutdown = Shutdown::default();
        let relay = relay(shared.clone(), server.connect().await, dir.path(), &metrics);
        let relaying = tokio::spawn(relay.run(shutdown.clone()));
        Relayed { dir, server, log, shared, metrics, shutdown, relaying }
    }

    /// Runs `projection` on NATS until the shutdown; its progress and its task.
    async fn consume<P: haven_bus::Projection>(
        &self,
        projection: P,
    ) -> (tokio::sync::watch::Receiver<Position>, tokio::task::JoinHandle<P>) {
        let consumer = Consumer::new(projection, self.shared.clone(), self.metrics.clone()).with_retry(fast_retry());
        let progress = consumer.progress();
        let source = NatsSource::new(self.server.connect().await);
        (progress, tokio::spawn(consumer.run(source, self.shutdown.clone())))
    }

    async fn stop(self) -> (tempfile::TempDir, NatsServer) {
        self.shutdown.trigger();
        self.relaying.await.unwrap();
        (self.dir, self.server)
    }
}

/// [`Relayed`] with a recording consumer.
struct Pipeline {
    relayed: Relayed,
    database: Arc<redb::Database>,
    progress: tokio::sync::watch::Receiver<Position>,
    consuming: tokio::task::JoinHandle<haven_bus::RedbProjection<Recorder>>,
}

impl Pipeline {
    async fn start() -> Pipeline {
        let relayed = Relayed::start().await;
        let projection = recorder(relayed.dir.path(), "recorder");
        let database = projection.database();
        let (progress, consuming) = relayed.consume(projection).await;
        Pipeline { relayed, database, progress, consuming }
    }

    async fn stop_and_check(self) -> NatsServer {
        self.relayed.shutdown.trigger();
        self.consuming.await.unwrap();
        let log = self.relayed.log.clone();
        let (_dir, server) = self.relayed.stop().await;
        assert_exactly_once_in_order(&*log, &self.database, &[]).await;
        server
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restarted_mid_stream() {
    let mut pipeline = Pipeline::start().await;
    append(&*pipeline.relayed.log, 1_000, 20, plain).await;
    wait_for(&mut pipeline.progress, 500).await;
    pipeline.relayed.server.restart().await;
    append(&*pipeline.relayed.log, 1_000, 20, plain).await;
    wait_for(&mut pipeline.progress, 2_000).await;
    pipeline.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_store_deleted_mid_stream() {
    let mut pipeline = Pipeline::start().await;
    append(&*pipeline.relayed.log, 1_000, 20, plain).await;
    wait_for(&mut pipeline.progress, 400).await;
    // Streams, the durable consumer and the lease are all gone; the relay goes on from its own
    // checkpoint file, so what it had published is on the bus no more.
    pipeline.relayed.server.restart_with_empty_store().await;
    append(&*pipeline.relayed.log, 1_000, 20, plain).await;
    wait_for(&mut pipeline.progress, 2_000).await;
    let server = pipeline.stop_and_check().await;
    let on_bus = stream_messages(&server.connect().await).await;
    assert!(on_bus < 2_000, "the relay resumed from its checkpoint instead of republishing everything ({on_bus})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_projection_catches_up_from_the_log_and_skips_the_backlog_on_the_bus() {
    let relayed = Relayed::start().await;
    append(&*relayed.log, 1_000, 50, plain).await;
    let nats = relayed.server.connect().await;
    while stream_messages(&nats).await < 1_000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let projection = recorder(relayed.dir.path(), "late");
    let database = projection.database();
    let (mut progress, consuming) = relayed.consume(projection).await;
    wait_for(&mut progress, 1_000).await;
    append(&*relayed.log, 100, 10, plain).await;
    wait_for(&mut progress, 1_100).await;

    let stream = nats.jetstream().get_stream(haven_bus::EVENTS_STREAM).await.unwrap();
    let info = stream.consumer_info("projection-late").await.unwrap();
    assert_eq!(info.delivered.consumer_sequence, 100, "only what came after the catch-up was delivered");
    relayed.shutdown.trigger();
    consuming.await.unwrap();
    let log = relayed.log.clone();
    relayed.stop().await;
    assert_exactly_once_in_order(&*log, &database, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_a_backlog_larger_than_its_ack_window() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start().await;
    let log = open_log(dir.path());
    append(&*log, 40_000, 1_000, plain).await;
    let metrics = BusMetrics::default();
    let mut config = RelayConfig::new(CheckpointFile::new(dir.path().join("relay.checkpoint")));
    config.max_in_flight = usize::MAX; // more than the connection's ack permits: clamped
    let relay = Relay::new(log.clone(), server.connect().await, config, metrics.clone());
    let shutdown = Shutdown::default();
    let relaying = tokio::spawn(relay.run(shutdown.clone()));
    // The first checkpoint tick comes before any acknowledgement: the whole backlog is lag.
    let mut most_lag = 0;
    let published = tokio::time::timeout(Duration::from_secs(60), async {
        while metrics.relay_published.get() < 40_000 || metrics.relay_lag.get() != 0 {
            most_lag = most_lag.max(metrics.relay_lag.get());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    assert!(
        published.await.is_ok(),
        "relay stuck at {} of 40000, lag {}",
        metrics.relay_published.get(),
        metrics.relay_lag.get()
    );
    assert_eq!(most_lag, 40_000, "the lag was the backlog before anything was acknowledged");
    shutdown.trigger();
    relaying.await.unwrap();
    assert_eq!(stream_messages(&server.connect().await).await, 40_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_log_publish_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start().await;
    let log = open_log(dir.path());
    let shared: Arc<dyn EventLog> = log.clone();
    let shutdown = Shutdown::default();
    let (a, b) = (BusMetrics::default(), BusMetrics::default());
    let relays = [
        tokio::spawn(relay(shared.clone(), server.connect().await, &dir.path().join("a"), &a).run(shutdown.clone())),
        tokio::spawn(relay(shared.clone(), server.connect().await, &dir.path().join("b"), &b).run(shutdown.clone())),
    ];
    let writing = tokio::spawn({
        let log = log.clone();
        async move { append(&*log, 2_000, 20, plain).await }
    });
    while a.relay_published.get() + b.relay_published.get() < 2_000 {
        assert!(a.relay_leader.get() + b.relay_leader.get() <= 1, "two relays leading at once");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    writing.await.unwrap();
    shutdown.trigger();
    for task in relays {
        task.await.unwrap();
    }
    assert!(a.relay_published.get() == 0 || b.relay_published.get() == 0, "only the lease holder published");
    assert_eq!(stream_messages(&server.connect().await).await, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_in_the_stream_is_filled_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start().await;
    let log = open_log(dir.path());
    let shared: Arc<dyn EventLog> = log.clone();
    let nats = server.connect().await;
    nats.ensure_events_stream().await.unwrap();
    let metrics = BusMetrics::default();
    let projection = recorder(dir.path(), "recorder");
    let database = projection.database();
    let consumer = Consumer::new(projection, shared.clone(), metrics.clone());
    let mut progress = consumer.progress();
    let shutdown = Shutdown::default();
    let consuming = tokio::spawn(consumer.run(NatsSource::new(nats.clone()), shutdown.clone()));
    // First the consumer is seen live (it handled 0..10, from its catch-up read or the bus,
    // however the start raced); then events arrive on the bus with 10..30 missing.
    let publish = |events: Vec<haven_proto::v1::EventEnvelope>| {
        let nats = nats.clone();
        async move {
            for event in events.iter().filter(|e| !(10..30).contains(&e.position)) {
                let outbound = encode(event);
                nats.jetstream()
                    .publish_with_headers(outbound.subject, outbound.headers, outbound.payload)
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        }
    };
    append(&*log, 10, 10, plain).await;
    publish(read_everything(&*log).await).await;
    wait_for(&mut progress, 10).await;
    append(&*log, 90, 10, plain).await;
    publish(read_everything(&*log).await.into_iter().filter(|e| e.position >= 10).collect()).await;
    wait_for(&mut progress, 100).await;

    shutdown.trigger();
    consuming.await.unwrap();
    assert_exactly_once_in_order(&*log, &database, &[]).await;
    let text = metrics_text(&metrics);
    assert!(text.contains("haven_bus_gap_filled_events_total{projection=\"recorder\"} 20"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_crash_between_handling_and_checkpoint() {
    let relayed = Relayed::start().await;
    append(&*relayed.log, 2_000, 25, plain).await;

    let crashed = Arc::new(AtomicBool::new(false));
    let handler = Recorder { refuse_poison: false, crash_at: Some((1_234, crashed.clone())) };
    let (_, consuming) = relayed.consume(recorder_with(relayed.dir.path(), "recorder", handler)).await;
    assert!(consuming.await.is_err_and(|error| error.is_panic()), "the consumer crashed mid-batch");

    let handler = Recorder { refuse_poison: false, crash_at: Some((1_234, crashed)) };
    let projection = recorder_with(relayed.dir.path(), "recorder", handler);
    let database = projection.database();
    assert!(handled(&database).iter().all(|(position, _)| *position < 1_234), "nothing of the crashed batch stored");
    let (mut progress, consuming) = relayed.consume(projection).await;
    wait_for(&mut progress, 2_000).await;

    relayed.shutdown.trigger();
    consuming.await.unwrap();
    let log = relayed.log.clone();
    relayed.stop().await;
    assert_exactly_once_in_order(&*log, &database, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_out_of_order_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    append(&*log, 200, 10, plain).await;
    let events = read_everything(&*log).await;
    let projection = recorder(dir.path(), "recorder");
    let database = projection.database();
    let mut consumer = Consumer::new(projection, log.clone(), BusMetrics::default());
    // Reversed, repeated, overlapping, with holes (60..100 never delivered), and old ones again.
    let deliveries: Vec<Vec<_>> = vec![
        events[0..50].iter().rev().cloned().collect(),
        events[20..60].iter().chain(&events[20..60]).cloned().collect(),
        events[100..150].iter().rev().chain(&events[0..10]).cloned().collect(),
        events[140..200].iter().chain(&events[190..200]).rev().cloned().collect(),
        events[0..200].to_vec(),
    ];
    for delivery in deliveries {
        consumer.deliver(Delivery { events: delivery, complete_to: None }).await.unwrap();
    }
    assert_eq!(consumer.checkpoint(), Position(200));
    assert_exactly_once_in_order(&*log, &database, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_rebuilt_from_zero_gives_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    append(&*log, 500, 7, plain).await;
    let projection = recorder(dir.path(), "recorder");
    let database = projection.database();
    let mut consumer = Consumer::new(projection, log.clone(), BusMetrics::default());
    consumer.load().await.unwrap();
    assert_eq!(consumer.catch_up().await.unwrap(), Position(500));
    let before = handled(&database);
    assert_eq!(before.len(), 500);

    assert_eq!(consumer.rebuild().await.unwrap(), Position(500));
    assert_eq!(handled(&database), before);
    assert_exactly_once_in_order(&*log, &database, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_bus_delivers_every_event_once_in_order_and_parks_poison() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let shared: Arc<dyn EventLog> = log.clone();
    let metrics = BusMetrics::default();
    let poison_at = |position| if position == 123 { POISON } else { "test.Happened" };
    append(&*log, 300, 10, poison_at).await;
    let shutdown = Shutdown::default();

    let strict = Recorder { refuse_poison: true, crash_at: None };
    let strict = recorder_with(dir.path(), "strict", strict);
    let strict_db = strict.database();
    let strict = Consumer::new(strict, shared.clone(), metrics.clone()).with_retry(fast_retry());
    let mut strict_progress = strict.progress();
    let lenient = recorder(dir.path(), "lenient");
    let lenient_db = lenient.database();
    let lenient = Consumer::new(lenient, shared.clone(), metrics.clone());
    let mut lenient_progress = lenient.progress();
    let (source, stop) = (EmbeddedSource::new(shared.clone()), shutdown.clone());
    let strict_task = tokio::spawn(async move { drop(strict.run(source, stop).await) });
    let (source, stop) = (EmbeddedSource::new(shared.clone()), shutdown.clone());
    let lenient_task = tokio::spawn(async move { drop(lenient.run(source, stop).await) });
    let tasks = [strict_task, lenient_task];
    wait_for(&mut lenient_progress, 300).await;
    append(&*log, 300, 10, poison_at).await;
    wait_for(&mut strict_progress, 600).await;
    wait_for(&mut lenient_progress, 600).await;

    shutdown.trigger();
    for task in tasks {
        task.await.unwrap();
    }
    assert_exactly_once_in_order(&*log, &lenient_db, &[]).await;
    assert_exactly_once_in_order(&*log, &strict_db, &[123]).await;
    let parked = parked_events(&strict_db).unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!((parked[0].position, parked[0].event_type.as_str(), parked[0].attempts), (123, POISON, 3));
    assert_eq!(parked[0].error_kind, "poison");
    assert!(parked_events(&lenient_db).unwrap().is_empty());
    let text = metrics_text(&metrics);
    assert!(text.contains("haven_bus_parked_events_total{projection=\"strict\"} 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_holds_the_lease_at_a_time() {
    let server = NatsServer::start().await;
    let nats = server.connect().await;
    let ttl = Duration::from_secs(1);
    let first = Lease::try_acquire(&nats, "relay-a", ttl).await.unwrap().expect("free lease taken");
    assert!(Lease::try_acquire(&nats, "relay-b", ttl).await.unwrap().is_none(), "a held lease is refused");
    let mut again = Lease::try_acquire(&nats, "relay-a", ttl).await.unwrap().expect("its holder takes it back");
    again.renew().await.unwrap();
    let mut stale = first;
    assert!(matches!(stale.renew().await, Err(haven_bus::BusError::LeaseLost)), "an old revision cannot renew");
    again.release().await;
    assert!(Lease::try_acquire(&nats, "relay-b", ttl).await.unwrap().is_some(), "a released lease is free");
    assert!(Lease::try_acquire(&nats, "relay-c", Duration::from_millis(10)).await.is_err(), "a tiny ttl is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_batches_are_a_work_queue() {
    let server = NatsServer::start().await;
    let buffer = IngestBuffer::new(server.connect().await).await.unwrap();
    let school = SchoolId::parse("oakfield").unwrap();
    let lines: Vec<String> = (0..3).map(|i| format!("1700000000.{i} 10.0.0.1 TCP_DENIED/403 GET http://x/")).collect();
    buffer.publish(&school, "squid", "batch-1", &lines).await.unwrap();
    buffer.publish(&school, "squid", "batch-1", &lines).await.unwrap(); // a retry: deduplicated
    buffer.publish(&school, "squid", "batch-2", &lines[..1]).await.unwrap();
    let refused = buffer.publish(&school, "Squid Log", "batch-3", &lines).await.unwrap_err();
    assert!(matches!(refused, haven_bus::BusError::Invalid { field: "format", .. }), "{refused}");
    let refused = buffer.publish(&school, "squid", "batch-3", &["a\nb".to_owned()]).await.unwrap_err();
    assert!(matches!(refused, haven_bus::BusError::Invalid { field: "lines", .. }), "{refused}");

    let mut consumer = buffer.consumer("ingest").await.unwrap();
    let first = consumer.next().await.unwrap();
    assert_eq!((first.school_id.as_str(), first.format.as_str(), first.lines.clone()), ("oakfield", "squid", lines));
    first.ack().await.unwrap();
    let second = consumer.next().await.unwrap();
    assert_eq!(second.lines.len(), 1);
    second.ack().await.unwrap();
    let mut stream = server.connect().await.jetstream().get_stream(haven_bus::INGEST_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0, "acknowledged batches leave the queue");
}

fn metrics_text(metrics: &BusMetrics) -> String {
    let registry = haven_runtime::Metrics::default();
    metrics.register(&registry);
    registry.encode()
}
