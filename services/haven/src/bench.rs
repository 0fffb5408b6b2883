//! `haven bench append|read`: load generators for the event log, in the spirit of `nats bench`.
//! They run against a log embedded in this process (a fresh directory unless `--data-dir`),
//! or against a running node with `--grpc-addr`. Every append is acknowledged only after fsync.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventLog, GrpcEventLog, LogError, StreamAppend};
use haven_kernel::{ExpectedVersion, Position, StreamId, Version};
use haven_proto::v1 as pb;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Where the bench's log is.
#[derive(Clone, Debug, clap::Args)]
pub struct Target {
    /// Benchmark a running node at this gRPC address instead of an embedded log.
    #[arg(long, value_name = "ADDR", conflicts_with = "cluster")]
    pub grpc_addr: Option<std::net::SocketAddr>,
    /// Start a cluster of N `haven serve eventlog` processes on loopback (fresh temporary
    /// directories, removed after) and benchmark its leader over gRPC.
    #[arg(long, value_name = "N", conflicts_with = "data_dir")]
    pub cluster: Option<u64>,
    /// Data directory of the embedded log [default: a fresh temporary directory, removed after].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Index (redb) cache of the embedded log, in MiB.
    #[arg(long, default_value_t = 32)]
    pub cache_mib: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `haven bench append`.
#[derive(Clone, Debug, clap::Args)]
pub struct AppendArgs {
    /// Concurrent clients, each appending in a loop.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Events per append call.
    #[arg(long, default_value_t = 1)]
    pub events_per_append: usize,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Distinct streams written (round-robin per client).
    #[arg(long, default_value_t = 1_000)]
    pub streams: usize,
    /// Events to append in total.
    #[arg(long, default_value_t = 100_000)]
    pub total_events: u64,
    /// Expected-version mode: `any`, or `exact` (each client owns its streams and tracks versions).
    #[arg(long, value_enum, default_value = "any")]
    pub expected: ExpectedMode,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedMode {
    Any,
    Exact,
}

/// `haven bench read`.
#[derive(Clone, Debug, clap::Args)]
pub struct ReadArgs {
    /// Events written first (in 1000-event batches) when the log holds fewer.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Payload bytes per event written first.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Events per ReadAll page.
    #[arg(long, default_value_t = 1_000)]
    pub page: u32,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Serialize)]
struct AppendReport {
    bench: &'static str,
    clients: usize,
    events_per_append: usize,
    payload_bytes: usize,
    streams: usize,
    expected: ExpectedMode,
    events: u64,
    appends: u64,
    seconds: f64,
    events_per_second: f64,
    appends_per_second: f64,
    latency_us_p50: u64,
    latency_us_p99: u64,
    latency_us_p999: u64,
    latency_us_max: u64,
    rss_bytes: Option<u64>,
    disk_bytes: Option<u64>,
    payload_total_bytes: u64,
    disk_to_payload_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
struct ReadReport {
    bench: &'static str,
    events: u64,
    read_all_seconds: f64,
    read_all_events_per_second: f64,
    subscribe_seconds: f64,
    subscribe_events_per_second: f64,
    rss_bytes: Option<u64>,
}

/// The log under test and, when embedded, what to clean up.
pub(crate) struct Opened {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) local: Option<LocalEventLog>,
    _temp: Option<TempDir>,
    /// Stopped (its processes killed, its directory removed) on drop.
    _cluster: Option<crate::bench_cluster::Cluster>,
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) async fn open(target: &Target) -> anyhow::Result<Opened> {
    if let Some(addr) = target.grpc_addr {
        let log = GrpcEventLog::connect_lazy(&format!("http://{addr}"), Duration::from_secs(30))?;
        return Ok(Opened { log: Arc::new(log), local: None, _temp: None, _cluster: None });
    }
    if let Some(nodes) = target.cluster {
        let cluster = crate::bench_cluster::Cluster::start("append", nodes).await?;
        let addr = cluster.leader_addr().await?;
        let log = GrpcEventLog::connect_lazy(&format!("http://{addr}"), Duration::from_secs(30))?;
        return Ok(Opened { log: Arc::new(log), local: None, _temp: None, _cluster: Some(cluster) });
    }
    let (dir, temp) = match &target.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!("haven-bench-{}", std::process::id()));
            (dir.clone(), Some(TempDir(dir)))
        }
    };
    let config = EventLogConfig { cache_bytes: target.cache_mib * 1024 * 1024, ..EventLogConfig::default() };
    let local = LocalEventLog::open(&dir, config).with_context(|| format!("opening a log in {}", dir.display()))?;
    Ok(Opened { log: Arc::new(local.clone()), local: Some(local), _temp: temp, _cluster: None })
}

