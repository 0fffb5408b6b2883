//! The shared conformance suite against the in-process log and against the gRPC client
//! talking to a real server on a loopback port.

use std::sync::Arc;
use std::time::Duration;

use haven_eventlog::grpc::EventLogService;
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventLog, GrpcEventLog, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_log_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalEventLog::open(dir.path(), EventLogConfig::default()).unwrap();
    conformance::run_all(&log).await;
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalEventLog::open(dir.path(), EventLogConfig::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = EventLogService::new(Arc::new(log.clone()) as Arc<dyn EventLog>).into_server();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        async {
            let _ = stopped.await;
        },
    ));
    let client = GrpcEventLog::connect_lazy(&format!("http://{addr}"), Duration::from_secs(10)).unwrap();
    conformance::run_all(&client).await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    log.close().await;
}
