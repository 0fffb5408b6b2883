//! Fault injection against a real three-node cluster: `haven serve eventlog` processes on
//! loopback, concurrent clients, and a randomized schedule of faults — SIGKILL of the leader or
//! a follower (restarted with its data), SIGSTOP/SIGCONT pauses, network partitions (a node
//! isolated, or one link cut one way), and a node wiped and re-added.
//! After healing, a checker over the recorded history asserts:
//! - every acknowledged append is present exactly once, at the same position, on every node;
//! - `$all` (positions, event ids, hash chain) is identical on every node;
//! - no two acknowledged expected-version appends hold the same stream version;
//! - an append that failed or timed out is either wholly present or wholly absent;
//! - a linearizable read of the head, on any node, saw every append acknowledged before the
//!   read began (a reader runs beside the writers throughout the faults).
//!
//! `FAULT_SEED=N` replays a schedule; `FAULT_SECONDS=N` makes it longer (default 15 s).
//!
//! The network: every node is known to the others by the address of a TCP proxy in front of
//! it, and each node's outgoing connections leave from its own loopback address
//! (`--raft-source-ip 127.0.0.1N`), so the proxy knows which link a connection is. A cut link
//! is a black hole, as a real partition is: its connections stay open and carry nothing,
//! new ones are accepted and carry nothing, until it heals (then they are closed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use haven_eventlog_client::{EventLog, GrpcEventLog, LogError, ReadStream};
use haven_kernel::{ExpectedVersion, Position, StreamId, Version};
use haven_proto::v1::{Actor, ActorKind, EventFilter, ProposedEvent};
use tokio::net::{TcpListener as TokioListener, TcpStream};
use tokio::sync::watch;

const NODES: usize = 3;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A small deterministic generator (xorshift), so a seed replays the schedule.
struct Rng(u64);

impl Rng {
    /// Mixes the seed (splitmix64) so that small seeds still give well-spread schedules.
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The links between nodes that are cut: (from, to) — `from`'s connections to `to` carry nothing.
struct Net {
    cut: Mutex<HashSet<(u64, u64)>>,
    changed: watch::Sender<u64>,
}

impl Net {
    fn new() -> Arc<Net> {
        Arc::new(Net { cut: Mutex::new(HashSet::new()), changed: watch::Sender::new(0) })
    }

    fn is_cut(&self, link: (u64, u64)) -> bool {
        self.cut.lock().unwrap().contains(&link)
    }

    fn set(&self, links: &[(u64, u64)], cut: bool) {
        let mut set = self.cut.lock().unwrap();
        for link in links {
            if cut {
                set.insert(*link);
            } else {
                set.remove(link);
            }
        }
        drop(set);
        self.changed.send_modify(|n| *n += 1);
    }

    fn heal_all(&self) {
        self.cut.lock().unwrap().clear();
        self.changed.send_modify(|n| *n += 1);
    }

