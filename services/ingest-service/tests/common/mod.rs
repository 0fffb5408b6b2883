//! The served ingest fixture for the gRPC tests: the real service inside the authorisation
//! layer on a loopback port, a real log, real tokens from identity's key ring.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use haven_authz::{AccessState, AuthLayer, Authenticator, Role, RoleGrant, Scope, TokenVerifier, UserId};
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventFilter, EventLog};
use haven_identity::tokens::{TokenLifetimes, Tokens};
use haven_ingest_service::IngestConfig;
use haven_kernel::{Position, SchoolId};
use haven_proto::v1 as pb;
use haven_proto::v1::ingest_client::IngestClient;
use haven_runtime::{Readiness, Shutdown};
use tonic::transport::Channel;

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub struct Served {
    _dir: tempfile::TempDir,
    pub log: LocalEventLog,
    pub tokens: Tokens,
    pub client: IngestClient<Channel>,
    pub shutdown: Shutdown,
    pub identity: haven_identity::IdentityApp,
    pub pipeline: Arc<haven_ingest_service::Pipeline>,
}

pub async fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalEventLog::open(&dir.path().join("log"), EventLogConfig::default()).unwrap();
    let shared: Arc<dyn EventLog> = Arc::new(log.clone());
    // People act only under the AUP in force; publish one (school systems need none).
    let admin = haven_identity::CommandContext {
        actor: pb::Actor { principal_id: "user-admin".into(), kind: 1, roles: vec!["trust_admin".into()] },
        occurred_at: prost_types::Timestamp { seconds: now(), nanos: 0 },
        event_ids: haven_identity::EventIds::Fresh,
    };
    let identity = haven_identity::IdentityApp::new(Arc::clone(&shared));
    identity.publish_aup(&admin, 1, [1; 32]).await.unwrap();
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
        &readiness,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let pipeline = Arc::clone(&running.pipeline);
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
    Served { _dir: dir, log, tokens, client: IngestClient::new(channel), shutdown, identity, pipeline }
}

impl Served {
    pub fn system_token(&self, school: &str) -> String {
        self.tokens
            .for_school_system(&format!("{school}-collector"), &SchoolId::parse(school).unwrap(), now())
            .unwrap()
            .0
    }

    pub fn user_token(&self, user: &str, role: Role, school: &str) -> String {
        self.token_with(user, &[(role, school)])
    }

    /// A person holding each role in its school.
    pub fn token_with(&self, user: &str, roles: &[(Role, &str)]) -> String {
        let grants: Vec<_> = roles
            .iter()
            .map(|(role, school)| RoleGrant { role: *role, scope: Scope::School(SchoolId::parse(school).unwrap()) })
            .collect();
        self.tokens.for_user(&UserId::parse(user).unwrap(), &format!("session-{user}"), &grants, 1, now()).unwrap().0
    }

    /// Another ingest on the same log (a restart), once its read models have caught up; keep
    /// the directory (its key file) while it runs, and trigger the shutdown to stop it.
    pub async fn restart(&self) -> (haven_ingest_service::Running, Shutdown, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let readiness = Readiness::default();
        let shutdown = Shutdown::default();
        let log: Arc<dyn EventLog> = Arc::new(self.log.clone());
        let restarted = haven_ingest_service::start(
            &IngestConfig::default(),
            log,
            &dir.path().join("key"),
            &haven_runtime::Metrics::default(),
            &readiness,
            shutdown.clone(),
        )
        .await
        .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !readiness.is_ready() {
            assert!(tokio::time::Instant::now() < deadline, "the restarted ingest never caught up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (restarted, shutdown, dir)
    }

    /// A person holding `role` trust-wide (the trust's safeguarding lead, the auditor).
    pub fn trust_token(&self, user: &str, role: Role) -> String {
        let grants = [RoleGrant { role, scope: Scope::Trust }];
        self.tokens.for_user(&UserId::parse(user).unwrap(), &format!("session-{user}"), &grants, 1, now()).unwrap().0
    }

    pub async fn events(&self) -> Vec<pb::EventEnvelope> {
        self.log.read_all(Position(0), 10_000, &EventFilter::default()).await.unwrap().events
    }

    pub async fn submit(
        &mut self,
        token: &str,
        messages: Vec<pb::SubmitBreachesRequest>,
    ) -> Result<pb::SubmitBreachesResponse, tonic::Status> {
        let mut request = tonic::Request::new(tokio_stream::iter(messages));
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        self.client.submit_breaches(request).await.map(tonic::Response::into_inner)
    }
}

/// A request carrying a bearer token.
pub fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}
