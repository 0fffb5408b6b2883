//! The behaviour every [`EventLog`] implementation must have, as one suite.
//!
//! Run [`run_all`] against a fresh, empty log: the in-process log and the gRPC client against a
//! real server both pass it, which is what "same behaviour in-process and remote" means.
//! Every check names what broke.

use futures_util::StreamExt;
use haven_kernel::{ExpectedVersion, Position, StreamId, Version};
use haven_proto::v1::{Actor, ActorKind, EventFilter, ProposedEvent, TraceContext};

use crate::{EventLog, LogError, ReadStream, StreamAppend, WrongExpectedVersion};

/// A valid event with a fresh UUIDv7 id.
pub fn event(event_type: &str, school_id: &str, payload: &[u8]) -> ProposedEvent {
    ProposedEvent {
        event_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        school_id: school_id.to_owned(),
        occurred_at: None,
        actor: Some(Actor { principal_id: "haven".into(), kind: ActorKind::System as i32, roles: vec![] }),
        correlation_id: vec![],
        causation_id: vec![],
        trace_context: None,
        payload: payload.to_vec(),
    }
}

fn stream(name: &str) -> StreamId {
    StreamId::parse(name).expect("test stream ids are valid")
}

/// Runs every check, in order, against one fresh log.
pub async fn run_all(log: &dyn EventLog) {
    appends_are_read_back_in_order(log).await;
    expected_versions_are_enforced(log).await;
    retried_appends_are_idempotent(log).await;
    bad_input_is_refused_and_writes_nothing(log).await;
    batches_have_one_outcome_per_stream(log).await;
    read_all_pages_and_filters(log).await;
    subscriptions_catch_up_then_go_live(log).await;
}

pub async fn appends_are_read_back_in_order(log: &dyn EventLog) {
    let start = log.head().await.unwrap().next_position;
    let id = stream("conf-order");
    let events: Vec<_> = (0..3u8).map(|i| event("test.Happened", "oak", &[i])).collect();
    let outcome = log.append(&id, ExpectedVersion::NoStream, events.clone()).await.unwrap();
    assert_eq!((outcome.first_version, outcome.last_version), (Version(0), Version(2)));
    assert_eq!(outcome.first_position, start);
    assert_eq!(outcome.last_position, Position(start.0 + 2));
    assert!(!outcome.duplicate);

    let slice = log.read_stream(ReadStream::forwards(id.clone(), Version(0), 0)).await.unwrap();
    assert_eq!(slice.last_version, Some(Version(2)));
    assert!(slice.end_of_stream);
    for (i, stored) in slice.events.iter().enumerate() {
        assert_eq!(stored.event_id, events[i].event_id, "event {i} id");
        assert_eq!(stored.payload, events[i].payload, "event {i} payload");
        assert_eq!(stored.version, i as u64);
        assert_eq!(stored.position, start.0 + i as u64);
        assert_eq!(stored.stream_id, id.as_str());
        assert_eq!(stored.hash.len(), 32, "every served event carries its chain hash");
        assert!(stored.recorded_at.is_some(), "the log stamps recorded_at");
    }
    let backwards = log.read_stream(ReadStream::last(id.clone(), 2)).await.unwrap();
    let versions: Vec<u64> = backwards.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![2, 1]);
    assert!(!backwards.end_of_stream, "version 0 is still before the page");

    let head = log.head().await.unwrap();
    assert_eq!(head.next_position, Position(start.0 + 3));
    assert_eq!(head.head_hash.as_slice(), slice.events[2].hash.as_slice());

    let missing = log.read_stream(ReadStream::forwards(stream("conf-missing"), Version(0), 10)).await.unwrap();
    assert_eq!(missing.last_version, None);
    assert!(missing.events.is_empty());
}

