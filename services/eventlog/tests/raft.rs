//! Raft: openraft's own storage suite against our log store and state machine, and a real
//! three-node cluster on loopback (tonic between nodes): forwarding from followers, leader
//! loss, and a new node catching up by snapshot after the log was purged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use haven_eventlog::raft::{LogStore, RaftNode, RaftNodeConfig, StateMachine, TypeConfig};
use haven_eventlog::store::{SegmentStore, Store};
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventLog, GrpcEventLog, LogError};
use haven_kernel::{ExpectedVersion, Position, StreamId};
use haven_proto::v1::{EventFilter, ProposedEvent};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SegmentStore::open(dir.path(), 1 << 20).unwrap());
        let (head, _) = watch::channel(store.head().unwrap());
        let state_machine = StateMachine::open(store, Arc::new(head)).unwrap();
        let log = LogStore::open(&dir.path().join("raft"))?;
        Ok((dir, log, state_machine))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

/// A node with its gRPC server (log, raft, cluster) on a free loopback port.
struct Running {
    node: RaftNode,
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

async fn start(dir: &std::path::Path, id: u64, snapshot_every: u64) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    start_on(dir, id, snapshot_every, listener, addr).await
}

async fn start_on(dir: &std::path::Path, id: u64, snapshot_every: u64, listener: TcpListener, addr: String) -> Running {
    let mut config = RaftNodeConfig::new(id, addr.clone(), EventLogConfig::default());
    config.snapshot_every = snapshot_every;
    let node = RaftNode::open(&dir.join(format!("node-{id}")), config).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let log: Arc<dyn EventLog> = Arc::new(node.log());
    let router = tonic::transport::Server::builder()
        .add_service(haven_eventlog::grpc::EventLogService::new(log).into_server())
        .add_service(node.raft_service())
        .add_service(node.cluster_service());
    let incoming = futures_util::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok::<_, std::io::Error>(s)
    });
    let server = tokio::spawn(async move {
        let _ = router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
    });
    Running { node, addr, stop: Some(stop), server }
}

impl Running {
    async fn stop(mut self) {
        self.node.shutdown().await;
        let _ = self.stop.take().unwrap().send(());
        let _ = self.server.await;
    }
}

fn event(i: u64) -> ProposedEvent {
    haven_eventlog_client::conformance::event("test.raft.Appended.v1", "school-a", &i.to_be_bytes())
}

/// Every event on a node, as (position, stream, version, hash).
async fn history(log: &LocalEventLog) -> Vec<(u64, String, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut from = Position(0);
    loop {
        let slice = log.read_all(from, 1000, &EventFilter::default()).await.unwrap();
        if slice.events.is_empty() {
            return out;
        }
        for e in &slice.events {
            out.push((e.position, e.stream_id.clone(), e.version, e.hash.clone()));
        }
        from = Position(slice.events.last().unwrap().position + 1);
    }
}

