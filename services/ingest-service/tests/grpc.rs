//! `haven.v1.Ingest` as a school system's collector sees it: the real service inside the
//! authorisation layer on a loopback port, a real log, real tokens from identity's key ring.

use std::sync::Arc;
use std::time::Duration;

use haven_authz::{AccessState, AuthLayer, Authenticator, Role, RoleGrant, Scope, TokenVerifier, UserId};
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventFilter, EventLog};
use haven_identity::tokens::{TokenLifetimes, Tokens};
use haven_ingest_service::{IngestConfig, demo};
use haven_kernel::{Position, SchoolId};
use haven_proto::v1 as pb;
use haven_proto::v1::ingest_client::IngestClient;
use haven_runtime::{Readiness, Shutdown};
use tonic::Code;
use tonic::transport::Channel;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

struct Served {
    _dir: tempfile::TempDir,
    log: LocalEventLog,
    tokens: Tokens,
    client: IngestClient<Channel>,
    shutdown: Shutdown,
}

async fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalEventLog::open(&dir.path().join("log"), EventLogConfig::default()).unwrap();
    let shared: Arc<dyn EventLog> = Arc::new(log.clone());
    // People act only under the AUP in force; publish one (school systems need none).
    let admin = haven_identity::CommandContext {
        actor: pb::Actor { principal_id: "user-admin".into(), kind: 1, roles: vec!["trust_admin".into()] },
        occurred_at: prost_types::Timestamp { seconds: now(), nanos: 0 },
        event_ids: haven_identity::EventIds::Fresh,
    };
    haven_identity::IdentityApp::new(Arc::clone(&shared)).publish_aup(&admin, 1, [1; 32]).await.unwrap();
    let verifier = TokenVerifier::default();
    let lifetimes = TokenLifetimes { access_s: 900, refresh_s: 3600 };
    let tokens = Tokens::open(&dir.path().join("keys"), now(), verifier.clone(), lifetimes).unwrap();
    let authenticator = Authenticator::new(verifier.clone(), AccessState::default());
    let readiness = Readiness::default();
    let shutdown = Shutdown::default();
    tokio::spawn(authenticator.access().clone().follow(
        Arc::clone(&shared),
        verifier,
        readiness.register("access", "catching up"),
        shutdown.clone(),
    ));
    let metrics = haven_runtime::Metrics::default();
    let running = haven_ingest_service::start(
        &IngestConfig::default(),
        Arc::clone(&shared),
        &dir.path().join("ingest.key"),
        &metrics,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let server = tower_layer::Layer::layer(&AuthLayer::new(authenticator.clone()), running.service.into_server());
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !readiness.is_ready() || authenticator.access().current_aup() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the access facts never caught up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    Served { _dir: dir, log, tokens, client: IngestClient::new(channel), shutdown }
}

impl Served {
    fn system_token(&self, school: &str) -> String {
        self.tokens
            .for_school_system(&format!("{school}-collector"), &SchoolId::parse(school).unwrap(), now())
            .unwrap()
            .0
    }

    fn user_token(&self, user: &str, role: Role, school: &str) -> String {
        let grants = [RoleGrant { role, scope: Scope::School(SchoolId::parse(school).unwrap()) }];
        self.tokens.for_user(&UserId::parse(user).unwrap(), &format!("session-{user}"), &grants, 1, now()).unwrap().0
    }

    async fn events(&self) -> Vec<pb::EventEnvelope> {
        self.log.read_all(Position(0), 10_000, &EventFilter::default()).await.unwrap().events
    }

    async fn submit(
        &mut self,
        token: &str,
        messages: Vec<pb::SubmitBreachesRequest>,
    ) -> Result<pb::SubmitBreachesResponse, tonic::Status> {
        let mut request = tonic::Request::new(tokio_stream::iter(messages));
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        self.client.submit_breaches(request).await.map(tonic::Response::into_inner)
    }
}

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
    assert_eq!(written, 4, "the AUP, two breaches and the self-harm alert");
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
