//! Crash test: a child process appends concurrently and is killed with SIGKILL at a random
//! moment, round after round on the same data directory. After every kill the log is opened
//! again and checked against everything the child reported:
//!
//! - every acknowledged call is present exactly once, at the positions it was told;
//! - every call that was sent but not acknowledged is either wholly present or wholly absent
//!   (never half a call, never half a batch), and stays so in later rounds;
//! - `$all` has no gap, each stream's versions have no gap, no event id appears twice;
//! - the hash chain verifies.
//!
//! The child is this test binary run again with `CRASH_TEST_CHILD` set. Rounds default to
//! 12; `CRASH_TEST_ROUNDS=500` makes it a soak.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use haven_eventlog::store::{SegmentStore, Store};
use haven_eventlog::{EventLogConfig, LocalEventLog, Verdict};
use haven_eventlog_client::{EventLog, ReadStream, StreamAppend, conformance};
use haven_kernel::{ExpectedVersion, Position, StreamId};
use haven_proto::v1::ProposedEvent;

const CHILD_ENV: &str = "CRASH_TEST_CHILD";
const SINGLE_WRITERS: usize = 4;
/// Marks the child's reports on its stdout.
const TAG: &str = "@crash ";

fn id_text(event: &ProposedEvent) -> String {
    uuid::Uuid::from_slice(&event.event_id).expect("16-byte ids").to_string()
}

fn open(dir: &Path) -> (LocalEventLog, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SegmentStore::open(dir, 4 << 20).expect("the store reopens after a kill"));
    let log = LocalEventLog::with_store(Arc::clone(&store), EventLogConfig::default()).expect("start log");
    (log, store)
}

/// The child: appends until killed, reporting `send` before each call and `ack` after.
/// Lines: `send <call> <id> <id>…` and `ack <call> <first_position> <last_position>`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only meaningful when started by `acknowledged_appends_survive_sigkill`
    };
    let round = std::env::var("CRASH_TEST_ROUND").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let (log, _store) = open(Path::new(&dir));
        let mut tasks = Vec::new();
        for writer in 0..SINGLE_WRITERS {
            let log = log.clone();
            let round = round.clone();
            tasks.push(tokio::spawn(async move {
                // Each single writer owns its stream and appends with an exact expectation, so a
                // write that was durable but never acknowledged shows up as the version read here.
                let stream = StreamId::parse(&format!("crash-w{writer}")).unwrap();
                let mut version = log.read_stream(ReadStream::last(stream.clone(), 1)).await.unwrap().last_version;
                for seq in 0u64.. {
                    let count = 1 + (seq % 4) as usize;
                    let events: Vec<_> =
                        (0..count).map(|_| conformance::event("crash.Appended", "", &[b'x'; 256])).collect();
                    let call = format!("r{round}-w{writer}-{seq}");
                    report(&format!("send {call} {}", ids(&events)));
                    let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    let outcome = log.append(&stream, expected, events).await.expect("append");
                    version = Some(outcome.last_version);
                    report(&format!("ack {call} {} {}", outcome.first_position.0, outcome.last_position.0));
                }
            }));
        }
        let batch_log = log.clone();
        tasks.push(tokio::spawn(async move {
            // Batches across streams: one durable write each, so all of it or none of it.
            for seq in 0u64.. {
                let appends: Vec<StreamAppend> = (0..3)
                    .map(|i| StreamAppend {
                        stream_id: StreamId::parse(&format!("crash-b{}", (seq + i) % 5)).unwrap(),
                        expected: ExpectedVersion::Any,
                        events: (0..2).map(|_| conformance::event("crash.Batched", "", &[b'y'; 200])).collect(),
                    })
                    .collect();
                let all: Vec<ProposedEvent> = appends.iter().flat_map(|a| a.events.clone()).collect();
                let call = format!("r{round}-b-{seq}");
                report(&format!("send {call} {}", ids(&all)));
                let outcomes = batch_log.append_batch(appends).await.expect("batch");
                let first = outcomes[0].as_ref().expect("Any always matches").first_position.0;
                let last = outcomes[2].as_ref().expect("Any always matches").last_position.0;
                report(&format!("ack {call} {first} {last}"));
            }
        }));
        report("ready");
        for task in tasks {
            task.await.unwrap();
        }
    });
}

fn ids(events: &[ProposedEvent]) -> String {
    events.iter().map(id_text).collect::<Vec<_>>().join(" ")
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{TAG}{line}").unwrap();
    out.flush().unwrap();
}

/// One call the child made, as far as the parent knows.
#[derive(Debug)]
struct Call {
    ids: Vec<String>,
    /// `(first_position, last_position)` once acknowledged.
    acked: Option<(u64, u64)>,
    /// For unacknowledged calls: whether it was found in the log after the first kill.
    settled: Option<bool>,
}