    /// Returns once `link` is not cut.
    async fn healed(&self, link: (u64, u64)) {
        let mut changes = self.changed.subscribe();
        while self.is_cut(link) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Returns once `link` is cut.
    async fn broken(&self, link: (u64, u64)) {
        let mut changes = self.changed.subscribe();
        while !self.is_cut(link) {
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The proxy in front of node `to`: a connection from 127.0.0.1N is node N's.
async fn proxy(listener: TokioListener, to: u64, upstream: String, net: Arc<Net>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((mut inbound, peer)) = listener.accept().await else { continue };
        let from = match peer.ip() {
            std::net::IpAddr::V4(ip) if (11..=19).contains(&ip.octets()[3]) => u64::from(ip.octets()[3] - 10),
            _ => 0,
        };
        let link = (from, to);
        let (net, upstream) = (Arc::clone(&net), upstream.clone());
        connections.spawn(async move {
            if net.is_cut(link) {
                net.healed(link).await;
                return;
            }
            let Ok(mut outbound) = TcpStream::connect(&upstream).await else { return };
            let _ = outbound.set_nodelay(true);
            let _ = inbound.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                () = net.broken(link) => net.healed(link).await,
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

struct Node {
    id: u64,
    /// Where the other nodes reach this one: its proxy.
    proxy: u16,
    grpc: u16,
    http: u16,
    dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.grpc)
    }

    fn peer_addr(&self) -> String {
        format!("127.0.0.1:{}", self.proxy)
    }

    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["serve", "eventlog", "--node-id", &self.id.to_string(), "--log", "warn"])
            .args(["--grpc-addr", &self.addr(), "--http-addr", &format!("127.0.0.1:{}", self.http)])
            .args(["--raft-source-ip", &format!("127.0.0.{}", 10 + self.id)])
            .arg("--data-dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.paused = false;
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args([signal, &child.id().to_string()]).status();
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill();
    }
}

fn cluster(grpc: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["log", "cluster"])
        .args(args)
        .args(["--grpc-addr", grpc])
        .output()
        .unwrap();
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn leader_of(nodes: &[Node]) -> Option<u64> {
    leader_of_nodes(&nodes.iter().collect::<Vec<_>>())
}

fn leader_of_nodes(nodes: &[&Node]) -> Option<u64> {
    for node in nodes.iter().filter(|n| n.child.is_some() && !n.paused) {
        let status = cluster(&node.addr(), &["status"]);
        let leader = status.split("leader ").nth(1)?.split_whitespace().next()?.parse().ok();
        if leader.is_some() {
            return leader;
        }
    }
    None
}

fn event(tag: &str) -> ProposedEvent {
    ProposedEvent {
        event_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
        event_type: format!("test.faults.{tag}.v1"),
        schema_version: 1,
        school_id: "school-f".into(),
        actor: Some(Actor { principal_id: "fault-test".into(), kind: ActorKind::System as i32, roles: vec![] }),
        payload: tag.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// What the clients saw.
#[derive(Default)]
struct History {
    /// Acknowledged: event id → acknowledged position.
    acked: HashMap<Vec<u8>, u64>,
    /// Acknowledged expected-version appends: (stream, version) → event id.
    versions: Vec<(String, u64, Vec<u8>)>,
    /// Calls that failed or timed out: their event ids (all or none may be present).
    uncertain: Vec<Vec<Vec<u8>>>,
    /// Linearizable reads of the head: (highest position acknowledged before the read began,
    /// the head's next position the read answered).
    reads: Vec<(Option<u64>, u64)>,
}

/// Reads the head, linearizably, from every node in turn while the clients write.
async fn reader(addrs: Vec<String>, history: Arc<Mutex<History>>, until: Instant) {
    let logs: Vec<GrpcEventLog> = addrs
        .iter()
        .map(|a| GrpcEventLog::connect_lazy(&format!("http://{a}"), Duration::from_secs(5)).unwrap())
        .collect();
    let mut i = 0;
    while Instant::now() < until {
        let before = history.lock().unwrap().acked.values().max().copied();
        i += 1;
        if let Ok(head) = logs[i % logs.len()].head().await {
            history.lock().unwrap().reads.push((before, head.next_position.0));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn client(n: usize, addrs: Vec<String>, history: Arc<Mutex<History>>, until: Instant) {
    let logs: Vec<GrpcEventLog> = addrs
        .iter()
        .map(|a| GrpcEventLog::connect_lazy(&format!("http://{a}"), Duration::from_secs(5)).unwrap())
        .collect();
    let own = StreamId::parse(&format!("case-client{n}")).unwrap();
    let shared = StreamId::parse(&format!("case-shared{}", n % 2)).unwrap();
    let mut i = 0u64;
    while Instant::now() < until {
        let log = &logs[(n + i as usize) % logs.len()];
        i += 1;
        // Plain appends of two events on the client's own stream.
        let events = vec![event("own"), event("own")];
        let ids: Vec<Vec<u8>> = events.iter().map(|e| e.event_id.clone()).collect();
        match log.append(&own, ExpectedVersion::Any, events).await {
            Ok(outcome) => {
                let mut h = history.lock().unwrap();
                for (k, id) in ids.into_iter().enumerate() {
                    h.acked.insert(id, outcome.first_position.0 + k as u64);
                }
            }
            Err(_) => history.lock().unwrap().uncertain.push(ids),
        }
        // An expected-version append on a shared stream.
        let read = log
            .read_stream(ReadStream {
                stream_id: shared.clone(),
                from_version: Version(0),
                from_end: true,
                backwards: true,
                limit: 1,
            })
            .await;
        let Ok(slice) = read else { continue };
        let expected = match slice.last_version {
            Some(v) => ExpectedVersion::Exact(v),
            None => ExpectedVersion::NoStream,
        };
        let proposed = event("shared");
        let id = proposed.event_id.clone();
        match log.append(&shared, expected, vec![proposed]).await {
            Ok(outcome) => {
                let mut h = history.lock().unwrap();
                h.acked.insert(id.clone(), outcome.first_position.0);
                h.versions.push((shared.as_str().to_owned(), outcome.first_version.0, id));
            }
            Err(LogError::WrongExpectedVersion(_)) => {}
            Err(_) => history.lock().unwrap().uncertain.push(vec![id]),
        }
    }
}

/// Every event a node holds: (position, event id, hash, stream, version).
async fn all_events(addr: &str) -> Result<Vec<(u64, Vec<u8>, Vec<u8>, String, u64)>, LogError> {
    let log = GrpcEventLog::connect_lazy(&format!("http://{addr}"), Duration::from_secs(10)).unwrap();
    let mut out = Vec::new();
    let mut from = Position(0);
    loop {
        let page = log.read_all(from, 1000, &EventFilter::default()).await?;
        for e in &page.events {
            out.push((e.position, e.event_id.clone(), e.hash.clone(), e.stream_id.clone(), e.version));
        }
        from = page.next_position;
        if page.end_of_log {
            return Ok(out);
        }
    }
}

fn wipe(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_appends_survive_kills_pauses_and_a_wiped_node() {
    let seed: u64 = std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64 | 1
    });
    let seconds: u64 = std::env::var("FAULT_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    eprintln!("fault test: FAULT_SEED={seed} FAULT_SECONDS={seconds}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (1..=NODES as u64)
        .map(|id| Node {
            id,
            proxy: free_port(),
            grpc: free_port(),
            http: free_port(),
            dir: dir.path().join(format!("n{id}")),
            child: None,
            paused: false,
        })
        .collect();
    let net = Net::new();
    let mut proxies = tokio::task::JoinSet::new();
    for node in &mut nodes {
        let listener = TokioListener::bind(node.peer_addr()).await.unwrap();
        proxies.spawn(proxy(listener, node.id, node.addr(), Arc::clone(&net)));
        node.start();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut init = vec!["init".to_owned()];
    for node in &nodes {
        init.push("--member".into());
        init.push(format!("{}={}", node.id, node.peer_addr()));
    }
    let init: Vec<&str> = init.iter().map(String::as_str).collect();
    let out = cluster(&nodes[0].addr(), &init);
    assert!(out.contains("voter"), "cluster init: {out}");

    // The partition works: the leader cut off from both others is replaced.
    let mut first = None;
    for _ in 0..50 {
        first = tokio::task::block_in_place(|| leader_of(&nodes));
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = first.expect("a leader is elected");
    let links: Vec<(u64, u64)> =
        (1..=NODES as u64).filter(|&n| n != first).flat_map(|o| [(first, o), (o, first)]).collect();
    net.set(&links, true);
    let mut replaced = false;
    for _ in 0..100 {
        let others: Vec<&Node> = nodes.iter().filter(|n| n.id != first).collect();
        let leader = tokio::task::block_in_place(|| leader_of_nodes(&others));
        if leader.is_some_and(|l| l != first) {
            replaced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    net.set(&links, false);
    assert!(replaced, "the other nodes did not elect a new leader while {first} was cut off");

    let history = Arc::new(Mutex::new(History::default()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let addrs: Vec<String> = nodes.iter().map(Node::addr).collect();
    let mut clients: Vec<_> =
        (0..4).map(|n| tokio::spawn(client(n, addrs.clone(), Arc::clone(&history), until))).collect();
    clients.push(tokio::spawn(reader(addrs.clone(), Arc::clone(&history), until)));

    // The nemesis: one fault at a time, each healed before the next.
    let mut wiped = false;
    while Instant::now() + Duration::from_secs(2) < until {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
        let leader = tokio::task::block_in_place(|| leader_of(&nodes));
        let victim = match (rng.below(2), leader) {
            (0, Some(leader)) => (leader - 1) as usize,
            _ => rng.below(NODES as u64) as usize,
        };
        match rng.below(6) {
            0 | 1 => {
                eprintln!("fault: SIGKILL node {} (leader {leader:?}), restart with its data", victim + 1);
                nodes[victim].kill();
                tokio::time::sleep(Duration::from_millis(200 + rng.below(800))).await;
                nodes[victim].start();
            }
            2 => {
                eprintln!("fault: SIGSTOP node {} (leader {leader:?})", victim + 1);
                nodes[victim].signal("-STOP");
                nodes[victim].paused = true;
                tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
                nodes[victim].signal("-CONT");
                nodes[victim].paused = false;
            }
            3 => {
                let id = victim as u64 + 1;
                let others: Vec<u64> = (1..=NODES as u64).filter(|&n| n != id).collect();
                let links: Vec<(u64, u64)> = others.iter().flat_map(|&o| [(id, o), (o, id)]).collect();
                eprintln!("fault: partition node {id} from the others (leader {leader:?})");
                net.set(&links, true);
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
                net.set(&links, false);
            }
            4 => {
                let from = victim as u64 + 1;
                let to = (from + rng.below(NODES as u64 - 1)) % NODES as u64 + 1;
                eprintln!("fault: cut the link {from} → {to} one way (leader {leader:?})");
                net.set(&[(from, to)], true);
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
                net.set(&[(from, to)], false);
            }
            _ if !wiped && Some(victim as u64 + 1) != leader => {
                // A follower loses its disk: removed, wiped, and added back as a new learner.
                let id = victim as u64 + 1;
                eprintln!("fault: wipe node {id} and re-add it");
                let Some(leader) = leader else { continue };
                let leader_addr = nodes[(leader - 1) as usize].addr();
                let removed =
                    tokio::task::block_in_place(|| cluster(&leader_addr, &["remove", "--node-id", &id.to_string()]));
                if !removed.contains("voter") {
                    eprintln!("remove refused: {removed}");
                    continue;
                }
                nodes[victim].kill();
                wipe(&nodes[victim].dir);
                nodes[victim].start();
                tokio::time::sleep(Duration::from_millis(500)).await;
                let addr = nodes[victim].peer_addr();
                let id_text = id.to_string();
                for attempt in 0..20 {
                    let leader_addr = match tokio::task::block_in_place(|| leader_of(&nodes)) {
                        Some(l) => nodes[(l - 1) as usize].addr(),
                        None => continue,
                    };
                    let added = tokio::task::block_in_place(|| {
                        let a = cluster(&leader_addr, &["add-learner", "--node-id", &id_text, "--node-addr", &addr]);
                        a + &cluster(&leader_addr, &["promote", "--node-id", &id_text])
                    });
                    if added.matches("voter").count() >= 2 && !added.contains("haven:") {
                        break;
                    }
                    eprintln!("re-add attempt {attempt}: {added}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                wiped = true;
            }
            _ => {}
        }
    }
    for client in clients {
        client.await.unwrap();
    }

    // Heal: every link up, everything running, then wait until every node holds the same head.
    net.heal_all();
    for node in &mut nodes {
        node.signal("-CONT");
        if node.child.is_none() {
            node.start();
        }
    }
    let mut histories = Vec::new();
    for _ in 0..150 {
        histories.clear();
        for node in &nodes {
            histories.push(all_events(&node.addr()).await.unwrap_or_default());
        }
        if histories.iter().all(|h| h.len() == histories[0].len()) && !histories[0].is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let history = history.lock().unwrap();
    eprintln!(
        "checked: {} acknowledged events, {} versioned appends, {} uncertain calls, {} linearizable reads, {} events on the log",
        history.acked.len(),
        history.versions.len(),
        history.uncertain.len(),
        history.reads.len(),
        histories[0].len()
    );
    assert!(history.acked.len() > 20, "the clients got too few appends through to test anything");

    // Identical $all on every node: positions, ids and the hash chain.
    for (i, h) in histories.iter().enumerate().skip(1) {
        assert_eq!(h, &histories[0], "node {} differs from node 1 (FAULT_SEED={seed})", i + 1);
    }
    let log = &histories[0];
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.0, i as u64, "positions are dense and in order");
    }
    // Every acknowledged event exactly once, where it was acknowledged.
    let mut at: HashMap<&Vec<u8>, Vec<u64>> = HashMap::new();
    for e in log {
        at.entry(&e.1).or_default().push(e.0);
    }
    for (id, position) in &history.acked {
        assert_eq!(at.get(id), Some(&vec![*position]), "an acknowledged event is lost or moved (FAULT_SEED={seed})");
    }
    assert!(at.values().all(|p| p.len() == 1), "an event id appears twice (FAULT_SEED={seed})");
    // No two acknowledged expected-version appends share a stream version.
    let mut taken: BTreeMap<(&str, u64), &Vec<u8>> = BTreeMap::new();
    for (stream, version, id) in &history.versions {
        assert!(taken.insert((stream, *version), id).is_none(), "two appends hold {stream}@{version}");
    }
    // A linearizable read saw every append acknowledged before it began.
    for (before, seen) in &history.reads {
        if let Some(before) = before {
            assert!(
                seen > before,
                "a read answered head {seen} after position {before} was acknowledged (FAULT_SEED={seed})"
            );
        }
    }
    assert!(!history.reads.is_empty(), "no linearizable read succeeded");
    // A failed call: all of its events or none.
    let present: HashSet<&Vec<u8>> = log.iter().map(|e| &e.1).collect();
    for ids in &history.uncertain {
        let count = ids.iter().filter(|id| present.contains(id)).count();
        assert!(count == 0 || count == ids.len(), "half a call is present (FAULT_SEED={seed})");
    }
}
