//! The audit views against a real log.

mod common;

use common::{TestLog, context};
use haven_eventlog_client::ReadStream;
use haven_kernel::{StreamId, Version};
use haven_proto::v1 as pb;
use haven_reporting::{AsOf, Audit, Limits};

const T0: i64 = 1_736_942_400;

fn case_opened(case_id: &str) -> pb::CaseOpened {
    pb::CaseOpened { case_id: case_id.into(), school_id: "school-a".into(), ..Default::default() }
}

#[tokio::test]
async fn history_is_cut_at_the_position_or_time_asked_for() {
    let log = TestLog::open();
    let audit = Audit::new(log.log.clone(), Limits::default());
    let first = log.append("incident-c1", "incidents.CaseOpened", "school-a", "user-dsl", T0, case_opened("c1")).await;
    log.append("incident-c2", "incidents.CaseOpened", "school-a", "user-dsl", T0, case_opened("c2")).await;
    let second = log
        .append(
            "incident-c1",
            "incidents.CaseRiskChanged",
            "school-a",
            "user-dsl",
            T0 + 60,
            pb::CaseRiskChanged::default(),
        )
        .await;
    log.append("incident-c1", "incidents.CaseClosed", "school-a", "user-dsl", T0 + 120, pb::CaseClosed::default())
        .await;
    let stream = StreamId::parse("incident-c1").unwrap();

    let before_second = audit.stream_history(&stream, &AsOf::Position(second), 0, 0, None).await.unwrap();
    assert!(before_second.stream_exists);
    assert_eq!(before_second.events.iter().map(|e| e.position).collect::<Vec<_>>(), vec![first]);
    assert!(before_second.end_of_stream);
    assert_eq!(before_second.as_of_position, second);

    let now = audit.stream_history(&stream, &AsOf::Now, 0, 0, None).await.unwrap();
    assert_eq!(now.events.len(), 3);
    assert_eq!(now.next_version, 3);

    let paged = audit.stream_history(&stream, &AsOf::Now, 1, 1, None).await.unwrap();
    assert_eq!(paged.events.len(), 1);
    assert_eq!(paged.events[0].version, 1);
    assert!(!paged.end_of_stream);
    assert_eq!(paged.next_version, 2);

    let before_anything = audit.stream_history(&stream, &AsOf::Position(first), 0, 0, None).await.unwrap();
    assert!(!before_anything.stream_exists);
    assert!(before_anything.events.is_empty());

    // By time: what the log had recorded before each event's own recorded_at.
    for event in &now.events {
        let at = event.recorded_at.unwrap();
        let expected: Vec<_> = now
            .events
            .iter()
            .filter(|e| (e.recorded_at.unwrap().seconds, e.recorded_at.unwrap().nanos) < (at.seconds, at.nanos))
            .map(|e| e.position)
            .collect();
        let history = audit.stream_history(&stream, &AsOf::Time(at), 0, 0, None).await.unwrap();
        assert_eq!(history.events.iter().map(|e| e.position).collect::<Vec<_>>(), expected);
    }
    let later = prost_types::Timestamp { seconds: now.events[2].recorded_at.unwrap().seconds + 1, nanos: 0 };
    assert_eq!(audit.stream_history(&stream, &AsOf::Time(later), 0, 0, None).await.unwrap().events.len(), 3);
    assert!(audit.stream_history(&stream, &AsOf::Now, 0, 5_000, None).await.is_err(), "limit above the maximum");
}

#[tokio::test]
async fn reading_a_sensitive_history_is_recorded_and_listed_with_other_accesses() {
    let log = TestLog::open();
    let audit = Audit::new(log.log.clone(), Limits::default());
    log.append("incident-c1", "incidents.CaseOpened", "school-a", "user-dsl", T0, case_opened("c1")).await;
    let accessed = pb::CaseAccessed {
        case_id: "c1".into(),
        school_id: "school-a".into(),
        accessed_by_user_id: "user-deputy".into(),
        view: pb::CaseView::Chronology as i32,
        purpose: "triage".into(),
        ..Default::default()
    };
    log.append("access-incident-c1", "incidents.CaseAccessed", "school-a", "user-deputy", T0 + 10, accessed).await;
    let stream = StreamId::parse("incident-c1").unwrap();
    let auditor = context("user-auditor", T0 + 20);
    audit.stream_history(&stream, &AsOf::Now, 0, 0, Some((&auditor, "annual audit"))).await.unwrap();

    let page = audit.record_accesses(&stream, None, None, 0, "").await.unwrap();
    let who: Vec<_> = page.rows.iter().map(|row| (row.principal_id.as_str(), row.event_type.as_str())).collect();
    assert_eq!(who, vec![("user-deputy", "incidents.CaseAccessed"), ("user-auditor", "reporting.StreamHistoryViewed")]);
    assert_eq!(page.rows[0].view, pb::CaseView::Chronology as i32);
    assert_eq!(page.rows[1].purpose, "annual audit");

    let first_only = audit.record_accesses(&stream, None, None, 1, "").await.unwrap();
    assert_eq!(first_only.rows.len(), 1);
    let rest = audit.record_accesses(&stream, None, None, 1, &first_only.next_page_token).await.unwrap();
    assert_eq!(rest.rows[0].principal_id, "user-auditor");
    assert!(rest.next_page_token.is_empty());

    // A non-sensitive stream's history is not recorded.
    log.append(
        "school-school-a",
        "identity.SchoolRegistered",
        "school-a",
        "haven",
        T0,
        pb::SchoolRegistered::default(),
    )
    .await;
    let school = StreamId::parse("school-school-a").unwrap();
    audit.stream_history(&school, &AsOf::Now, 0, 0, Some((&auditor, "check"))).await.unwrap();
    assert!(audit.record_accesses(&school, None, None, 0, "").await.unwrap().rows.is_empty());
}

