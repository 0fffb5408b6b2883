//! Incidents over gRPC as its users meet it: identity's demo trust on a real log, real tokens
//! from signing in (AUP accepted), the incidents service inside the same authorisation layer
//! on a loopback port, and the escalation timer driven with explicit times.

use std::sync::Arc;
use std::time::Duration;

use haven_authz::{AccessState, AuthLayer, Authenticator, TokenVerifier};
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::EventLog;
use haven_identity::IdentityConfig;
use haven_identity::password::{PasswordCost, PasswordHasher};
use haven_incidents::domain::{EscalationPolicy, UnixTime};
use haven_incidents::{IncidentsApp, IncidentsIndex, IncidentsService, escalation};
use haven_proto::v1 as pb;
use haven_proto::v1::incidents_client::IncidentsClient;
use haven_runtime::{Readiness, Shutdown};
use tonic::Code;
use tonic::transport::Channel;

struct Served {
    _dir: tempfile::TempDir,
    shutdown: Shutdown,
    log: Arc<dyn EventLog>,
    app: IncidentsApp,
    index: IncidentsIndex,
    accounts: haven_identity::Accounts,
    authenticator: Authenticator,
    client: IncidentsClient<Channel>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

fn now() -> UnixTime {
    UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64)
}

fn identity_now() -> haven_identity::domain::UnixTime {
    haven_identity::domain::UnixTime(now().0)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(LocalEventLog::open(&dir.path().join("log"), EventLogConfig::default()).unwrap());
    let shutdown = Shutdown::default();
    let readiness = Readiness::default();
    let identity = haven_identity::IdentityApp::new(Arc::clone(&log));
    haven_identity::demo::seed(&identity, &PasswordHasher::new(PasswordCost::for_tests()).unwrap()).await.unwrap();
    let authenticator = Authenticator::new(TokenVerifier::default(), AccessState::default());
    let config = IdentityConfig { password_memory_kib: 8, password_iterations: 1, ..IdentityConfig::default() };
    let running = haven_identity::start::start(
        Arc::clone(&log),
        &config,
        &dir.path().join("keys"),
        &authenticator,
        &readiness,
        &shutdown,
    )
    .await
    .unwrap();
    tokio::spawn(authenticator.access().clone().follow(
        Arc::clone(&log),
        authenticator.verifier().clone(),
        readiness.register("access", "catching up"),
        shutdown.clone(),
    ));
    let app = IncidentsApp::new(Arc::clone(&log), EscalationPolicy::default());
    let index = IncidentsIndex::default();
    tokio::spawn(index.clone().follow(
        Arc::clone(&log),
        readiness.register("incidents", "catching up"),
        shutdown.clone(),
    ));
    let server = tower_layer::Layer::layer(
        &AuthLayer::new(authenticator.clone()),
        IncidentsService::new(app.clone(), index.clone()).into_server(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), stop.triggered())
            .await
            .unwrap();
    });
    let users = running.accounts.users().clone();
    wait_until("the demo people reach the directory", || users.by_login("kestrel-dsl@brightwater.example").is_some())
        .await;
    wait_until("everything catches up", || readiness.is_ready()).await;
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    Served {
        _dir: dir,
        shutdown,
        log,
        app,
        index,
        accounts: running.accounts,
        authenticator,
        client: IncidentsClient::new(channel),
    }
}

impl Served {
    /// A demo person's access token, signed in and with the AUP accepted: a real token.
    async fn token(&self, who: &str) -> String {
        let pair = self
            .accounts
            .sign_in(&format!("{who}@brightwater.example"), haven_identity::demo::DEMO_PASSWORD, identity_now())
            .await
            .unwrap();
        let claims = self.authenticator.verifier().verify(&pair.access_token, now().0).unwrap();
        let principal = claims.principal().unwrap();
        let accepted = self.accounts.accept_aup(&principal, 1, identity_now()).await.unwrap();
        accepted.access_token
    }
}

fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn learner(key: &str) -> String {
    haven_identity::demo::learner_subject_id(key)
}

