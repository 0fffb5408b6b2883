//! The ingest buffer: edge collectors publish raw filter lines, batched, to
//! `haven.ingest.<school>.<format>` (stream `HAVEN_INGEST`, a work queue) when the ingest
//! service is down or far away; the ingest service takes batches off it and acknowledges each
//! once its lines are appended to the log (`haven-ingest-service`'s `buffer` module).
//!
//! Unlike domain events, a buffered batch exists nowhere else until it is acknowledged, so the
//! server's fsync setting decides what a power cut can lose (docs/operations/nats.md). Lines go
//! many to a message so that `sync_interval: always` (an fsync per message) stays fast.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures_util::StreamExt;
use haven_kernel::SchoolId;

use crate::nats::{INGEST_STREAM, MAX_INGEST_BATCH_BYTES};
use crate::subject::ingest_subject;
use crate::{BusError, Nats};

const HEADER_SCHOOL: &str = "Haven-School";
const HEADER_FORMAT: &str = "Haven-Format";
/// Most lines in one batch.
pub const MAX_INGEST_BATCH_LINES: usize = 10_000;
/// Batches a consumer asks the server for at a time: what one process holds unacknowledged
/// at most (8 × 512 KiB), so a full buffer waits on the server, not in ingest's memory.
pub const INGEST_PULL_BATCH: usize = 8;
/// How long a consumer waits before asking again when the buffer was empty.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Publishing to and consuming from the ingest buffer.
#[derive(Clone, Debug)]
pub struct IngestBuffer {
    nats: Nats,
}

/// A batch taken off the buffer; acknowledge it once its lines are safely in the log.
#[derive(Debug)]
pub struct IngestBatch {
    pub school_id: SchoolId,
    pub format: String,
    pub lines: Vec<String>,
    /// When the server stored the batch (Unix nanoseconds): the lines' time of receipt, the
    /// same on every redelivery, so a batch delivered twice proposes the same events.
    pub published_unix_ns: i128,
    message: async_nats::jetstream::Message,
}

/// A durable consumer of the buffer (several processes may share one: a work queue).
pub struct IngestConsumer {
    consumer: async_nats::jetstream::consumer::PullConsumer,
    /// Batches fetched and not handed out yet (at most [`INGEST_PULL_BATCH`]).
    fetched: std::collections::VecDeque<async_nats::jetstream::Message>,
}

impl std::fmt::Debug for IngestConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestConsumer").finish_non_exhaustive()
    }
}

impl IngestBuffer {
    pub async fn new(nats: Nats) -> Result<Self, BusError> {
        nats.ensure_ingest_stream().await?;
        Ok(IngestBuffer { nats })
    }

    /// Publishes one batch of lines. `batch_id` (unique per batch, chosen by the collector)
    /// makes a retried publish a no-op within the duplicate window. Returns the stream sequence.
    pub async fn publish(
        &self,
        school_id: &SchoolId,
        format: &str,
        batch_id: &str,
        lines: &[String],
    ) -> Result<u64, BusError> {
        check_format(format)?;
        if batch_id.is_empty() || batch_id.len() > 128 || !batch_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BusError::invalid("batch_id", "must be 1 to 128 printable ASCII characters"));
        }
        if lines.is_empty() || lines.len() > MAX_INGEST_BATCH_LINES {
            return Err(BusError::invalid("lines", format!("a batch holds 1 to {MAX_INGEST_BATCH_LINES} lines")));
        }
        if let Some(at) = lines.iter().position(|line| line.contains('\n')) {
            return Err(BusError::invalid("lines", format!("line {at} contains a newline")));
        }
        let payload = lines.join("\n");
        if payload.len() > MAX_INGEST_BATCH_BYTES {
            return Err(BusError::invalid("lines", format!("a batch holds at most {MAX_INGEST_BATCH_BYTES} bytes")));
        }
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_SCHOOL, school_id.as_str());
        headers.insert(HEADER_FORMAT, format);
        let publish = PublishMessage::build().payload(Bytes::from(payload)).headers(headers).message_id(batch_id);
        let ack = self
            .nats
            .jetstream
            .send_publish(ingest_subject(school_id.as_str(), format), publish)
            .await
            .map_err(|error| BusError::nats("publish ingest batch", error))?
            .await
            .map_err(|error| BusError::nats("publish ingest batch", error))?;
        Ok(ack.sequence)
    }

    /// A durable consumer named `name` (shared by every ingest process using the same name).
    pub async fn consumer(&self, name: &str) -> Result<IngestConsumer, BusError> {
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(BusError::invalid("consumer name", "must be 1 to 64 of A-Z, a-z, 0-9, - and _"));
        }
        let stream = self.nats.stream(INGEST_STREAM).await?;
        let consumer = stream
            .get_or_create_consumer(
                name,
                pull::Config {
                    durable_name: Some(name.to_owned()),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(60),
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| BusError::nats("create ingest consumer", error))?;
        Ok(IngestConsumer { consumer, fetched: Default::default() })
    }
}

