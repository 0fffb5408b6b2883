//! `haven bench catchup`: a node added to a cluster that already holds many events catches
//! up (by snapshot, then log) while writers keep appending through the leader. Reports how
//! long the new node took and whether the leader's writes stalled meanwhile.
//!
//! Starts three `haven serve eventlog` processes of this binary on loopback (a fresh temporary
//! directory), fills the log with `--events` events in 1000-event batches, starts `--writers`
//! single-event writers on the leader, measures `--baseline-seconds` of writes, then starts a
//! fourth node, adds it as a learner (the call returns once it has caught up), waits until it
//! applied everything the leader had, and promotes it to voter.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use haven_eventlog_client::{EventLog, GrpcEventLog};
use haven_kernel::{ExpectedVersion, StreamId};
use haven_proto::v1 as pb;
use haven_proto::v1::cluster_client::ClusterClient;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::bench_cluster::Cluster;

/// `haven bench catchup`.
#[derive(Clone, Debug, clap::Args)]
pub struct CatchupArgs {
    /// Events in the log before the new node is added.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Writers appending single events to the leader while the node catches up.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Seconds of writes measured before the node is added.
    #[arg(long, default_value_t = 10)]
    pub baseline_seconds: u64,
    /// Keep the nodes' data and logs after a clean run too (they are always kept after a failure).
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The writers' acknowledged appends in one phase.
#[derive(Debug, Serialize)]
struct Phase {
    seconds: f64,
    appends: u64,
    appends_per_second: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    latency_ms_max: f64,
    /// The longest time between two acknowledgements (any writer): a stall shows here.
    longest_gap_ms: f64,
}

#[derive(Debug, Serialize)]
struct CatchupReport {
    bench: &'static str,
    events: u64,
    payload_bytes: usize,
    fill_seconds: f64,
    fill_events_per_second: f64,
    /// From starting the fourth node to its having applied everything the leader had when it
    /// was added (snapshot, then log).
    catch_up_seconds: f64,
    catch_up_events_per_second: f64,
    promote_ms: f64,
    before: Phase,
    during: Phase,
}

/// Appends single events to its own stream on the leader; reports (sent, acknowledged).
async fn writer(n: usize, log: Arc<GrpcEventLog>, acks: mpsc::UnboundedSender<(Instant, Instant)>) {
    let Ok(stream) = StreamId::parse(&format!("bench-catchup-writer-{n}")) else { return };
    loop {
        let sent = Instant::now();
        if log.append(&stream, ExpectedVersion::Any, vec![crate::bench::event(64)]).await.is_ok()
            && acks.send((sent, Instant::now())).is_err()
        {
            return;
        }
    }
}

fn phase(acks: &[(Instant, Instant)], from: Instant, to: Instant) -> anyhow::Result<Phase> {
    let mut latency = Histogram::<u64>::new(3)?;
    let mut acked: Vec<Instant> = Vec::new();
    for (sent, ack) in acks.iter().filter(|(sent, _)| *sent >= from && *sent < to) {
        latency.record(ack.duration_since(*sent).as_micros() as u64)?;
        acked.push(*ack);
    }
    acked.sort_unstable();
    let mut longest_gap = Duration::ZERO;
    let mut previous = from;
    for ack in acked.iter().copied().chain([to]) {
        longest_gap = longest_gap.max(ack.saturating_duration_since(previous));
        previous = previous.max(ack);
    }
    let seconds = to.duration_since(from).as_secs_f64();
    let ms = |us: u64| us as f64 / 1e3;
    Ok(Phase {
        seconds,
        appends: latency.len(),
        appends_per_second: latency.len() as f64 / seconds,
        latency_ms_p50: ms(latency.value_at_quantile(0.5)),
        latency_ms_p99: ms(latency.value_at_quantile(0.99)),
        latency_ms_max: ms(latency.max()),
        longest_gap_ms: longest_gap.as_secs_f64() * 1e3,
    })
}

/// Fills the log through the leader: 8 clients, 1000-event batches, 100 streams.
async fn fill(log: Arc<GrpcEventLog>, events: u64, payload_bytes: usize, quiet: bool) -> anyhow::Result<()> {
    const BATCH: u64 = 1_000;
    let batches = events.div_ceil(BATCH);
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..8 {
        let (log, next) = (Arc::clone(&log), Arc::clone(&next));
        clients.push(tokio::spawn(async move {
            loop {
                let batch = next.fetch_add(1, Ordering::Relaxed);
                if batch >= batches {
                    return anyhow::Ok(());
                }
                let count = BATCH.min(events - batch * BATCH);
                let stream = StreamId::parse(&format!("bench-catchup-{}", batch % 100))?;
                let batch_events = (0..count).map(|_| crate::bench::event(payload_bytes)).collect();
                log.append(&stream, ExpectedVersion::Any, batch_events).await?;
                if !quiet && client == 0 && batch % 1_000 == 0 {
                    eprintln!("  filled {} of {events} events", batch * BATCH);
                }
            }
        }));
    }
    for client in clients {
        client.await.context("fill client")??;
    }
    Ok(())
}

/// Calls the leader, again on the new one if leadership moves (for a minute).
async fn on_leader<F, Fut>(cluster: &Cluster, what: &str, call: F) -> anyhow::Result<pb::ClusterStatus>
where
    F: Fn(ClusterClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<pb::ClusterStatus>, tonic::Status>>,
{
    let started = Instant::now();
    loop {
        let admin = cluster.admin(cluster.leader_addr().await?, Duration::from_secs(3_600));
        match call(admin).await {
            Ok(status) => return Ok(status.into_inner()),
            Err(status) if started.elapsed() < Duration::from_secs(60) => {
                tracing::debug!(error = %status.message(), "{what}: retrying on the leader");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => anyhow::bail!("{what}: {}", status.message()),
        }
    }
}

pub async fn catchup(args: CatchupArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.events > 0 && args.writers > 0, "--events and --writers must be 1 or more");
    let mut cluster = Cluster::start("catchup", 3).await?;
    cluster.keep = true;
    let leader_addr = cluster.leader_addr().await?;
    let log = Arc::new(GrpcEventLog::connect_lazy(&format!("http://{leader_addr}"), Duration::from_secs(60))?);

    let filling = Instant::now();
    fill(Arc::clone(&log), args.events, args.payload_bytes, args.json).await?;
    let fill_seconds = filling.elapsed().as_secs_f64();
    // Every node holds the fill, so the learner's catch-up is measured alone.
    cluster.caught_up(Duration::from_secs(600)).await?;

    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel();
    let writers: Vec<_> =
        (0..args.writers).map(|n| tokio::spawn(writer(n, Arc::clone(&log), acks_tx.clone()))).collect();
    drop(acks_tx);
    let collect = tokio::spawn(async move {
        let mut acks = Vec::new();
        while let Some(ack) = acks_rx.recv().await {
            acks.push(ack);
        }
        acks
    });

    let baseline_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.baseline_seconds)).await;
    let added_at = Instant::now();
    let new_node = cluster.add_node()?;
    let (id, addr) = (cluster.nodes[new_node].id, cluster.nodes[new_node].grpc);
    let add = pb::ClusterNodeRequest { node_id: id, addr: addr.to_string() };
    // Returns once the learner has caught up with the leader's log.
    let status = on_leader(&cluster, "add learner", |mut admin| {
        let add = add.clone();
        async move { admin.add_learner(add).await }
    })
    .await?;
    cluster.applied(new_node, status.last_log_index, Duration::from_secs(3_600)).await?;
    let caught_up_at = Instant::now();
    let promoting = Instant::now();
    let promote = pb::ClusterNodeRequest { node_id: id, addr: String::new() };
    on_leader(&cluster, "promote", |mut admin| {
        let promote = promote.clone();
        async move { admin.promote(promote).await }
    })
    .await?;
    let promote_ms = promoting.elapsed().as_secs_f64() * 1e3;

