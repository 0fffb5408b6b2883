//! Property test: the log's stream and expected-version rules agree with a simple in-memory
//! model over random sequences of appends, batches, exact retries, altered retries and
//! restarts. After every sequence the whole log reads back as the model says, and the hash
//! chain verifies.

use std::collections::HashMap;
use std::sync::Arc;

use haven_eventlog::store::{SegmentStore, Store};
use haven_eventlog::{EventLogConfig, LocalEventLog, Verdict};
use haven_eventlog_client::{AppendOutcome, EventLog, LogError, ReadStream, StreamAppend, conformance};
use haven_kernel::{ExpectedVersion, Position, StreamId, Version};
use haven_proto::v1::ProposedEvent;
use proptest::prelude::*;

const STREAMS: [&str; 3] = ["model-a", "model-b", "model-c"];

#[derive(Clone, Debug)]
enum Expect {
    Any,
    NoStream,
    StreamExists,
    Exact(u64),
}

impl Expect {
    fn to_log(&self) -> ExpectedVersion {
        match self {
            Expect::Any => ExpectedVersion::Any,
            Expect::NoStream => ExpectedVersion::NoStream,
            Expect::StreamExists => ExpectedVersion::StreamExists,
            Expect::Exact(v) => ExpectedVersion::Exact(Version(*v)),
        }
    }