/// Waits until every log has `count` events (the test's only wait; no time is asserted).
async fn converge(logs: &[LocalEventLog], count: u64) {
    for _ in 0..1000 {
        let mut done = true;
        for log in logs {
            done &= log.head().await.unwrap().next_position.0 >= count;
        }
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the nodes did not converge on {count} events");
}

/// Three nodes started and initialised as one cluster; the leader they elected.
async fn three_nodes(dir: &std::path::Path, snapshot_every: u64) -> (Vec<Running>, u64) {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(dir, id, snapshot_every).await);
    }
    let members: BTreeMap<u64, openraft::BasicNode> =
        nodes.iter().map(|n| (n.node.id(), openraft::BasicNode::new(n.addr.clone()))).collect();
    nodes[0].node.raft().initialize(members).await.unwrap();
    let leader = nodes[0].node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
    (nodes, leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_node_cluster_replicates_forwards_fails_over_and_catches_up_a_new_node() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) = three_nodes(dir.path(), 40).await;

    eprintln!("@raft initialized");
    // Appends through every node, over gRPC, concurrently; followers forward to the leader.
    let shared = StreamId::parse("case-shared").unwrap();
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let client = GrpcEventLog::connect_lazy(&format!("http://{}", node.addr), Duration::from_secs(20)).unwrap();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let own = StreamId::parse(&format!("case-node{n}")).unwrap();
            let mut acknowledged = Vec::new();
            for i in 0..30u64 {
                let outcome = client.append(&own, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
                acknowledged.push(outcome.first_position);
                // One stream written from every node at once.
                let _ = client.append(&shared, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
            }
            acknowledged
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().len(), 30);
    }
    eprintln!("@raft appended");
    let logs: Vec<LocalEventLog> = nodes.iter().map(|n| n.node.log()).collect();
    converge(&logs, 180).await;
    let reference = history(&logs[0]).await;
    assert_eq!(reference.len(), 180);
    for log in &logs[1..] {
        assert_eq!(history(log).await, reference, "every node holds the same events, order and chain");
    }

    eprintln!("@raft converged");
    // Expected-version conflicts are decided once, the same way everywhere.
    let version = logs[1].read_stream(haven_eventlog_client::ReadStream {
        stream_id: shared.clone(),
        from_version: haven_kernel::Version(0),
        from_end: true,
        backwards: true,
        limit: 1,
    });
    let last = version.await.unwrap().last_version.unwrap();
    let refused =
        logs[2].append(&shared, ExpectedVersion::Exact(haven_kernel::Version(last.0 + 5)), vec![event(0)]).await;
    assert!(matches!(refused, Err(LogError::WrongExpectedVersion(_))), "{refused:?}");

    eprintln!("@raft conflict checked");
    // The leader goes; the other two elect one and keep accepting writes.
    let leader_index = nodes.iter().position(|n| n.node.id() == leader).unwrap();
    let old = nodes.remove(leader_index);
    old.stop().await;
    let new_leader = nodes[0].node.wait_for_leader(Duration::from_secs(10)).await;
    let survivors: Vec<LocalEventLog> = nodes.iter().map(|n| n.node.log()).collect();
    let stream = StreamId::parse("case-after-failover").unwrap();
    let mut appended = 0;
    for i in 0..20u64 {
        // The first appends may meet the election; they are retried with the same ids.
        let proposed = event(i);
        let mut result = survivors[0].append(&stream, ExpectedVersion::Any, vec![proposed.clone()]).await;
        for _ in 0..50 {
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            result = survivors[0].append(&stream, ExpectedVersion::Any, vec![proposed.clone()]).await;
        }
        result.unwrap_or_else(|e| panic!("append {i} after failover (leader {new_leader:?}): {e}"));
        appended += 1;
    }
    eprintln!("@raft after failover appends");
    converge(&survivors, 180 + appended).await;
    assert_eq!(history(&survivors[0]).await, history(&survivors[1]).await);

    eprintln!("@raft failover converged");
    // A new node joins after the log was snapshotted and purged: it catches up by snapshot.
    let leader = nodes[0].node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
    let leader_node = nodes.iter().find(|n| n.node.id() == leader).unwrap();
    leader_node.node.raft().trigger().snapshot().await.unwrap();
    leader_node
        .node
        .raft()
        .trigger()
        .purge_log(leader_node.node.raft().metrics().borrow().last_applied.unwrap().index)
        .await
        .unwrap();
    let joined = start(dir.path(), 4, 40).await;
    leader_node.node.raft().add_learner(4, openraft::BasicNode::new(joined.addr.clone()), true).await.unwrap();
    eprintln!("@raft learner added");
    let joined_log = joined.node.log();
    let count = survivors[0].head().await.unwrap().next_position.0;
    converge(std::slice::from_ref(&joined_log), count).await;
    assert_eq!(history(&joined_log).await, history(&survivors[0]).await, "the learner holds the same log");
    assert!(
        joined.node.raft().metrics().borrow().snapshot.is_some(),
        "the learner was sent a snapshot (the log it needed was purged)"
    );

    joined.stop().await;
    for node in nodes {
        node.stop().await;
    }
}