impl IngestConsumer {
    /// The next batch. A message without valid school and format headers is terminated
    /// (never redelivered) and reported as [`BusError::Malformed`].
    ///
    /// Batches are fetched a few at a time without waiting on the server (no pull request is
    /// left outstanding while they are worked on), so [`IngestConsumer::release`] can hand
    /// back everything this consumer holds; an empty buffer is asked again after a pause.
    pub async fn next(&mut self) -> Result<IngestBatch, BusError> {
        let message = loop {
            if let Some(message) = self.fetched.pop_front() {
                break message;
            }
            let mut fetched = self
                .consumer
                .fetch()
                .max_messages(INGEST_PULL_BATCH)
                .messages()
                .await
                .map_err(|error| BusError::nats("fetch ingest batches", error))?;
            while let Some(message) = fetched.next().await {
                self.fetched.push_back(message.map_err(|error| BusError::nats("receive ingest batch", error))?);
            }
            if self.fetched.is_empty() {
                tokio::time::sleep(IDLE_POLL).await;
            }
        };
        let (sequence, published_unix_ns) =
            message.info().map(|info| (info.stream_sequence, info.published.unix_timestamp_nanos())).unwrap_or((0, 0));
        match parse_batch(&message) {
            Ok((school_id, format, lines)) => Ok(IngestBatch { school_id, format, lines, published_unix_ns, message }),
            Err(reason) => {
                let _ = message.double_ack_with(async_nats::jetstream::AckKind::Term).await;
                Err(BusError::Malformed { sequence, reason })
            }
        }
    }

    /// Stopping: the batches fetched and not handed out go back to the buffer at once (for
    /// another process, or this one's next start), rather than after the acknowledgement wait.
    pub async fn release(mut self) {
        for message in self.fetched.drain(..) {
            let _ = message.double_ack_with(async_nats::jetstream::AckKind::Nak(None)).await;
        }
    }
}

impl IngestBatch {
    /// The lines are in the log: the batch leaves the buffer.
    pub async fn ack(self) -> Result<(), BusError> {
        self.message.double_ack().await.map_err(|error| BusError::nats("acknowledge ingest batch", error))
    }

    /// Never: the batch leaves the buffer unprocessed (a school or format this consumer must
    /// not write for; the caller counts it).
    pub async fn refuse(self) -> Result<(), BusError> {
        self.message
            .double_ack_with(async_nats::jetstream::AckKind::Term)
            .await
            .map_err(|error| BusError::nats("refuse ingest batch", error))
    }

    /// Not now: the batch is delivered again after `delay`.
    pub async fn retry_later(self, delay: Duration) -> Result<(), BusError> {
        self.message
            .double_ack_with(async_nats::jetstream::AckKind::Nak(Some(delay)))
            .await
            .map_err(|error| BusError::nats("return ingest batch", error))
    }
}

fn check_format(format: &str) -> Result<(), BusError> {
    let ok = (1..=32).contains(&format.len())
        && format.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BusError::invalid("format", format!("{format:?} must be 1 to 32 of a-z, 0-9, _ and -")))
    }
}

fn parse_batch(message: &async_nats::jetstream::Message) -> Result<(SchoolId, String, Vec<String>), String> {
    let headers = message.headers.as_ref().ok_or("no headers")?;
    let school = headers.get(HEADER_SCHOOL).ok_or("no Haven-School header")?;
    let school_id = SchoolId::parse(school.as_str()).map_err(|error| format!("Haven-School: {error}"))?;
    let format = headers.get(HEADER_FORMAT).ok_or("no Haven-Format header")?.as_str().to_owned();
    check_format(&format).map_err(|error| error.to_string())?;
    let text = std::str::from_utf8(&message.payload).map_err(|_| "lines are not UTF-8")?;
    Ok((school_id, format, text.split('\n').map(str::to_owned).collect()))
}