    /// The model's rule, written independently of the kernel's.
    fn met_by(&self, current: Option<u64>) -> bool {
        match (self, current) {
            (Expect::Any, _) => true,
            (Expect::NoStream, None) | (Expect::StreamExists, Some(_)) => true,
            (Expect::Exact(want), Some(have)) => *want == have,
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
struct Call {
    stream: usize,
    expect: Expect,
    events: usize,
}

#[derive(Clone, Debug)]
enum Op {
    Append(Call),
    Batch(Vec<Call>),
    /// Re-send an earlier single append exactly (same ids, same content, same expectation).
    Retry(prop::sample::Index),
    /// Re-send an earlier single append's first event id with a different payload.
    Altered(prop::sample::Index),
    /// Close the log and open it again from disk.
    Restart,
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        Just(Expect::Any),
        Just(Expect::NoStream),
        Just(Expect::StreamExists),
        (0u64..6).prop_map(Expect::Exact),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    (0..STREAMS.len(), expect(), 1usize..4).prop_map(|(stream, expect, events)| Call { stream, expect, events })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => call().prop_map(Op::Append),
        2 => prop::collection::vec(call(), 1..5).prop_map(Op::Batch),
        2 => any::<prop::sample::Index>().prop_map(Op::Retry),
        1 => any::<prop::sample::Index>().prop_map(Op::Altered),
        1 => Just(Op::Restart),
    ]
}

/// What the model expects a stream append to answer.
#[derive(Clone, Debug, PartialEq)]
enum Answer {
    Written { first_version: u64, last_version: u64, first_position: u64, last_position: u64, duplicate: bool },
    Wrong { actual: Option<u64> },
    Conflict,
}

impl Answer {
    fn of(result: Result<AppendOutcome, LogError>) -> Answer {
        match result {
            Ok(o) => Answer::Written {
                first_version: o.first_version.0,
                last_version: o.last_version.0,
                first_position: o.first_position.0,
                last_position: o.last_position.0,
                duplicate: o.duplicate,
            },
            Err(LogError::WrongExpectedVersion(wrong)) => Answer::Wrong { actual: wrong.actual.map(|v| v.0) },
            Err(LogError::EventIdConflict { .. }) => Answer::Conflict,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
}

#[derive(Default)]
struct Model {
    /// Per stream: the payloads in version order.
    streams: HashMap<usize, Vec<Vec<u8>>>,
    /// `$all` in position order: (stream, version, payload).
    all: Vec<(usize, u64, Vec<u8>)>,
    /// Event ids written, with the answer of the call that wrote them.
    written: HashMap<Vec<u8>, Answer>,
}

impl Model {
    fn append(&mut self, stream: usize, expect: &Expect, events: &[ProposedEvent]) -> Answer {
        if let Some(answer) = self.written.get(&events[0].event_id) {
            let Answer::Written { first_version, last_version, first_position, last_position, .. } = answer.clone()
            else {
                unreachable!("only written calls are remembered")
            };
            return Answer::Written { first_version, last_version, first_position, last_position, duplicate: true };
        }
        let current = self.streams.get(&stream).map(|s| s.len() as u64 - 1);
        if !expect.met_by(current) {
            return Answer::Wrong { actual: current };
        }
        let first_version = current.map_or(0, |v| v + 1);
        let first_position = self.all.len() as u64;
        for (i, event) in events.iter().enumerate() {
            self.streams.entry(stream).or_default().push(event.payload.clone());
            self.all.push((stream, first_version + i as u64, event.payload.clone()));
        }
        let answer = Answer::Written {
            first_version,
            last_version: first_version + events.len() as u64 - 1,
            first_position,
            last_position: self.all.len() as u64 - 1,
            duplicate: false,
        };
        for event in events {
            self.written.insert(event.event_id.clone(), answer.clone());
        }
        answer
    }
}

fn events(count: usize, tag: usize) -> Vec<ProposedEvent> {
    (0..count).map(|i| conformance::event("model.Happened", "", format!("{tag}/{i}").as_bytes())).collect()
}

fn open(dir: &std::path::Path) -> (LocalEventLog, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SegmentStore::open(dir, 1 << 20).expect("open store"));
    let log = LocalEventLog::with_store(Arc::clone(&store), EventLogConfig::default()).expect("start log");
    (log, store)
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut store) = open(dir.path());
    let mut model = Model::default();
    // Single appends made so far, for retries: (stream, expectation, events).
    let mut sent: Vec<(usize, Expect, Vec<ProposedEvent>)> = Vec::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append(call) => {
                let events = events(call.events, step);
                let want = model.append(call.stream, &call.expect, &events);
                let got = Answer::of(
                    log.append(&StreamId::parse(STREAMS[call.stream]).unwrap(), call.expect.to_log(), events.clone())
                        .await,
                );
                assert_eq!(got, want, "step {step}: append to {}", STREAMS[call.stream]);
                sent.push((call.stream, call.expect, events));
            }
            Op::Batch(calls) => {
                let mut appends = Vec::new();
                let mut want = Vec::new();
                for (i, call) in calls.iter().enumerate() {
                    let events = events(call.events, step * 100 + i);
                    want.push(model.append(call.stream, &call.expect, &events));
                    appends.push(StreamAppend {
                        stream_id: StreamId::parse(STREAMS[call.stream]).unwrap(),
                        expected: call.expect.to_log(),
                        events,
                    });
                }
                let outcomes = log.append_batch(appends).await.expect("a valid batch is answered");
                let got: Vec<Answer> = outcomes.into_iter().map(|o| Answer::of(o.map_err(LogError::from))).collect();
                assert_eq!(got, want, "step {step}: batch");
            }
            Op::Retry(index) if !sent.is_empty() => {
                let (stream, expect, events) = sent[index.index(sent.len())].clone();
                let want = model.append(stream, &expect, &events);
                let got =
                    Answer::of(log.append(&StreamId::parse(STREAMS[stream]).unwrap(), expect.to_log(), events).await);
                assert_eq!(got, want, "step {step}: exact retry");
            }
            Op::Altered(index) if !sent.is_empty() => {
                let (stream, expect, mut events) = sent[index.index(sent.len())].clone();
                events[0].payload.push(b'!');
                if !model.written.contains_key(&events[0].event_id) {
                    continue; // never written: it would simply be a new append
                }
                let want = Answer::Conflict;
                let got =
                    Answer::of(log.append(&StreamId::parse(STREAMS[stream]).unwrap(), expect.to_log(), events).await);
                assert_eq!(got, want, "step {step}: altered retry");
            }
            Op::Retry(_) | Op::Altered(_) => {}
            Op::Restart => {
                log.close().await;
                drop(log);
                drop(store);
                (log, store) = open(dir.path());
            }
        }
    }

    let all = log.read_all(Position(0), 10_000, &Default::default()).await.unwrap();
    let got: Vec<(String, u64, Vec<u8>)> =
        all.events.iter().map(|e| (e.stream_id.clone(), e.version, e.payload.clone())).collect();
    let want: Vec<(String, u64, Vec<u8>)> =
        model.all.iter().map(|(s, v, p)| (STREAMS[*s].to_owned(), *v, p.clone())).collect();
    assert_eq!(got, want, "$all reads back as the model");
    for (index, name) in STREAMS.iter().enumerate() {
        let slice = log.read_stream(ReadStream::forwards(StreamId::parse(name).unwrap(), Version(0), 0)).await.unwrap();
        let payloads: Vec<Vec<u8>> = slice.events.iter().map(|e| e.payload.clone()).collect();
        assert_eq!(payloads, model.streams.get(&index).cloned().unwrap_or_default(), "stream {name}");
    }
    log.close().await;
    match haven_eventlog::verify(store.as_ref()).unwrap() {
        Verdict::Intact { events, .. } => assert_eq!(events, model.all.len() as u64),
        broken => panic!("chain broken: {broken:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_agrees_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run(ops));
    }
}
