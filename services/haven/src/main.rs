//! `haven`: one binary, many roles. This file only parses the command line and dispatches;
//! each subcommand wires library crates together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod backup;
mod bench;
mod bench_catchup;
mod bench_cluster;
mod bench_failover;
mod bench_ingest;
mod bench_parse;
mod bench_query;
mod bench_relay;
mod bench_rolling;
mod cluster;

/// mimalloc: reads and group commits allocate many small buffers per event; glibc's malloc
/// and free were a third of the read path's profile (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
mod config;
mod custody_verify;
mod event_counts;
mod identity_bootstrap;
mod ingest_import;
mod ingest_parse;
mod reporting_demo;
mod sign_in;
mod tail;
mod up;
mod verify;

/// Haven: an event-sourced safeguarding platform for a multi-academy trust.
#[derive(Debug, Parser)]
#[command(name = "haven", version, about, long_about = None)]
struct Cli {
    /// A TOML config file. Precedence: defaults < this file < HAVEN_* variables < flags.
    #[arg(long, global = true, env = "HAVEN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything in one process: the event log, gRPC on one port, the HTTP gateway.
    Up(UpArgs),
    /// Run one service on its own (distributed deployment).
    Serve {
        /// The service to run.
        #[arg(value_enum)]
        service: ServiceName,
        #[command(flatten)]
        args: UpArgs,
    },
    /// Print the effective configuration (defaults < file < HAVEN_* < flags) as JSON.
    Config(UpArgs),
    /// Load generators and measurements (every append fsynced before its ack).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Filtering-events ingest tools.
    Ingest {
        #[command(subcommand)]
        command: IngestCommand,
    },
    /// Sign in to identity; the password is read from standard input. Prints the tokens as JSON.
    SignIn {
        /// Identity's gRPC address.
        #[arg(long, default_value = "127.0.0.1:7070")]
        grpc_addr: SocketAddr,
        /// The login, e.g. kestrel-dsl@brightwater.example in the demo.
        #[arg(long)]
        login: String,
        /// Accept the acceptable use policy in force if it is not accepted yet (you have read it).
        #[arg(long)]
        accept_aup: bool,
    },
    /// Identity tools.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Chain-of-custody tools.
    Custody {
        #[command(subcommand)]
        command: CustodyCommand,
    },
    /// Event log tools.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
}

/// Flags of the commands that run Haven; each overrides the config file and HAVEN_*.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the event log keeps its data [default: ./haven-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address for every gRPC service, with gRPC health and reflection [default: 127.0.0.1:7070].
    /// Other log nodes reach this one here too.
    #[arg(long, visible_alias = "addr", value_name = "ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// This event-log node's id in its raft cluster, 1 or more [default: 1].
    #[arg(long, value_name = "N")]
    pub node_id: Option<u64>,
    /// The local address connections to other log nodes leave from [default: the OS chooses].
    #[arg(long, value_name = "IP")]
    pub raft_source_ip: Option<std::net::IpAddr>,
    /// Address for the HTTP gateway [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Log filter, e.g. `info` or `haven_eventlog=debug,info` [default: info].
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Where a service run with `serve` reaches the event log [default: http://127.0.0.1:7070].
    #[arg(long, value_name = "URL")]
    pub eventlog_url: Option<String>,
    /// NATS for domain events, e.g. nats://127.0.0.1:4222 [default: none, the embedded bus].
    #[arg(long = "nats", value_name = "URL")]
    pub nats_url: Option<String>,
    /// Seed a demo trust with invented schools (once; later starts find it already there).
    #[arg(long)]
    pub demo: bool,
    /// `serve eventlog`: if this node belongs to no cluster yet, start a one-node cluster of
    /// it (other nodes then join as learners). `haven up` always does.
    #[arg(long)]
    pub bootstrap: bool,
}

impl UpArgs {
    fn overrides(&self) -> config::FlagOverrides {
        config::FlagOverrides {
            data_dir: self.data_dir.clone(),
            grpc_addr: self.grpc_addr,
            http_addr: self.http_addr,
            log: self.log.clone(),
            eventlog_url: self.eventlog_url.clone(),
            node_id: self.node_id,
            nats_url: self.nats_url.clone(),
            raft_source_ip: self.raft_source_ip,
        }
    }
}

