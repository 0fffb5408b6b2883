//! `haven bench relay`: the relay's throughput to a local JetStream, then the end-to-end lag
//! from an append's acknowledgement to a projection having handled the event, at a fixed rate.
//! Needs a scratch NATS server with JetStream (`nats-server -js -sd /tmp/js`): the bench
//! deletes `HAVEN_EVENTS` and the relay lease bucket there first.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use haven_bus::{
    ApplyError, Batch, BusMetrics, CheckpointFile, Consumer, EVENTS_STREAM, LEASE_BUCKET, Nats, NatsSource, NatsUrl,
    Projection, ProjectionName, Relay, RelayConfig,
};
use haven_eventlog_client::{EventLog, StreamAppend};
use haven_kernel::{ExpectedVersion, Position, StreamId};
use haven_runtime::Shutdown;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::bench::{Target, event, open};

/// `haven bench relay`.
#[derive(Clone, Debug, clap::Args)]
pub struct RelayArgs {
    /// A scratch NATS server with JetStream.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Events in the log before the relay starts (throughput phase).
    #[arg(long, default_value_t = 500_000)]
    pub events: u64,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Events per second appended in the lag phase.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Events per append call in the lag phase (appends are paced, one call per tick).
    #[arg(long, default_value_t = 10)]
    pub events_per_append: u64,
    /// Length of the lag phase, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Serialize)]
struct RelayReport {
    bench: &'static str,
    events: u64,
    payload_bytes: usize,
    relay_seconds: f64,
    relay_events_per_second: f64,
    /// Messages the stream held once the relay had confirmed the backlog (JetStream's count,
    /// not the relay's): the backlog, every event stored.
    stored_after_backlog: u64,
    lag_rate_per_second: u64,
    lag_events: u64,
    lag_us_p50: u64,
    lag_us_p99: u64,
    lag_us_p999: u64,
    lag_us_max: u64,
}

/// Records when each event was handled.
struct LagProbe {
    name: ProjectionName,
    checkpoint: Position,
    handled: Arc<Mutex<Vec<(u64, Instant)>>>,
}

#[async_trait]
impl Projection for LagProbe {
    fn name(&self) -> &ProjectionName {
        &self.name
    }

    async fn checkpoint(&mut self) -> Result<Position, ApplyError> {
        Ok(self.checkpoint)
    }

    async fn apply(&mut self, batch: Batch<'_>) -> Result<(), ApplyError> {
        let now = Instant::now();
        self.handled.lock().expect("probe lock").extend(batch.events.iter().map(|event| (event.position, now)));
        self.checkpoint = batch.checkpoint;
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), ApplyError> {
        self.checkpoint = Position(0);
        Ok(())
    }
}

pub async fn relay(args: RelayArgs) -> anyhow::Result<ExitCode> {
    let url = NatsUrl::parse(&args.nats_url)?;
    let nats = Nats::connect(&url).await.with_context(|| format!("connecting to {}", url.as_str()))?;
    // A scratch server: forget earlier runs (the relay would otherwise resume after them).
    let _ = nats.jetstream().delete_stream(EVENTS_STREAM).await;
    let _ = nats.jetstream().delete_key_value(LEASE_BUCKET).await;
    nats.ensure_events_stream().await?;
    let opened = open(&args.target).await?;
    let log = Arc::clone(&opened.log);
    let stream = StreamId::parse("bench-relay")?;
    let mut written = 0;
    while written < args.events {
        let n = 1_000.min(args.events - written);
        let events = (0..n).map(|_| event(args.payload_bytes)).collect();
        log.append_batch(vec![StreamAppend { stream_id: stream.clone(), expected: ExpectedVersion::Any, events }])
            .await?;
        written += n;
    }
    let checkpoint_dir = std::env::temp_dir().join(format!("haven-bench-relay-{}", std::process::id()));
    let shutdown = Shutdown::default();
    let metrics = BusMetrics::default();
    let config = RelayConfig::new(CheckpointFile::new(checkpoint_dir.join("relay.checkpoint")));
    let relay = Relay::new(Arc::clone(&log), nats.clone(), config, metrics.clone());

    // Phase 1: throughput over a backlog.
    let started = Instant::now();
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    while metrics.relay_published.get() < args.events {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let relay_seconds = started.elapsed().as_secs_f64();
    let stored_after_backlog = nats
        .jetstream()
        .get_stream(EVENTS_STREAM)
        .await
        .context("reading HAVEN_EVENTS")?
        .get_info()
        .await
        .context("reading HAVEN_EVENTS' state")?
        .state
        .messages;
    anyhow::ensure!(
        stored_after_backlog == args.events,
        "the stream holds {stored_after_backlog} messages after the relay confirmed {} events",
        args.events
    );

    // Phase 2: lag at a fixed rate, the relay and one projection live.
    let handled = Arc::new(Mutex::new(Vec::new()));
    let probe = LagProbe {
        name: ProjectionName::parse("bench-lag-probe")?,
        checkpoint: Position(0),
        handled: Arc::clone(&handled),
    };
    let consumer = Consumer::new(probe, Arc::clone(&log), metrics.clone());
    let mut progress = consumer.progress();
    let consumer_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { drop(consumer.run(NatsSource::new(nats), shutdown).await) }
    });
    progress.wait_for(|checkpoint| checkpoint.0 >= args.events).await?;
    // Let the new durable consumer skip the backlog it starts with before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    handled.lock().expect("probe lock").clear();
    let acked = append_at_rate(&*log, &stream, &args).await?;
    let last = args.events + acked.len() as u64 * args.events_per_append;
    tokio::time::timeout(Duration::from_secs(60), progress.wait_for(|checkpoint| checkpoint.0 >= last))
        .await
        .context("the projection did not catch up within a minute")??;
    shutdown.trigger();
    let _ = tokio::join!(relay_task, consumer_task);
    let _ = std::fs::remove_dir_all(&checkpoint_dir);
    if let Some(local) = &opened.local {
        local.close().await;
    }

