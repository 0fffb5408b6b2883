//! `haven.v1.Ingest` as a school system's collector sees it: the real service inside the
//! authorisation layer on a loopback port, a real log, real tokens from identity's key ring.

mod common;

use common::serve;
use haven_authz::Role;
use haven_ingest_service::demo;
use haven_proto::v1 as pb;
use tonic::Code;

fn message(school: &str, source: &str, lines: &[(&str, u64)]) -> pb::SubmitBreachesRequest {
    pb::SubmitBreachesRequest {
        school_id: school.into(),
        source_id: source.into(),
        source_format: pb::SourceFormat::Fortigate as i32,
        lines: lines
            .iter()
            .map(|(line, sequence)| pb::RawLine {
                line: line.as_bytes().to_vec(),
                received_at: None,
                sequence: *sequence,
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_school_system_submits_for_its_own_school_only_and_resends_are_dropped() {
    let mut served = serve().await;
    let at = jiff::Timestamp::now();
    let self_harm = demo::fortigate_line(at, 20, 3, "Self-harm", "dark-thoughts.example", 1);
    let games = demo::fortigate_line(at, 20, 4, "Games", "arcade.example", 2);
    let oak = served.system_token("oak");

    let first = message("oak", "fortigate-1", &[(&self_harm, 1), (&games, 2), ("not a filter line", 3)]);
    let response = served.submit(&oak, vec![first.clone()]).await.unwrap();
    assert_eq!(response.lines_received, 3);
    assert_eq!(response.breaches_observed, 2);
    assert_eq!(response.alerts_raised, 1);
    assert_eq!(response.acknowledged_sequence, 3);
    assert_eq!(response.quarantined.iter().map(|q| q.count).sum::<u64>(), 1);
    let written = served.events().await.len();
    assert_eq!(written, 5, "the AUP, two breaches, the self-harm alert and the refusal's count");
    let alert = served.events().await.into_iter().find(|e| e.event_type == "ingest.SafeguardingAlertRaised").unwrap();
    assert_eq!(alert.actor.unwrap().principal_id, "system-oak-collector", "the collector is the actor");

    // The collector reconnects and resends from before its acknowledgement: nothing new.
    let again = served.submit(&oak, vec![first]).await.unwrap();
    assert_eq!((again.duplicates_dropped, again.breaches_observed), (3, 0));
    assert_eq!(served.events().await.len(), written);

    // Another school's lines, a person's token, and bad input: refused, nothing written.
    let error = served.submit(&oak, vec![message("elm", "fortigate-1", &[(&games, 9)])]).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
    let dsl = served.user_token("oak-dsl", Role::Dsl, "oak");
    let error = served.submit(&dsl, vec![message("oak", "fortigate-1", &[(&games, 9)])]).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
    let error = served.submit(&oak, vec![message("oak", "Bad Source", &[(&games, 9)])]).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("source_id"), "{error:?}");
    let error = served.submit(&oak, vec![message("oak", "fortigate-1", &[])]).await.unwrap_err();
    assert!(error.message().contains("lines"), "{error:?}");
    let mut smoothwall = message("oak", "fortigate-1", &[(&games, 9)]);
    smoothwall.source_format = pb::SourceFormat::Smoothwall as i32;
    let error = served.submit(&oak, vec![smoothwall]).await.unwrap_err();
    assert!(error.message().contains("source_format"), "{error:?}");
    let error = served.submit("not-a-token", vec![message("oak", "fortigate-1", &[(&games, 9)])]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    assert_eq!(served.events().await.len(), written, "no refusal wrote anything");
    served.shutdown.trigger();
    served.log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn technical_staff_check_an_export_without_writing_anything() {
    let mut served = serve().await;
    let tech = served.user_token("oak-tech", Role::TechnicalStaff, "oak");
    let line = demo::fortigate_line(jiff::Timestamp::now(), 20, 4, "Gambling", "lucky-spins.example", 2);
    let mut request = tonic::Request::new(pb::ParseLinesRequest {
        school_id: "oak".into(),
        source_format: pb::SourceFormat::Unspecified as i32,
        source_timezone: "Europe/London".into(),
        lines: vec![line.into_bytes(), b"garbage".to_vec()],
    });
    request.metadata_mut().insert("authorization", format!("Bearer {tech}").parse().unwrap());
    let parsed = served.client.parse_lines(request).await.unwrap().into_inner();
    assert_eq!(parsed.lines.len(), 2);
    let Some(pb::parsed_line::Result::Breach(breach)) = &parsed.lines[0].result else { panic!("{parsed:?}") };
    assert_eq!(breach.category, pb::BreachCategory::Gambling as i32);
    assert_eq!(parsed.lines[0].source_format, pb::SourceFormat::Fortigate as i32, "detected");
    assert!(matches!(parsed.lines[1].result, Some(pb::parsed_line::Result::Error(_))));
    assert_eq!(served.events().await.len(), 1, "a check writes nothing (the log holds the AUP only)");
    served.shutdown.trigger();
    served.log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarantine_shows_where_and_why_lines_were_refused_never_what_they_said() {
    let mut served = serve().await;
    let oak = served.system_token("oak");
    let games = demo::fortigate_line(jiff::Timestamp::now(), 20, 4, "Games", "arcade.example", 2);
    let secret = "date=2026-12-07 user=pupil.name srcip=10.1.2.3 url=https://example.org/?q=private";
    let lines = [(games.as_str(), 1), (secret, 2), ("not a filter line", 3)];
    served.submit(&oak, vec![message("oak", "fortigate-1", &lines)]).await.unwrap();

    let list = |token: &str, school: &str| {
        let mut client = served.client.clone();
        let request =
            common::bearer(token, pb::ListQuarantineRequest { school_id: school.into(), ..Default::default() });
        async move { client.list_quarantine(request).await }
    };
    let tech = served.user_token("oak-tech", Role::TechnicalStaff, "oak");
    let listed = list(&tech, "oak").await.unwrap().into_inner();
    assert_eq!(listed.recent.len(), 2, "{listed:?}");
    assert_eq!(listed.recent[0].line_number, 3, "newest first");
    assert_eq!(listed.recent[1].line_number, 2);
    assert!(listed.recent.iter().all(|r| r.source_id == "fortigate-1" && r.reason != 0 && !r.message.is_empty()));
    assert_eq!(listed.totals.iter().map(|t| t.count).sum::<u64>(), 2);
    assert_eq!(listed.counts.iter().map(|c| c.count).sum::<u64>(), 2);
    let shown = format!("{listed:?}");
    assert!(!shown.contains("pupil") && !shown.contains("private") && !shown.contains("10.1.2.3"), "{shown}");
    let coordinator = served.user_token("oak-osc", Role::OnlineSafetyCoordinator, "oak");
    assert_eq!(list(&coordinator, "oak").await.unwrap().into_inner().recent.len(), 2);
    // Another school's quarantine is its own; a teacher and another school's staff see none.
    let elm_tech = served.user_token("elm-tech", Role::TechnicalStaff, "elm");
    assert!(list(&elm_tech, "elm").await.unwrap().into_inner().recent.is_empty());
    assert_eq!(list(&elm_tech, "oak").await.unwrap_err().code(), Code::PermissionDenied);
    let teacher = served.user_token("oak-teacher", Role::Staff, "oak");
    assert_eq!(list(&teacher, "oak").await.unwrap_err().code(), Code::PermissionDenied);
    served.shutdown.trigger();
    served.log.close().await;
}