/// The services `haven serve` can run, one per process.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ServiceName {
    /// One event-log node.
    Eventlog,
    /// Identity, against the log at --eventlog-url.
    Identity,
    /// Incidents (and its escalation timer), against the log at --eventlog-url.
    Incidents,
    /// Custody (and its end-of-day sweep), against the log at --eventlog-url.
    Custody,
    /// Ingest (its configured syslog sources and haven.v1.Ingest), against the log at --eventlog-url.
    Ingest,
    /// Reporting (its projection, haven.v1.Reporting and the web pages), against the log at
    /// --eventlog-url; people sign in through identity at identity_url.
    Reporting,
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// A new deployment's trust and its first trust admin, written to the log at
    /// --eventlog-url / eventlog_url; the password is read from standard input. Runs once.
    Bootstrap {
        #[command(flatten)]
        args: identity_bootstrap::BootstrapArgs,
        /// Where the event log is [default: eventlog_url of the config, http://127.0.0.1:7070].
        #[arg(long, value_name = "URL")]
        eventlog_url: Option<String>,
    },
    /// Make a new token signing key the one that signs (trust admin; the access token is read
    /// from HAVEN_TOKEN). Keys before it verify until their tokens expire. Prints JSON.
    RotateKey {
        /// Identity's gRPC address.
        #[arg(long, default_value = "127.0.0.1:7070")]
        grpc_addr: SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Concurrent appends: events/s and latency percentiles; RSS and disk use when embedded.
    Append(bench::AppendArgs),
    /// ReadAll and catch-up subscription throughput.
    Read(bench::ReadArgs),
    /// Relay throughput to JetStream, and append-to-projection lag at a fixed rate.
    Relay(bench_relay::RelayArgs),
    /// A three-node cluster of this binary: how long writes stop when the leader is killed.
    Failover(bench_failover::FailoverArgs),
    /// A fourth node added to a loaded three-node cluster: catch-up time, and writes meanwhile.
    Catchup(bench_catchup::CatchupArgs),
    /// A rolling restart of a three-node log under write load: stalls, and nothing lost.
    RollingRestart(bench_rolling::RollingArgs),
    /// Ingest's parse + normalise + classify over the corpus mix, lines/s on every core.
    Parse(bench_parse::ParseArgs),
    /// Ingest end to end: filter lines over syslog TCP to durable events, lines/s and peak RSS.
    Ingest(bench_ingest::IngestArgs),
    /// The reporting projection at scale: rebuild events/s, dashboard and trend query latency.
    Query(bench_query::QueryArgs),
}

