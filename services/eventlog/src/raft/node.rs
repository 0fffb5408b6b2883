//! One replicated log node: the store, the raft instance over it, the batcher in front of it,
//! and the [`LocalEventLog`] that serves reads from the store and writes through raft.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use haven_eventlog_client::LogError;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use super::batcher::{BatchLimits, Batcher};
use super::network::Network;
use super::read_index::ReadIndex;
use super::service::{ClusterService, NodeHandle, RaftService, status_of};
use super::state_machine::Released;
use super::{LogStore, NodeId, Raft, StateMachine};
use crate::config::EventLogConfig;
use crate::local::LocalEventLog;
use crate::metrics::LogMetrics;
use crate::store::{SegmentStore, Store};

/// A raft entry (one group of appends) holds at most this many encoded bytes, whatever the
/// single-node group commit allows: an entry is replicated within one AppendEntries, which
/// openraft 0.9 gives one heartbeat interval. A single append larger than this is its own entry.
const RAFT_ENTRY_MAX_BYTES: usize = 1024 * 1024;

/// How a node runs raft.
#[derive(Clone, Debug)]
pub struct RaftNodeConfig {
    /// This node's id (1 or more), unique in the cluster.
    pub node_id: NodeId,
    /// The gRPC address other nodes reach this one at (host:port).
    pub addr: String,
    pub eventlog: EventLogConfig,
    pub heartbeat: Duration,
    pub election_timeout: (Duration, Duration),
    /// A snapshot is taken (and the raft log purged) after this many entries.
    pub snapshot_every: u64,
    /// The local address connections to other nodes leave from; `None`: the OS chooses.
    pub source_ip: Option<std::net::IpAddr>,
}

impl RaftNodeConfig {
    pub fn new(node_id: NodeId, addr: impl Into<String>, eventlog: EventLogConfig) -> Self {
        RaftNodeConfig {
            node_id,
            addr: addr.into(),
            eventlog,
            heartbeat: Duration::from_millis(50),
            election_timeout: (Duration::from_millis(200), Duration::from_millis(400)),
            snapshot_every: 5_000,
            source_ip: None,
        }
    }
}

/// This node's election timeout: its own point in the configured window, by node id.
///
/// openraft 0.9 draws a node's timeout once, when the node starts, and a follower campaigns
/// after the leader lease (its maximum timeout) plus that timeout. Two survivors whose draws
/// fell close together split the vote, and with the same draws they meet again next round:
/// that was the 1.4–2.4 s tail of `haven bench failover`. So each node gets a fixed point,
/// `min + k·step` for `k = (id − 1) mod 3`, `step` = 30 % of the window (at most `min`):
/// 200, 260 and 320 ms at the defaults. Its lease is the point + 1 ms, so it campaigns about
/// `2·point` after the last heartbeat (401, 521, 641 ms; randomly 600–800 ms before). Then
/// - two survivors never campaign together: campaigns are `2·step` apart (120 ms at the
///   defaults, more than a tick of `1.5 × heartbeat`);
/// - every lease has ended before the first campaign, so no vote is refused for a lease;
/// - when an earlier candidate (lower id) is refused for its shorter log, the later one, in
///   the same term, has the higher id, which openraft's leader ids order above it: it wins in
///   that same round.
///
/// A refused candidate keeps openraft's "seen a greater log" mark until its next campaign,
/// which it then delays by `2 × (point + 1)`; with smaller points that delay is smaller too
/// (runs at 300/390/480 ms measured one kill in 20 at 2.1–2.5 s for that reason, and at
/// 200/290/380 ms up to 1.98 s). The price
/// is a first campaign after 8 missed heartbeats instead of 12.
///
/// Nodes whose ids are equal mod 3 share a point, as any two nodes could before.
pub(crate) fn election_timeout(node_id: NodeId, (min, max): (Duration, Duration)) -> Duration {
    let window = max.saturating_sub(min).min(min);
    let step = window * 3 / 10;
    min + step * ((node_id.saturating_sub(1) % 3) as u32)
}

