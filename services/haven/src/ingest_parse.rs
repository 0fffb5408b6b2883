//! `haven ingest parse`: how a school checks, before going live, that Haven understands its
//! filter's export. Reads files (syslog framing: LF or octet-counted), writes nothing, prints
//! one JSON line per line — the normalised breach, or the refusal with its reason — and a
//! summary of parsed and quarantined lines per format and reason on stderr.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use haven_ingest::syslog::framing::{Deframer, FrameError};
use haven_ingest::{LineError, LineParser, ParseError, Quarantine, QuarantineReason, SourceConfig, SourceFormat};
use haven_kernel::SchoolId;
use serde_json::json;

/// `haven ingest parse`.
#[derive(Clone, Debug, clap::Args)]
pub struct ParseArgs {
    /// The source's format, or `auto` to detect each line's.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub format: String,
    /// The school the lines are from.
    #[arg(long, default_value = "unregistered", value_name = "SCHOOL")]
    pub school: String,
    /// IANA timezone of local times that carry no offset.
    #[arg(long, default_value = "Europe/London", value_name = "ZONE")]
    pub timezone: String,
    /// Longer lines are refused.
    #[arg(long, default_value_t = SourceConfig::DEFAULT_MAX_LINE_BYTES)]
    pub max_line_bytes: usize,
    /// Files to read; `-` is standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Refusals kept in detail; the rest are counted only.
const QUARANTINE_CAPACITY: usize = 1_000;

pub fn run(args: &ParseArgs) -> anyhow::Result<ExitCode> {
    let school = SchoolId::parse(&args.school).map_err(|e| anyhow::anyhow!("--school: {e}"))?;
    let mut config = SourceConfig::new(school.clone());
    config.format = match args.format.as_str() {
        "auto" => None,
        name => Some(name.parse::<SourceFormat>().map_err(|e| anyhow::anyhow!("--format: {e}"))?),
    };
    config.zone = jiff::tz::TimeZone::get(&args.timezone).with_context(|| format!("--timezone {}", args.timezone))?;
    config.max_line_bytes = args.max_line_bytes;
    let parser = LineParser::new(config);

    let mut report = Report { blank: 0, parsed: BTreeMap::new(), quarantine: Quarantine::new(QUARANTINE_CAPACITY) };
    let mut out = BufWriter::new(io::stdout().lock());
    for path in &args.files {
        let source: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?)
        };
        let written = parse_stream(&parser, &school, &path.display().to_string(), source, &mut out, &mut report);
        match written {
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            other => other.with_context(|| format!("reading {}", path.display()))?,
        }
    }
    match out.flush() {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other.context("writing to stdout")?,
    }
    eprint!("{}", report.summary(parser.map().version()));
    Ok(ExitCode::SUCCESS)
}

/// What the run found, for the summary.
struct Report {
    blank: u64,
    parsed: BTreeMap<SourceFormat, u64>,
    quarantine: Quarantine,
}

impl Report {
    fn summary(&self, table_version: u32) -> String {
        let parsed: u64 = self.parsed.values().sum();
        let quarantined = self.quarantine.total();
        let mut text = format!(
            "haven ingest parse: {} lines, {parsed} parsed, {quarantined} quarantined, {} blank skipped (category table v{table_version})\n",
            parsed + quarantined,
            self.blank,
        );
        for (format, count) in &self.parsed {
            text += &format!("  parsed       {:<16} {count:>8}\n", format.as_str());
        }
        for (key, count) in self.quarantine.counts() {
            let format = key.format.map_or("unrecognised", SourceFormat::as_str);
            text += &format!("  quarantined  {format:<16} {count:>8}  {}\n", key.reason.as_str());
        }
        text
    }
}

const FRAME_TOO_LONG: ParseError = ParseError {
    reason: QuarantineReason::LineTooLong,
    field: None,
    message: "a frame longer than max_line_bytes, discarded by the framing",
};

fn parse_stream(
    parser: &LineParser,
    school: &SchoolId,
    name: &str,
    mut source: impl Read,
    out: &mut impl Write,
    report: &mut Report,
) -> io::Result<()> {
    let mut deframer = Deframer::new(parser.config().max_line_bytes);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut line_number = 0u64;
    let mut at_end = false;
    while !at_end {
        let read = source.read(&mut chunk)?;
        at_end = read == 0;
        deframer.push(&chunk[..read]);
        loop {
            let frame = if at_end { deframer.finish() } else { deframer.next_frame() };
            let Some(frame) = frame else { break };
            line_number += 1;
            let received_at = jiff::Timestamp::now();
            let outcome = match frame {
                Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => {
                    report.blank += 1;
                    continue;
                }
                Ok(bytes) => parser.parse(bytes, received_at).map_err(|error| (error, bytes.len())),
                Err(FrameError::TooLong { len, .. }) => {
                    Err((LineError { format: parser.config().format, error: FRAME_TOO_LONG }, len))
                }
            };
            let line = match outcome {
                Ok(breach) => {
                    *report.parsed.entry(breach.source_format).or_default() += 1;
                    json!({"file": name, "line": line_number, "breach": breach})
                }
                Err((error, len)) => {
                    report.quarantine.record(school, line_number, len, received_at, error);
                    json!({"file": name, "line": line_number, "refused": error})
                }
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}