pub async fn expected_versions_are_enforced(log: &dyn EventLog) {
    let id = stream("conf-expect");
    let wrong = |expected, actual| {
        LogError::WrongExpectedVersion(WrongExpectedVersion { stream_id: id.clone(), expected, actual })
    };
    let err = log.append(&id, ExpectedVersion::StreamExists, vec![event("t.A", "", b"")]).await.unwrap_err();
    assert_eq!(err, wrong(ExpectedVersion::StreamExists, None));
    let err = log.append(&id, ExpectedVersion::Exact(Version(0)), vec![event("t.A", "", b"")]).await.unwrap_err();
    assert_eq!(err, wrong(ExpectedVersion::Exact(Version(0)), None));

    log.append(&id, ExpectedVersion::NoStream, vec![event("t.A", "", b"")]).await.unwrap();
    let err = log.append(&id, ExpectedVersion::NoStream, vec![event("t.A", "", b"")]).await.unwrap_err();
    assert_eq!(err, wrong(ExpectedVersion::NoStream, Some(Version(0))));
    let err = log.append(&id, ExpectedVersion::Exact(Version(5)), vec![event("t.A", "", b"")]).await.unwrap_err();
    assert_eq!(err, wrong(ExpectedVersion::Exact(Version(5)), Some(Version(0))));

    let ok = log.append(&id, ExpectedVersion::Exact(Version(0)), vec![event("t.B", "", b"")]).await.unwrap();
    assert_eq!(ok.first_version, Version(1));
    let ok = log.append(&id, ExpectedVersion::StreamExists, vec![event("t.B", "", b"")]).await.unwrap();
    assert_eq!(ok.first_version, Version(2));
    let ok = log.append(&id, ExpectedVersion::Any, vec![event("t.B", "", b"")]).await.unwrap();
    assert_eq!(ok.first_version, Version(3));
}

pub async fn retried_appends_are_idempotent(log: &dyn EventLog) {
    let id = stream("conf-idem");
    let events = vec![event("t.A", "oak", b"one"), event("t.A", "oak", b"two")];
    let first = log.append(&id, ExpectedVersion::NoStream, events.clone()).await.unwrap();
    let head = log.head().await.unwrap();
    // The retry carries the same expectation, which no longer holds: idempotency wins.
    let retry = log.append(&id, ExpectedVersion::NoStream, events.clone()).await.unwrap();
    assert!(retry.duplicate, "a retry reports it wrote nothing");
    assert_eq!((retry.first_position, retry.last_position), (first.first_position, first.last_position));
    assert_eq!(log.head().await.unwrap(), head, "a retry writes nothing");
    // The trace context is not content (ADR 0021): a retry from another trace is the same event.
    let mut retraced = events.clone();
    for event in &mut retraced {
        event.trace_context = Some(TraceContext {
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: String::new(),
        });
    }
    let retry = log.append(&id, ExpectedVersion::NoStream, retraced).await.unwrap();
    assert!(retry.duplicate, "a retry from another trace is a duplicate, not a conflict");

    let mut altered = events.clone();
    altered[1].payload = b"changed".to_vec();
    let err = log.append(&id, ExpectedVersion::Any, altered).await.unwrap_err();
    assert!(matches!(err, LogError::EventIdConflict { .. }), "same id, other content: {err:?}");

    let partly_new = vec![events[0].clone(), event("t.A", "oak", b"three")];
    let err = log.append(&id, ExpectedVersion::Any, partly_new).await.unwrap_err();
    assert!(matches!(err, LogError::EventIdConflict { .. }), "half a retry: {err:?}");
    assert_eq!(log.head().await.unwrap(), head, "refused appends write nothing");
}

pub async fn bad_input_is_refused_and_writes_nothing(log: &dyn EventLog) {
    let head = log.head().await.unwrap();
    let id = stream("conf-bad");
    let field_of = |err: LogError| match err {
        LogError::InvalidArgument { field, .. } => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };

    let err = log.append(&id, ExpectedVersion::Any, vec![]).await.unwrap_err();
    assert_eq!(field_of(err), "events");
    let mut bad_id = event("t.A", "", b"");
    bad_id.event_id = vec![1, 2, 3];
    let err = log.append(&id, ExpectedVersion::Any, vec![event("t.A", "", b""), bad_id]).await.unwrap_err();
    assert_eq!(field_of(err), "events[1].event_id");
    let mut no_type = event("t.A", "", b"");
    no_type.event_type.clear();
    assert_eq!(
        field_of(log.append(&id, ExpectedVersion::Any, vec![no_type]).await.unwrap_err()),
        "events[0].event_type"
    );
    let mut bad_school = event("t.A", "", b"");
    bad_school.school_id = "Not A School".into();
    assert_eq!(
        field_of(log.append(&id, ExpectedVersion::Any, vec![bad_school]).await.unwrap_err()),
        "events[0].school_id"
    );
    let mut bad_kind = event("t.A", "", b"");
    bad_kind.actor.as_mut().unwrap().kind = 99;
    assert_eq!(
        field_of(log.append(&id, ExpectedVersion::Any, vec![bad_kind]).await.unwrap_err()),
        "events[0].actor.kind"
    );
    let twice = event("t.A", "", b"");
    let err = log.append(&id, ExpectedVersion::Any, vec![twice.clone(), twice]).await.unwrap_err();
    assert_eq!(field_of(err), "events[1].event_id");

    let mut valid_then_bad = vec![StreamAppend {
        stream_id: stream("conf-bad-ok"),
        expected: ExpectedVersion::Any,
        events: vec![event("t.A", "", b"")],
    }];
    valid_then_bad.push(StreamAppend { stream_id: id.clone(), expected: ExpectedVersion::Any, events: vec![] });
    let err = log.append_batch(valid_then_bad).await.unwrap_err();
    assert_eq!(field_of(err), "appends[1].events");

    assert_eq!(log.head().await.unwrap(), head, "refused input writes nothing");
}