/// A restarted node has no record of when it last heard from a leader, so openraft would let
/// it campaign at its first tick — and its higher term would unseat a healthy leader that had
/// simply not reached it yet. It stays quiet for `quiet` first. (A node started alone,
/// [`RaftNode::initialize_alone`], may campaign at once.)
fn hold_elections(raft: &Raft, quiet: Duration) {
    let raft = raft.clone();
    tokio::spawn(async move {
        tokio::time::sleep(quiet).await;
        raft.runtime_config().elect(true);
    });
}

/// Takes a snapshot (which lets raft purge its log) whenever the state machine says enough
/// bytes were applied since the last; ends with the raft instance (its metrics channel closes).
fn snapshot_by_bytes(raft: &Raft, due: Arc<tokio::sync::Notify>) {
    let raft = raft.clone();
    let mut metrics = raft.metrics();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = due.notified() => {
                    if raft.trigger().snapshot().await.is_err() {
                        return;
                    }
                }
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// A running node.
#[derive(Debug)]
pub struct RaftNode {
    handle: NodeHandle,
    log: LocalEventLog,
    metrics_task: tokio::task::JoinHandle<()>,
    raft_metrics: RaftMetrics,
    released: tokio::sync::Mutex<Released>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("id", &self.id).field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl RaftNode {
    /// Opens the node stored in `dir` (the store in `dir`, raft's log in `dir/raft`) and
    /// starts raft. A new node waits to be initialised or added to a cluster.
    pub async fn open(dir: &Path, config: RaftNodeConfig) -> Result<RaftNode, LogError> {
        let eventlog = config.eventlog.clone();
        eventlog.validate().map_err(|(field, reason)| LogError::invalid(format!("eventlog.{field}"), reason))?;
        if config.node_id == 0 {
            return Err(LogError::invalid("node_id", "node ids start at 1"));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| LogError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let store: Arc<dyn Store> = Arc::new(SegmentStore::open(dir, eventlog.cache_bytes)?);
        let metrics = LogMetrics::default();
        let (head_tx, head) = watch::channel(store.head()?);
        let (state_machine, released) =
            StateMachine::with_metrics(Arc::clone(&store), Arc::new(head_tx), metrics.clone())?;
        let raft_dir = dir.join("raft");
        let timeout = election_timeout(config.node_id, config.election_timeout);
        let log_store = LogStore::open(&raft_dir).map_err(|e| LogError::Unavailable(format!("raft log: {e}")))?;
        let raft_config = openraft::Config {
            cluster_name: "haven-eventlog".into(),
            heartbeat_interval: config.heartbeat.as_millis() as u64,
            election_timeout_min: timeout.as_millis() as u64,
            election_timeout_max: timeout.as_millis() as u64 + 1,
            // Real snapshots take minutes to send; the stream has its own cancel.
            install_snapshot_timeout: 600_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: 1_000,
            // openraft 0.9 gives each AppendEntries one heartbeat interval (50 ms), the
            // follower's fsync included, and retries a late one from the start: with entries of
            // megabytes a loaded follower never answered in time and replication stopped
            // (`bench catchup`'s fill). Entries are at most RAFT_ENTRY_MAX_BYTES (below), so
            // one AppendEntries carries at most 4 MiB.
            max_payload_entries: 4,
            // Enabled by `hold_elections` once the leader has had time to reach this node.
            enable_elect: false,
            ..Default::default()
        }
        .validate()
        .map_err(|e| LogError::invalid("raft", e.to_string()))?;
        let snapshot_due = state_machine.snapshot_due();
        let raft =
            Raft::new(config.node_id, Arc::new(raft_config), Network::new(config.source_ip), log_store, state_machine)
                .await
                .map_err(|e| LogError::Unavailable(format!("raft did not start: {e}")))?;
        hold_elections(&raft, config.election_timeout.1 + Duration::from_millis(400));
        snapshot_by_bytes(&raft, snapshot_due);
        let limits = BatchLimits {
            max_events: eventlog.group_commit_max_events,
            max_bytes: eventlog.group_commit_max_bytes.min(RAFT_ENTRY_MAX_BYTES),
            in_flight: eventlog.raft_proposals_in_flight,
        };
        let batcher =
            Batcher::start(raft.clone(), config.node_id, limits, eventlog.write_queue_depth, config.source_ip);
        let reads = ReadIndex::new(raft.clone(), config.node_id, batcher.forwarder());
        let handle = NodeHandle {
            raft: raft.clone(),
            id: config.node_id,
            addr: config.addr.clone(),
            store: Arc::clone(&store),
            staging: raft_dir.join("staging"),
            calls: batcher.sender(),
            reads: reads.clone(),
        };
        let log = LocalEventLog::replicated(store, eventlog, head, metrics, batcher, reads);
        let raft_metrics = RaftMetrics::default();
        let metrics_task = tokio::spawn(watch_metrics(raft, raft_metrics.clone()));
        Ok(RaftNode { handle, log, metrics_task, raft_metrics, released: tokio::sync::Mutex::new(released) })
    }

    /// The log this node serves: reads from its store, appends through raft.
    pub fn log(&self) -> LocalEventLog {
        self.log.clone()
    }

    pub fn raft(&self) -> &Raft {
        &self.handle.raft
    }

    pub fn id(&self) -> NodeId {
        self.handle.id
    }

    /// `haven.v1.Raft`, to serve beside the log's gRPC service.
    pub fn raft_service(&self) -> haven_proto::v1::raft_server::RaftServer<RaftService> {
        RaftService::server(self.handle.clone())
    }

    /// `haven.v1.Cluster`.
    pub fn cluster_service(&self) -> haven_proto::v1::cluster_server::ClusterServer<ClusterService> {
        ClusterService::server(self.handle.clone())
    }

    /// Makes this node a one-node cluster if it belongs to none yet (`haven up`).
    pub async fn initialize_alone(&self) -> Result<(), LogError> {
        let initialized = self.handle.raft.is_initialized().await.map_err(|e| LogError::Unavailable(e.to_string()))?;
        if !initialized {
            let members = std::collections::BTreeMap::from([(
                self.handle.id,
                openraft::BasicNode::new(self.handle.addr.clone()),
            )]);
            self.handle.raft.initialize(members).await.map_err(|e| LogError::Unavailable(e.to_string()))?;
        }
        self.handle.raft.runtime_config().elect(true);
        Ok(())
    }

    /// Waits until this node knows a leader, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, LogError> {
        let mut metrics = self.handle.raft.metrics();
        let wait = async {
            loop {
                if let Some(leader) = metrics.borrow().current_leader {
                    return Ok(leader);
                }
                if metrics.changed().await.is_err() {
                    return Err(LogError::Unavailable("raft stopped".into()));
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| LogError::Unavailable(format!("no leader after {timeout:?}")))?
    }

    /// The cluster as this node sees it.
    pub fn status(&self) -> Result<haven_proto::v1::ClusterStatus, LogError> {
        status_of(&self.handle)
    }

    /// Registers the log's and raft's metrics with the process registry.
    pub fn register_metrics(&self, metrics: &haven_runtime::Metrics) {
        self.log.register_metrics(metrics);
        self.raft_metrics.register(metrics);
    }

    /// Stops taking appends, answers the queued ones, and stops raft.
    pub async fn shutdown(&self) {
        self.log.close().await;
        let _ = self.handle.raft.shutdown().await;
        self.metrics_task.abort();
        // Raft's state-machine task drops the store after `shutdown` returns: wait for it, so
        // the directory can be opened again as soon as this returns.
        if !self.released.lock().await.wait(Duration::from_secs(10)).await {
            tracing::warn!("the state machine was still held 10 s after raft stopped");
        }
    }
}

/// `haven_eventlog_raft_*` gauges.
#[derive(Clone, Debug, Default)]
struct RaftMetrics {
    leader: Gauge,
    term: Gauge,
    last_log_index: Gauge,
    applied_index: Gauge,
    apply_lag: Gauge,
    replication_lag: Family<Vec<(String, String)>, Gauge>,
}

impl RaftMetrics {
    fn register(&self, metrics: &haven_runtime::Metrics) {
        metrics.register(
            "eventlog_raft_leader",
            "Node id of the leader this node knows (0: none)",
            self.leader.clone(),
        );
        metrics.register("eventlog_raft_term", "Current raft term", self.term.clone());
        metrics.register(
            "eventlog_raft_last_log_index",
            "Last raft log index on this node",
            self.last_log_index.clone(),
        );
        metrics.register(
            "eventlog_raft_applied_index",
            "Highest raft log index applied to the store",
            self.applied_index.clone(),
        );
        metrics.register("eventlog_raft_apply_lag", "Entries in the raft log not yet applied", self.apply_lag.clone());
        metrics.register(
            "eventlog_raft_replication_lag",
            "Entries the leader has that a follower has not (leader only)",
            self.replication_lag.clone(),
        );
    }
}

async fn watch_metrics(raft: Raft, gauges: RaftMetrics) {
    let mut metrics = raft.metrics();
    loop {
        {
            let m = metrics.borrow_and_update();
            let last = m.last_log_index.unwrap_or(0);
            let applied = m.last_applied.map_or(0, |l| l.index);
            gauges.leader.set(m.current_leader.unwrap_or(0) as i64);
            gauges.term.set(m.current_term as i64);
            gauges.last_log_index.set(last as i64);
            gauges.applied_index.set(applied as i64);
            gauges.apply_lag.set(last.saturating_sub(applied) as i64);
            gauges.replication_lag.clear();
            if let Some(replication) = &m.replication {
                for (id, matched) in replication {
                    let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
                    gauges.replication_lag.get_or_create(&vec![("follower".into(), id.to_string())]).set(lag as i64);
                }
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When a node campaigns after its last heartbeat: its lease (`point + 1 ms`) plus its point.
    fn campaign(point: Duration) -> Duration {
        point * 2 + Duration::from_millis(1)
    }

    #[test]
    fn each_node_of_three_has_its_own_point_in_the_window() {
        let defaults = RaftNodeConfig::new(1, "127.0.0.1:1", EventLogConfig::default());
        let points: Vec<u64> =
            (1..=6).map(|id| election_timeout(id, defaults.election_timeout).as_millis() as u64).collect();
        assert_eq!(points, [200, 260, 320, 200, 260, 320]);
    }

    #[test]
    fn campaigns_are_a_tick_apart_and_start_after_every_lease() {
        for (min, max) in [(200, 400), (150, 300), (300, 500), (200, 201)] {
            let window = (Duration::from_millis(min), Duration::from_millis(max));
            let points: Vec<Duration> = (1..=3).map(|id| election_timeout(id, window)).collect();
            for point in &points {
                assert!(*point >= window.0 && *point <= window.1, "{point:?} outside {window:?}");
            }
            let first = campaign(points[0]);
            for point in &points {
                // A lease is point + 1 ms; it must have ended when the first node campaigns.
                assert!(*point + Duration::from_millis(1) < first, "lease {point:?} outlasts {first:?} ({window:?})");
            }
            if max - min >= 100 {
                for pair in points.windows(2) {
                    let gap = campaign(pair[1]) - campaign(pair[0]);
                    // openraft ticks every 1.5 heartbeats (75 ms at 50 ms): later campaigns must
                    // not fall into the same tick.
                    assert!(gap >= Duration::from_millis(90), "campaigns {gap:?} apart in {window:?}");
                }
            }
        }
    }
}
