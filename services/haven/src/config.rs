//! The one configuration of a `haven` process: defaults < config file < `HAVEN_*` environment
//! variables < command-line flags. Unknown keys are refused wherever they come from, and a bad
//! value stops the start with a message naming the key and where it came from.
//!
//! Environment variables nest with `__`: `HAVEN_EVENTLOG__CACHE_BYTES=67108864` sets
//! `eventlog.cache_bytes`. `HAVEN_CONFIG` names the config file (same as `--config`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use haven_eventlog::EventLogConfig;
use haven_identity::IdentityConfig;
use haven_incidents::IncidentsConfig;
use serde::{Deserialize, Serialize};

/// Everything a `haven` process can be configured with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HavenConfig {
    /// Where the event log and every other component keep their data.
    pub data_dir: PathBuf,
    /// Address of the one gRPC port serving every service, health and reflection.
    pub grpc_addr: SocketAddr,
    /// Address of the HTTP gateway (`/healthz`, `/readyz`, `/metrics`).
    pub http_addr: SocketAddr,
    /// Log filter: a level (`info`) or per-crate directives (`haven_eventlog=debug,info`).
    pub log: String,
    /// Where services run with `haven serve <service>` reach the event log.
    pub eventlog_url: String,
    /// Where `haven serve reporting`'s web pages reach identity (to sign people in).
    pub identity_url: String,
    /// NATS for domain events (`nats://host:port`). Unset: the embedded bus, fed straight
    /// from the log. Set: processes that run the log relay events to JetStream, and
    /// projections consume them from there.
    pub nats_url: Option<String>,
    /// An OTLP/gRPC receiver (`http://host:4317`, usually an OpenTelemetry Collector) that
    /// gets every span (`HAVEN_OTLP_ENDPOINT`). Unset: no spans are exported (ADR 0021).
    pub otlp_endpoint: Option<String>,
    /// How long in-flight requests may take to finish after a shutdown signal, in ms.
    pub shutdown_grace_ms: u64,
    /// This event-log node's id in its raft cluster (1 or more). Other nodes reach it at
    /// `grpc_addr`.
    pub node_id: u64,
    /// The local address this node's connections to other log nodes leave from, for hosts
    /// with several addresses or firewall rules that name the source. Unset: the OS chooses.
    pub raft_source_ip: Option<std::net::IpAddr>,
    /// The deployment's internal key (32+ random bytes, mode 0600, the same file in every
    /// process): the log's own gRPC (log, raft, cluster, backup) then refuses callers without
    /// the credential derived from it, and this process sends it. Unset: a log node listening
    /// beyond loopback makes one at `<data_dir>/internal.key`; otherwise none is asked.
    pub internal_key_file: Option<PathBuf>,
    /// The event log's limits and tuning.
    pub eventlog: EventLogConfig,
    /// Identity: token lifetimes and the password hashing cost.
    pub identity: IdentityConfig,
    /// Custody: the school day its end-of-day sweep follows.
    pub custody: haven_custody::CustodyConfig,
    /// Ingest: the alert rules' windows, batching and each school's log sources.
    pub ingest: haven_ingest_service::IngestConfig,
    /// Incidents' settings (`incidents.escalate_after_s`).
    pub incidents: IncidentsConfig,
}

impl Default for HavenConfig {
    fn default() -> Self {
        HavenConfig {
            data_dir: PathBuf::from("./haven-data"),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 7070)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log: "info".into(),
            eventlog_url: "http://127.0.0.1:7070".into(),
            identity_url: "http://127.0.0.1:7070".into(),
            nats_url: None,
            otlp_endpoint: None,
            shutdown_grace_ms: 1_500,
            node_id: 1,
            raft_source_ip: None,
            internal_key_file: None,
            eventlog: EventLogConfig::default(),
            identity: IdentityConfig::default(),
            custody: haven_custody::CustodyConfig::default(),
            ingest: haven_ingest_service::IngestConfig::default(),
            incidents: IncidentsConfig::default(),
        }
    }
}

/// Values given as flags; `None` leaves the lower layers' value.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eventlog_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_source_ip: Option<std::net::IpAddr>,
}

impl HavenConfig {
    /// Loads the layers in order of precedence and checks the result.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(HavenConfig::default()));
        if let Some(file) = file {
            if !file.is_file() {
                anyhow::bail!("config file {} does not exist or is not a file", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: HavenConfig = figment
            .merge(Env::prefixed("HAVEN_").ignore(&["CONFIG"]).split("__"))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
        config
            .eventlog
            .validate()
            .map_err(|(field, reason)| anyhow::anyhow!("invalid configuration: eventlog.{field} {reason}"))?;
        config
            .identity
            .validate()
            .map_err(|(field, reason)| anyhow::anyhow!("invalid configuration: identity.{field} {reason}"))?;
        config
            .custody
            .validate()
            .map_err(|(field, reason)| anyhow::anyhow!("invalid configuration: custody.{field} {reason}"))?;
        config.ingest.validate().map_err(|(key, reason)| anyhow::anyhow!("invalid configuration: {key} {reason}"))?;
        config
            .incidents
            .validate()
            .map_err(|(field, reason)| anyhow::anyhow!("invalid configuration: incidents.{field} {reason}"))?;
        if config.node_id == 0 {
            anyhow::bail!("invalid configuration: node_id must be 1 or more");
        }
        if let Some(url) = &config.nats_url {
            haven_bus::NatsUrl::parse(url).map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
        }
        if let Some(endpoint) = &config.otlp_endpoint {
            haven_runtime::check_otlp_endpoint(endpoint)?;
        }
        if config.shutdown_grace_ms == 0 {
            anyhow::bail!("invalid configuration: shutdown_grace_ms must be greater than 0");
        }
        config.log.parse::<tracing_subscriber::filter::Targets>().with_context(|| {
            format!("invalid configuration: log filter {:?} is not a level or directive list", config.log)
        })?;
        Ok(config)
    }
}
