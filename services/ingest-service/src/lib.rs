//! Ingest's service half (DESIGN.md §5 ingest, policy 7.3; issue 7): the front door for the
//! breach streams of every school's filters and proxies.
//!
//! ```text
//!  syslog TCP, TLS or UDP listener (per source) ───┐
//!  Ingest.SubmitBreaches (school-system token) ─────┼─▶ Pipeline: parse (haven-ingest) ─▶ collapse
//!                                                   │     ─▶ rules ─▶ one append batch:
//!                                                   │        ingest.BreachObserved, ingest.SafeguardingAlertRaised
//!  Ingest.ParseLines (check an export, no write) ───┘      ▲ attribution: logins (subject-*),
//!  Ingest.RecordDeviceLeases ─▶ leases-<school> ─────────────┘ leases (leases-*), from the log
//!
//!  Ingest.{Request,Approve,Reject,Apply}FilteringChange, RecordFilterCheck, ReportOverblocking,
//!  RecordFilteringReview ─▶ governance: decide ─▶ filterchange-<id> · filtering-<school>
//!  ListFilteringChanges, GetFilteringReport ◀─ governance index ◀─ the log
//!
//!  Ingest.SetAlertRules ─▶ guard rails ─▶ alertrules-trust · alertrules-school-<school>
//!  Ingest.GetAlertRules ◀─ the log;  the pipeline's RuleBook ◀─ followed from the log
//! ```
//! Parsing is `haven-ingest`'s (pure, no I/O); this crate adds I/O, attribution of lines to a
//! school (a listener's binding or the caller's token), event ids derived from the lines (so a
//! resent line is not recorded twice), the alert rules and the metrics.

pub mod attribution;
pub mod buffer;
pub mod config;
pub mod demo;
pub mod governance;
pub mod grpc;
pub mod inputs;
pub mod key;
pub mod metrics;
pub mod pipeline;
pub mod quarantine;
pub mod rules;
pub mod tls;

pub use config::{IngestConfig, SourceSpec};
pub use grpc::IngestService;
pub use inputs::BatchSettings;
pub use key::PathKey;
pub use metrics::IngestMetrics;
pub use pipeline::{Line, Pipeline, Source, Summary};
pub use rules::RuleSettings;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use haven_eventlog_client::EventLog;
use haven_runtime::{Readiness, Shutdown};

/// A source whose listeners are bound: where each actually listens (a configured port 0 gets
/// a free one).
#[derive(Clone, Debug)]
pub struct BoundSource {
    pub school_id: String,
    pub source_id: String,
    pub syslog_tcp: Option<SocketAddr>,
    pub syslog_udp: Option<SocketAddr>,
    /// Whether the TCP listener speaks TLS.
    pub tls: bool,
}

/// Ingest, running.
#[derive(Debug)]
pub struct Running {
    pub pipeline: Arc<Pipeline>,
    pub service: IngestService,
    /// Records and reads the alert rules (the demo seeds through it).
    pub rules: rules::RulesApp,
    pub sources: Vec<BoundSource>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Why ingest could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}: {1}")]
    Config(String, String),
    #[error("the path key: {0}")]
    Key(#[from] key::KeyError),
    #[error("ingest.sources[{index}]: cannot listen on {addr}: {reason}")]
    Listen { index: usize, addr: SocketAddr, reason: String },
    #[error("ingest.sources[{index}].tls ({school_id}/{source_id}): {error}")]
    Tls { index: usize, school_id: String, source_id: String, error: tls::TlsError },
    #[error("reading the quarantine's counts back from the event log: {0}")]
    Quarantine(String),
    #[error("reading the alert rules from the event log: {0}")]
    Rules(String),
}

