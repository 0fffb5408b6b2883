//! The NATS ingest buffer as an input: edge collectors publish batches of raw lines to
//! `haven.ingest.<school>.<format>` (stream `HAVEN_INGEST`, a work queue); ingest takes them
//! off, puts their lines through the same pipeline as syslog, and acknowledges each batch only
//! once its lines are in the log.
//!
//! ```text
//!  HAVEN_INGEST ─pull, 8 batches at most─▶ batch of <school>, <format>
//!     ─▶ a source of <school> with buffer = true, and a format it reads?
//!          no  ─▶ refused (terminated, never redelivered), haven_ingest_buffer_refused_total{reason}
//!          yes ─▶ Pipeline::submit as that source (retried while the log is down) ─▶ ack
//! ```
//! The subject names a school but proves nothing (anyone who may publish to the stream may
//! name any school), so the configuration is the binding, as a syslog listener's is: deny by
//! default, a batch is read only for a school that has a source with `buffer = true`.
//!
//! Nothing acknowledged is lost: the acknowledgement follows the append. A batch delivered
//! again (ingest stopped between the append and the acknowledgement, the acknowledgement lost,
//! another process took it after `ack_wait`) proposes the same events — ids from the lines,
//! the time of receipt from the server's stamp on the message — so it is not recorded twice.
//! The pull asks for a few batches at a time: a full buffer waits on the server, not in
//! ingest's memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use haven_bus::{BusError, IngestBatch, IngestBuffer, Nats};
use haven_ingest::{SourceConfig, SourceFormat};
use haven_kernel::SchoolId;
use haven_runtime::Shutdown;
use tokio::sync::mpsc;

use crate::config::IngestConfig;
use crate::inputs::submit_until_done;
use crate::pipeline::{Line, Pipeline, Source, Summary};

/// The durable consumer every ingest process shares (the stream is a work queue: each batch
/// goes to one of them).
pub const CONSUMER: &str = "haven-ingest";
/// The subject's format for lines whose format is detected per line.
pub const AUTO: &str = "auto";

/// Why a batch is refused unread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No source of the subject's school has `buffer = true`.
    UnconfiguredSchool,
    /// The subject's format is not one Haven parses (nor `auto`).
    UnknownFormat,
    /// The school's buffer source is configured for another format.
    FormatMismatch,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnconfiguredSchool => "unconfigured_school",
            Refusal::UnknownFormat => "unknown_format",
            Refusal::FormatMismatch => "format_mismatch",
        }
    }
}

/// Each school's source that reads the buffer.
#[derive(Clone, Debug, Default)]
pub struct BufferSources {
    by_school: HashMap<String, (String, SourceConfig)>,
}

impl BufferSources {
    /// The sources of a validated configuration that say `buffer = true` (one per school).
    pub fn from_config(config: &IngestConfig) -> Self {
        let mut by_school = HashMap::new();
        for spec in config.sources.iter().filter(|spec| spec.buffer) {
            let school = SchoolId::parse(&spec.school_id).expect("validated");
            let mut source_config = SourceConfig::new(school);
            source_config.format = spec.format.as_deref().map(|f| f.parse().expect("validated"));
            source_config.zone = jiff::tz::TimeZone::get(&spec.timezone).expect("validated");
            source_config.max_line_bytes = config.max_line_bytes;
            by_school.insert(spec.school_id.clone(), (spec.source_id.clone(), source_config));
        }
        BufferSources { by_school }
    }

    pub fn is_empty(&self) -> bool {
        self.by_school.is_empty()
    }

    /// The source a batch of `school` in `format` is read as, or why it is refused.
    pub fn source_for(&self, school: &SchoolId, format: &str) -> Result<Source, Refusal> {
        let (source_id, configured) = self.by_school.get(school.as_str()).ok_or(Refusal::UnconfiguredSchool)?;
        let named = match format {
            AUTO => None,
            name => Some(name.parse::<SourceFormat>().map_err(|_| Refusal::UnknownFormat)?),
        };
        let mut config = configured.clone();
        match (configured.format, named) {
            (Some(expected), Some(named)) if expected != named => return Err(Refusal::FormatMismatch),
            (Some(_), _) => {}
            (None, named) => config.format = named,
        }
        let actor = format!("buffer-{school}-{source_id}");
        Ok(Source::new(school.clone(), source_id, config, actor))
    }
}

/// Ensures the stream and starts taking batches off it until shutdown. `on_batch` sees each
/// appended batch's summary (tests wait on it).
pub async fn start(
    pipeline: Arc<Pipeline>,
    nats: Nats,
    sources: BufferSources,
    shutdown: Shutdown,
    on_batch: Option<mpsc::UnboundedSender<Summary>>,
) -> Result<tokio::task::JoinHandle<()>, BusError> {
    let buffer = IngestBuffer::new(nats).await?;
    Ok(tokio::spawn(consume(pipeline, buffer, sources, shutdown, on_batch)))
}

