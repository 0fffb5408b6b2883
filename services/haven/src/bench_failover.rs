//! `haven bench failover`: how long a three-node cluster refuses writes after its leader dies.
//!
//! Starts three `haven serve eventlog` processes of this binary on loopback (a fresh temporary
//! directory), keeps writers appending through every node, then `--kills` times: SIGKILLs the
//! leader, measures from the kill to the first append that was *sent after the kill* and
//! acknowledged, restarts the killed node with its data and waits until it has caught up.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use haven_eventlog_client::{EventLog, GrpcEventLog};
use haven_kernel::{ExpectedVersion, StreamId};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::bench_cluster::Cluster;

const NODES: u64 = 3;

/// `haven bench failover`.
#[derive(Clone, Debug, clap::Args)]
pub struct FailoverArgs {
    /// Times the leader is killed.
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
    /// Concurrent writers (each sends 1-event appends, round-robin over the nodes).
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Keep the nodes' data and logs after a clean run too (they are always kept after a failure).
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct FailoverReport {
    bench: &'static str,
    kills: usize,
    /// From the kill to the first acknowledged append sent after it, per kill, in ms.
    unavailable_ms: Vec<f64>,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Appends in a loop; reports (sent, acknowledged) of every acknowledged call.
async fn writer(n: usize, addrs: Vec<SocketAddr>, acks: mpsc::UnboundedSender<(Instant, Instant)>) {
    let logs: Vec<GrpcEventLog> = addrs
        .iter()
        .filter_map(|a| GrpcEventLog::connect_lazy(&format!("http://{a}"), Duration::from_secs(3)).ok())
        .collect();
    let Ok(stream) = StreamId::parse(&format!("bench-failover-{n}")) else { return };
    let mut next = n;
    loop {
        let sent = Instant::now();
        let log = &logs[next % logs.len()];
        match log.append(&stream, ExpectedVersion::Any, vec![crate::bench::event(64)]).await {
            Ok(_) => {
                if acks.send((sent, Instant::now())).is_err() {
                    return;
                }
            }
            Err(_) => next += 1,
        }
    }
}

pub async fn failover(args: FailoverArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.kills > 0 && args.writers > 0, "--kills and --writers must be 1 or more");
    let mut cluster = Cluster::start("failover", NODES).await?;
    // Kept if the run fails, with each node's log.
    cluster.keep = true;

    let (acks_tx, mut acks) = mpsc::unbounded_channel();
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.grpc).collect();
    let writers: Vec<_> = (0..args.writers).map(|n| tokio::spawn(writer(n, addrs.clone(), acks_tx.clone()))).collect();
    drop(acks_tx);

    let mut histogram = Histogram::<u64>::new(3)?;
    let mut unavailable_ms = Vec::new();
    for kill in 0..args.kills {
        // Writes are flowing before the kill.
        let flowing = Instant::now();
        while acks.recv().await.context("the writers stopped")?.0 < flowing {}
        let leader = cluster.leader(Duration::from_secs(10)).await?;
        let killed_at = Instant::now();
        cluster.nodes[(leader - 1) as usize].kill();
        let first_after = async {
            loop {
                let (sent, acked) = acks.recv().await?;
                if sent > killed_at {
                    return Some(acked);
                }
            }
        };
        let back = match tokio::time::timeout(Duration::from_secs(30), first_after).await {
            Ok(back) => back.context("the writers stopped")?,
            Err(_) => {
                anyhow::bail!("no write accepted within 30 s of killing leader {leader}: {}", cluster.describe().await)
            }
        };
        let gap = back.duration_since(killed_at);
        histogram.record(gap.as_micros() as u64)?;
        unavailable_ms.push(gap.as_secs_f64() * 1e3);
        if !args.json {
            println!(
                "kill {:>2}: leader {leader} killed, writes accepted again after {:.0} ms",
                kill + 1,
                gap.as_secs_f64() * 1e3
            );
        }
        cluster.nodes[(leader - 1) as usize].start()?;
        // The restarted node catches up, then a second of normal running, so the next kill is
        // independent of this one. Acks are drained meanwhile so the channel stays small.
        let settle = async {
            cluster.caught_up(Duration::from_secs(60)).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            anyhow::Ok(())
        };
        let drain = async { while acks.recv().await.is_some() {} };
        tokio::select! {
            result = settle => result?,
            () = drain => anyhow::bail!("the writers stopped"),
        }
    }
    for writer in writers {
        writer.abort();
    }
    cluster.keep = args.keep;
    let ms = |us: u64| us as f64 / 1e3;
    let report = FailoverReport {
        bench: "failover",
        kills: args.kills,
        unavailable_ms,
        p50_ms: ms(histogram.value_at_quantile(0.5)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "failover over {} leader kills: writes accepted again after p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            report.kills, report.p50_ms, report.p99_ms, report.max_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