    let acked: HashMap<u64, Instant> = acked
        .into_iter()
        .flat_map(|(first, at)| (first..first + args.events_per_append).map(move |position| (position, at)))
        .collect();
    let mut lags = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for (position, at) in handled.lock().expect("probe lock").iter() {
        if let Some(acked_at) = acked.get(position) {
            lags.record(at.saturating_duration_since(*acked_at).as_micros().max(1) as u64)?;
        }
    }
    let report = RelayReport {
        bench: "relay",
        events: args.events,
        payload_bytes: args.payload_bytes,
        relay_seconds,
        relay_events_per_second: args.events as f64 / relay_seconds,
        stored_after_backlog,
        lag_rate_per_second: args.rate,
        lag_events: lags.len(),
        lag_us_p50: lags.value_at_quantile(0.5),
        lag_us_p99: lags.value_at_quantile(0.99),
        lag_us_p999: lags.value_at_quantile(0.999),
        lag_us_max: lags.max(),
    };
    if args.target.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "relay: {} events in {:.2} s = {:.0} events/s; the stream holds {}",
            report.events, report.relay_seconds, report.relay_events_per_second, report.stored_after_backlog
        );
        println!(
            "lag (append acknowledged -> projection handled) at {} events/s, {} events: p50 {} us, p99 {} us, p99.9 {} us, max {} us",
            report.lag_rate_per_second,
            report.lag_events,
            report.lag_us_p50,
            report.lag_us_p99,
            report.lag_us_p999,
            report.lag_us_max
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Appends `events_per_append` events per tick for `seconds`; returns (first position,
/// acknowledged at) of every call.
async fn append_at_rate(
    log: &dyn EventLog,
    stream: &StreamId,
    args: &RelayArgs,
) -> anyhow::Result<Vec<(u64, Instant)>> {
    let calls = args.rate * args.seconds / args.events_per_append;
    let period = Duration::from_secs_f64(args.events_per_append as f64 / args.rate as f64);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut acked = Vec::with_capacity(calls as usize);
    for _ in 0..calls {
        ticks.tick().await;
        let events = (0..args.events_per_append).map(|_| event(args.payload_bytes)).collect();
        let outcome = log.append(stream, ExpectedVersion::Any, events).await?;
        acked.push((outcome.first_position.0, Instant::now()));
    }
    Ok(acked)
}