fn concern(about: pb::ConcernAbout, subjects: &[String], staff: &[&str]) -> pb::RaiseConcernRequest {
    pb::RaiseConcernRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        school_id: "kestrel-primary".into(),
        about: about as i32,
        subject_ids: subjects.to_vec(),
        staff_user_ids: staff.iter().map(|s| (*s).to_owned()).collect(),
        what_happened: "Invented: what the teacher saw.".into(),
        suspected_case_type: pb::CaseType::Cyberbullying as i32,
        ..Default::default()
    }
}

fn done(case_id: &str, key: &str) -> pb::RecordActionRequest {
    pb::RecordActionRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.into(),
        action_key: key.into(),
        status: pb::ActionStatus::Done as i32,
        note: "done".into(),
        ..Default::default()
    }
}

fn close(case_id: &str, expected_version: u64) -> pb::CloseCaseRequest {
    pb::CloseCaseRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.into(),
        outcome_summary: "resolved".into(),
        debrief: "debriefed with the pastoral team".into(),
        lessons_learned: "report group-chat problems sooner".into(),
        expected_version,
        ..Default::default()
    }
}

async fn get_case(served: &Served, token: &str, case_id: &str) -> Result<pb::GetCaseResponse, tonic::Status> {
    let request = pb::GetCaseRequest { case_id: case_id.into(), purpose: "test".into(), include_chronology: true };
    served.client.clone().get_case(bearer(token, request)).await.map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsl_runs_a_concern_through_a_case_to_close() {
    let served = serve().await;
    let mut client = served.client.clone();
    let teacher = served.token("kestrel-teacher").await;
    let dsl = served.token("kestrel-dsl").await;

    let raised = client
        .raise_concern(bearer(&teacher, concern(pb::ConcernAbout::Learner, &[learner("k1")], &[])))
        .await
        .unwrap()
        .into_inner();
    assert!(raised.position > 0, "the concern is in the log after the demo trust");
    // The teacher sees their own concern; the DSL sees it untriaged.
    let listed = |token: &str| {
        let mut client = client.clone();
        let request = bearer(token, pb::ListConcernsRequest { untriaged_only: true, ..Default::default() });
        async move { client.list_concerns(request).await.unwrap().into_inner().concerns }
    };
    let concern_id = raised.concern_id.clone();
    wait_until("the index has the concern", || {
        served.index.concerns().iter().any(|(c, _)| c.details.concern_id.as_str() == concern_id)
    })
    .await;
    assert!(listed(&teacher).await.iter().any(|c| c.concern_id == raised.concern_id));
    assert!(listed(&dsl).await.iter().any(|c| c.concern_id == raised.concern_id));
    // Staff do not triage.
    let triage = pb::TriageConcernRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        concern_id: raised.concern_id.clone(),
        outcome: pb::TriageOutcome::CaseOpened as i32,
        case_type: pb::CaseType::Cyberbullying as i32,
        four_cs: vec![pb::FourCs::Conduct as i32],
        risk_level: pb::RiskLevel::Medium as i32,
        summary: "Invented: unkind messages.".into(),
        ..Default::default()
    };
    let refused = client.triage_concern(bearer(&teacher, triage.clone())).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let triaged = client.triage_concern(bearer(&dsl, triage)).await.unwrap().into_inner();
    let case_id = triaged.case_id;
    assert!(!case_id.is_empty());

    // Closing with the checklist outstanding is refused and names the actions.
    let case = get_case(&served, &dsl, &case_id).await.unwrap().case.unwrap();
    let refused = client.close_case(bearer(&dsl, close(&case_id, 0))).await.unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert!(refused.message().contains("outstanding") && refused.message().contains("inform-parents"), "{refused:?}");

    // Work the checklist: parents informed settles `inform-parents`; the rest are done.
    let parents = pb::RecordParentsInformedRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.clone(),
        subject_ids: vec![learner("k1")],
        method: pb::ContactMethod::Phone as i32,
        summary: "Invented: told and offered support.".into(),
        not_informed: false,
    };
    client.record_parents_informed(bearer(&dsl, parents)).await.unwrap();
    let referral = pb::MakeReferralRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.clone(),
        agency: pb::ReferralAgency::EducationSafeguardingService as i32,
        summary: "Invented: advice on sanctions.".into(),
        ..Default::default()
    };
    let referral = client.make_referral(bearer(&dsl, referral)).await.unwrap().into_inner();
    for item in case.checklist.iter().filter(|item| item.action_key != "inform-parents") {
        client.record_action(bearer(&dsl, done(&case_id, &item.action_key))).await.unwrap();
    }
    // A referral still awaiting its outcome holds the closing too.
    let refused = client.close_case(bearer(&dsl, close(&case_id, 0))).await.unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert!(refused.message().contains("await their outcome"), "{refused:?}");
    let outcome = pb::RecordReferralOutcomeRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.clone(),
        referral_id: referral.referral_id,
        outcome: pb::ReferralOutcome::AdviceGiven as i32,
        detail: "manage in school".into(),
        ..Default::default()
    };
    let version = client.record_referral_outcome(bearer(&dsl, outcome)).await.unwrap().into_inner().version;
    let closed = client.close_case(bearer(&dsl, close(&case_id, version))).await.unwrap().into_inner();
    assert_eq!(closed.version, version + 1);

    let got = get_case(&served, &dsl, &case_id).await.unwrap();
    let case = got.case.unwrap();
    assert_eq!(case.status, pb::CaseStatus::Closed as i32);
    assert!(case.checklist.iter().all(|item| item.status != pb::ActionStatus::Outstanding as i32));
    let types: Vec<&str> = got.chronology.iter().map(|entry| entry.event_type.as_str()).collect();
    assert_eq!(types.first(), Some(&"incidents.CaseOpened"));
    assert_eq!(types.last(), Some(&"incidents.CaseClosed"));
    assert!(got.chronology.iter().all(|entry| entry.actor_principal_id == "user-kestrel-dsl"));

    // Reopening keeps the history, closing included.
    let reopen = pb::ReopenCaseRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.clone(),
        reason: "Invented: it started again.".into(),
    };
    client.reopen_case(bearer(&dsl, reopen)).await.unwrap();
    let got = get_case(&served, &dsl, &case_id).await.unwrap();
    let types: Vec<&str> = got.chronology.iter().map(|entry| entry.event_type.as_str()).collect();
    assert_eq!(&types[types.len() - 2..], &["incidents.CaseClosed", "incidents.CaseReopened"]);
    assert_eq!(got.case.unwrap().status, pb::CaseStatus::Open as i32);

    // Every read was recorded.
    let accesses = served
        .log
        .read_stream(haven_eventlog_client::ReadStream::forwards(
            haven_kernel::StreamId::new("access", &format!("incident-{case_id}")).unwrap(),
            haven_kernel::Version(0),
            100,
        ))
        .await
        .unwrap();
    assert!(accesses.events.len() >= 6, "a FULL and a CHRONOLOGY access per read");
}