pub(crate) fn event(payload_bytes: usize) -> pb::ProposedEvent {
    pb::ProposedEvent {
        event_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
        event_type: "bench.Appended".into(),
        schema_version: 1,
        school_id: "bench".into(),
        occurred_at: None,
        actor: Some(pb::Actor { principal_id: "haven".into(), kind: pb::ActorKind::System as i32, roles: vec![] }),
        correlation_id: vec![],
        causation_id: vec![],
        trace_context: None,
        payload: vec![0xA5; payload_bytes],
    }
}

/// Resident set size of this process, from /proc.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

pub async fn append(args: AppendArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(args.events_per_append > 0, "--events-per-append must be at least 1");
    anyhow::ensure!(args.streams >= args.clients, "--streams must be at least --clients");
    let opened = open(&args.target).await?;
    let appends_total = args.total_events.div_ceil(args.events_per_append as u64);
    let next_append = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for client in 0..args.clients {
        let log = Arc::clone(&opened.log);
        let next_append = Arc::clone(&next_append);
        let (events_per_append, payload_bytes, expected_mode) =
            (args.events_per_append, args.payload_bytes, args.expected);
        // Each client owns the streams `client, client + clients, …`, so exact versions are its own.
        let own_streams: Vec<StreamId> = (client..args.streams)
            .step_by(args.clients)
            .map(|i| StreamId::parse(&format!("bench-{i}")).expect("valid stream id"))
            .collect();
        workers.push(tokio::spawn(async move {
            let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut versions: Vec<Option<Version>> = vec![None; own_streams.len()];
            let mut turn = 0usize;
            loop {
                if next_append.fetch_add(1, Ordering::Relaxed) >= appends_total {
                    return Ok::<_, LogError>(latencies);
                }
                let slot = turn % own_streams.len();
                turn += 1;
                let expected = match expected_mode {
                    ExpectedMode::Any => ExpectedVersion::Any,
                    ExpectedMode::Exact => versions[slot].map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                };
                let events = (0..events_per_append).map(|_| event(payload_bytes)).collect();
                let sent = Instant::now();
                let outcome = log.append(&own_streams[slot], expected, events).await?;
                latencies.saturating_record(sent.elapsed().as_micros() as u64);
                versions[slot] = Some(outcome.last_version);
            }
        }));
    }
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for worker in workers {
        let client_latencies = worker.await.context("bench client task")??;
        latencies.add(&client_latencies).context("merging latencies")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let appends = latencies.len();
    let events = appends * args.events_per_append as u64;
    let payload_total_bytes = events * args.payload_bytes as u64;
    let disk_bytes = match (&opened.local, &args.target.data_dir, &opened._temp) {
        (Some(_), Some(dir), _) => Some(dir_bytes(dir)),
        (Some(_), None, Some(temp)) => Some(dir_bytes(&temp.0)),
        _ => None,
    };
    let report = AppendReport {
        bench: "append",
        clients: args.clients,
        events_per_append: args.events_per_append,
        payload_bytes: args.payload_bytes,
        streams: args.streams,
        expected: args.expected,
        events,
        appends,
        seconds,
        events_per_second: events as f64 / seconds,
        appends_per_second: appends as f64 / seconds,
        latency_us_p50: latencies.value_at_quantile(0.50),
        latency_us_p99: latencies.value_at_quantile(0.99),
        latency_us_p999: latencies.value_at_quantile(0.999),
        latency_us_max: latencies.max(),
        rss_bytes: opened.local.as_ref().and_then(|_| rss_bytes()),
        disk_bytes,
        payload_total_bytes,
        disk_to_payload_ratio: disk_bytes.map(|disk| disk as f64 / payload_total_bytes.max(1) as f64),
    };
    if let Some(local) = &opened.local {
        local.close().await;
    }
    if args.target.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "append: {} events in {} appends ({} clients, {} events/append, {} B payload, expected {:?}) in {:.2} s",
            report.events,
            report.appends,
            report.clients,
            report.events_per_append,
            report.payload_bytes,
            report.expected,
            report.seconds
        );
        println!(
            "  {:.0} events/s, {:.0} appends/s (each fsynced before its ack)",
            report.events_per_second, report.appends_per_second
        );
        println!(
            "  latency per append: p50 {} us, p99 {} us, p99.9 {} us, max {} us",
            report.latency_us_p50, report.latency_us_p99, report.latency_us_p999, report.latency_us_max
        );
        if let (Some(rss), Some(disk)) = (report.rss_bytes, report.disk_bytes) {
            println!(
                "  RSS {:.1} MiB, disk {:.1} MiB = {:.2}x the {:.1} MiB of payload",
                rss as f64 / 1048576.0,
                disk as f64 / 1048576.0,
                report.disk_to_payload_ratio.unwrap_or_default(),
                payload_total_bytes as f64 / 1048576.0
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn read(args: ReadArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.page > 0, "--page must be at least 1");
    let opened = open(&args.target).await?;
    let log = Arc::clone(&opened.log);
    // Fill the log to --events in 1000-event batches across 100 streams.
    let mut have = log.head().await?.next_position.0;
    let mut batch_number = 0u64;
    while have < args.events {
        let count = (args.events - have).min(1_000) as usize;
        let stream = StreamId::parse(&format!("benchread-{}", batch_number % 100)).expect("valid stream id");
        batch_number += 1;
        let events = (0..count).map(|_| event(args.payload_bytes)).collect();
        log.append_batch(vec![StreamAppend { stream_id: stream, expected: ExpectedVersion::Any, events }]).await?;
        have += count as u64;
    }
    let filter = pb::EventFilter::default();
    let started = Instant::now();
    let mut position = Position(0);
    let mut read = 0u64;
    loop {
        let page = log.read_all(position, args.page, &filter).await?;
        read += page.events.len() as u64;
        position = page.next_position;
        if page.end_of_log {
            break;
        }
    }
    let read_all_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut subscription = log.subscribe(Position(0), filter).await?;
    let mut delivered = 0u64;
    while let Some(batch) = subscription.next().await {
        let batch = batch?;
        delivered += batch.events.len() as u64;
        if batch.caught_up {
            break;
        }
    }
    let subscribe_seconds = started.elapsed().as_secs_f64();
    drop(subscription);
    let report = ReadReport {
        bench: "read",
        events: read,
        read_all_seconds,
        read_all_events_per_second: read as f64 / read_all_seconds,
        subscribe_seconds,
        subscribe_events_per_second: delivered as f64 / subscribe_seconds,
        rss_bytes: opened.local.as_ref().and_then(|_| rss_bytes()),
    };
    if let Some(local) = &opened.local {
        local.close().await;
    }
    if args.target.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("read: {} events", report.events);
        println!("  ReadAll ({}-event pages): {:.0} events/s", args.page, report.read_all_events_per_second);
        println!("  subscription catch-up:    {:.0} events/s", report.subscribe_events_per_second);
    }
    Ok(ExitCode::SUCCESS)
}
