//! `haven bench parse`: lines per second through ingest's parse + normalise + classify, over
//! the corpus mix (every line file of `services/ingest/corpus` and ingest's synthetic samples), on as
//! many threads as asked (default: every core). Nothing is written; each thread parses the
//! mix round and round with its own parser until the time is up.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use haven_ingest::{LineParser, SourceConfig};
use haven_kernel::SchoolId;
use serde::Serialize;

/// `haven bench parse`.
#[derive(Clone, Debug, clap::Args)]
pub struct ParseArgs {
    /// The shared corpus; its `.log` files join the mix.
    #[arg(long, default_value = "services/ingest/corpus", value_name = "DIR")]
    pub corpus: PathBuf,
    /// Parsing threads [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
    /// How long to parse, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    threads: usize,
    mix_lines: usize,
    mix_bytes: usize,
    /// Of the mix, how many lines parse into a breach (the rest are refused, as in the corpus).
    mix_parsed: usize,
    lines: u64,
    seconds: f64,
    lines_per_second: f64,
    megabytes_per_second: f64,
    /// Time the parsing threads were on a CPU (Linux), and lines per such second: what the
    /// parser does per core even when other processes share the machine.
    cpu_seconds: Option<f64>,
    lines_per_cpu_second: Option<f64>,
}

pub fn parse(args: &ParseArgs) -> anyhow::Result<ExitCode> {
    let mix = mix(&args.corpus)?;
    anyhow::ensure!(!mix.is_empty(), "no lines in the mix");
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let school = SchoolId::parse("bench-school").expect("a valid school id");
    // Every line is "received" at one instant: reading the clock per line is not what we measure.
    let received_at = jiff::Timestamp::now();
    let mix_bytes = mix.iter().map(Vec::len).sum();
    let probe = LineParser::new(SourceConfig::new(school.clone()));
    let mix_parsed = mix.iter().filter(|line| probe.parse(line, received_at).is_ok()).count();

    let duration = Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let counts: Vec<(u64, u64, Option<u64>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|offset| {
                let (mix, school) = (&mix, school.clone());
                scope.spawn(move || {
                    let parser = LineParser::new(SourceConfig::new(school));
                    let (mut lines, mut bytes) = (0u64, 0u64);
                    let cpu_at_start = thread_cpu_ns();
                    // Start each thread at a different place so they do not walk in step.
                    let mut index = offset * mix.len() / threads;
                    while started.elapsed() < duration {
                        for _ in 0..1_024 {
                            let line = &mix[index];
                            let _ = std::hint::black_box(parser.parse(std::hint::black_box(line), received_at));
                            bytes += line.len() as u64;
                            index = if index + 1 == mix.len() { 0 } else { index + 1 };
                        }
                        lines += 1_024;
                    }
                    let cpu_ns = thread_cpu_ns().zip(cpu_at_start).map(|(end, start)| end.saturating_sub(start));
                    (lines, bytes, cpu_ns)
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().expect("a parsing thread panicked")).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let lines: u64 = counts.iter().map(|(lines, _, _)| lines).sum();
    let bytes: u64 = counts.iter().map(|(_, bytes, _)| bytes).sum();
    let cpu_seconds = counts.iter().map(|(_, _, cpu_ns)| *cpu_ns).sum::<Option<u64>>().map(|ns| ns as f64 / 1e9);
    let report = Report {
        bench: "parse",
        threads,
        mix_lines: mix.len(),
        mix_bytes,
        mix_parsed,
        lines,
        seconds,
        lines_per_second: lines as f64 / seconds,
        megabytes_per_second: bytes as f64 / seconds / 1e6,
        cpu_seconds,
        lines_per_cpu_second: cpu_seconds.filter(|cpu| *cpu > 0.0).map(|cpu| lines as f64 / cpu),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "parse + normalise + classify: {:.0} lines/s ({:.1} MB/s) on {} threads over {:.1} s; mix {} lines ({} parse to a breach, the rest are refused)",
            report.lines_per_second, report.megabytes_per_second, threads, seconds, report.mix_lines, report.mix_parsed
        );
        if let (Some(cpu), Some(per_cpu)) = (report.cpu_seconds, report.lines_per_cpu_second) {
            println!("  {cpu:.1} s on a CPU: {per_cpu:.0} lines per CPU-second");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Nanoseconds the calling thread has spent on a CPU (`CLOCK_THREAD_CPUTIME_ID`), so a bench
/// can tell its own work from the time other processes held the cores.
pub(crate) fn thread_cpu_ns() -> Option<u64> {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(now.tv_sec).ok()?.checked_mul(1_000_000_000)?.checked_add(u64::try_from(now.tv_nsec).ok()?)
}

/// Every non-blank line of the corpus's line files (`*.log`, one folder down) and of the
/// synthetic samples.
fn mix(corpus: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut files = Vec::new();
    for folder in std::fs::read_dir(corpus).with_context(|| format!("reading the corpus at {}", corpus.display()))? {
        let folder = folder?.path();
        if folder.is_dir() {
            for file in std::fs::read_dir(&folder)? {
                let file = file?.path();
                if file.extension().is_some_and(|ext| ext == "log") {
                    files.push(file);
                }
            }
        }
    }
    files.sort();
    let mut lines = Vec::new();
    for file in files {
        let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        lines
            .extend(text.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).map(<[u8]>::to_vec));
    }
    for (_, text) in haven_ingest::samples::SYNTHETIC {
        lines.extend(text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.as_bytes().to_vec()));
    }
    Ok(lines)
}