/// Linearizable reads (read index): a follower that has just come back answers with
/// everything acknowledged before the read, over gRPC and in process; a leader that has lost
/// its quorum refuses a linearizable read instead of answering from a possibly stale store,
/// while a local read still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linearizable_reads_see_every_acknowledged_append_and_need_a_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, leader) = three_nodes(dir.path(), 10_000).await;
    let leader_index = nodes.iter().position(|n| n.node.id() == leader).unwrap();
    let follower_index = (leader_index + 1) % 3;
    let stream = StreamId::parse("case-reads").unwrap();
    let leader_log = nodes[leader_index].node.log();
    for i in 0..10 {
        leader_log.append(&stream, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }

    // A follower goes down; the other two acknowledge more appends.
    let follower = nodes.remove(follower_index);
    let (follower_id, follower_addr) = (follower.node.id(), follower.addr.clone());
    follower.stop().await;
    let mut acknowledged = 10;
    for i in 10..200 {
        leader_log.append(&stream, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
        acknowledged += 1;
    }

    // It comes back: its first linearizable read already holds all of them.
    let listener = TcpListener::bind(&follower_addr).await.unwrap();
    let back = start_on(dir.path(), follower_id, 10_000, listener, follower_addr.clone()).await;
    let over_grpc = GrpcEventLog::connect_lazy(&format!("http://{follower_addr}"), Duration::from_secs(20)).unwrap();
    let head = over_grpc.head().await.unwrap();
    assert_eq!(head.next_position.0, acknowledged, "a linearizable GetHead on the returned follower");
    let slice = over_grpc.read_all(Position(0), 1000, &EventFilter::default()).await.unwrap();
    assert_eq!(slice.events.len() as u64, acknowledged, "a linearizable ReadAll on the returned follower");
    // One more append, then the in-process barrier on the follower.
    leader_log.append(&stream, ExpectedVersion::Any, vec![event(500)]).await.unwrap();
    acknowledged += 1;
    back.node.log().read_barrier().await.unwrap();
    assert_eq!(back.node.log().head().await.unwrap().next_position.0, acknowledged);
    let local = over_grpc.clone().with_read_consistency(haven_proto::v1::ReadConsistency::Local);
    assert!(local.head().await.unwrap().next_position.0 <= acknowledged);

    // The leader loses both followers: a linearizable read cannot be confirmed.
    let leader_node = nodes.remove(if leader_index > follower_index { leader_index - 1 } else { leader_index });
    back.stop().await;
    for node in nodes {
        node.stop().await;
    }
    let refused = leader_node.node.log().read_barrier().await;
    assert!(matches!(refused, Err(LogError::Unavailable(_))), "{refused:?}");
    let over_grpc =
        GrpcEventLog::connect_lazy(&format!("http://{}", leader_node.addr), Duration::from_secs(20)).unwrap();
    let refused = over_grpc.head().await;
    assert!(matches!(refused, Err(LogError::Unavailable(_))), "a linearizable GetHead without a quorum: {refused:?}");
    let local = over_grpc.with_read_consistency(haven_proto::v1::ReadConsistency::Local);
    assert_eq!(local.head().await.unwrap().next_position.0, acknowledged, "a local read still answers");
    leader_node.stop().await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The store is not fsynced on apply (the raft log is the commit). A power loss can then
/// leave the store behind the raft log: here the store is put back to what it held before
/// the last appends while the raft log keeps them, and the node, reopened, applies them
/// again — the same positions, ids and hash chain as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_behind_its_raft_log_is_brought_level_by_applying_again() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    let open = || async {
        let node =
            RaftNode::open(&node_dir, RaftNodeConfig::new(1, "127.0.0.1:1", EventLogConfig::default())).await.unwrap();
        node.initialize_alone().await.unwrap();
        node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
        node
    };
    let stream = StreamId::parse("case-replay").unwrap();
    let node = open().await;
    for i in 0..20 {
        node.log().append(&stream, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    node.shutdown().await;
    drop(node);
    // What the store held on disk after the first appends.
    let saved = dir.path().join("store-then");
    for name in ["segments", "index.redb"] {
        let path = node_dir.join(name);
        if path.is_dir() {
            copy_dir(&path, &saved.join(name));
        } else {
            std::fs::create_dir_all(&saved).unwrap();
            std::fs::copy(&path, saved.join(name)).unwrap();
        }
    }
    let node = open().await;
    for i in 20..50 {
        node.log().append(&stream, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    let before = history(&node.log()).await;
    assert_eq!(before.len(), 50);
    node.shutdown().await;
    drop(node);

    // The store loses the last 30 events; the raft log still has them.
    std::fs::remove_dir_all(node_dir.join("segments")).unwrap();
    copy_dir(&saved.join("segments"), &node_dir.join("segments"));
    std::fs::copy(saved.join("index.redb"), node_dir.join("index.redb")).unwrap();
    let node = open().await;
    converge(std::slice::from_ref(&node.log()), 50).await;
    assert_eq!(history(&node.log()).await, before, "re-applied from the raft log, identically");
    node.shutdown().await;
}

/// `haven log backup` / `restore` (docs/operations/backup-and-restore.md): a backup taken
/// from a follower while appends go on is a whole, consistent prefix of the cluster's log (at
/// least everything acknowledged before it began); restored into a new directory it verifies,
/// holds the very same records, and a new one-node cluster on it chains new appends after it.
/// A damaged or cut file, an occupied directory and an existing file are refused, changing
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_into_a_new_cluster_with_the_same_chain() {
    use haven_eventlog::backup;
    let dir = tempfile::tempdir().unwrap();
    let (nodes, leader) = three_nodes(dir.path(), 100).await;
    let leader_log = nodes.iter().find(|n| n.node.id() == leader).unwrap().node.log();
    for i in 0..250u64 {
        let stream = StreamId::parse(&format!("case-{}", i % 7)).unwrap();
        leader_log.append(&stream, ExpectedVersion::Any, vec![event(i)]).await.unwrap();
    }
    let follower = nodes.iter().find(|n| n.node.id() != leader).unwrap();
    let writer = {
        let log = leader_log.clone();
        tokio::spawn(async move {
            let stream = StreamId::parse("case-busy").unwrap();
            for i in 0..200u64 {
                log.append(&stream, ExpectedVersion::Any, vec![event(10_000 + i)]).await.unwrap();
            }
        })
    };
    let file = dir.path().join("haven.backup");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", follower.addr)).unwrap().connect_lazy();
    let head = backup::take(channel.clone(), &file, 1_700_000_000).await.unwrap();
    assert!(head.next_position.0 >= 250, "everything acknowledged before the backup is in it: {head:?}");
    assert!(dir.path().join("haven.backup").exists());
    assert!(!dir.path().join("haven.backup.partial").exists(), "the partial file was renamed");
    let refused = backup::take(channel, &file, 0).await.unwrap_err();
    assert!(matches!(refused, LogError::InvalidArgument { .. }), "an existing file is never overwritten: {refused:?}");
    writer.await.unwrap();
    let whole = history(&leader_log).await;

    // Restored, the backup verifies and is the log's prefix, record for record.
    let restored_dir = dir.path().join("restored").join("node-1");
    let restored = backup::restore(&file, &restored_dir).unwrap();
    assert_eq!(restored.head, head);
    assert_eq!(restored.header.created_at, 1_700_000_000);
    {
        let store = SegmentStore::open(&restored_dir, 1 << 20).unwrap();
        assert_eq!(
            haven_eventlog::verify(&store).unwrap(),
            haven_eventlog::Verdict::Intact { events: head.next_position.0, head_hash: head.head_hash }
        );
    }

    // Damage anywhere in the records, a cut file and an occupied directory are refused, and
    // the target is left as it was.
    let bytes = std::fs::read(&file).unwrap();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let cut = bytes[..bytes.len() - 10].to_vec();
    for (name, damaged) in [("flipped", flipped), ("cut", cut)] {
        let path = dir.path().join(name);
        std::fs::write(&path, damaged).unwrap();
        let target = dir.path().join(format!("target-{name}"));
        let error = backup::restore(&path, &target).unwrap_err();
        assert!(matches!(error, LogError::Corrupt { .. }), "{name}: {error:?}");
        assert!(!target.exists(), "{name}: nothing is left behind");
    }
    let error = backup::restore(&file, &restored_dir).unwrap_err();
    assert!(matches!(error, LogError::InvalidArgument { .. }), "an occupied directory: {error:?}");
    let not_ours = dir.path().join("not-a-backup");
    std::fs::write(&not_ours, b"position,stream\n").unwrap();
    let error = backup::restore(&not_ours, &dir.path().join("target-other")).unwrap_err();
    assert!(error.to_string().contains("not a Haven backup"), "{error}");

    // A new one-node cluster on the restored store: the same history, then new appends chained on.
    for node in nodes {
        node.stop().await;
    }
    let running = start(&dir.path().join("restored"), 1, 100).await;
    running.node.initialize_alone().await.unwrap();
    running.node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
    let log = running.node.log();
    let stream = StreamId::parse("case-after-restore").unwrap();
    log.append(&stream, ExpectedVersion::NoStream, vec![event(99_999)]).await.unwrap();
    let after = history(&log).await;
    assert_eq!(after.len() as u64, head.next_position.0 + 1);
    assert_eq!(&after[..head.next_position.0 as usize], &whole[..head.next_position.0 as usize]);
    assert_eq!(after.last().unwrap().0, head.next_position.0, "the next append follows the restored head");
    drop(log);
    running.stop().await;
    let store = SegmentStore::open(&dir.path().join("restored").join("node-1"), 1 << 20).unwrap();
    assert!(matches!(haven_eventlog::verify(&store).unwrap(), haven_eventlog::Verdict::Intact { .. }));
}

/// openraft counts entries only; a node also takes a snapshot (which lets it purge its raft log) once
/// 64 MiB of entries were applied since the last, so a few large entries cannot keep the raft
/// log growing until the entry count is reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_snapshots_by_bytes_applied_as_well_as_by_entries() {
    let dir = tempfile::tempdir().unwrap();
    // 1 000 000 entries: the entry count alone would never ask for a snapshot here.
    let node = start(dir.path(), 1, 1_000_000).await;
    let members = BTreeMap::from([(1, openraft::BasicNode::new(node.addr.clone()))]);
    node.node.raft().initialize(members).await.unwrap();
    node.node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
    let log = node.node.log();
    let stream = StreamId::parse("test-big").unwrap();
    let big = |i: u8| haven_eventlog_client::conformance::event("test.raft.Big.v1", "school-a", &vec![i; 900_000]);
    // 9 appends of 9 events of 900 kB: about 73 MB, in entries of one append each.
    for round in 0..9u8 {
        assert!(node.node.raft().metrics().borrow().snapshot.is_none(), "no snapshot before 64 MiB");
        let events = (0..9).map(|i| big(round * 9 + i)).collect();
        log.append(&stream, ExpectedVersion::Any, events).await.unwrap();
    }
    let mut metrics = node.node.raft().metrics();
    let snapshot = tokio::time::timeout(Duration::from_secs(30), metrics.wait_for(|m| m.snapshot.is_some()))
        .await
        .expect("a snapshot after 64 MiB applied")
        .unwrap()
        .snapshot;
    assert!(snapshot.is_some_and(|s| s.index >= 8), "the snapshot covers the big entries: {snapshot:?}");
    assert_eq!(log.head().await.unwrap().next_position.0, 81, "every event is still there");
    node.stop().await;
}