async fn open_case(served: &Served, token: &str, request: pb::OpenCaseRequest) -> Result<String, tonic::Status> {
    served.client.clone().open_case(bearer(token, request)).await.map(|r| r.into_inner().case_id)
}

fn cyberbullying(subject: &str) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        school_id: "kestrel-primary".into(),
        case_type: pb::CaseType::Cyberbullying as i32,
        four_cs: vec![pb::FourCs::Conduct as i32],
        risk_level: pb::RiskLevel::Low as i32,
        subject_ids: vec![subject.to_owned()],
        summary: "Invented.".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn need_to_know_keeps_cases_from_those_without_it() {
    let served = serve().await;
    let mut client = served.client.clone();
    let head = served.token("kestrel-head").await;
    let dsl = served.token("kestrel-dsl").await;
    let teacher = served.token("kestrel-teacher").await;
    let other_dsl = served.token("heronsgate-dsl").await;
    let tech = served.token("kestrel-tech").await;
    let governor = served.token("kestrel-governor").await;
    let lead = served.token("demo-lead").await;

    // An allegation against the DSL: only the principal sees it; never the DSL themselves.
    let allegation = pb::OpenCaseRequest {
        case_type: pb::CaseType::AllegationAgainstStaff as i32,
        staff_user_ids: vec!["kestrel-dsl".into()],
        subject_ids: vec![],
        risk_level: pb::RiskLevel::High as i32,
        ..cyberbullying("x")
    };
    let refused = open_case(&served, &dsl, allegation.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "nobody opens a case about themselves: {refused:?}");
    let refused = open_case(&served, &served.token("kestrel-deputy").await, allegation.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "allegations are the principal's: {refused:?}");
    let allegation_id = open_case(&served, &head, allegation).await.unwrap();
    let case = get_case(&served, &head, &allegation_id).await.unwrap().case.unwrap();
    let lado = case.checklist.iter().find(|item| item.action_key == "discuss-with-lado").expect("the LADO action");
    let due = lado.due_at.unwrap().seconds;
    let opened = case.opened_at.unwrap().seconds;
    assert!(due > opened && due <= opened + 3 * 86_400, "due within one working day (over a weekend at most)");
    let refused = get_case(&served, &dsl, &allegation_id).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "the DSL cannot read the allegation about themselves: {refused:?}");
    let act = done(&allegation_id, "inform-principal");
    let refused = client.record_action(bearer(&dsl, act)).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "nor act on it: {refused:?}");
    wait_until("the index has the allegation", || {
        served.index.cases().iter().any(|(case, _)| case.case_id().as_str() == allegation_id)
    })
    .await;
    let listed = client.list_cases(bearer(&dsl, pb::ListCasesRequest::default())).await.unwrap().into_inner().cases;
    assert!(listed.iter().all(|summary| summary.case_id != allegation_id), "nor see it listed");
    let grant = pb::GrantCaseAccessRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: allegation_id.clone(),
        user_id: "kestrel-dsl".into(),
        reason: "Invented.".into(),
    };
    let refused = client.grant_case_access(bearer(&head, grant)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "never granted to the person it is about: {refused:?}");

    // A learner's case: the DSL works it; another school's DSL, technical staff, governors and
    // staff are denied; the trust's safeguarding lead sees it.
    let case_id = open_case(&served, &dsl, cyberbullying(&learner("k2"))).await.unwrap();
    assert!(get_case(&served, &dsl, &case_id).await.is_ok());
    assert!(get_case(&served, &lead, &case_id).await.is_ok());
    for (who, token) in [("heronsgate-dsl", &other_dsl), ("kestrel-tech", &tech), ("kestrel-governor", &governor)] {
        let refused = get_case(&served, token, &case_id).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{who}: {refused:?}");
    }
    for (who, token) in [("kestrel-tech", &tech), ("kestrel-governor", &governor), ("kestrel-teacher", &teacher)] {
        let refused = client.list_cases(bearer(token, pb::ListCasesRequest::default())).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{who} lists no cases: {refused:?}");
    }
    let theirs = pb::ListCasesRequest { school_ids: vec!["kestrel-primary".into()], ..Default::default() };
    let refused = client.list_cases(bearer(&other_dsl, theirs)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "another school's list: {refused:?}");
    let all = client.list_cases(bearer(&other_dsl, pb::ListCasesRequest::default())).await.unwrap().into_inner();
    assert!(all.cases.iter().all(|c| c.school_id == "heronsgate-academy"), "only their own school's");
    let refused = client.record_action(bearer(&other_dsl, done(&case_id, "notify-dsl"))).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = get_case(&served, &teacher, &case_id).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = open_case(&served, &other_dsl, cyberbullying(&learner("k2"))).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "not in another school: {refused:?}");
    // Without a token: unauthenticated at the layer.
    let refused = client.list_cases(pb::ListCasesRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // The trust lead follows a learner across schools: a case at each, linked both ways.
    let heronsgate_case = open_case(
        &served,
        &other_dsl,
        pb::OpenCaseRequest { school_id: "heronsgate-academy".into(), ..cyberbullying(&learner("k2")) },
    )
    .await
    .unwrap();
    let link = pb::LinkCasesRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.clone(),
        linked_case_id: heronsgate_case.clone(),
        reason: "Invented: the same learner, who moved school.".into(),
    };
    client.link_cases(bearer(&dsl, link)).await.unwrap();
    let theirs = get_case(&served, &other_dsl, &heronsgate_case).await.unwrap().case.unwrap();
    assert_eq!(theirs.linked_case_ids, vec![case_id.clone()], "the other school's DSL sees the link");
    wait_until("the index has both", || served.index.cases().len() >= 3).await;
    let request = pb::ListCasesRequest { subject_id: learner("k2"), ..Default::default() };
    let mut ids: Vec<String> = client
        .list_cases(bearer(&lead, request.clone()))
        .await
        .unwrap()
        .into_inner()
        .cases
        .into_iter()
        .map(|c| c.case_id)
        .collect();
    ids.sort();
    let mut expected = vec![case_id.clone(), heronsgate_case.clone()];
    expected.sort();
    assert_eq!(ids, expected, "the lead sees the learner's cases at both schools");
    let mine = client.list_cases(bearer(&dsl, request)).await.unwrap().into_inner().cases;
    assert_eq!(mine.len(), 1, "a school's DSL sees their school's");

    // One chronology for the learner: the trust lead's spans both schools, in log order;
    // the DSL's only their school's; staff get none.
    let raised = client
        .raise_concern(bearer(&teacher, concern(pb::ConcernAbout::Learner, &[learner("k2")], &[])))
        .await
        .unwrap()
        .into_inner();
    wait_until("the index has the concern", || !served.index.concerns().is_empty()).await;
    let chronology = pb::GetLearnerChronologyRequest { subject_id: learner("k2"), purpose: "review".into() };
    let lead_view = client.get_learner_chronology(bearer(&lead, chronology.clone())).await.unwrap().into_inner();
    let streams: std::collections::BTreeSet<&str> = lead_view.entries.iter().map(|e| e.stream_id.as_str()).collect();
    assert!(streams.contains(format!("incident-{case_id}").as_str()), "{streams:?}");
    assert!(streams.contains(format!("incident-{heronsgate_case}").as_str()), "{streams:?}");
    assert!(streams.contains(format!("concern-{}", raised.concern_id).as_str()), "{streams:?}");
    let schools: std::collections::BTreeSet<&str> = lead_view.entries.iter().map(|e| e.school_id.as_str()).collect();
    assert_eq!(schools.len(), 2, "across the trust's schools");
    assert!(lead_view.entries.windows(2).all(|pair| pair[0].position < pair[1].position), "in log order");
    assert_eq!(lead_view.cases.len(), 2);
    let dsl_view = client.get_learner_chronology(bearer(&dsl, chronology.clone())).await.unwrap().into_inner();
    assert!(dsl_view.entries.iter().all(|e| e.school_id == "kestrel-primary"));
    assert!(dsl_view.entries.iter().any(|e| e.stream_id == format!("concern-{}", raised.concern_id)));
    let refused = client.get_learner_chronology(bearer(&teacher, chronology)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dsls_acting_on_one_case_one_wins_the_other_gets_a_conflict_and_retries() {
    let served = serve().await;
    let mut client = served.client.clone();
    let dsl = served.token("kestrel-dsl").await;
    let deputy = served.token("kestrel-deputy").await;
    let case_id = open_case(&served, &dsl, cyberbullying(&learner("k3"))).await.unwrap();
    let seen = client.record_action(bearer(&dsl, done(&case_id, "notify-dsl"))).await.unwrap().into_inner().version;
    let change = |risk: pb::RiskLevel, expected_version: u64| pb::ChangeCaseRiskRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.clone(),
        risk_level: risk as i32,
        reason: "Invented.".into(),
        expected_version,
    };
    // Both decided on version `seen`; both send at once.
    let (mut one, mut two) = (client.clone(), client.clone());
    let (first, second) = tokio::join!(
        one.change_case_risk(bearer(&dsl, change(pb::RiskLevel::High, seen))),
        two.change_case_risk(bearer(&deputy, change(pb::RiskLevel::Critical, seen))),
    );
    let (won, lost) = match (first, second) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won.into_inner(), lost),
        other => panic!("exactly one must win: {other:?}"),
    };
    assert_eq!(won.version, seen + 1);
    assert_eq!(lost.code(), Code::Aborted, "{lost:?}");
    assert!(lost.message().contains("moved on") && lost.message().contains(&format!("incident-{case_id}")), "{lost:?}");
    // The loser re-reads and decides again on the new state.
    let now_at = get_case(&served, &deputy, &case_id).await.unwrap().case.unwrap();
    assert_eq!(now_at.version, seen + 1);
    let retried = client.change_case_risk(bearer(&deputy, change(pb::RiskLevel::Low, now_at.version))).await.unwrap();
    assert_eq!(retried.into_inner().version, seen + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_critical_alert_escalates_step_by_step_and_stops_when_acknowledged() {
    let served = serve().await;
    // A Monday noon: the escalation clock runs in school hours (2026-12-07 12:00, London).
    let start = UnixTime(1_796_644_800);
    haven_incidents::demo::seed(&served.app, learner, start).await.unwrap();
    let alert_id = haven_incidents::domain::AlertId::parse(haven_incidents::demo::CRITICAL_ALERT).unwrap();
    wait_until("the index has the alert", || served.index.alert(&alert_id).is_some()).await;
    let minutes = |m: i64| start.plus_seconds(m * 60);
    let at = |m: i64| {
        let (app, index) = (served.app.clone(), served.index.clone());
        async move { escalation::escalate_due(&app, &index, minutes(m)).await.unwrap() }
    };
    assert!(at(14).await.is_empty(), "not before 15 minutes");
    assert_eq!(at(15).await.len(), 1, "the deputies at 15 minutes");
    assert!(at(16).await.is_empty(), "each step once, even when the index lags");
    let (alert, _) = served.app.alert(&alert_id).await.unwrap().unwrap();
    assert_eq!(alert.escalations.len(), 1);
    at(31).await;
    let (alert, _) = served.app.alert(&alert_id).await.unwrap().unwrap();
    let roles: Vec<_> = alert.escalations.iter().map(|step| step.role).collect();
    assert_eq!(roles, vec![haven_authz::Role::DeputyDsl, haven_authz::Role::Principal]);

    // A DSL acknowledges it and raises a concern from it: no further step, ever.
    let dsl = served.token("kestrel-dsl").await;
    let ack = pb::AcknowledgeAlertRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        alert_id: alert_id.to_string(),
        raise_concern: true,
        note: "Invented: looked into at once.".into(),
    };
    let acknowledged = served.client.clone().acknowledge_alert(bearer(&dsl, ack)).await.unwrap().into_inner();
    assert!(!acknowledged.concern_id.is_empty());
    wait_until("the index sees the acknowledgement", || {
        served.index.alert(&alert_id).is_some_and(|alert| alert.acknowledged.is_some())
    })
    .await;
    assert!(at(120).await.is_empty());
    let (alert, _) = served.app.alert(&alert_id).await.unwrap().unwrap();
    assert_eq!(alert.escalations.len(), 2, "the trust lead's step never came");
    let envelopes = served
        .log
        .read_stream(haven_eventlog_client::ReadStream::forwards(
            haven_incidents::alert_stream(&alert_id).unwrap(),
            haven_kernel::Version(0),
            100,
        ))
        .await
        .unwrap();
    let types: Vec<&str> = envelopes.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "ingest.SafeguardingAlertRaised",
            "incidents.AlertEscalated",
            "incidents.AlertEscalated",
            "incidents.SafeguardingAlertAcknowledged"
        ]
    );

    // The demo seeds once: a second run writes nothing.
    let again = haven_incidents::demo::seed(&served.app, learner, now()).await.unwrap();
    assert_eq!(again.written, 0, "{again:?}");
    // The overdue LADO discussion shows on the allegation.
    let head = served.token("kestrel-head").await;
    wait_until("the index has the demo cases", || served.index.cases().len() >= 3).await;
    let overdue = pb::ListCasesRequest { overdue_only: true, ..Default::default() };
    let listed = served.client.clone().list_cases(bearer(&head, overdue)).await.unwrap().into_inner().cases;
    assert!(
        listed.iter().any(|c| c.case_id == haven_incidents::demo::ALLEGATION_CASE && c.overdue_actions >= 1),
        "{listed:?}"
    );

    // Alerts from ingest open a concern automatically, once; an alert naming no learner is
    // left to the DSL.
    for (id, subject) in [("alert-with-learner", learner("k1")), ("alert-without-learner", String::new())] {
        let raised = pb::SafeguardingAlertRaised {
            alert_id: id.into(),
            school_id: "kestrel-primary".into(),
            severity: pb::AlertSeverity::High as i32,
            subject_id: subject,
            first_occurred_at: Some(haven_incidents::events::time_to_proto(start)),
            ..Default::default()
        };
        let event = pb::ProposedEvent {
            event_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
            event_type: "ingest.SafeguardingAlertRaised".into(),
            schema_version: 1,
            school_id: "kestrel-primary".into(),
            occurred_at: Some(haven_incidents::events::time_to_proto(start)),
            actor: Some(pb::Actor { principal_id: "haven".into(), kind: pb::ActorKind::System as i32, roles: vec![] }),
            payload: prost::Message::encode_to_vec(&raised),
            ..Default::default()
        };
        let alert = haven_incidents::domain::AlertId::parse(id).unwrap();
        served
            .log
            .append(
                &haven_incidents::alert_stream(&alert).unwrap(),
                haven_kernel::ExpectedVersion::NoStream,
                vec![event],
            )
            .await
            .unwrap();
    }
    let with = haven_incidents::domain::AlertId::parse("alert-with-learner").unwrap();
    let without = haven_incidents::domain::AlertId::parse("alert-without-learner").unwrap();
    wait_until("the index has both alerts", || {
        served.index.alert(&with).is_some() && served.index.alert(&without).is_some()
    })
    .await;
    let opened = escalation::open_concerns_for_alerts(&served.app, &served.index, minutes(121)).await.unwrap();
    assert_eq!(opened, vec![haven_incidents::concern_id_for_alert(&with)]);
    let (concern, _) = served.app.concern(&opened[0]).await.unwrap().unwrap();
    assert_eq!(concern.details.alert_id, Some(with.clone()));
    assert_eq!(concern.details.subject_ids[0].as_str(), learner("k1"));
    wait_until("the index has the concern", || served.index.alerts_without_concern().len() == 1).await;
    let again = escalation::open_concerns_for_alerts(&served.app, &served.index, minutes(122)).await.unwrap();
    assert!(again.is_empty(), "once: {again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagery_needs_the_written_record_first_and_deletion_the_dsls_confirmations() {
    let served = serve().await;
    let mut client = served.client.clone();
    let dsl = served.token("kestrel-dsl").await;
    let head = served.token("kestrel-head").await;
    let open = pb::OpenCaseRequest {
        case_type: pb::CaseType::SharingNudes as i32,
        imagery_viewed: true,
        risk_level: pb::RiskLevel::High as i32,
        ..cyberbullying(&learner("k2"))
    };
    let case_id = open_case(&served, &dsl, open).await.unwrap();
    let refused = client.record_action(bearer(&dsl, done(&case_id, "notify-dsl"))).await.unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert!(refused.message().contains("written record"), "{refused:?}");
    let viewed = pb::RecordImageryViewedRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.clone(),
        viewed_at: Some(haven_incidents::events::time_to_proto(now())),
        present_user_ids: vec!["kestrel-deputy".into()],
        reason: "Invented: no other way to establish what was shared.".into(),
        description: "Described, not reproduced.".into(),
        ..Default::default()
    };
    let missing_who = pb::RecordImageryViewedRequest { present_user_ids: vec![], ..viewed.clone() };
    let refused = client.record_imagery_viewed(bearer(&dsl, missing_who)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("present_user_ids"), "names the field: {refused:?}");
    client.record_imagery_viewed(bearer(&dsl, viewed)).await.unwrap();
    client.record_action(bearer(&dsl, done(&case_id, "notify-dsl"))).await.unwrap();

    let deletion = pb::RecordMaterialDeletionRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        case_id: case_id.clone(),
        dsl_confirmed_no_agency_needs_it: true,
        dsl_confirmed_safe_to_delete: false,
        agencies_consulted: vec![pb::ReferralAgency::Police101 as i32],
        description: "Invented: the copy on a school tablet.".into(),
        ..Default::default()
    };
    let refused = client.record_material_deletion(bearer(&dsl, deletion.clone())).await.unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "both confirmations: {refused:?}");
    let confirmed = pb::RecordMaterialDeletionRequest { dsl_confirmed_safe_to_delete: true, ..deletion };
    let refused = client.record_material_deletion(bearer(&head, confirmed.clone())).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "only a DSL records a deletion: {refused:?}");
    client.record_material_deletion(bearer(&dsl, confirmed)).await.unwrap();
    let chronology = get_case(&served, &head, &case_id).await.unwrap().chronology;
    let types: Vec<&str> = chronology.iter().map(|entry| entry.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "incidents.CaseOpened",
            "incidents.ImageryViewed",
            "incidents.CaseActionRecorded",
            "incidents.MaterialDeletionRecorded"
        ]
    );
}