pub async fn batches_have_one_outcome_per_stream(log: &dyn EventLog) {
    let a = stream("conf-batch-a");
    let b = stream("conf-batch-b");
    log.append(&b, ExpectedVersion::NoStream, vec![event("t.A", "", b"")]).await.unwrap();
    let outcomes = log
        .append_batch(vec![
            StreamAppend {
                stream_id: a.clone(),
                expected: ExpectedVersion::NoStream,
                events: vec![event("t.A", "", b"")],
            },
            StreamAppend {
                stream_id: b.clone(),
                expected: ExpectedVersion::NoStream,
                events: vec![event("t.A", "", b"")],
            },
        ])
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].as_ref().unwrap().first_version, Version(0));
    assert_eq!(outcomes[1].as_ref().unwrap_err().actual, Some(Version(0)), "b's conflict is its own");
    let a_slice = log.read_stream(ReadStream::forwards(a, Version(0), 10)).await.unwrap();
    assert_eq!(a_slice.events.len(), 1, "a was written although b conflicted");
}

pub async fn read_all_pages_and_filters(log: &dyn EventLog) {
    let start = log.head().await.unwrap().next_position;
    for i in 0..10u8 {
        let school = if i % 2 == 0 { "elm" } else { "ash" };
        let kind = if i % 3 == 0 { "incidents.ConcernRaised" } else { "ingest.BreachObserved" };
        let id = stream(&format!("conf{}-{i}", if i % 3 == 0 { "case" } else { "breach" }));
        log.append(&id, ExpectedVersion::Any, vec![event(kind, school, &[i])]).await.unwrap();
    }
    let everything = EventFilter::default();
    let page = log.read_all(start, 4, &everything).await.unwrap();
    assert_eq!(page.events.len(), 4);
    assert_eq!(page.next_position, Position(start.0 + 4));
    assert!(!page.end_of_log);
    let rest = log.read_all(page.next_position, 100, &everything).await.unwrap();
    assert_eq!(rest.events.len(), 6);
    assert!(rest.end_of_log);
    let positions: Vec<u64> = page.events.iter().chain(&rest.events).map(|e| e.position).collect();
    assert_eq!(positions, (start.0..start.0 + 10).collect::<Vec<_>>(), "gapless and in order");

    let by_type = EventFilter { event_type_prefixes: vec!["incidents.".into()], ..Default::default() };
    let cases = log.read_all(start, 100, &by_type).await.unwrap();
    assert_eq!(cases.events.len(), 4, "i = 0, 3, 6, 9");
    let by_school_and_category = EventFilter {
        school_ids: vec!["elm".into()],
        stream_categories: vec!["confbreach".into()],
        ..Default::default()
    };
    let elm_breaches = log.read_all(start, 100, &by_school_and_category).await.unwrap();
    let payloads: Vec<u8> = elm_breaches.events.iter().map(|e| e.payload[0]).collect();
    assert_eq!(payloads, vec![2, 4, 8]);
}

pub async fn subscriptions_catch_up_then_go_live(log: &dyn EventLog) {
    let start = log.head().await.unwrap().next_position;
    let id = stream("conf-sub");
    for i in 0..5u8 {
        log.append(&id, ExpectedVersion::Any, vec![event("t.Sub", "", &[i])]).await.unwrap();
    }
    let filter = EventFilter { stream_categories: vec!["conf".into()], ..Default::default() };
    let mut subscription = log.subscribe(start, filter).await.unwrap();
    let mut seen: Vec<u8> = Vec::new();
    let mut caught_up = false;
    let mut appended_live = false;
    while seen.len() < 10 {
        let batch = tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next())
            .await
            .expect("the subscription delivers within 10 s")
            .expect("the subscription does not end")
            .expect("the subscription does not fail");
        seen.extend(batch.events.iter().map(|e| e.payload[0]));
        caught_up |= batch.caught_up;
        if caught_up && !appended_live {
            appended_live = true;
            for i in 5..10u8 {
                log.append(&id, ExpectedVersion::Any, vec![event("t.Sub", "", &[i])]).await.unwrap();
            }
        }
    }
    assert!(caught_up, "the subscription says when it reaches the head");
    assert_eq!(seen, (0..10).collect::<Vec<u8>>(), "no gap and no duplicate across the switch to live");
}