#[derive(Debug, Subcommand)]
enum IngestCommand {
    /// Parse filter or proxy log files without writing anything: one JSON line per line
    /// (the normalised breach, or why it was refused), then a summary on stderr.
    Parse(ingest_parse::ParseArgs),
    /// Back-fill a school's log files through SubmitBreaches as its school system (token in
    /// HAVEN_TOKEN): batched, resumable (a state file records what was acknowledged), with
    /// progress on stderr and a summary (JSON on stdout) at the end.
    Import(ingest_import::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum CustodyCommand {
    /// Check an exported custody trail offline: hashes, links, signature, every byte.
    /// Exits 0 when intact, 2 when not.
    Verify {
        /// The exported JSON document.
        file: PathBuf,
        /// Require this Ed25519 public key (hex), as Haven publishes it.
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Recompute the hash chain over every stored event; report the first break or OK.
    Verify {
        /// The data directory of a stopped node.
        #[arg(long, default_value = "./haven-data")]
        data_dir: PathBuf,
    },
    /// Manage the replicated log's cluster through one of its nodes.
    Cluster {
        /// The node's gRPC address, HOST:PORT (a DNS name in Kubernetes; the leader, for
        /// membership changes).
        #[arg(long, global = true, default_value = "127.0.0.1:7070")]
        grpc_addr: String,
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Take an online backup of a running node: every event up to one position, verbatim and
    /// checked against the hash chain, in one file (written as FILE.partial, then renamed).
    Backup {
        /// The node's gRPC address, HOST:PORT (ask the leader, or any node: the node first
        /// catches up with everything committed).
        #[arg(long, default_value = "127.0.0.1:7070")]
        grpc_addr: String,
        /// The backup file to write; it must not exist.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup into a new data directory (its event log must not exist yet); then
    /// start it with `haven up --data-dir DIR` or `haven serve eventlog --bootstrap`.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The data directory to restore into (the log goes to DIR/eventlog).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Print events of a running node, one line each (no payloads).
    Tail {
        /// The node's gRPC address.
        #[arg(long, default_value = "127.0.0.1:7070")]
        grpc_addr: SocketAddr,
        /// First global position to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most events to print.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// The tools that call the log's own gRPC (`haven log cluster|backup|tail`, `identity
/// bootstrap`, the benches) send the internal credential of `HAVEN_INTERNAL_KEY_FILE` when it
/// is set (`haven up` and `haven serve` read it as `internal_key_file`, the same variable).
fn install_internal_credential_from_env() -> anyhow::Result<()> {
    let Some(file) = std::env::var_os("HAVEN_INTERNAL_KEY_FILE") else { return Ok(()) };
    let credential = haven_runtime::internal::InternalCredential::load(std::path::Path::new(&file))
        .map_err(|e| anyhow::anyhow!("HAVEN_INTERNAL_KEY_FILE: {e}"))?;
    haven_runtime::internal::install(credential);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let load = |args: &UpArgs| config::HavenConfig::load(cli.config.as_deref(), &args.overrides());
    let result = install_internal_credential_from_env().and_then(|()| match &cli.command {
        Command::Up(args) => load(args).and_then(|config| serve(config, up::Part::Everything, args.demo, true)),
        Command::Serve { service, args } => load(args).and_then(|config| {
            let part = match service {
                ServiceName::Eventlog => up::Part::EventLog,
                ServiceName::Identity => up::Part::Identity,
                ServiceName::Incidents => up::Part::Incidents,
                ServiceName::Custody => up::Part::Custody,
                ServiceName::Ingest => up::Part::Ingest,
                ServiceName::Reporting => up::Part::Reporting,
            };
            serve(config, part, args.demo, args.bootstrap)
        }),
        Command::Config(args) => load(args).map(|config| {
            println!("{}", serde_json::to_string_pretty(&config).expect("the config serialises"));
            ExitCode::SUCCESS
        }),
        Command::Bench { command } => {
            init_tracing("warn");
            runtime().and_then(|runtime| match command {
                BenchCommand::Append(args) => runtime.block_on(bench::append(args.clone())),
                BenchCommand::Read(args) => runtime.block_on(bench::read(args.clone())),
                BenchCommand::Relay(args) => runtime.block_on(bench_relay::relay(args.clone())),
                BenchCommand::Failover(args) => runtime.block_on(bench_failover::failover(args.clone())),
                BenchCommand::Catchup(args) => runtime.block_on(bench_catchup::catchup(args.clone())),
                BenchCommand::RollingRestart(args) => runtime.block_on(bench_rolling::rolling(args.clone())),
                BenchCommand::Parse(args) => bench_parse::parse(args),
                BenchCommand::Ingest(args) => runtime.block_on(bench_ingest::ingest(args.clone())),
                BenchCommand::Query(args) => runtime.block_on(bench_query::query(args.clone())),
            })
        }
        Command::Ingest { command: IngestCommand::Parse(args) } => ingest_parse::run(args),
        Command::Ingest { command: IngestCommand::Import(args) } => run_async(ingest_import::run(args)),
        Command::SignIn { grpc_addr, login, accept_aup } => {
            runtime().and_then(|runtime| runtime.block_on(sign_in::run(*grpc_addr, login, *accept_aup)))
        }
        Command::Identity { command: IdentityCommand::Bootstrap { args, eventlog_url } } => {
            let flags = config::FlagOverrides { eventlog_url: eventlog_url.clone(), ..Default::default() };
            config::HavenConfig::load(cli.config.as_deref(), &flags).and_then(|config| {
                init_tracing("warn");
                run_async(identity_bootstrap::run(config, args))
            })
        }
        Command::Identity { command: IdentityCommand::RotateKey { grpc_addr } } => {
            runtime().and_then(|runtime| runtime.block_on(sign_in::rotate_key(*grpc_addr)))
        }
        Command::Custody { command: CustodyCommand::Verify { file, public_key } } => {
            custody_verify::run(file, public_key.as_deref())
        }
        Command::Log { command: LogCommand::Verify { data_dir } } => {
            init_tracing("info");
            verify::run(data_dir)
        }
        Command::Log { command: LogCommand::Cluster { grpc_addr, command } } => {
            runtime().and_then(|runtime| runtime.block_on(cluster::run(grpc_addr, command.clone())))
        }
        Command::Log { command: LogCommand::Backup { grpc_addr, out } } => {
            runtime().and_then(|runtime| runtime.block_on(backup::backup(grpc_addr, out)))
        }
        Command::Log { command: LogCommand::Restore { from, data_dir } } => {
            init_tracing("warn");
            backup::restore_into(from, data_dir)
        }
        Command::Log { command: LogCommand::Tail { grpc_addr, from, limit } } => {
            runtime().and_then(|runtime| runtime.block_on(tail::run(*grpc_addr, *from, *limit)))
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("haven: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines only, for the tools (no spans exported).
fn init_tracing(filter: &str) {
    if let Err(error) = haven_runtime::Telemetry::install(filter, "haven", None) {
        eprintln!("haven: {error}");
    }
}

/// Runs Haven's servers: telemetry named for the part (spans exported when `otlp_endpoint`
/// is set), the servers until a stop signal, then the spans still queued are flushed.
fn serve(config: config::HavenConfig, part: up::Part, seed_demo: bool, bootstrap: bool) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    // The exporter's channel lives on the runtime: build it inside.
    let telemetry = {
        let _inside = runtime.enter();
        haven_runtime::Telemetry::install(&config.log, part.service_name(), config.otlp_endpoint.as_deref())?
    };
    let result = runtime.block_on(up::run(config, part, seed_demo, bootstrap));
    telemetry.shutdown();
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

/// Runs a command to completion, then stops the runtime without waiting on idle or
/// long-running background tasks (they were told to stop; their data is already durable).
fn run_async(command: impl Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    let result = runtime.block_on(command);
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}