#[tokio::test]
async fn directory_reads_of_a_subject_are_its_accesses() {
    let log = TestLog::open();
    let audit = Audit::new(log.log.clone(), Limits::default());
    let registered =
        pb::SubjectRegistered { subject_id: "s1".into(), school_id: "school-a".into(), ..Default::default() };
    log.append("subject-s1", "identity.SubjectRegistered", "school-a", "user-admin", T0, registered).await;
    let viewed = |subject: &str, viewer: &str| pb::SubjectRecordViewed {
        subject_id: subject.into(),
        viewer_id: viewer.into(),
        purpose: "welfare check".into(),
    };
    log.append(
        "subjectaccess-school-a",
        "identity.SubjectRecordViewed",
        "school-a",
        "user-dsl",
        T0 + 1,
        viewed("s1", "user-dsl"),
    )
    .await;
    log.append(
        "subjectaccess-school-a",
        "identity.SubjectRecordViewed",
        "school-a",
        "user-x",
        T0 + 2,
        viewed("s2", "user-x"),
    )
    .await;
    log.append(
        "subjectaccess-school-a",
        "identity.SubjectRecordViewed",
        "school-a",
        "user-y",
        T0 + 3,
        viewed("", "user-y"),
    )
    .await;
    let page = audit.record_accesses(&StreamId::parse("subject-s1").unwrap(), None, None, 0, "").await.unwrap();
    let who: Vec<_> = page.rows.iter().map(|row| row.principal_id.as_str()).collect();
    assert_eq!(who, vec!["user-dsl", "user-y"], "its own read and the school listing, not another learner's");
    let since = prost_types::Timestamp { seconds: T0 + 2, nanos: 0 };
    let later =
        audit.record_accesses(&StreamId::parse("subject-s1").unwrap(), Some(&since), None, 0, "").await.unwrap();
    assert_eq!(later.rows.len(), 1);
}

#[tokio::test]
async fn an_actors_actions_are_listed_in_log_order_page_by_page() {
    let log = TestLog::open();
    let audit = Audit::new(log.log.clone(), Limits::default());
    let mut mine = Vec::new();
    for index in 0..7 {
        let principal = if index % 2 == 0 { "user-dsl" } else { "user-other" };
        let position = log
            .append(
                &format!("incident-c{index}"),
                "incidents.CaseOpened",
                "school-a",
                principal,
                T0 + index,
                case_opened("c"),
            )
            .await;
        if principal == "user-dsl" {
            mine.push(position);
        }
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = audit.actor_actions("user-dsl", None, None, 3, &token).await.unwrap();
        assert!(page.rows.len() <= 3);
        seen.extend(page.rows.iter().map(|row| row.position));
        assert!(page.rows.iter().all(|row| row.roles == vec!["dsl".to_owned()]));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, mine);
    assert!(audit.actor_actions("", None, None, 0, "").await.is_err());
    assert!(audit.actor_actions("user-dsl", None, None, 0, "not-a-token").await.is_err());
}

#[tokio::test]
async fn the_whole_chain_verifies_and_ends_in_the_heads_hash() {
    let log = TestLog::open();
    let audit = Audit::new(log.log.clone(), Limits { max_verify_events: 4, ..Limits::default() });
    for index in 0..10 {
        log.append(&format!("incident-c{index}"), "incidents.CaseOpened", "school-a", "user-dsl", T0, case_opened("c"))
            .await;
    }
    let head = log.log.head().await.unwrap();
    // Four at a time, carrying on from where each call stopped.
    let mut from = 0;
    let mut last = None;
    while from < head.next_position.0 {
        let report = audit.verify_chain(from, 0, None, None).await.unwrap();
        assert!(report.ok(), "{report:?}");
        assert!(report.events_checked <= 4);
        from = report.next_position;
        last = Some(report.last_hash);
    }
    assert_eq!(last, Some(head.head_hash));

    let whole = Audit::new(log.log.clone(), Limits::default());
    let auditor = context("user-auditor", T0);
    let report = whole.verify_chain(0, 10, Some(head.head_hash), Some(&auditor)).await.unwrap();
    assert!(report.ok());
    assert_eq!(report.events_checked, 10);
    let wrong = whole.verify_chain(0, 10, Some([7; 32]), None).await.unwrap();
    assert!(!wrong.ok() && wrong.expected_hash_mismatch);
    assert!(whole.verify_chain(0, 99, None, None).await.is_err(), "beyond the head");

    // The verification itself is on the record.
    let recorded = log
        .log
        .read_stream(ReadStream::forwards(StreamId::parse("audit-chain").unwrap(), Version(0), 10))
        .await
        .unwrap();
    assert_eq!(recorded.events.len(), 1);
    assert_eq!(recorded.events[0].event_type, "reporting.ChainVerified");
}

