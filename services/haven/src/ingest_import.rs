//! `haven ingest import --school S --format F FILE…`: back-fills a school's filter or proxy
//! log files through `haven.v1.Ingest/SubmitBreaches`, as a school system (its token in
//! `HAVEN_TOKEN`), resumable.
//!
//! ```text
//!  check everything first (school, format, files, token) ─▶ state file: where each file stopped
//!  file ─▶ lines from the offset acknowledged ─▶ batch (≤ --batch-lines, ≤ 4 MiB)
//!       ─▶ one SubmitBreaches call: the batch is in the log when it answers
//!       ─▶ state file: the new offset and the running totals (written whole, then renamed)
//!  end ─▶ summary: lines read, accepted, quarantined by reason, events recorded, alerts raised
//! ```
//! A gzip file (told by its magic bytes, not its name) is read through the decompressor, its
//! offset counted in decompressed bytes: a re-run decompresses again and skips that many.
//! Re-running the same command continues where the last run's acknowledgements stopped. A
//! batch sent again (a run killed after the append, before the state file was written) is not
//! recorded twice: event ids are derived from the lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use haven_ingest::SourceFormat;
use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use haven_proto::v1::ingest_client::IngestClient;
use serde::{Deserialize, Serialize};

/// `haven ingest import`.
#[derive(Clone, Debug, clap::Args)]
pub struct ImportArgs {
    /// The school the lines are from; the token in HAVEN_TOKEN must be its school system's.
    #[arg(long, value_name = "SCHOOL")]
    pub school: String,
    /// The files' format, or `auto` to detect each line's.
    #[arg(long, value_name = "FORMAT")]
    pub format: String,
    /// The source the lines are recorded under.
    #[arg(long, default_value = "import", value_name = "ID")]
    pub source_id: String,
    /// Ingest's gRPC address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub grpc_addr: SocketAddr,
    /// Where the import keeps its progress [default: ./haven-import-SCHOOL-SOURCE.json].
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Most lines per SubmitBreaches call (each call is one acknowledged step).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_lines: u64,
    /// Stop after this many lines in this run (re-run to continue).
    #[arg(long, value_name = "N")]
    pub max_lines: Option<u64>,
    /// Files to import, in order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Most bytes of lines in one call (the service takes up to 64 MiB).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// At most one progress line per this.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What an import has done so far, kept beside it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    school_id: String,
    source_id: String,
    format: String,
    /// Bytes of each file acknowledged, by the path as given.
    offsets: BTreeMap<String, u64>,
    totals: Totals,
}

/// The running totals, over every run of the import.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Totals {
    lines_read: u64,
    quarantined: BTreeMap<String, u64>,
    events_recorded: u64,
    repeats_collapsed: u64,
    duplicates_dropped: u64,
    alerts_raised: u64,
}

