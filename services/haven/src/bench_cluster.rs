//! Clusters of `haven serve eventlog` processes of this binary on loopback, for the benches
//! (`haven bench failover`, `haven bench append --cluster N`).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use haven_proto::v1 as pb;
use haven_proto::v1::cluster_client::ClusterClient;
use tonic::transport::{Channel, Endpoint};

/// One node process.
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) grpc: SocketAddr,
    http: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub(crate) fn start(&mut self) -> anyhow::Result<()> {
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

    /// Stops the node as an orchestrator does (SIGTERM, then SIGKILL after `grace`); true when
    /// it exited within the grace period.
    pub(crate) async fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cluster(&self) -> ClusterClient<Channel> {
        admin_client(self.grpc, Duration::from_secs(2))
    }

    async fn status(&self) -> Option<pb::ClusterStatus> {
        self.child.as_ref()?;
        self.cluster().status(pb::ClusterStatusRequest {}).await.ok().map(tonic::Response::into_inner)
    }
}

/// Every node process, stopped on drop (also on an error or a panic). The directory is
/// removed after a clean run and kept, with each node's log, after a failure.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    dir: PathBuf,
    /// Keep the directory (and the nodes' logs) when dropped.
    pub(crate) keep: bool,
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
    pub(crate) async fn leader(&self, within: Duration) -> anyhow::Result<u64> {
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
    pub(crate) async fn describe(&self) -> String {
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
    pub(crate) async fn caught_up(&self, within: Duration) -> anyhow::Result<()> {
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

/// A cluster-administration client of the node at `addr`, each call bounded by `timeout`.
fn admin_client(addr: SocketAddr, timeout: Duration) -> ClusterClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("a socket address is a valid URI")
        .connect_timeout(Duration::from_millis(500))
        .timeout(timeout)
        .connect_lazy();
    ClusterClient::new(channel)
}

/// A node of the cluster in `dir`, not started.
fn new_node(dir: &std::path::Path, id: u64) -> anyhow::Result<Node> {
    Ok(Node { id, grpc: free_addr()?, http: free_addr()?, dir: dir.join(format!("n{id}")), child: None })
}

impl Cluster {
    /// Starts `count` nodes in a fresh temporary directory named after `bench` and makes
    /// them one cluster; returns once it has a leader. The directory is kept if this fails.
    pub(crate) async fn start(bench: &str, count: u64) -> anyhow::Result<Cluster> {
        anyhow::ensure!((1..=9).contains(&count), "a bench cluster has 1 to 9 nodes");
        let dir = std::env::temp_dir().join(format!("haven-bench-{bench}-{}", std::process::id()));
        let nodes = (1..=count).map(|id| new_node(&dir, id)).collect::<anyhow::Result<Vec<_>>>()?;
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
        cluster.keep = false;
        Ok(cluster)
    }

    /// The leader's gRPC address.
    pub(crate) async fn leader_addr(&self) -> anyhow::Result<SocketAddr> {
        let leader = self.leader(Duration::from_secs(10)).await?;
        Ok(self.nodes[(leader - 1) as usize].grpc)
    }
}

impl Cluster {
    /// Starts one more node (the next id, not a member yet); returns its index in `nodes`.
    pub(crate) fn add_node(&mut self) -> anyhow::Result<usize> {
        let mut node = new_node(&self.dir, self.nodes.len() as u64 + 1)?;
        node.start()?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// A cluster-administration client of the node at `addr` (its calls may take `timeout`).
    pub(crate) fn admin(&self, addr: SocketAddr, timeout: Duration) -> ClusterClient<Channel> {
        admin_client(addr, timeout)
    }

    /// Waits until `nodes[index]` has applied raft index `target`.
    pub(crate) async fn applied(&self, index: usize, target: u64, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while self.nodes[index].status().await.is_none_or(|s| s.applied_index < target) {
            if Instant::now() > deadline {
                anyhow::bail!("node {} did not apply index {target} within {within:?}", self.nodes[index].id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}