/// Starts the pipeline, the gRPC service (with the filtering record's read model, readiness
/// `ingest-governance`) and every configured source's listeners and worker.
pub async fn start(
    config: &IngestConfig,
    log: Arc<dyn EventLog>,
    key_file: &Path,
    metrics: &haven_runtime::Metrics,
    readiness: &Readiness,
    shutdown: Shutdown,
) -> Result<Running, StartError> {
    config.validate().map_err(|(key, reason)| StartError::Config(key, reason))?;
    let key = PathKey::open(key_file)?;
    let settings = RuleSettings {
        repeat_window: jiff::SignedDuration::from_secs(config.repeat_window_s as i64),
        repeat_threshold: config.repeat_threshold,
        critical_ack: jiff::SignedDuration::from_mins(config.critical_ack_minutes as i64),
        vulnerable_raise: config.vulnerable_raise,
        ..RuleSettings::default()
    };
    let ingest_metrics = IngestMetrics::default();
    ingest_metrics.register(metrics);
    let pipeline = Arc::new(Pipeline::new(Arc::clone(&log), key, settings, ingest_metrics));
    // Before any line is taken, so no refusal is counted both live and read back.
    let mut book = quarantine::QuarantineBook::new(jiff::Timestamp::now());
    quarantine::restore(&mut book, log.as_ref()).await.map_err(|e| StartError::Quarantine(e.to_string()))?;
    *pipeline.quarantine() = book;
    pipeline.rule_book().restore(log.as_ref()).await.map_err(|e| StartError::Rules(e.to_string()))?;
    let batch = BatchSettings {
        max_lines: config.batch_lines,
        linger: std::time::Duration::from_millis(config.linger_ms),
        queue_lines: config.queue_lines,
    };
    let mut tasks = Vec::new();
    let mut sources = Vec::new();
    for (index, spec) in config.sources.iter().enumerate() {
        // Before anything of this source runs: a bad certificate stops the start, named.
        let tls = match &spec.tls {
            Some(tls_spec) => Some(tls::acceptor(tls_spec).map_err(|error| StartError::Tls {
                index,
                school_id: spec.school_id.clone(),
                source_id: spec.source_id.clone(),
                error,
            })?),
            None => None,
        };
        let school = haven_kernel::SchoolId::parse(&spec.school_id).expect("validated");
        let mut source_config = haven_ingest::SourceConfig::new(school.clone());
        source_config.format = spec.format.as_deref().map(|f| f.parse().expect("validated"));
        source_config.zone = jiff::tz::TimeZone::get(&spec.timezone).expect("validated");
        source_config.max_line_bytes = config.max_line_bytes;
        let actor = format!("syslog-{}-{}", spec.school_id, spec.source_id);
        let source = Source::new(school, &spec.source_id, source_config, actor);
        let (queue, worker) = inputs::spawn_worker(Arc::clone(&pipeline), source, batch, shutdown.clone(), None);
        tasks.push(worker);
        let listen_error =
            |addr: SocketAddr, e: std::io::Error| StartError::Listen { index, addr, reason: e.to_string() };
        let mut bound = BoundSource {
            school_id: spec.school_id.clone(),
            source_id: spec.source_id.clone(),
            syslog_tcp: None,
            syslog_udp: None,
            tls: spec.tls.is_some(),
        };
        if let Some(addr) = spec.syslog_tcp {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| listen_error(addr, e))?;
            bound.syslog_tcp = Some(listener.local_addr().map_err(|e| listen_error(addr, e))?);
            tasks.push(tokio::spawn(inputs::serve_tcp(
                listener,
                tls,
                queue.clone(),
                config.max_line_bytes,
                (pipeline.metrics().clone(), spec.school_id.clone()),
                shutdown.clone(),
            )));
        }
        if let Some(addr) = spec.syslog_udp {
            let socket = tokio::net::UdpSocket::bind(addr).await.map_err(|e| listen_error(addr, e))?;
            bound.syslog_udp = Some(socket.local_addr().map_err(|e| listen_error(addr, e))?);
            let school = spec.school_id.clone();
            tasks.push(tokio::spawn(inputs::serve_udp(socket, queue, Arc::clone(&pipeline), school, shutdown.clone())));
        }
        sources.push(bound);
    }
    tasks.push(tokio::spawn(pipeline.rule_book().clone().follow(
        Arc::clone(&log),
        readiness.register("ingest-rules", "the alert rules catching up"),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(pipeline.attribution().clone().follow(
        Arc::clone(&log),
        readiness.register("ingest-attribution", "the network logins and device leases catching up"),
        shutdown.clone(),
    )));
    let index = governance::GovernanceIndex::default();
    tasks.push(tokio::spawn(index.clone().follow(
        Arc::clone(&log),
        readiness.register("ingest-governance", "the filtering record catching up"),
        shutdown.clone(),
    )));
    let governance = grpc::Governance { app: governance::GovernanceApp::new(Arc::clone(&log)), index };
    let rules = rules::RulesApp::new(Arc::clone(&log), pipeline.rule_book().clone());
    let service = IngestService::new(Arc::clone(&pipeline), governance, rules.clone());
    Ok(Running { pipeline, service, rules, sources, tasks })
}
