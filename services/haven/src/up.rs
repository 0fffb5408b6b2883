//! `haven up`: the embedded deployment. One event log (segment files and a redb index) in the data directory, every
//! gRPC service on one port (with gRPC health and reflection), and the HTTP gateway.
//!
//! ```text
//!  start: listen on both ports ─▶ open the log ─▶ seed the demo (--demo) ─▶ serve
//!         readiness: eventlog (open) · identity (directory caught up) · custody (read model
//!         caught up) · incidents (index caught up) · gateway (serving); custody's end-of-day
//!         sweep, incidents' escalation timer and (--demo) ingest's filter feed run meanwhile
//!  SIGINT/SIGTERM ─▶ stop accepting ─▶ in-flight requests finish (grace period)
//!                 ─▶ the log's writer drains its queue and fsyncs ─▶ exit 0
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use haven_authz::{AccessState, AuthLayer, AuthService, Authenticator, TokenVerifier};
use haven_bus::{BusMetrics, CheckpointFile, Consumer, EmbeddedSource, Nats, NatsSource, NatsUrl, Relay, RelayConfig};
use haven_custody::CustodyService;
use haven_eventlog::grpc::EventLogService;
use haven_eventlog::raft::{RaftNode, RaftNodeConfig};
use haven_eventlog_client::{EventLog, GrpcEventLog};
use haven_gateway::GatewayState;
use haven_identity::{IdentityApp, IdentityService, demo};
use haven_ingest_service::IngestService;
use haven_proto::v1::custody_server::CustodyServer;
use haven_proto::v1::event_log_server::EventLogServer;
use haven_proto::v1::identity_server::IdentityServer;
use haven_proto::v1::incidents_server::IncidentsServer;
use haven_proto::v1::ingest_server::IngestServer;
use haven_runtime::grpc::{GrpcServerLayer, InjectTrace};
use haven_runtime::{Metrics, Readiness, Shutdown, listen, wait_for_stop_signal};

use crate::config::HavenConfig;
use crate::event_counts::EventCounts;

/// Which parts this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `haven up`: everything, with the log embedded.
    Everything,
    /// `haven serve eventlog`: one log node.
    EventLog,
    /// `haven serve identity`: identity against a remote log (`eventlog_url`).
    Identity,
    /// `haven serve incidents`: incidents against a remote log.
    Incidents,
    /// `haven serve custody`: custody against a remote log.
    Custody,
    /// `haven serve ingest`: ingest (its syslog sources and `haven.v1.Ingest`) against a remote log.
    Ingest,
    /// `haven serve reporting`: the reporting projection, `haven.v1.Reporting` and the web
    /// pages against a remote log, signing people in through identity at `identity_url`.
    Reporting,
}

impl Part {
    fn runs_log(self) -> bool {
        matches!(self, Part::Everything | Part::EventLog)
    }

    fn runs(self, part: Part) -> bool {
        self == Part::Everything || self == part
    }

    /// The process's name in traces (OpenTelemetry's `service.name`).
    pub fn service_name(self) -> &'static str {
        match self {
            Part::Everything => "haven",
            Part::EventLog => "haven-eventlog",
            Part::Identity => "haven-identity",
            Part::Incidents => "haven-incidents",
            Part::Custody => "haven-custody",
            Part::Ingest => "haven-ingest",
            Part::Reporting => "haven-reporting",
        }
    }

    /// The gRPC services this part serves, for the banner.
    fn services(self) -> &'static str {
        match self {
            Part::Everything => {
                "haven.v1.EventLog, haven.v1.Identity, haven.v1.Incidents, haven.v1.Custody, haven.v1.Ingest"
            }
            Part::EventLog => "haven.v1.EventLog, haven.v1.Raft, haven.v1.Cluster",
            Part::Identity => "haven.v1.Identity",
            Part::Incidents => "haven.v1.Incidents",
            Part::Custody => "haven.v1.Custody",
            Part::Ingest => "haven.v1.Ingest",
            Part::Reporting => "haven.v1.Reporting",
        }
    }
}

