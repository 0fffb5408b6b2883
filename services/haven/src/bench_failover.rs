//! `haven bench failover`: how long a three-node cluster refuses writes after its leader dies.
//!
//! Starts three `haven serve eventlog` processes of this binary on loopback (a fresh temporary
//! directory), keeps writers appending through every node, then `--kills` times: SIGKILLs the
//! leader, measures from the kill to the first append that was *sent after the kill* and
//! acknowledged, restarts the killed node with its data and waits until it has caught up.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use haven_eventlog_client::{EventLog, GrpcEventLog};
use haven_kernel::{ExpectedVersion, StreamId};
use haven_proto::v1 as pb;
use haven_proto::v1::cluster_client::ClusterClient;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

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

/// One node process.
struct Node {
    id: u64,
    grpc: SocketAddr,
    http: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("finding the haven binary")?;
        let child = Command::new(exe)
            .args(["serve", "eventlog", "--log", "warn,haven_eventlog=debug", "--node-id", &self.id.to_string()])
            .args(["--grpc-addr", &self.grpc.to_string(), "--http-addr", &self.http.to_string()])
            .arg("--data-dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(self.log_file()?)
            .spawn()
            .context("starting a node")?;
        self.child = Some(child);
        Ok(())
    }

    /// The node's log, appended to across restarts, beside its data directory.
    fn log_file(&self) -> anyhow::Result<std::fs::File> {
        let path = self.dir.with_extension("log");
        std::fs::create_dir_all(self.dir.parent().unwrap_or(&self.dir))?;
        Ok(std::fs::OpenOptions::new().create(true).append(true).open(path)?)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cluster(&self) -> ClusterClient<Channel> {
        let channel = Endpoint::from_shared(format!("http://{}", self.grpc))
            .expect("a socket address is a valid URI")
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .connect_lazy();
        ClusterClient::new(channel)
    }

    async fn status(&self) -> Option<pb::ClusterStatus> {
        self.child.as_ref()?;
        self.cluster().status(pb::ClusterStatusRequest {}).await.ok().map(tonic::Response::into_inner)
    }
}

/// Every node process, stopped on drop (also on an error or a panic). The directory is
/// removed after a clean run and kept, with each node's log, after a failure.
struct Cluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    keep: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if self.keep {
            eprintln!("node logs and data kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Cluster {
    /// The leader as the live nodes see it, once they agree on one.
    async fn leader(&self, within: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + within;
        loop {
            for node in &self.nodes {
                if let Some(status) = node.status().await
                    && status.leader_id != 0
                    && status.state == "Leader"
                {
                    return Ok(status.node_id);
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!("no leader within {within:?}: {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Each node's view, for an error message.
    async fn describe(&self) -> String {
        let mut views = Vec::new();
        for node in &self.nodes {
            views.push(match node.status().await {
                Some(s) => format!(
                    "node {} {} leader {} term {} last {} applied {}",
                    s.node_id, s.state, s.leader_id, s.term, s.last_log_index, s.applied_index
                ),
                None => format!("node {} down or not answering", node.id),
            });
        }
        views.join("; ")
    }

    /// Waits until every node applied what the leader had when this was called.
    async fn caught_up(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let leader = self.leader(within).await?;
        let target = self.nodes[(leader - 1) as usize].status().await.map_or(0, |s| s.last_log_index);
        loop {
            let mut behind = 0;
            for node in &self.nodes {
                if node.status().await.is_none_or(|s| s.applied_index < target) {
                    behind += 1;
                }
            }
            if behind == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("{behind} node(s) not caught up within {within:?}: {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
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
    let dir = std::env::temp_dir().join(format!("haven-bench-failover-{}", std::process::id()));
    let mut nodes = Vec::new();
    for id in 1..=NODES {
        nodes.push(Node { id, grpc: free_addr()?, http: free_addr()?, dir: dir.join(format!("n{id}")), child: None });
    }
    let mut cluster = Cluster { nodes, dir, keep: true };
    for node in &mut cluster.nodes {
        node.start()?;
    }
    let members: Vec<pb::ClusterMember> = cluster
        .nodes
        .iter()
        .map(|n| pb::ClusterMember { node_id: n.id, addr: n.grpc.to_string(), voter: true, matched_index: 0 })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match cluster.nodes[0].cluster().init(pb::ClusterInitRequest { members: members.clone() }).await {
            Ok(_) => break,
            Err(status) if Instant::now() < deadline => {
                tracing::debug!(error = %status.message(), "cluster init: retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => anyhow::bail!("cluster init: {}", status.message()),
        }
    }
    cluster.leader(Duration::from_secs(10)).await?;

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
