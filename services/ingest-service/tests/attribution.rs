//! Attribution end to end (ADR 0025): learners registered in identity with their network logins
//! (a roster import), a school system recording its leases over gRPC, lines submitted over gRPC,
//! and the breaches and alerts read back from the real log; incidents opens a concern naming
//! the learner; a restarted ingest rebuilds the lease map from the log.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{bearer, now, serve};
use haven_authz::Role;
use haven_identity::domain::{SchoolCommand, SchoolPhase};
use haven_ingest_service::demo;
use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use prost::Message;
use tonic::Code;

fn context() -> haven_identity::CommandContext {
    haven_identity::CommandContext {
        actor: pb::Actor { principal_id: "user-admin".into(), kind: 1, roles: vec!["trust_admin".into()] },
        occurred_at: prost_types::Timestamp { seconds: now(), nanos: 0 },
        event_ids: haven_identity::EventIds::Fresh,
    }
}

/// Registers an invented school and imports `csv` as its roster; the subject ids in row order.
async fn school_with_roster(identity: &haven_identity::IdentityApp, school: &str, csv: &str) -> Vec<String> {
    let school_id = SchoolId::parse(school).unwrap();
    let command = SchoolCommand::Register {
        school_id: school_id.clone(),
        trust_id: "trust".into(),
        name: format!("{school} (invented)"),
        phase: SchoolPhase::Primary,
        pupil_count: 200,
    };
    identity.register_school(&context(), command).await.unwrap();
    let report = identity.import_roster(&context(), &school_id, csv).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report.imported.into_iter().map(|(subject, _)| subject.subject_id).collect()
}

fn lease(ip: &str, holder: (&str, &str), from: i64, until: i64) -> pb::DeviceLease {
    let (network_login, subject_id) = holder;
    pb::DeviceLease {
        ip: ip.into(),
        network_login: network_login.into(),
        subject_id: subject_id.into(),
        from: Some(prost_types::Timestamp { seconds: from, nanos: 0 }),
        until: Some(prost_types::Timestamp { seconds: until, nanos: 0 }),
        ..Default::default()
    }
}