pub async fn run(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    // Everything checked before anything is sent.
    let school = SchoolId::parse(&args.school).map_err(|e| anyhow::anyhow!("--school: {e}"))?;
    let format = match args.format.as_str() {
        "auto" => pb::SourceFormat::Unspecified,
        name => haven_ingest_service::pipeline::format_to_proto(name.parse::<SourceFormat>().map_err(|_| {
            anyhow::anyhow!("--format: unknown format {name:?} (`haven ingest parse --help` lists them; or auto)")
        })?),
    };
    let source_ok = !args.source_id.is_empty()
        && args.source_id.len() <= 63
        && args.source_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    anyhow::ensure!(source_ok, "--source-id: 1 to 63 lowercase letters, digits or '-'");
    let gzipped = args.files.iter().map(|path| check_file(path)).collect::<anyhow::Result<Vec<bool>>>()?;
    let token = std::env::var("HAVEN_TOKEN")
        .context("HAVEN_TOKEN: set it to the school system's access token (ExchangeClientCredentials gives one)")?;
    let authorization: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", token.trim()).parse().context("HAVEN_TOKEN: not a token")?;
    let state_path =
        args.state.clone().unwrap_or_else(|| PathBuf::from(format!("haven-import-{school}-{}.json", args.source_id)));
    let mut state = load_state(&state_path)?.unwrap_or_else(|| State {
        school_id: school.to_string(),
        source_id: args.source_id.clone(),
        format: args.format.clone(),
        ..State::default()
    });
    anyhow::ensure!(
        (state.school_id.as_str(), state.source_id.as_str(), state.format.as_str())
            == (school.as_str(), args.source_id.as_str(), args.format.as_str()),
        "--state {}: the state of another import ({} {} {}); give this one its own --state",
        state_path.display(),
        state.school_id,
        state.source_id,
        state.format
    );

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", args.grpc_addr))
        .context("--grpc-addr")?
        .timeout(Duration::from_secs(120))
        .connect()
        .await
        .with_context(|| format!("connecting to ingest at {}", args.grpc_addr))?;
    let mut client = IngestClient::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    let mut budget = args.max_lines.unwrap_or(u64::MAX);
    let mut progress = Progress { last: Instant::now(), sent_this_run: 0 };
    let mut complete = true;
    for (path, gzip) in args.files.iter().zip(gzipped) {
        let key = path.display().to_string();
        let mut offset = state.offsets.get(&key).copied().unwrap_or(0);
        let (mut reader, size) = open_at(path, &key, offset, gzip)?;
        while size.is_none_or(|size| offset < size) {
            if budget == 0 {
                complete = false;
                break;
            }
            let (lines, consumed) = read_batch(&mut reader, args.batch_lines.min(budget))
                .with_context(|| format!("{key}: reading at byte {offset}"))?;
            budget -= lines.len() as u64;
            if !lines.is_empty() {
                let sent = lines.len() as u64;
                let message = pb::SubmitBreachesRequest {
                    school_id: school.to_string(),
                    source_id: args.source_id.clone(),
                    source_format: format as i32,
                    lines: lines.into_iter().map(|line| pb::RawLine { line, received_at: None, sequence: 0 }).collect(),
                };
                let mut request = tonic::Request::new(tokio_stream::iter([message]));
                request.metadata_mut().insert("authorization", authorization.clone());
                let response = client.submit_breaches(request).await.map_err(|status| refused(&status, &school))?;
                state.totals.add(&response.into_inner());
                progress.sent_this_run += sent;
            }
            offset += consumed;
            state.offsets.insert(key.clone(), offset);
            save_state(&state_path, &state)?;
            progress.show(&key, offset, size, false);
            if consumed == 0 {
                break;
            }
        }
        progress.show(&key, offset, size, true);
        if !complete {
            break;
        }
    }
    print_summary(&state.totals, complete);
    Ok(ExitCode::SUCCESS)
}

/// A file that is there and readable; whether it is gzip-compressed (its magic bytes).
fn check_file(path: &Path) -> anyhow::Result<bool> {
    let name = path.display();
    let mut file = std::fs::File::open(path).with_context(|| format!("{name}: cannot open"))?;
    anyhow::ensure!(file.metadata().with_context(|| format!("{name}: cannot read"))?.is_file(), "{name}: not a file");
    let mut magic = [0u8; 2];
    let read = file.read(&mut magic).with_context(|| format!("{name}: cannot read"))?;
    Ok(read == 2 && magic == [0x1f, 0x8b])
}

/// The file's lines from `offset` on, and its size when known: a plain file is seeked to the
/// offset; a gzip file is decompressed from its start (every member) and `offset`
/// decompressed bytes skipped, its size unknown until the end.
fn open_at(path: &Path, key: &str, offset: u64, gzip: bool) -> anyhow::Result<(Box<dyn BufRead>, Option<u64>)> {
    let file = std::fs::File::open(path).with_context(|| format!("{key}: cannot open"))?;
    let not_the_same = || format!("{key}: shorter than the {offset} bytes already imported; not the same file");
    if gzip {
        let mut reader = BufReader::new(flate2::read::MultiGzDecoder::new(file));
        let skipped = std::io::copy(&mut reader.by_ref().take(offset), &mut std::io::sink())
            .with_context(|| format!("{key}: decompressing"))?;
        anyhow::ensure!(skipped == offset, not_the_same());
        return Ok((Box::new(reader), None));
    }
    let size = file.metadata().with_context(|| format!("{key}: cannot read"))?.len();
    anyhow::ensure!(offset <= size, not_the_same());
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(offset)).with_context(|| format!("{key}: cannot seek"))?;
    Ok((Box::new(reader), Some(size)))
}

