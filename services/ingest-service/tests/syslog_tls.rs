//! Syslog over TLS (RFC 5425) end to end: certificates made for the test by the `openssl`
//! CLI, a real TLS listener on loopback, a real log. Lines sent over TLS become breaches and
//! alerts; a plaintext sender (or one without the client certificate the source asks for) is
//! refused, counted, and the listener goes on; a bad certificate file stops the start, named.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventFilter, EventLog};
use haven_ingest_service::config::TlsSpec;
use haven_ingest_service::{IngestConfig, SourceSpec, StartError, demo};
use haven_kernel::Position;
use haven_runtime::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Runs `openssl` in `dir` with `args` (split at spaces; `CN=` values have none).
fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split(' ').collect();
    let output = Command::new("openssl").current_dir(dir).args(&args).output().expect("the openssl CLI");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A new P-256 key, unencrypted.
const NEW_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// A test CA (`ca.pem`, `ca.key`), then `server` and `client` certificates and keys signed by
/// it for `localhost` and 127.0.0.1, each usable for its side only.
fn certificates(dir: &Path) {
    openssl(dir, &format!("req -x509 {NEW_KEY} -keyout ca.key -out ca.pem -days 2 -subj /CN=Haven-test-CA"));
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let extensions = format!(
            "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage={usage}\n"
        );
        std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
        openssl(dir, &format!("req {NEW_KEY} -keyout {name}.key -out {name}.csr -subj /CN=localhost"));
        openssl(
            dir,
            &format!(
                "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out {name}.pem -extfile {name}.ext"
            ),
        );
    }
}

fn source(tls: TlsSpec) -> SourceSpec {
    SourceSpec {
        school_id: "kestrel-primary".into(),
        source_id: "fortigate-1".into(),
        format: Some("fortigate".into()),
        timezone: "Europe/London".into(),
        syslog_tcp: Some("127.0.0.1:0".parse().unwrap()),
        syslog_udp: None,
        buffer: false,
        tls: Some(tls),
    }
}

fn server_tls(dir: &Path, client_ca: bool) -> TlsSpec {
    TlsSpec {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_ca: client_ca.then(|| dir.join("ca.pem")),
    }
}

async fn start(
    dir: &Path,
    log: &Arc<dyn EventLog>,
    tls: TlsSpec,
    metrics: &haven_runtime::Metrics,
    shutdown: &Shutdown,
) -> Result<haven_ingest_service::Running, StartError> {
    let config = IngestConfig { sources: vec![source(tls)], ..IngestConfig::default() };
    haven_ingest_service::start(
        &config,
        Arc::clone(log),
        &dir.join("ingest.key"),
        metrics,
        &haven_runtime::Readiness::default(),
        shutdown.clone(),
    )
    .await
}

/// A client that trusts the test CA, with the client certificate when `with_cert`.
fn connector(dir: &Path, with_cert: bool) -> TlsConnector {
    connector_of(dir, with_cert, &[&tokio_rustls::rustls::version::TLS13, &tokio_rustls::rustls::version::TLS12])
}

/// The same, speaking only `versions`.
fn connector_of(
    dir: &Path,
    with_cert: bool,
    versions: &[&'static tokio_rustls::rustls::SupportedProtocolVersion],
) -> TlsConnector {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_cert {
        let chain = vec![CertificateDer::from_pem_file(dir.join("client.pem")).unwrap()];
        builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap()).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    TlsConnector::from(Arc::new(config))
}

/// Sends `text` over TLS to `addr`, and waits until the server has read it and closed.
async fn send_tls(connector: &TlsConnector, addr: std::net::SocketAddr, text: &str) -> std::io::Result<()> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    tls.write_all(text.as_bytes()).await?;
    tls.flush().await?;
    tls.shutdown().await?;
    // TLS 1.3 reports a refused client certificate after the client's handshake completes:
    // the server's alert arrives on the next read.
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).await.map(|_| ())
}

/// Certificates, a log and ingest with one TLS source (asking for a client certificate when
/// `client_ca`).
struct Fixture {
    dir: tempfile::TempDir,
    local: LocalEventLog,
    log: Arc<dyn EventLog>,
    metrics: haven_runtime::Metrics,
    shutdown: Shutdown,
    running: haven_ingest_service::Running,
}

impl Fixture {
    async fn start(client_ca: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        certificates(dir.path());
        let local = LocalEventLog::open(&dir.path().join("log"), EventLogConfig::default()).unwrap();
        let log: Arc<dyn EventLog> = Arc::new(local.clone());
        let (metrics, shutdown) = (haven_runtime::Metrics::default(), Shutdown::default());
        let running = start(dir.path(), &log, server_tls(dir.path(), client_ca), &metrics, &shutdown).await.unwrap();
        Fixture { dir, local, log, metrics, shutdown, running }
    }
}

async fn stop(shutdown: Shutdown, running: haven_ingest_service::Running, local: LocalEventLog) {
    shutdown.trigger();
    for task in running.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    local.close().await;
}

async fn breaches(log: &dyn EventLog) -> usize {
    let filter = EventFilter { event_type_prefixes: vec!["ingest.BreachObserved".into()], ..Default::default() };
    log.read_all(Position(0), 10_000, &filter).await.unwrap().events.len()
}