fn leases(school: &str, leases: Vec<pb::DeviceLease>) -> pb::RecordDeviceLeasesRequest {
    pb::RecordDeviceLeasesRequest { school_id: school.into(), leases }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaches_resolve_by_login_then_lease_and_a_vulnerable_learner_raises_the_alert() {
    let mut served = serve().await;
    let oak = school_with_roster(
        &served.identity,
        "oak",
        "name,year_group,flags,network_login\nAda Invented,7,send,AInvented\nBen Madeup,8,eal,bmadeup;bmadeup@oak.example\n",
    )
    .await;
    let elm =
        school_with_roster(&served.identity, "elm", "name,year_group,flags,network_login\nCal Sample,5,,cwright\n")
            .await;
    let (ada, ben, cal) = (oak[0].clone(), oak[1].clone(), elm[0].clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while served.pipeline.attribution().school_of(&cal).is_none() {
        assert!(tokio::time::Instant::now() < deadline, "ingest never followed the subjects");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The school system reports that device 5's address is Ben's for the next hour.
    let system = served.system_token("oak");
    let t = now();
    let ben_lease = lease(&demo::device_ip(20, 5), ("", &ben), t - 60, t + 3600);
    let recorded =
        served.client.record_device_leases(bearer(&system, leases("oak", vec![ben_lease.clone()]))).await.unwrap();
    assert_eq!(recorded.get_ref().recorded, 1);
    let head = served.events().await.len();

    // Refused, and nothing written: a person without the role, another school, bad leases.
    let dsl = served.user_token("oak-dsl", Role::Dsl, "oak");
    let refusals = [
        (bearer(&dsl, leases("oak", vec![ben_lease.clone()])), Code::PermissionDenied, ""),
        (bearer(&system, leases("elm", vec![ben_lease.clone()])), Code::PermissionDenied, ""),
        (
            bearer(&system, leases("oak", vec![lease("10.0.0.300", ("jsmith", ""), t, t + 60)])),
            Code::InvalidArgument,
            "leases[0].ip",
        ),
        (
            bearer(&system, leases("oak", vec![lease("10.0.0.3", ("jsmith", ""), t, t - 60)])),
            Code::InvalidArgument,
            "leases[0].until",
        ),
        (
            bearer(&system, leases("oak", vec![ben_lease.clone(), lease("10.0.0.3", ("", &cal), t, t + 60)])),
            Code::InvalidArgument,
            "leases[1].subject_id",
        ),
        (bearer(&system, leases("oak", vec![])), Code::InvalidArgument, "leases"),
    ];
    for (request, code, field) in refusals {
        let error = served.client.record_device_leases(request).await.unwrap_err();
        assert_eq!(error.code(), code, "{error:?}");
        assert!(error.message().contains(field), "{error:?}");
    }
    let technical = served.user_token("oak-tech", Role::TechnicalStaff, "oak");
    let again = served.client.record_device_leases(bearer(&technical, leases("oak", vec![ben_lease]))).await.unwrap();
    assert_eq!(again.get_ref().position, 0, "the same batch again is recognised, not written twice");
    assert_eq!(served.events().await.len(), head, "no refusal or resend wrote anything");

    let at = jiff::Timestamp::now();
    let lines = [
        // Ada (SEND) by her login, in another case: a first gambling attempt alerts at once.
        demo::fortigate_user_line(at, 20, 3, ("Gambling", "lucky-spins.example"), 1, "AINVENTED"),
        // Nobody signed in on Ben's leased address: the lease says who.
        demo::fortigate_line(at, 20, 5, "Drug Abuse", "party-pills.example", 2),
        // Elm's learner's login on an Oak line: never Cal; no lease either.
        demo::fortigate_user_line(at, 20, 9, ("Self-harm", "dark-thoughts.example"), 3, "cwright"),
        // Ben by his other login, on his leased address (the login wins either way).
        demo::fortigate_user_line(at, 20, 5, ("Extremist Groups", "radical-voice.example"), 4, "BMadeup@OAK.example"),
    ];
    let message = pb::SubmitBreachesRequest {
        school_id: "oak".into(),
        source_id: "fortigate-1".into(),
        source_format: pb::SourceFormat::Fortigate as i32,
        lines: lines.iter().map(|line| pb::RawLine { line: line.clone().into_bytes(), ..Default::default() }).collect(),
    };
    let response = served.submit(&system, vec![message]).await.unwrap();
    assert_eq!((response.breaches_observed, response.alerts_raised), (4, 3));

    let events = served.events().await;
    let breaches: Vec<pb::BreachObserved> = events
        .iter()
        .filter(|e| e.event_type == "ingest.BreachObserved")
        .map(|e| pb::BreachObserved::decode(e.payload.as_slice()).unwrap())
        .collect();
    let who = |host: &str| {
        let breach = breaches.iter().find(|b| b.url_host == host).unwrap();
        (breach.subject_id.clone(), pb::Attribution::try_from(breach.attribution).unwrap())
    };
    assert_eq!(who("lucky-spins.example"), (ada.clone(), pb::Attribution::NetworkLogin));
    assert_eq!(who("party-pills.example"), (ben.clone(), pb::Attribution::AddressLease));
    assert_eq!(who("dark-thoughts.example"), (String::new(), pb::Attribution::Unresolved));
    assert_eq!(who("radical-voice.example"), (ben.clone(), pb::Attribution::NetworkLogin));
    for event in &events {
        let text = String::from_utf8_lossy(&event.payload).to_lowercase();
        if event.event_type.starts_with("ingest.") {
            assert!(!text.contains("invented") && !text.contains("cwright"), "{} names a login", event.event_type);
        }
    }

    let alerts: Vec<pb::SafeguardingAlertRaised> = events
        .iter()
        .filter(|e| e.event_type == "ingest.SafeguardingAlertRaised")
        .map(|e| pb::SafeguardingAlertRaised::decode(e.payload.as_slice()).unwrap())
        .collect();
    let alert = |host: &str| alerts.iter().find(|a| a.url_host == host).unwrap().clone();
    let gambling = alert("lucky-spins.example");
    assert_eq!(
        (gambling.subject_id.as_str(), gambling.severity, gambling.vulnerable_learner),
        (ada.as_str(), pb::AlertSeverity::Medium as i32, true)
    );
    assert_eq!(gambling.triggers, vec![pb::AlertTrigger::VulnerableLearner as i32]);
    assert!(
        alerts.iter().all(|a| a.url_host != "party-pills.example"),
        "Ben's flag (EAL) is not a raise: recorded only"
    );
    let self_harm = alert("dark-thoughts.example");
    assert_eq!((self_harm.subject_id.as_str(), self_harm.severity), ("", pb::AlertSeverity::Critical as i32));
    assert_eq!(alert("radical-voice.example").severity, pb::AlertSeverity::High as i32, "Ben: no flag, no raise");

    // Incidents opens a concern about the learner the alert names.
    let incidents = haven_incidents::IncidentsApp::new(Arc::new(served.log.clone()), Default::default());
    let dsl_context = haven_incidents::CommandContext::user(
        haven_authz::UserId::parse("oak-dsl").unwrap(),
        vec!["dsl".into()],
        haven_incidents::domain::UnixTime(now()),
        haven_incidents::EventIds::Fresh,
    );
    let alert_id = haven_incidents::domain::AlertId::parse(&gambling.alert_id).unwrap();
    let concern = incidents.concern_from_alert(&dsl_context, &alert_id, "filter alert").await.unwrap();
    assert!(concern.is_some(), "an alert naming a learner opens a concern");
    let no_one = haven_incidents::domain::AlertId::parse(&self_harm.alert_id).unwrap();
    assert_eq!(incidents.concern_from_alert(&dsl_context, &no_one, "filter alert").await.unwrap(), None);

    // A restarted ingest rebuilds the lease map (and the logins) from the log alone.
    let (restarted, shutdown, _dir) = served.restart().await;
    let ip = demo::device_ip(20, 5).parse().ok();
    let resolved = restarted.pipeline.attribution().resolve("oak", None, None, ip, at).unwrap();
    assert_eq!((resolved.subject_id, resolved.basis), (ben, pb::Attribution::AddressLease));
    assert_eq!(
        restarted.pipeline.attribution().resolve("oak", Some("ainvented"), None, None, at).unwrap().subject_id,
        ada
    );
    shutdown.trigger();
    served.shutdown.trigger();
    served.log.close().await;
}