async fn consume(
    pipeline: Arc<Pipeline>,
    buffer: IngestBuffer,
    sources: BufferSources,
    shutdown: Shutdown,
    on_batch: Option<mpsc::UnboundedSender<Summary>>,
) {
    let mut backoff = Duration::from_millis(100);
    'connect: loop {
        let mut consumer = match buffer.consumer(CONSUMER).await {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(%error, "ingest buffer: cannot consume; retrying");
                if wait(&shutdown, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                biased;
                () = shutdown.triggered() => {
                    consumer.release().await;
                    return;
                }
                next = consumer.next() => next,
            };
            let batch = match next {
                Ok(batch) => batch,
                Err(BusError::Malformed { sequence, reason }) => {
                    tracing::warn!(sequence, %reason, "ingest buffer: malformed batch refused");
                    pipeline.metrics().buffer_refused("malformed");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "ingest buffer: receive failed; reconnecting");
                    // What this consumer still holds goes back now, not after the ack wait.
                    consumer.release().await;
                    if wait(&shutdown, &mut backoff).await {
                        return;
                    }
                    continue 'connect;
                }
            };
            backoff = Duration::from_millis(100);
            if let Some(summary) = take(&pipeline, &sources, batch, &shutdown).await
                && let Some(on_batch) = &on_batch
            {
                let _ = on_batch.send(summary);
            }
        }
    }
}

/// One batch: refused, or appended and then acknowledged. `None` when nothing was appended
/// (refused, or stopped before the log took it: it stays in the buffer).
async fn take(
    pipeline: &Pipeline,
    sources: &BufferSources,
    batch: IngestBatch,
    shutdown: &Shutdown,
) -> Option<Summary> {
    let source = match sources.source_for(&batch.school_id, &batch.format) {
        Ok(source) => source,
        Err(refusal) => {
            tracing::warn!(school = %batch.school_id, reason = refusal.as_str(), "ingest buffer: batch refused");
            pipeline.metrics().buffer_refused(refusal.as_str());
            if let Err(error) = batch.refuse().await {
                tracing::warn!(%error, "ingest buffer: refusal not delivered; the batch comes back");
            }
            return None;
        }
    };
    let lines = lines(&batch);
    let summary = submit_until_done(pipeline, &source, &lines, shutdown).await?;
    // The lines are durable: only now may the batch leave the buffer. A lost acknowledgement
    // means one redelivery, whose lines the log recognises.
    if let Err(error) = batch.ack().await {
        tracing::warn!(%error, school = %source.school, "ingest buffer: acknowledgement failed; the batch comes back");
    }
    Some(summary)
}

/// A batch's lines as the pipeline takes them, received when the server stored the batch (so
/// every delivery of it proposes the same events); empty lines are skipped.
pub fn lines(batch: &IngestBatch) -> Vec<Line> {
    let received_at =
        jiff::Timestamp::from_nanosecond(batch.published_unix_ns).unwrap_or_else(|_| jiff::Timestamp::now());
    batch
        .lines
        .iter()
        .filter(|line| !line.is_empty())
        .map(|line| Line { bytes: line.as_bytes().to_vec(), received_at })
        .collect()
}

/// Sleeps `backoff` (doubling it, to 5 s); true when shutdown came first.
async fn wait(shutdown: &Shutdown, backoff: &mut Duration) -> bool {
    let stopped = tokio::select! {
        () = tokio::time::sleep(*backoff) => false,
        () = shutdown.triggered() => true,
    };
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceSpec;

    fn spec(school: &str, format: Option<&str>, buffer: bool) -> SourceSpec {
        SourceSpec {
            school_id: school.into(),
            source_id: "collector".into(),
            format: format.map(str::to_owned),
            timezone: "Europe/London".into(),
            syslog_tcp: None,
            syslog_udp: Some("127.0.0.1:0".parse().unwrap()),
            buffer,
            tls: None,
        }
    }

    #[test]
    fn only_a_school_with_a_buffer_source_is_read_in_a_format_that_source_takes() {
        let config = IngestConfig {
            sources: vec![spec("oak", None, true), spec("elm", Some("fortigate"), true), spec("ash", None, false)],
            ..IngestConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
        let sources = BufferSources::from_config(&config);
        let school = |id: &str| SchoolId::parse(id).unwrap();
        let oak = sources.source_for(&school("oak"), "squid_native").unwrap();
        assert_eq!((oak.source_id.as_str(), oak.config.format), ("collector", Some(SourceFormat::SquidNative)));
        assert_eq!(oak.actor.principal_id, "buffer-oak-collector");
        assert_eq!(sources.source_for(&school("oak"), AUTO).unwrap().config.format, None);
        assert_eq!(sources.source_for(&school("elm"), AUTO).unwrap().config.format, Some(SourceFormat::Fortigate));
        assert_eq!(sources.source_for(&school("ash"), AUTO).unwrap_err(), Refusal::UnconfiguredSchool);
        assert_eq!(sources.source_for(&school("yew"), AUTO).unwrap_err(), Refusal::UnconfiguredSchool);
        assert_eq!(sources.source_for(&school("oak"), "smoke_signals").unwrap_err(), Refusal::UnknownFormat);
        assert_eq!(sources.source_for(&school("elm"), "pan_os").unwrap_err(), Refusal::FormatMismatch);
    }
}
