//! `haven up`: the embedded deployment. One event log on sled in the data directory, every
//! gRPC service on one port (with gRPC health and reflection), and the HTTP gateway.
//!
//! ```text
//!  start: listen on both ports ─▶ open the log ─▶ seed the demo (--demo) ─▶ serve
//!         readiness: eventlog (open) · identity (directory caught up) · gateway (serving)
//!  SIGINT/SIGTERM ─▶ stop accepting ─▶ in-flight requests finish (grace period)
//!                 ─▶ the log's writer drains its queue and fsyncs ─▶ exit 0
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use haven_eventlog::LocalEventLog;
use haven_eventlog::grpc::EventLogService;
use haven_eventlog_client::EventLog;
use haven_gateway::GatewayState;
use haven_identity::{IdentityApp, IdentityService, SchoolDirectory, demo};
use haven_proto::v1::event_log_server::EventLogServer;
use haven_proto::v1::identity_server::IdentityServer;
use haven_runtime::{Metrics, Readiness, Shutdown, listen, wait_for_stop_signal};

use crate::config::HavenConfig;

pub async fn run(config: HavenConfig, seed_demo: bool) -> anyhow::Result<ExitCode> {
    let grpc_listener = listen(config.grpc_addr, "--grpc-addr / grpc_addr").await?;
    let http_listener = listen(config.http_addr, "--http-addr / http_addr").await?;
    let readiness = Readiness::default();
    let metrics = Metrics::default();
    let shutdown = Shutdown::default();
    let log_ready = readiness.register("eventlog", "opening");
    let identity_ready = readiness.register("identity", "school directory catching up");
    let gateway_ready = readiness.register("gateway", "starting");

    let log = LocalEventLog::open(&config.data_dir.join("eventlog"), config.eventlog.clone())
        .with_context(|| format!("opening the event log in {}", config.data_dir.display()))?;
    log.register_metrics(&metrics);
    log_ready.set_ready();
    let shared_log: Arc<dyn EventLog> = Arc::new(log.clone());
    let identity = IdentityApp::new(Arc::clone(&shared_log));
    if seed_demo {
        let report = demo::seed(&identity)
            .await
            .context("seeding the demo trust")?;
        tracing::info!(
            written = report.written,
            already_present = report.already_present,
            "demo trust seeded"
        );
    }
    let directory = SchoolDirectory::default();
    let directory_task = tokio::spawn(directory.clone().follow(
        Arc::clone(&shared_log),
        identity_ready,
        shutdown.clone(),
    ));

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<EventLogServer<EventLogService>>()
        .await;
    health_reporter
        .set_serving::<IdentityServer<IdentityService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(haven_proto::v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;
    let grpc = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(EventLogService::new(Arc::clone(&shared_log)).into_server())
        .add_service(IdentityService::new(identity, directory).into_server())
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            shutdown.triggered(),
        );
    let http = haven_gateway::router(GatewayState {
        readiness: readiness.clone(),
        metrics,
    });
    let http = axum::serve(http_listener, http).with_graceful_shutdown(shutdown.triggered());
    let grpc_task = tokio::spawn(grpc);
    let http_task = tokio::spawn(async move { http.await });
    gateway_ready.set_ready();
    print_welcome(&config, seed_demo);

    wait_for_stop_signal().await;
    tracing::info!("stopping");
    shutdown.trigger();
    // In-flight requests get the grace period; long-lived streams (subscriptions) are cut at
    // its end, so a stop never hangs on a client that does not hang up.
    let grace = std::time::Duration::from_millis(config.shutdown_grace_ms);
    let servers = async { tokio::join!(grpc_task, http_task, directory_task) };
    match tokio::time::timeout(grace, servers).await {
        Ok((grpc_result, http_result, _directory)) => {
            grpc_result
                .context("gRPC server task")?
                .context("gRPC server")?;
            http_result
                .context("HTTP server task")?
                .context("HTTP server")?;
        }
        Err(_elapsed) => {
            tracing::warn!(
                grace_ms = config.shutdown_grace_ms,
                "connections still open after the grace period; closing them"
            )
        }
    }
    // Every acknowledged append is already fsynced; this drains what is queued and stops the writer.
    log.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn print_welcome(config: &HavenConfig, seed_demo: bool) {
    let http = config.http_addr;
    let grpc = config.grpc_addr;
    let data = config.data_dir.display();
    println!("haven is up. Data in {data}. Ctrl-C stops it.");
    println!("  readiness     curl http://{http}/readyz");
    println!("  metrics       curl http://{http}/metrics");
    println!("  HTTP API      curl http://{http}/openapi.json");
    println!(
        "  gRPC          {grpc}: haven.v1.EventLog, haven.v1.Identity, grpc.health.v1, reflection"
    );
    if seed_demo {
        println!("  demo trust    5 invented schools with pupil numbers, written as events;");
        println!(
            "                list them: grpcurl -plaintext {grpc} haven.v1.Identity/ListSchools"
        );
    }
    println!("  after a stop  haven log verify --data-dir {data}   (recomputes the hash chain)");
}
