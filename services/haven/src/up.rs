//! `haven up`: the embedded deployment. One event log on sled in the data directory, every
//! gRPC service on one port (with gRPC health and reflection), and the HTTP gateway.
//!
//! ```text
//!  SIGINT/SIGTERM ──▶ shutdown ──▶ gRPC + HTTP stop accepting, finish in-flight requests
//!                                 └▶ the log's writer drains its queue and fsyncs, then exit 0
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use haven_eventlog::LocalEventLog;
use haven_eventlog::grpc::EventLogService;
use haven_eventlog_client::EventLog;
use tokio::sync::watch;

use crate::config::HavenConfig;

async fn bind(addr: std::net::SocketAddr, flag: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} ({flag}); is another haven running? choose another address with {flag}")
    })
}

pub async fn run(args: HavenConfig) -> anyhow::Result<ExitCode> {
    let grpc_listener = bind(args.grpc_addr, "--grpc-addr").await?;
    let http_listener = bind(args.http_addr, "--http-addr").await?;
    let log = LocalEventLog::open(&args.data_dir.join("eventlog"), args.eventlog.clone())
        .with_context(|| format!("opening the event log in {}", args.data_dir.display()))?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<haven_proto::v1::event_log_server::EventLogServer<EventLogService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(haven_proto::v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;

    let (stop, stopped) = watch::channel(false);
    let wait_stop = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };

    let grpc = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(EventLogService::new(Arc::new(log.clone()) as Arc<dyn EventLog>).into_server())
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            wait_stop(stopped.clone()),
        );
    let ready_log = log.clone();
    let http = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let log = ready_log.clone();
                async move {
                    match log.head().await {
                        Ok(_) => (StatusCode::OK, "ready\n"),
                        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "event log not ready\n"),
                    }
                }
            }),
        );
    let http = axum::serve(http_listener, http).with_graceful_shutdown(wait_stop(stopped.clone()));

    eprintln!(
        "haven is up: gRPC on {} (health, reflection, haven.v1.EventLog), HTTP on http://{}/readyz; data in {}. Ctrl-C stops it.",
        args.grpc_addr,
        args.http_addr,
        args.data_dir.display()
    );
    let grpc_task = tokio::spawn(grpc);
    let http_task = tokio::spawn(async move { http.await });
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop.send(true);
    // In-flight requests get the grace period; long-lived streams (subscriptions) are cut at
    // its end, so a stop never hangs on a client that does not hang up.
    let grace = std::time::Duration::from_millis(args.shutdown_grace_ms);
    let servers = async { tokio::join!(grpc_task, http_task) };
    match tokio::time::timeout(grace, servers).await {
        Ok((grpc_result, http_result)) => {
            grpc_result
                .context("gRPC server task")?
                .context("gRPC server")?;
            http_result
                .context("HTTP server task")?
                .context("HTTP server")?;
        }
        Err(_elapsed) => {
            tracing::warn!(
                grace_ms = args.shutdown_grace_ms,
                "connections still open after the grace period; closing them"
            )
        }
    }
    // Every acknowledged append is already fsynced; this drains what is queued and stops the writer.
    log.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops haven");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
