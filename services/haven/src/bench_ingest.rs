//! `haven bench ingest`: filter lines over syslog TCP to durable events in an embedded log,
//! end to end — the demo feed's generator at full speed: each sender a school with its own
//! syslog source, the vendors taken in turn (FortiGate, Sophos, PAN-OS, Cisco Umbrella,
//! Barracuda), the demo's category mix (a few self-harm and IWF lines among them, so the rules
//! raise alerts), the lines' times a millisecond apart; timed from the first byte sent until
//! the pipeline has appended every line.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use haven_ingest_service::{IngestConfig, SourceSpec, demo};
use haven_runtime::Shutdown;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

/// `haven bench ingest`.
#[derive(Clone, Debug, clap::Args)]
pub struct IngestArgs {
    /// Lines to send in all.
    #[arg(long, default_value_t = 500_000)]
    pub lines: u64,
    /// Senders, each a school with its own syslog source and worker.
    #[arg(long, default_value_t = 4)]
    pub connections: u64,
    /// Most lines per append batch.
    #[arg(long, default_value_t = 5_000)]
    pub batch_lines: usize,
    #[command(flatten)]
    pub target: crate::bench::Target,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    lines: u64,
    connections: u64,
    batch_lines: usize,
    seconds: f64,
    lines_per_second: f64,
    events_appended: u64,
    events_per_second: f64,
    /// Peak resident memory of this process (log, ingest and senders together), MiB.
    peak_rss_mib: Option<f64>,
}

/// The vendor of the `index`th sender's filter.
fn vendor(index: u64) -> demo::Vendor {
    demo::Vendor::ALL[(index % demo::Vendor::ALL.len() as u64) as usize]
}

pub async fn ingest(args: IngestArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.lines > 0 && args.connections > 0, "--lines and --connections must be at least 1");
    let opened = crate::bench::open(&args.target).await?;
    let log = Arc::clone(&opened.log);
    let key = std::env::temp_dir().join(format!("haven-bench-ingest-{}.key", std::process::id()));
    let config = IngestConfig {
        batch_lines: args.batch_lines,
        sources: (0..args.connections)
            .map(|i| SourceSpec {
                school_id: format!("bench-school-{i}"),
                source_id: demo::source_id(vendor(i)),
                format: Some(vendor(i).format().as_str().to_owned()),
                timezone: "Europe/London".into(),
                syslog_tcp: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                syslog_udp: None,
                buffer: false,
                tls: None,
            })
            .collect(),
        ..IngestConfig::default()
    };
    let shutdown = Shutdown::default();
    let metrics = haven_runtime::Metrics::default();
    let running = haven_ingest_service::start(
        &config,
        Arc::clone(&log),
        &key,
        &metrics,
        &haven_runtime::Readiness::default(),
        shutdown.clone(),
    )
    .await;
    let _ = std::fs::remove_file(&key);
    let running = running?;
    let head_before = log.head().await?.next_position.0;
    let per_connection = args.lines / args.connections;
    let total = per_connection * args.connections;
    let started = Instant::now();
    let mut senders = Vec::new();
    for (index, source) in running.sources.iter().enumerate() {
        let address = source.syslog_tcp.expect("a TCP listener");
        senders.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(address).await?;
            let start = jiff::Timestamp::now();
            let octet = demo::school_octet(index % 200);
            let mut generator = demo::Generator::new(vendor(index as u64), octet, 40_000, index as u64);
            let mut chunk = Vec::with_capacity(1 << 20);
            for i in 0..per_connection {
                let at = start.checked_add(jiff::SignedDuration::from_millis(i as i64)).unwrap_or(start);
                chunk.extend_from_slice(generator.next_line(at).as_bytes());
                chunk.push(b'\n');
                if chunk.len() >= 1 << 20 {
                    stream.write_all(&chunk).await?;
                    chunk.clear();
                }
            }
            stream.write_all(&chunk).await?;
            stream.flush().await?;
            anyhow::Ok(())
        }));
    }
    for sender in senders {
        sender.await.context("a sender")??;
    }
    while running.pipeline.lines_processed() < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let events = log.head().await?.next_position.0 - head_before;
    let report = Report {
        bench: "ingest",
        lines: total,
        connections: args.connections,
        batch_lines: args.batch_lines,
        seconds,
        lines_per_second: total as f64 / seconds,
        events_appended: events,
        events_per_second: events as f64 / seconds,
        peak_rss_mib: peak_rss_mib(),
    };
    shutdown.trigger();
    for task in running.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if let Some(local) = &opened.local {
        local.close().await;
    }
    if args.target.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "ingest: {} lines over {} syslog TCP connection(s) in {:.2} s: {:.0} lines/s durable; {} events appended \
             ({:.0}/s); peak RSS {} MiB",
            report.lines,
            report.connections,
            report.seconds,
            report.lines_per_second,
            report.events_appended,
            report.events_per_second,
            report.peak_rss_mib.map_or("?".into(), |m| format!("{m:.0}"))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `VmHWM` from /proc/self/status (Linux), in MiB.
pub(crate) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