pub async fn run(config: HavenConfig, part: Part, seed_demo: bool, bootstrap: bool) -> anyhow::Result<ExitCode> {
    install_internal_credential(&config, part.runs_log())?;
    let grpc_listener = listen(config.grpc_addr, "--grpc-addr / grpc_addr").await?;
    let http_listener = listen(config.http_addr, "--http-addr / http_addr").await?;
    let readiness = Readiness::default();
    let metrics = Metrics::default();
    haven_authz::denials::register_metrics(&metrics);
    let shutdown = Shutdown::default();
    let log_ready = readiness.register("eventlog", "opening");
    let gateway_ready = readiness.register("gateway", "starting");
    let runs_log = part.runs_log();
    let runs_identity = part.runs(Part::Identity);

    // The log: embedded here, or reached over gRPC.
    // A log node is always a raft node; `haven up` is a one-node cluster of it.
    let (node, shared_log): (Option<RaftNode>, Arc<dyn EventLog>) = if runs_log {
        let mut raft_config =
            RaftNodeConfig::new(config.node_id, config.grpc_addr.to_string(), config.eventlog.clone());
        raft_config.source_ip = config.raft_source_ip;
        let node = RaftNode::open(&config.data_dir.join("eventlog"), raft_config)
            .await
            .with_context(|| format!("opening the event log in {}", config.data_dir.display()))?;
        node.register_metrics(&metrics);
        if bootstrap {
            node.initialize_alone().await.context("starting the one-node cluster")?;
            node.wait_for_leader(std::time::Duration::from_secs(10)).await.context("electing the one node")?;
        }
        log_ready.set_ready();
        let log = node.log();
        (Some(node), Arc::new(log))
    } else {
        let remote = GrpcEventLog::connect_lazy(&config.eventlog_url, std::time::Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("invalid configuration: eventlog_url {:?}: {e}", config.eventlog_url))?;
        log_ready.set_not_ready("connecting to the event log");
        tokio::spawn(watch_remote_log(remote.clone(), log_ready, shutdown.clone()));
        (None, Arc::new(remote))
    };

    // Every process that serves people checks tokens against the same verifier and the access
    // facts (leavers, revocations, the AUP in force, signing keys) followed from the log.
    let authenticator = Authenticator::new(TokenVerifier::default(), AccessState::default());
    let mut identity_service = None;
    let mut identity_tasks = Vec::new();
    if runs_identity {
        if seed_demo {
            let hasher = haven_identity::password::PasswordHasher::new(config.identity.password_cost())
                .map_err(|error| anyhow::anyhow!("invalid configuration: identity password cost: {error}"))?;
            let report = demo::seed(&IdentityApp::new(Arc::clone(&shared_log)), &hasher)
                .await
                .context("seeding the demo trust")?;
            tracing::info!(written = report.written, already_present = report.already_present, "demo trust seeded");
            if part == Part::Everything {
                let activity = crate::reporting_demo::seed(&shared_log).await.context("seeding the demo's breaches")?;
                tracing::info!(
                    written = activity.written,
                    already_present = activity.already_present,
                    "demo breaches, alerts and referrals seeded"
                );
            }
        }
        let keys_dir = config.data_dir.join("identity").join("keys");
        let running = haven_identity::start::start(
            Arc::clone(&shared_log),
            &config.identity,
            &keys_dir,
            &authenticator,
            &readiness,
            &shutdown,
        )
        .await
        .with_context(|| format!("starting identity (signing keys in {})", keys_dir.display()))?;
        identity_tasks = running.tasks;
        let layer = AuthLayer::new(authenticator.clone());
        identity_service = Some(tower_layer::Layer::layer(&layer, running.service.into_server()));
    }
    if part != Part::EventLog {
        identity_tasks.push(tokio::spawn(authenticator.access().clone().follow(
            Arc::clone(&shared_log),
            authenticator.verifier().clone(),
            readiness.register("access", "access facts catching up"),
            shutdown.clone(),
        )));
    }
    let custody = if part.runs(Part::Custody) {
        Some(start_custody(&config, &shared_log, &authenticator, &readiness, &shutdown, seed_demo).await?)
    } else {
        None
    };
    let nats = connect_nats(&config).await?;
    let ingest = if part.runs(Part::Ingest) {
        let nats = nats.clone();
        Some(
            start_ingest(
                &config,
                &shared_log,
                &authenticator,
                &metrics,
                &readiness,
                &shutdown,
                seed_demo,
                nats,
                runs_identity,
            )
            .await?,
        )
    } else {
        None
    };
    let bus = start_bus(&config, part, nats, &shared_log, &metrics, &shutdown).await?;
    let serves_incidents = part.runs(Part::Incidents);
    let incidents = if serves_incidents {
        Some(start_incidents(&config, &shared_log, &authenticator, seed_demo, &readiness, &metrics, &shutdown).await?)
    } else {
        None
    };
    // The log's own services: below people's authorisation, behind the internal credential.
    use tower_layer::Layer;
    let internal = AuthLayer::allowing_internal(authenticator.clone());
    let log_service = runs_log.then(|| internal.layer(EventLogService::new(Arc::clone(&shared_log)).into_server()));
    let raft_service = node.as_ref().map(|node| internal.layer(node.raft_service()));
    let cluster_service = node.as_ref().map(|node| internal.layer(node.cluster_service()));

    let reporting_service = reporting_service(&authenticator, &shared_log, &bus);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    if reporting_service.is_some() {
        health_reporter
            .set_serving::<AuthService<haven_proto::v1::reporting_server::ReportingServer<haven_reporting::grpc::ReportingService>>>()
            .await;
    }
    if runs_log {
        health_reporter.set_serving::<EventLogServer<EventLogService>>().await;
    }
    if runs_identity {
        health_reporter.set_serving::<AuthService<IdentityServer<IdentityService>>>().await;
    }
    if custody.is_some() {
        health_reporter.set_serving::<AuthService<CustodyServer<CustodyService>>>().await;
    }
    if ingest.is_some() {
        health_reporter.set_serving::<AuthService<IngestServer<IngestService>>>().await;
    }
    if incidents.is_some() {
        health_reporter.set_serving::<AuthService<IncidentsServer<haven_incidents::IncidentsService>>>().await;
    }
    let (incidents_service, incidents_tasks) = match incidents {
        Some(running) => (Some(running.service), running.tasks),
        None => (None, Vec::new()),
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(haven_proto::v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;
    let grpc = tonic::transport::Server::builder()
        .layer(GrpcServerLayer::new(&metrics))
        .add_service(health_service)
        .add_service(reflection)
        .add_optional_service(log_service)
        .add_optional_service(raft_service)
        .add_optional_service(cluster_service)
        .add_optional_service(identity_service)
        .add_optional_service(custody.as_ref().map(|custody| custody.server.clone()))
        .add_optional_service(ingest.as_ref().map(|ingest| ingest.server.clone()))
        .add_optional_service(incidents_service)
        .add_optional_service(reporting_service)
        .serve_with_incoming_shutdown(no_delay(grpc_listener), shutdown.triggered());
    // The gateway's routes: authorised at the edge with the same authenticator as the gRPC
    // layer, then forwarded over one channel to this process's own gRPC port.
    let own = own_channel(&config)?;
    let layer = || AuthLayer::new(authenticator.clone());
    // Identity's routes where identity runs; the web pages of `serve reporting` sign people in
    // through identity elsewhere (identity_url).
    let identity_channel = match part {
        Part::Reporting => Some(remote_channel(&config.identity_url, "identity_url")?),
        _ => runs_identity.then(|| own.clone()),
    };
    let identity_edge = identity_channel.map(|channel| haven_gateway::IdentityEdge {
        client: haven_proto::v1::identity_client::IdentityClient::new(channel),
        layer: layer(),
    });
    let custody_edge = custody.is_some().then(|| haven_gateway::CustodyEdge {
        client: haven_proto::v1::custody_client::CustodyClient::new(own.clone()),
        layer: layer(),
    });
    let incidents_edge = serves_incidents.then(|| haven_gateway::IncidentsEdge {
        client: haven_proto::v1::incidents_client::IncidentsClient::new(own.clone()),
        layer: layer(),
    });
    let filtering_edge = ingest.is_some().then(|| haven_gateway::FilteringEdge {
        client: haven_proto::v1::ingest_client::IngestClient::new(own.clone()),
        layer: layer(),
    });
    let web = web_edge(&authenticator, &shared_log, &bus);
    let http = haven_gateway::router(GatewayState {
        readiness: readiness.clone(),
        metrics,
        identity: identity_edge,
        custody: custody_edge,
        incidents: incidents_edge,
        filtering: filtering_edge,
        web,
    });
    let http = axum::serve(http_listener, http).with_graceful_shutdown(shutdown.triggered());
    let grpc_task = tokio::spawn(grpc);
    let http_task = tokio::spawn(async move { http.await });
    gateway_ready.set_ready();
    print_welcome(&config, part, seed_demo, &bus);
    if let Some(custody) = &custody {
        print_custody_welcome(&config, seed_demo, custody);
    }
    if let Some(ingest) = &ingest {
        print_ingest_welcome(seed_demo, ingest);
    }

    wait_for_stop_signal().await;
    tracing::info!("stopping");
    shutdown.trigger();
    // In-flight requests get the grace period; long-lived streams (subscriptions) are cut at
    // its end, so a stop never hangs on a client that does not hang up.
    let grace = std::time::Duration::from_millis(config.shutdown_grace_ms);
    let servers = async {
        for task in identity_tasks.into_iter().chain(incidents_tasks) {
            let _ = task.await;
        }
        for task in bus.tasks {
            let _ = task.await;
        }
        for task in custody.into_iter().flat_map(|custody| custody.tasks) {
            let _ = task.await;
        }
        for task in ingest.into_iter().flat_map(|ingest| ingest.tasks) {
            let _ = task.await;
        }
        tokio::join!(grpc_task, http_task)
    };
    match tokio::time::timeout(grace, servers).await {
        Ok((grpc_result, http_result)) => {
            grpc_result.context("gRPC server task")?.context("gRPC server")?;
            http_result.context("HTTP server task")?.context("HTTP server")?;
        }
        Err(_elapsed) => {
            tracing::warn!(
                grace_ms = config.shutdown_grace_ms,
                "connections still open after the grace period; closing them"
            )
        }
    }
    // Every acknowledged append is already fsynced; this answers what is queued and stops raft.
    if let Some(node) = node {
        node.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The internal credential this process sends, and asks for at its log's own services
/// (`haven_runtime::internal`): the configured key file; without one, a log node listening
/// beyond loopback makes `<data_dir>/internal.key` — deny by default — and other processes
/// must be given that file.
fn install_internal_credential(config: &HavenConfig, runs_log: bool) -> anyhow::Result<()> {
    use haven_runtime::internal::{InternalCredential, install};
    let credential = match &config.internal_key_file {
        Some(file) => InternalCredential::load(file).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?,
        None if runs_log && !config.grpc_addr.ip().is_loopback() => {
            let file = config.data_dir.join("internal.key");
            let credential = InternalCredential::load_or_create(&file)?;
            tracing::info!(
                file = %file.display(),
                "the log's own gRPC asks for the internal credential: give other processes this key (internal_key_file)"
            );
            credential
        }
        None => return Ok(()),
    };
    anyhow::ensure!(install(credential), "a different internal credential is already installed in this process");
    Ok(())
}

/// A lazy channel to a gRPC endpoint (`url`, from the setting `what`), carrying the calling
/// request's trace context.
fn remote_channel(url: &str, what: &str) -> anyhow::Result<haven_gateway::GrpcChannel> {
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .map_err(|e| anyhow::anyhow!("invalid configuration: {what} {url:?}: {e}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .connect_lazy();
    Ok(InjectTrace::new(channel))
}

/// A lazy channel to this process's own gRPC port (loopback when it listens on every address),
/// carrying the calling request's trace context.
fn own_channel(config: &HavenConfig) -> anyhow::Result<haven_gateway::GrpcChannel> {
    let mut address = config.grpc_addr;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    remote_channel(&format!("http://{address}"), "grpc_addr")
}

/// Custody as `haven up` runs it: the service inside the AuthLayer, and the tasks to await.
struct Custody {
    server: AuthService<CustodyServer<CustodyService>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    public_key_hex: String,
}

/// Opens custody's export signing key (created on first start, 0600), seeds the demo's custody
/// data (`--demo`, after identity's), and starts the read model and the end-of-day sweep.
async fn start_custody(
    config: &HavenConfig,
    log: &Arc<dyn EventLog>,
    authenticator: &Authenticator,
    readiness: &Readiness,
    shutdown: &Shutdown,
    seed_demo: bool,
) -> anyhow::Result<Custody> {
    let key_path = config.data_dir.join("custody").join("trail-signing.key");
    let signer = haven_custody::start::open_signer(&key_path)
        .with_context(|| format!("opening custody's export signing key {}", key_path.display()))?;
    let running = haven_custody::start::start(
        Arc::clone(log),
        &config.custody,
        signer,
        authenticator.access().clone(),
        readiness,
        shutdown,
    );
    if seed_demo {
        haven_custody::demo::seed(&running.app, demo::learner_subject_id)
            .await
            .context("seeding the demo's custody data")?;
        tracing::info!("demo custody data seeded");
    }
    let layer = AuthLayer::new(authenticator.clone());
    Ok(Custody {
        server: tower_layer::Layer::layer(&layer, running.service.into_server()),
        tasks: running.tasks,
        public_key_hex: running.public_key_hex,
    })
}

fn print_custody_welcome(config: &HavenConfig, seed_demo: bool, custody: &Custody) {
    let http = config.http_addr;
    let custody_config = &config.custody;
    println!(
        "  custody       haven.v1.Custody; end-of-day sweep after {} ({}); exports signed by Ed25519 key {}",
        custody_config.school_day_ends, custody_config.time_zone, custody.public_key_hex
    );
    if seed_demo {
        println!(
            "  demo custody  at kestrel-primary: a phone quarantined, a tablet with the police, a phone swept at the end of the day, 3 laptops;"
        );
        println!(
            "                as kestrel-dsl: curl -H \"Authorization: Bearer $TOKEN\" http://{http}/api/v1/custody/{}",
            haven_custody::demo::DEMO_QUARANTINED
        );
    }
}

/// Ingest as `haven up` runs it: `haven.v1.Ingest` inside the AuthLayer, each configured
/// source's syslog listeners, and (with `--demo`) the demo schools' simulated filter feed.
struct Ingest {
    server: AuthService<IngestServer<IngestService>>,
    sources: Vec<haven_ingest_service::BoundSource>,
    /// Whether batches are taken off the NATS ingest buffer.
    reads_buffer: bool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts ingest. With `--demo` and no sources configured, each demo school gets a FortiGate
/// source on a free loopback syslog port, fed by the demo feed at a school day's rate. With
/// NATS and a source that says `buffer = true`, ingest also takes batches off the ingest buffer.
#[allow(clippy::too_many_arguments)]
async fn start_ingest(
    config: &HavenConfig,
    log: &Arc<dyn EventLog>,
    authenticator: &Authenticator,
    metrics: &Metrics,
    readiness: &Readiness,
    shutdown: &Shutdown,
    seed_demo: bool,
    nats: Option<Nats>,
    identity_here: bool,
) -> anyhow::Result<Ingest> {
    let mut ingest_config = config.ingest.clone();
    let demo_sources = seed_demo && ingest_config.sources.is_empty();
    if demo_sources {
        ingest_config.sources = demo_sources_for(nats.is_some());
    }
    let key_file = config.data_dir.join("ingest").join("path-hmac.key");
    let running =
        haven_ingest_service::start(&ingest_config, Arc::clone(log), &key_file, metrics, readiness, shutdown.clone())
            .await?;
    if seed_demo {
        let app = haven_ingest_service::governance::GovernanceApp::new(Arc::clone(log));
        haven_ingest_service::governance::demo::seed(&app, jiff::Timestamp::now().as_second())
            .await
            .context("seeding the demo's filtering record")?;
        haven_ingest_service::rules::demo::seed(&running.rules).await.context("seeding the demo's alert rules")?;
        let (school, leases) = haven_ingest_service::demo::demo_leases(jiff::Timestamp::now());
        let system = haven_proto::v1::Actor {
            principal_id: "demo-seed".into(),
            kind: haven_proto::v1::ActorKind::SchoolSystem as i32,
            roles: vec![],
        };
        let school = haven_kernel::SchoolId::parse(school).context("the demo lease's school")?;
        haven_ingest_service::attribution::record(&**log, running.pipeline.attribution(), &school, system, leases)
            .await
            .context("recording the demo's device lease")?;
        tracing::info!("demo filtering record, alert rules and device lease seeded");
    }
    let mut tasks = running.tasks;
    let buffer_sources = haven_ingest_service::buffer::BufferSources::from_config(&ingest_config);
    let reads_buffer = nats.is_some() && !buffer_sources.is_empty();
    let nats_for_feed = nats.clone();
    if let Some(nats) = nats.filter(|_| reads_buffer) {
        let consuming = haven_ingest_service::buffer::start(
            Arc::clone(&running.pipeline),
            nats,
            buffer_sources,
            shutdown.clone(),
            None,
        )
        .await
        .context("opening the NATS ingest buffer (stream HAVEN_INGEST)")?;
        tasks.push(consuming);
    }
    if demo_sources && ingest_config.demo_feed {
        let schools = demo_feed_schools(config, &running.sources, nats_for_feed, identity_here);
        // The feed's first lines name demo learners by login: let ingest follow them first
        // (identity's demo is seeded before ingest starts; this waits a moment at most).
        let directory = running.pipeline.attribution().clone();
        let last_learner = demo::learner_subject_id(demo::DEMO_LEARNERS[demo::DEMO_LEARNERS.len() - 1].0);
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                if directory.school_of(&last_learner).is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            haven_ingest_service::demo::run(schools, 1.0, shutdown).await;
        }));
    }
    let layer = AuthLayer::new(authenticator.clone());
    Ok(Ingest {
        server: tower_layer::Layer::layer(&layer, running.service.into_server()),
        sources: running.sources,
        reads_buffer,
        tasks,
    })
}

/// The demo schools' sources: each filter's listener on a free loopback port, by the input
/// its feed uses (`demo::DEMO_FEEDS`); none for the school whose system submits over gRPC
/// (the token is its binding); the buffer for its school when NATS runs, else syslog TCP.
fn demo_sources_for(with_nats: bool) -> Vec<haven_ingest_service::SourceSpec> {
    use haven_ingest_service::demo::{self as feed, InputKind};
    let loopback = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    feed::DEMO_FEEDS
        .iter()
        .filter(|(_, _, input)| *input != InputKind::Grpc)
        .map(|(school_id, vendor, input)| {
            let buffer = *input == InputKind::Buffer && with_nats;
            let udp = *input == InputKind::SyslogUdp;
            haven_ingest_service::SourceSpec {
                school_id: (*school_id).to_owned(),
                source_id: feed::source_id(*vendor),
                format: Some(vendor.format().as_str().to_owned()),
                timezone: "Europe/London".into(),
                syslog_tcp: if buffer || udp { None } else { loopback },
                syslog_udp: if udp { loopback } else { None },
                buffer,
                tls: None,
            }
        })
        .collect()
}

/// What the demo feed sends to each school: its vendor's lines into its source's listener, the
/// buffer, or (when identity runs here, to exchange the credential) `SubmitBreaches` as the
/// demo's school system.
fn demo_feed_schools(
    config: &HavenConfig,
    sources: &[haven_ingest_service::BoundSource],
    nats: Option<Nats>,
    identity_here: bool,
) -> Vec<haven_ingest_service::demo::DemoSchool> {
    use haven_ingest_service::demo::{self as feed, DemoInput, InputKind};
    let mut own = config.grpc_addr;
    if own.ip().is_unspecified() {
        own.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut schools = Vec::new();
    for (index, ((school_id, vendor, input), (_, _, _, pupils))) in
        feed::DEMO_FEEDS.iter().zip(demo::DEMO_SCHOOLS.iter()).enumerate()
    {
        let bound = sources.iter().find(|bound| bound.school_id == *school_id);
        let input = match (input, bound) {
            (InputKind::Grpc, _) if identity_here && *school_id == demo::DEMO_SYSTEM.1 => {
                DemoInput::Grpc(feed::GrpcSystem {
                    endpoint: format!("http://{own}"),
                    client_id: demo::DEMO_SYSTEM.0.into(),
                    client_secret: demo::DEMO_SYSTEM_SECRET.into(),
                })
            }
            (_, Some(bound)) if bound.syslog_udp.is_some() => DemoInput::SyslogUdp(bound.syslog_udp.expect("checked")),
            (_, Some(bound)) if bound.syslog_tcp.is_some() => DemoInput::SyslogTcp(bound.syslog_tcp.expect("checked")),
            (InputKind::Buffer, Some(_)) if nats.is_some() => DemoInput::Buffer(nats.clone().expect("checked")),
            _ => continue,
        };
        schools.push(feed::DemoSchool {
            school_id: (*school_id).to_owned(),
            pupils: *pupils,
            vendor: *vendor,
            school_octet: feed::school_octet(index),
            input,
        });
    }
    schools
}

fn print_ingest_welcome(seed_demo: bool, ingest: &Ingest) {
    println!(
        "  ingest        haven.v1.Ingest (SubmitBreaches, ParseLines, the filtering record, ListQuarantine, the alert rules); {} syslog \
         source(s)",
        ingest.sources.len()
    );
    for source in &ingest.sources {
        let tcp_kind = if source.tls { "tls" } else { "tcp" };
        let tcp = source.syslog_tcp.map(|a| format!(" {tcp_kind} {a}")).unwrap_or_default();
        let udp = source.syslog_udp.map(|a| format!(" udp {a}")).unwrap_or_default();
        println!("                {}/{}:{tcp}{udp}", source.school_id, source.source_id);
    }
    if ingest.reads_buffer {
        println!(
            "  ingest buffer NATS stream HAVEN_INGEST (haven.ingest.<school>.<format>), for sources with buffer = true"
        );
    }
    if seed_demo {
        println!(
            "  demo feed     each demo school's invented filter sends its log at a school day's rate, in its vendor's"
        );
        println!(
            "                format and by its own input (FortiGate: syslog TCP, Sophos: UDP, Cisco Umbrella: gRPC as a"
        );
        println!(
            "                school system, PAN-OS: TCP, Barracuda: the NATS buffer with --nats, else TCP); a self-harm"
        );
        println!("                search at kestrel-primary raised a critical alert: haven log tail | grep Alert");
        println!(
            "  filtering     kestrel-primary's record: an unblock request answered by a change (risk-assessed, approved,"
        );
        println!("                applied), a partial filter check and the annual review with the governor:");
        println!("                haven log tail | grep -E 'FilteringChange|FilterCheck|FilteringReview|Overblocking'");
        println!(
            "  alert rules   heronsgate-academy's DSL made its rules stricter (Ingest/GetAlertRules): haven log tail | \
             grep AlertRulesChanged"
        );
    }
}

/// Incidents as `haven up` runs it.
struct RunningIncidents {
    service: AuthService<IncidentsServer<haven_incidents::IncidentsService>>,
    /// The index's follower and the escalation timer; they end on shutdown.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Incidents: the app on the shared log, its index (readiness `incidents`), the escalation
/// timer, the demo's concerns and cases (`--demo`), and the service inside the AuthLayer.
async fn start_incidents(
    config: &HavenConfig,
    log: &Arc<dyn EventLog>,
    authenticator: &Authenticator,
    seed_demo: bool,
    readiness: &Readiness,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> anyhow::Result<RunningIncidents> {
    let app = haven_incidents::IncidentsApp::new(Arc::clone(log), config.incidents.escalation());
    if seed_demo {
        let now = haven_incidents::domain::UnixTime(jiff::Timestamp::now().as_second());
        let report = haven_incidents::demo::seed(&app, demo::learner_subject_id, now)
            .await
            .context("seeding the demo's concerns and cases")?;
        tracing::info!(written = report.written, already_present = report.already_present, "demo incidents seeded");
    }
    let index = haven_incidents::IncidentsIndex::default();
    let alert_metrics = haven_incidents::metrics::AlertMetrics::default();
    alert_metrics.register(metrics);
    let tasks = vec![
        tokio::spawn(index.clone().follow(
            Arc::clone(log),
            readiness.register("incidents", "cases and concerns catching up"),
            shutdown.clone(),
        )),
        tokio::spawn(haven_incidents::escalation::run(
            app.clone(),
            index.clone(),
            haven_incidents::escalation::TICK,
            alert_metrics,
            shutdown.clone(),
        )),
    ];
    let layer = AuthLayer::new(authenticator.clone());
    let service = tower_layer::Layer::layer(&layer, haven_incidents::IncidentsService::new(app, index).into_server());
    Ok(RunningIncidents { service, tasks })
}

/// The web pages' edge: reporting's live read model and audit views, checked with the same
/// authenticator as the gRPC layer. Only where the bus runs the reporting projection.
fn web_edge(authenticator: &Authenticator, log: &Arc<dyn EventLog>, bus: &Bus) -> Option<haven_gateway::WebEdge> {
    Some(haven_gateway::WebEdge {
        authenticator: authenticator.clone(),
        view: bus.reporting.clone()?,
        audit: haven_reporting::Audit::new(Arc::clone(log), haven_reporting::Limits::default()),
    })
}

/// `haven.v1.Reporting` on the projection the bus feeds, behind the same authorisation layer
/// as identity. Only where the bus runs the reporting projection.
fn reporting_service(
    authenticator: &Authenticator,
    log: &Arc<dyn EventLog>,
    bus: &Bus,
) -> Option<AuthService<haven_proto::v1::reporting_server::ReportingServer<haven_reporting::grpc::ReportingService>>> {
    let view = bus.reporting.clone()?;
    let service =
        haven_reporting::grpc::ReportingService::new(view, Arc::clone(log), haven_reporting::Limits::default());
    let layer = AuthLayer::new(authenticator.clone());
    Some(tower_layer::Layer::layer(&layer, service.into_server()))
}

/// Accepted connections with Nagle's algorithm off: small raft and append messages go out at
/// once instead of waiting on the peer's delayed ACK (about 40 ms each time).
fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures_util::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
        let stream = stream?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

/// Keeps `eventlog` readiness true to whether the remote log answers.
async fn watch_remote_log(log: GrpcEventLog, readiness: haven_runtime::ReadinessHandle, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        match log.head().await {
            Ok(_) => readiness.set_ready(),
            Err(_) => readiness.set_not_ready("the event log does not answer"),
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            () = shutdown.triggered() => return,
        }
    }
}

/// The bus as this process runs it.
struct Bus {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    counts: Option<EventCounts>,
    /// Reporting's read model, live from the bus (ADR 0015).
    reporting: Option<haven_reporting::ReportView>,
}

/// Without `nats_url`: the embedded bus, projections fed by the log's subscription. With it:
/// a relay where the log runs (one publishes at a time, by lease) and projections on JetStream.
async fn start_bus(
    config: &HavenConfig,
    part: Part,
    nats: Option<Nats>,
    log: &Arc<dyn EventLog>,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> anyhow::Result<Bus> {
    let bus_metrics = BusMetrics::default();
    bus_metrics.register(metrics);
    let mut tasks = Vec::new();
    if let Some(nats) = &nats
        && part.runs_log()
    {
        let checkpoint = CheckpointFile::new(config.data_dir.join("bus").join("relay.checkpoint"));
        let relay = Relay::new(Arc::clone(log), nats.clone(), RelayConfig::new(checkpoint), bus_metrics.clone());
        tasks.push(tokio::spawn(relay.run(shutdown.clone())));
    }
    if part == Part::EventLog {
        return Ok(Bus { tasks, counts: None, reporting: None });
    }
    let counts = EventCounts::new(metrics);
    let consumer = Consumer::new(counts.clone(), Arc::clone(log), bus_metrics.clone());
    let mut progress = consumer.progress();
    tasks.push(spawn_consumer(consumer, nats.clone(), log, shutdown));
    // Reporting (its projection, gRPC service and web pages) runs in `haven up` only.
    let mut report_view = None;
    if part.runs(Part::Reporting) {
        let reporting = haven_reporting::ReportingProjection::new();
        report_view = Some(reporting.view());
        tasks.push(spawn_consumer(Consumer::new(reporting, Arc::clone(log), bus_metrics), nats, log, shutdown));
    }
    // Give the banner the counts of what is already in the log (not a readiness condition).
    if let Ok(head) = log.head().await {
        let caught_up = progress.wait_for(|checkpoint| *checkpoint >= head.next_position);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), caught_up).await;
    }
    Ok(Bus { tasks, counts: Some(counts), reporting: report_view })
}

/// The connection to NATS when `nats_url` is set (one per process, shared by the bus and
/// ingest's buffer).
async fn connect_nats(config: &HavenConfig) -> anyhow::Result<Option<Nats>> {
    let Some(url) = &config.nats_url else { return Ok(None) };
    let url = NatsUrl::parse(url).map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
    let nats = Nats::connect(&url)
        .await
        .with_context(|| format!("connecting to NATS at {} (nats_url / --nats)", url.as_str()))?;
    Ok(Some(nats))
}

/// Runs one projection's consumer on the bus this process uses until shutdown. Projections
/// here live in memory and rebuild from position 0 on every start.
fn spawn_consumer<P: haven_bus::Projection + 'static>(
    consumer: Consumer<P>,
    nats: Option<Nats>,
    log: &Arc<dyn EventLog>,
    shutdown: &Shutdown,
) -> tokio::task::JoinHandle<()> {
    let stop = shutdown.clone();
    match nats {
        Some(nats) => tokio::spawn(async move { drop(consumer.run(NatsSource::new(nats), stop).await) }),
        None => {
            let source = EmbeddedSource::new(Arc::clone(log));
            tokio::spawn(async move { drop(consumer.run(source, stop).await) })
        }
    }
}

fn print_welcome(config: &HavenConfig, part: Part, seed_demo: bool, bus: &Bus) {
    let http = config.http_addr;
    let grpc = config.grpc_addr;
    let data = config.data_dir.display();
    match part {
        Part::Everything => println!("haven is up. Data in {data}. Ctrl-C stops it."),
        Part::EventLog => {
            println!(
                "haven event log node {} is serving at {}. Data in {data}. Ctrl-C stops it.\n\
                 A new cluster starts with `haven log cluster init --grpc-addr {}` (add --member ID=ADDR per voter);\n\
                 more nodes join with `haven log cluster add-learner` and `promote` against the leader.",
                config.node_id, config.grpc_addr, config.grpc_addr
            )
        }
        Part::Identity | Part::Incidents | Part::Custody | Part::Ingest | Part::Reporting => println!(
            "haven {} is serving against the log at {}. Ctrl-C stops it.",
            part.services(),
            config.eventlog_url
        ),
    }
    println!("  readiness     curl http://{http}/readyz");
    println!("  metrics       curl http://{http}/metrics");
    println!("  HTTP API      curl http://{http}/openapi.json");
    println!("  gRPC          {grpc}: {}, grpc.health.v1, reflection", part.services());
    if seed_demo && part.runs(Part::Identity) {
        println!("  demo trust    5 invented schools, 10 invented people, 6 invented learners, AUP version 1;");
        println!("                list the schools: grpcurl -plaintext {grpc} haven.v1.Identity/ListSchools");
        println!(
            "  sign in       haven sign-in --grpc-addr {grpc} --login kestrel-dsl@brightwater.example  (password: {})",
            demo::DEMO_PASSWORD
        );
        println!("                people: {}", demo::DEMO_PEOPLE.map(|person| person.id).join(", "));
        if part == Part::Everything {
            println!(
                "  demo cases    3 cases, 3 concerns, 1 critical alert awaiting acknowledgement (escalates after 15 school minutes);"
            );
            println!(
                "                with a DSL's token: curl -H \"authorization: Bearer $TOKEN\" http://{http}/api/v1/cases"
            );
        }
        println!("  web           http://{http}/  (the trust lead: demo-lead@brightwater.example, same password)");
    }
    match &config.nats_url {
        None => println!("  bus           embedded: projections fed straight from the log (--nats URL for NATS)"),
        Some(url) if !part.runs_log() => {
            println!("  bus           NATS at {url}: projections consume HAVEN_EVENTS")
        }
        Some(url) => println!("  bus           NATS at {url}: the relay publishes the log to HAVEN_EVENTS"),
    }
    if let Some(counts) = &bus.counts {
        let counts = counts.counts();
        let listed: Vec<String> = counts.iter().map(|(event_type, count)| format!("{event_type} {count}")).collect();
        let listed = if listed.is_empty() { "none yet".to_owned() } else { listed.join(", ") };
        println!("  events seen   {listed}   (live: curl -s http://{http}/metrics | grep bus_demo_events)");
    }
    if part.runs_log() {
        println!("  after a stop  haven log verify --data-dir {data}   (recomputes the hash chain)");
    }
}