/// A small deterministic generator, so a failing round can be replayed from its seed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let rounds: u64 = std::env::var("CRASH_TEST_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(12);
    let seed: u64 = std::env::var("CRASH_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("crash test: {rounds} rounds, CRASH_TEST_SEED={seed}");
    let mut rng = seed;
    let dir = tempfile::tempdir().unwrap();
    let mut calls: HashMap<String, Call> = HashMap::new();
    let mut total_acked = 0usize;

    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("CRASH_TEST_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child");
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                // A line cut by the kill has no newline: it was never fully reported.
                // libtest's own output can share a line with a report: take what follows the tag.
                if line.ends_with('\n')
                    && let Some((_, report)) = line.trim_end().split_once(TAG)
                {
                    if report == "ready" {
                        let _ = ready_tx.send(());
                    }
                    lines.push(report.to_owned());
                }
                line.clear();
            }
            lines
        });
        ready_rx.recv_timeout(Duration::from_secs(60)).expect("the child opened the log and started writing");
        // Up to 1.5 s, so some kills land after a durable index checkpoint (one a second) and
        // some between checkpoints, where the index is rebuilt from the segments.
        std::thread::sleep(Duration::from_millis(20 + splitmix(&mut rng) % 1_500));
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        for line in &lines {
            let mut words = line.split(' ');
            match words.next() {
                Some("send") => {
                    let call = words.next().unwrap().to_owned();
                    let ids = words.map(str::to_owned).collect();
                    calls.insert(call, Call { ids, acked: None, settled: None });
                }
                Some("ack") => {
                    let call = words.next().unwrap();
                    let first: u64 = words.next().unwrap().parse().unwrap();
                    let last: u64 = words.next().unwrap().parse().unwrap();
                    calls.get_mut(call).expect("ack after send").acked = Some((first, last));
                    total_acked += 1;
                }
                _ => {}
            }
        }
        check(dir.path(), &mut calls, round);
    }
    assert!(total_acked > 0, "the child acknowledged nothing in {rounds} rounds: the test proved nothing");
    eprintln!("crash test: {total_acked} acknowledged calls checked over {rounds} kills");
}

fn check(dir: &Path, calls: &mut HashMap<String, Call>, round: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (log, store) = open(dir);
    let events = runtime.block_on(async {
        let mut events = Vec::new();
        let mut from = Position(0);
        loop {
            let page = log.read_all(from, 10_000, &Default::default()).await.unwrap();
            events.extend(page.events);
            from = page.next_position;
            if page.end_of_log {
                break events;
            }
        }
    });
    runtime.block_on(log.close());

    // Where each id is; $all without gaps; streams without gaps; each id once.
    let mut at: HashMap<String, u64> = HashMap::new();
    let mut stream_next: HashMap<String, u64> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.position, index as u64, "round {round}: $all has a gap or is out of order");
        let next = stream_next.entry(event.stream_id.clone()).or_insert(0);
        assert_eq!(event.version, *next, "round {round}: stream {} has a gap at {}", event.stream_id, event.position);
        *next += 1;
        let id = uuid::Uuid::from_slice(&event.event_id).unwrap().to_string();
        assert!(at.insert(id.clone(), event.position).is_none(), "round {round}: event {id} is stored twice");
    }

    let mut known: HashSet<&str> = HashSet::new();
    for (name, call) in calls.iter_mut() {
        known.extend(call.ids.iter().map(String::as_str));
        let present: Vec<Option<u64>> = call.ids.iter().map(|id| at.get(id).copied()).collect();
        match call.acked {
            Some((first, last)) => {
                let want: Vec<Option<u64>> = (first..=last).map(Some).collect();
                // Single appends are contiguous; a batch's events are too (one write, in order).
                assert_eq!(present, want, "round {round}: acknowledged call {name} is not where it was acknowledged");
            }
            None => {
                let all = present.iter().all(Option::is_some);
                let none = present.iter().all(Option::is_none);
                assert!(all || none, "round {round}: unacknowledged call {name} is half there: {present:?}");
                if let Some(was) = call.settled {
                    assert_eq!(was, all, "round {round}: unacknowledged call {name} changed from present={was}");
                }
                call.settled = Some(all);
            }
        }
    }
    // Nothing in the log that the child did not send.
    for id in at.keys() {
        assert!(known.contains(id.as_str()), "round {round}: event {id} was never sent");
    }
    match haven_eventlog::verify(store.as_ref()).unwrap() {
        Verdict::Intact { events: count, .. } => assert_eq!(count, events.len() as u64),
        broken => panic!("round {round}: chain broken after a kill: {broken:?}"),
    }
}