    for writer in writers {
        writer.abort();
    }
    let acks = collect.await.context("collecting acknowledgements")?;
    let catch_up_seconds = caught_up_at.duration_since(added_at).as_secs_f64();
    let report = CatchupReport {
        bench: "catchup",
        events: args.events,
        payload_bytes: args.payload_bytes,
        fill_seconds,
        fill_events_per_second: args.events as f64 / fill_seconds,
        catch_up_seconds,
        catch_up_events_per_second: args.events as f64 / catch_up_seconds,
        promote_ms,
        before: phase(&acks, baseline_from, added_at)?,
        during: phase(&acks, added_at, caught_up_at)?,
    };
    cluster.keep = args.keep;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "catchup: {} events of {} B filled in {:.1} s ({:.0} events/s)",
            report.events, report.payload_bytes, report.fill_seconds, report.fill_events_per_second
        );
        println!(
            "  node {id} added: caught up in {:.1} s ({:.0} events/s), promoted to voter in {:.0} ms",
            report.catch_up_seconds, report.catch_up_events_per_second, report.promote_ms
        );
        for (name, p) in [("before", &report.before), ("during", &report.during)] {
            println!(
                "  writes {name}: {:.0} appends/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, longest gap {:.0} ms",
                p.appends_per_second, p.latency_ms_p50, p.latency_ms_p99, p.latency_ms_max, p.longest_gap_ms
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