/// Up to `max_lines` lines (LF or CRLF; blank lines skipped) and at most about
/// [`MAX_BATCH_BYTES`]; returns them and the bytes consumed (whole lines only).
fn read_batch(reader: &mut impl BufRead, max_lines: u64) -> std::io::Result<(Vec<Vec<u8>>, u64)> {
    let mut lines = Vec::new();
    let mut consumed = 0u64;
    let mut bytes = 0usize;
    let mut line = Vec::new();
    while (lines.len() as u64) < max_lines && bytes < MAX_BATCH_BYTES {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        consumed += read as u64;
        while let [rest @ .., b'\n' | b'\r'] = line.as_slice() {
            line.truncate(rest.len());
        }
        if !line.is_empty() {
            bytes += line.len();
            lines.push(line.clone());
        }
    }
    Ok((lines, consumed))
}

/// The service's refusal, said for this command.
fn refused(status: &tonic::Status, school: &SchoolId) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!("HAVEN_TOKEN refused: {}", status.message()),
        tonic::Code::PermissionDenied => anyhow::anyhow!(
            "--school {school}: HAVEN_TOKEN may not submit for this school (a school system's token writes for its own \
             school only): {}",
            status.message()
        ),
        tonic::Code::InvalidArgument => anyhow::anyhow!("refused: {}", status.message()),
        _ => anyhow::anyhow!("SubmitBreaches failed ({:?}): {}; re-run to continue", status.code(), status.message()),
    }
}

impl Totals {
    fn add(&mut self, response: &pb::SubmitBreachesResponse) {
        self.lines_read += response.lines_received;
        self.events_recorded += response.breaches_observed;
        self.repeats_collapsed += response.repeats_collapsed;
        self.duplicates_dropped += response.duplicates_dropped;
        self.alerts_raised += response.alerts_raised;
        for count in &response.quarantined {
            let reason = pb::QuarantineReason::try_from(count.reason).unwrap_or_default();
            let name = reason.as_str_name().trim_start_matches("QUARANTINE_REASON_").to_ascii_lowercase();
            *self.quarantined.entry(name).or_default() += count.count;
        }
    }
}

fn load_state(path: &Path) -> anyhow::Result<Option<State>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("--state {}: not an import's state file", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("--state {}: cannot read", path.display())),
    }
}

/// Written to a temporary file and renamed, so a kill leaves the old state or the new.
fn save_state(path: &Path, state: &State) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    let json = serde_json::to_vec_pretty(state).expect("the state serialises");
    std::fs::write(&temporary, json).with_context(|| format!("--state {}: cannot write", path.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("--state {}: cannot write", path.display()))
}

struct Progress {
    last: Instant,
    sent_this_run: u64,
}

impl Progress {
    /// `size` is unknown (`None`) for a gzip file: its offset is in decompressed bytes.
    fn show(&mut self, file: &str, offset: u64, size: Option<u64>, done: bool) {
        if !done && self.last.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last = Instant::now();
        let position = match size {
            Some(0) => format!("{offset} of 0 bytes (100%)"),
            Some(size) => format!("{offset} of {size} bytes ({:.0}%)", offset as f64 * 100.0 / size as f64),
            None => format!("{offset} bytes decompressed"),
        };
        eprintln!("import: {file}: {position}, {} lines sent this run", self.sent_this_run);
    }
}

fn print_summary(totals: &Totals, complete: bool) {
    let quarantined: u64 = totals.quarantined.values().sum();
    eprintln!(
        "import {}: {} lines read, {} accepted, {quarantined} quarantined {:?}, {} events recorded, {} repeats \
         collapsed, {} duplicates dropped, {} alerts raised",
        if complete { "complete" } else { "stopped at --max-lines (re-run to continue)" },
        totals.lines_read,
        totals.lines_read - quarantined,
        totals.quarantined,
        totals.events_recorded,
        totals.repeats_collapsed,
        totals.duplicates_dropped,
        totals.alerts_raised,
    );
    let summary = serde_json::json!({
        "complete": complete,
        "lines_read": totals.lines_read,
        "accepted": totals.lines_read - quarantined,
        "quarantined": totals.quarantined,
        "events_recorded": totals.events_recorded,
        "repeats_collapsed": totals.repeats_collapsed,
        "duplicates_dropped": totals.duplicates_dropped,
        "alerts_raised": totals.alerts_raised,
    });
    println!("{summary}");
}