/// The value of `"key":` in one JSON line written by the pack (numbers, booleans, strings).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {line}")) + key.len() + 3;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        &quoted[..quoted.find('"').unwrap()]
    } else {
        &rest[..rest.find([',', '}']).unwrap()]
    }
}

#[tokio::test]
async fn an_audit_pack_holds_the_period_the_chain_and_the_accesses_and_is_recorded() {
    use haven_eventlog_client::chain::{GENESIS_HASH, chain_hash, envelope_hash};
    use prost::Message;

    let log = TestLog::open();
    let audit = Audit::new(log.log.clone(), Limits::default());
    log.append("incident-c1", "incidents.CaseOpened", "school-a", "user-dsl", T0, case_opened("c1")).await;
    log.append("incident-c2", "incidents.CaseOpened", "school-a", "user-dsl", T0, case_opened("c2")).await;
    let stream = StreamId::parse("incident-c1").unwrap();
    let viewer = context("user-auditor", T0);
    audit.stream_history(&stream, &AsOf::Now, 0, 0, Some((&viewer, "annual audit"))).await.unwrap();
    let head = log.log.head().await.unwrap().next_position.0;
    assert_eq!(head, 3, "two cases and the recorded read");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let at = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
    let exporter = context("user-auditor", now);
    let pack = audit.audit_pack(&at(now - 3_600), &at(now + 3_600), &exporter).await.unwrap();
    assert_eq!((pack.from_position, pack.to_position, pack.events, pack.accesses), (0, 3, 3, 1));
    assert!(pack.chain_ok);
    let lines: Vec<&str> = pack.body.lines().collect();
    assert_eq!(lines.len(), 1 + 1 + 3 + 1 + 1, "header, chain, events, access, seal");
    assert_eq!(field(lines[0], "record"), "pack");
    assert_eq!(field(lines[0], "generated_by"), "user-auditor");
    assert_eq!((field(lines[1], "record"), field(lines[1], "ok")), ("chain", "true"));
    assert_eq!(field(lines[1], "events_checked"), "3");
    assert_eq!(field(lines[5], "record"), "access");
    assert_eq!(field(lines[5], "principal_id"), "user-auditor");
    assert_eq!(field(lines[5], "purpose"), "annual audit");

    // Each event carries its stored envelope: the links recompute offline from the file alone.
    let mut previous = GENESIS_HASH;
    for line in &lines[2..5] {
        assert_eq!(field(line, "record"), "event");
        let envelope = pb::EventEnvelope::decode(hex::decode(field(line, "envelope")).unwrap().as_slice()).unwrap();
        assert!(envelope.hash.is_empty());
        previous = envelope_hash(&previous, &envelope);
        assert_eq!(hex::encode(previous), field(line, "hash"));
    }
    // The seal chains every line before it.
    let seal = lines[..6].iter().fold(GENESIS_HASH, |hash, line| chain_hash(&hash, line.as_bytes()));
    assert_eq!(seal, pack.seal);
    assert_eq!(field(lines[6], "hash"), hex::encode(seal));

    // The export is on record with its seal; a period that ends before it starts is refused
    // by name and records nothing.
    let recorded = |log: std::sync::Arc<dyn haven_eventlog_client::EventLog>| async move {
        let stream = StreamId::parse("audit-pack").unwrap();
        log.read_stream(ReadStream::forwards(stream, Version(0), 10)).await.unwrap().events
    };
    let exports = recorded(log.log.clone()).await;
    assert_eq!(exports.len(), 1);
    let export = pb::AuditPackExported::decode(exports[0].payload.as_slice()).unwrap();
    assert_eq!(export.pack_hash, seal.to_vec());
    assert_eq!((export.events, export.to_position, export.chain_ok), (3, 3, true));
    assert_eq!(export.exported_by_principal_id, "user-auditor");
    let refused = audit.audit_pack(&at(now), &at(now - 60), &exporter).await.unwrap_err();
    assert!(refused.to_string().starts_with("invalid to:"), "{refused}");
    assert_eq!(recorded(log.log.clone()).await.len(), 1);

    // A later pack covers the first export as an access too.
    // (A new context: each one is one recorded event, with its own id.)
    let later = audit.audit_pack(&at(now - 3_600), &at(now + 3_600), &context("user-auditor", now)).await.unwrap();
    assert_eq!((later.events, later.accesses), (4, 2));
}
