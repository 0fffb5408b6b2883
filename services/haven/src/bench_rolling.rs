//! `haven bench rolling-restart`: a rolling restart of every log node under write load, as a
//! Kubernetes StatefulSet update does it (highest ordinal first, one node at a time, SIGTERM
//! then a restart with the same volume, the next node only once the cluster has caught up).
//!
//! Measures, per restarted node, the longest time no append was acknowledged while it was
//! being restarted (the stall writers see), and at the end reads every writer's stream back
//! and checks that each acknowledged event is there exactly once. Exit code 1 if any is lost.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use haven_eventlog_client::{EventLog, GrpcEventLog, ReadStream};
use haven_kernel::{ExpectedVersion, StreamId, Version};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::bench_cluster::Cluster;

const NODES: u64 = 3;

/// `haven bench rolling-restart`.
#[derive(Clone, Debug, clap::Args)]
pub struct RollingArgs {
    /// Rolling restarts of the whole cluster (each restarts every node once).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Concurrent writers (each sends 1-event appends, round-robin over the nodes).
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// How long a node has to stop after SIGTERM before it is killed (Kubernetes'
    /// terminationGracePeriodSeconds).
    #[arg(long, default_value_t = 30)]
    pub grace_s: u64,
    /// How long a node stays down between its exit and its restart, in ms: in Kubernetes a
    /// pod's replacement takes seconds to start (teardown, scheduling, volume). Long enough
    /// that the other nodes notice a stopped leader and elect another.
    #[arg(long, default_value_t = 3000)]
    pub down_ms: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Restart {
    node: u64,
    was_leader: bool,
    /// Whether the node stopped within the grace period (false: it had to be killed).
    stopped_gracefully: bool,
    /// The leader once the node was back and caught up.
    leader_after: u64,
    /// The longest time without an acknowledged append while this node was restarted, in ms.
    longest_stall_ms: f64,
}

#[derive(Serialize)]
struct RollingReport {
    bench: &'static str,
    rounds: usize,
    restarts: Vec<Restart>,
    max_stall_ms: f64,
    acknowledged: usize,
    /// Acknowledged events not found in the log afterwards (must be 0).
    lost: usize,
    /// Acknowledged events found more than once (must be 0).
    duplicated: usize,
}

/// One acknowledged append.
struct Ack {
    at: Instant,
    writer: usize,
    event_id: Vec<u8>,
}

fn stream(writer: usize) -> anyhow::Result<StreamId> {
    StreamId::parse(&format!("bench-rolling-{writer}")).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Appends one event at a time, moving to the next node on an error, until the channel closes.
/// An append that failed is not retried: its event may or may not be in the log, and only
/// acknowledged events are checked afterwards.
async fn writer(n: usize, addrs: Vec<SocketAddr>, acks: mpsc::UnboundedSender<Ack>) -> anyhow::Result<()> {
    let logs: Vec<GrpcEventLog> = addrs
        .iter()
        .map(|a| GrpcEventLog::connect_lazy(&format!("http://{a}"), Duration::from_secs(3)))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let stream = stream(n)?;
    let mut next = n;
    loop {
        let event = crate::bench::event(64);
        let event_id = event.event_id.clone();
        match logs[next % logs.len()].append(&stream, ExpectedVersion::Any, vec![event]).await {
            Ok(_) => {
                if acks.send(Ack { at: Instant::now(), writer: n, event_id }).is_err() {
                    return Ok(());
                }
            }
            Err(_) => {
                next += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// The longest span in `[from, to]` containing no acknowledgement.
fn longest_stall(acks: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for &at in acks.iter().filter(|&&at| at >= from && at <= to) {
        longest = longest.max(at.duration_since(last));
        last = at;
    }
    longest.max(to.duration_since(last))
}

/// Every event id of `writer`'s stream, read from `log`.
async fn stored_ids(log: &GrpcEventLog, writer: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let stream = stream(writer)?;
    let mut ids = Vec::new();
    let mut from = Version(0);
    loop {
        let slice = log.read_stream(ReadStream::forwards(stream.clone(), from, 1000)).await?;
        let Some(last) = slice.events.last().map(|e| e.version) else { break };
        ids.extend(slice.events.into_iter().map(|e| e.event_id));
        if slice.end_of_stream {
            break;
        }
        from = Version(last + 1);
    }
    Ok(ids)
}

pub async fn rolling(args: RollingArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.rounds > 0 && args.writers > 0, "--rounds and --writers must be 1 or more");
    let mut cluster = Cluster::start("rolling", NODES).await?;
    cluster.keep = true;
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.grpc).collect();
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel();
    let writers: Vec<_> = (0..args.writers).map(|n| tokio::spawn(writer(n, addrs.clone(), acks_tx.clone()))).collect();
    drop(acks_tx);
    // Every acknowledgement, collected as it comes.
    let collector = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(ack) = acks_rx.recv().await {
            all.push(ack);
        }
        all
    });

    let mut windows = Vec::new();
    // Writes flow before the first restart.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for round in 0..args.rounds {
        for index in (0..cluster.nodes.len()).rev() {
            let leader = cluster.leader(Duration::from_secs(10)).await?;
            let node = cluster.nodes[index].id;
            let from = Instant::now();
            let stopped_gracefully = cluster.nodes[index].stop(Duration::from_secs(args.grace_s)).await;
            tokio::time::sleep(Duration::from_millis(args.down_ms)).await;
            cluster.nodes[index].start()?;
            cluster
                .caught_up(Duration::from_secs(60))
                .await
                .with_context(|| format!("after restarting node {node}"))?;
            let to = Instant::now();
            let leader_after = cluster.leader(Duration::from_secs(10)).await?;
            if !args.json {
                println!(
                    "round {} node {node}{}: restarted{}",
                    round + 1,
                    if leader == node { " (leader)" } else { "" },
                    if stopped_gracefully { "" } else { " (killed after the grace period)" }
                );
            }
            windows.push((node, leader == node, stopped_gracefully, leader_after, from, to));
            // A second of normal running between nodes, as a readiness gate would give.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    for writer in &writers {
        writer.abort();
    }
    for writer in writers {
        if let Ok(Err(error)) = writer.await {
            return Err(error.context("a writer failed"));
        }
    }
    let acks = collector.await.context("the collector")?;
    let times: Vec<Instant> = acks.iter().map(|a| a.at).collect();
    let restarts: Vec<Restart> = windows
        .iter()
        .map(|&(node, was_leader, stopped_gracefully, leader_after, from, to)| Restart {
            node,
            was_leader,
            stopped_gracefully,
            leader_after,
            longest_stall_ms: longest_stall(&times, from, to).as_secs_f64() * 1e3,
        })
        .collect();

    // Everything acknowledged is in the log, once (read through the leader).
    let leader =
        GrpcEventLog::connect_lazy(&format!("http://{}", cluster.leader_addr().await?), Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut lost, mut duplicated) = (0, 0);
    for writer in 0..args.writers {
        // How many times each event id is stored: counted once, looked up per acknowledgement.
        let mut stored: HashMap<Vec<u8>, usize> = HashMap::new();
        for id in stored_ids(&leader, writer).await? {
            *stored.entry(id).or_default() += 1;
        }
        for ack in acks.iter().filter(|a| a.writer == writer) {
            match stored.get(&ack.event_id) {
                None => lost += 1,
                Some(&copies) if copies > 1 => duplicated += 1,
                Some(_) => {}
            }
        }
    }
    let report = RollingReport {
        bench: "rolling-restart",
        rounds: args.rounds,
        max_stall_ms: restarts.iter().map(|r| r.longest_stall_ms).fold(0.0, f64::max),
        restarts,
        acknowledged: acks.len(),
        lost,
        duplicated,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for r in &report.restarts {
            println!(
                "node {}{}: longest stall {:.0} ms, leader afterwards {}",
                r.node,
                if r.was_leader { " (leader)" } else { "" },
                r.longest_stall_ms,
                r.leader_after
            );
        }
        println!(
            "rolling restart, {} round(s): {} appends acknowledged, {} lost, {} duplicated; longest stall {:.0} ms",
            report.rounds, report.acknowledged, report.lost, report.duplicated, report.max_stall_ms
        );
    }
    if lost > 0 || duplicated > 0 {
        return Ok(ExitCode::FAILURE);
    }
    cluster.keep = false;
    Ok(ExitCode::SUCCESS)
}