async fn wait_for_breaches(log: &dyn EventLog, count: usize) {
    for _ in 0..400 {
        if breaches(log).await >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the log never held {count} breaches");
}

/// Waits for `count` breaches, then checks no more arrive.
async fn settles_at(log: &dyn EventLog, count: usize, why: &str) {
    wait_for_breaches(log, count).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(breaches(log).await, count, "{why}");
}

async fn wait_for_failures(metrics: &haven_ingest_service::IngestMetrics, count: u64) {
    for _ in 0..400 {
        if metrics.tls_handshake_failures_count("kestrel-primary") >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{count} failed handshakes were never counted");
}

fn lines(devices: std::ops::Range<u32>) -> String {
    let now = jiff::Timestamp::now();
    devices
        .map(|device| {
            demo::fortigate_line(now, 20, device, "Gambling", &format!("site-{device}.example"), device.into())
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_over_tls_become_breaches_and_a_plaintext_sender_is_refused_and_counted() {
    let Fixture { dir, local, log, metrics, shutdown, running } = Fixture::start(false).await;
    let addr = running.sources[0].syslog_tcp.unwrap();
    assert!(running.sources[0].tls);

    // A self-harm search over TLS, RFC 5424 header and octet-counted framing: breach and alert.
    let self_harm = demo::fortigate_line(jiff::Timestamp::now(), 20, 17, "Self-harm", "dark-thoughts.example", 1);
    let framed = format!("<134>1 2026-12-07T09:00:00Z fw-kestrel FortiGate - - - {self_harm}");
    let text = format!("{} {framed}{}", framed.len(), lines(100..103));
    send_tls(&connector(dir.path(), false), addr, &text).await.unwrap();
    wait_for_breaches(log.as_ref(), 4).await;
    let filter =
        EventFilter { event_type_prefixes: vec!["ingest.SafeguardingAlertRaised".into()], ..Default::default() };
    assert_eq!(log.read_all(Position(0), 100, &filter).await.unwrap().events.len(), 1, "the self-harm alert");

    // Plain syslog against the TLS port: no TLS handshake, so nothing is read; it is counted.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(lines(200..210).as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut rest)).await;
    wait_for_failures(running.pipeline.metrics(), 1).await;
    let text = metrics.encode();
    assert!(text.contains("haven_ingest_tls_handshake_failures_total{school=\"kestrel-primary\"} 1"), "{text}");
    assert!(!text.contains("127.0.0.1"), "no address in a label");

    // The listener goes on: TLS lines after the refusal still land; the plaintext ones never do.
    send_tls(&connector(dir.path(), false), addr, &lines(300..302)).await.unwrap();
    settles_at(log.as_ref(), 6, "nothing of the plaintext sender's lines").await;
    // A sender that speaks only TLS 1.2 (RFC 5425's mandatory version) is read too.
    let tls12 = connector_of(dir.path(), false, &[&tokio_rustls::rustls::version::TLS12]);
    send_tls(&tls12, addr, &lines(400..401)).await.unwrap();
    settles_at(log.as_ref(), 7, "the TLS 1.2 sender's line").await;

    stop(shutdown, running, local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_a_sender_holding_a_certificate_it_signed_is_read() {
    let Fixture { dir, local, log, metrics: _, shutdown, running } = Fixture::start(true).await;
    let addr = running.sources[0].syslog_tcp.unwrap();

    let refused = send_tls(&connector(dir.path(), false), addr, &lines(0..3)).await;
    assert!(refused.is_err(), "a sender without a client certificate is refused");
    wait_for_failures(running.pipeline.metrics(), 1).await;
    send_tls(&connector(dir.path(), true), addr, &lines(10..12)).await.unwrap();
    settles_at(log.as_ref(), 2, "only the certified sender's lines").await;

    stop(shutdown, running, local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_or_key_file_stops_the_start_naming_the_source_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    std::fs::write(dir.path().join("garbage.pem"), "this is not PEM\n").unwrap();
    let local = LocalEventLog::open(&dir.path().join("log"), EventLogConfig::default()).unwrap();
    let log: Arc<dyn EventLog> = Arc::new(local.clone());
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let cases = [
        (TlsSpec { cert: path("missing.pem"), ..server_tls(dir.path(), false) }, "missing.pem", "cannot read"),
        (TlsSpec { cert: path("garbage.pem"), ..server_tls(dir.path(), false) }, "garbage.pem", "no PEM certificate"),
        (TlsSpec { key: path("garbage.pem"), ..server_tls(dir.path(), false) }, "garbage.pem", "not a PEM private key"),
        (TlsSpec { key: path("client.key"), ..server_tls(dir.path(), false) }, "client.key", "does not go with"),
        (TlsSpec { client_ca: Some(path("garbage.pem")), ..server_tls(dir.path(), false) }, "garbage.pem", "no PEM"),
    ];
    for (tls, file, reason) in cases {
        let (metrics, shutdown) = (haven_runtime::Metrics::default(), Shutdown::default());
        let error = start(dir.path(), &log, tls, &metrics, &shutdown).await.unwrap_err().to_string();
        assert!(
            error.starts_with("ingest.sources[0].tls (kestrel-primary/fortigate-1): ")
                && error.contains(file)
                && error.contains(reason),
            "{error}"
        );
        shutdown.trigger();
    }
    assert_eq!(log.head().await.unwrap().next_position.0, 0, "nothing written");
    local.close().await;
}
